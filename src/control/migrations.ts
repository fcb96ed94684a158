// The store's schema migrations: one list for every engine, applied in order, each in its own
// transaction and recorded in `schema_migrations`. Where the engines' SQL differs (SQLite's
// WITHOUT ROWID and AUTOINCREMENT, PostgreSQL's BIGSERIAL), a migration says it per engine.
export type Engine = "sqlite" | "postgres";

export interface Migration {
  version: number;
  name: string;
  sql?: Record<Engine, string>;
  /** Rewrite rows of the layout before per-dialect records into the current one (model/upgrade.ts), when there are any. */
  upgradeLegacyRows?: true;
}

const table = (e: Engine, name: string, body: string, withoutRowid = false) => `CREATE TABLE ${name} (${body})${withoutRowid && e === "sqlite" ? " WITHOUT ROWID" : ""};`;

const v1 = (e: Engine) => `
  ${table(e, "meta", "key TEXT PRIMARY KEY, value TEXT NOT NULL")}
  ${table(e, "objects", "kind TEXT NOT NULL, key TEXT NOT NULL, pos INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key)", true)}
  CREATE INDEX objects_pos ON objects (kind, pos);
  ${table(e, "scalars", "name TEXT PRIMARY KEY, value TEXT NOT NULL")}
  ${table(e, "tokens", "id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, read_only INTEGER NOT NULL, account_id TEXT, created_at TEXT NOT NULL")}
  ${table(e, "audit", `id ${e === "sqlite" ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGSERIAL PRIMARY KEY"}, at TEXT NOT NULL, token_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, summary TEXT NOT NULL`)}
  INSERT INTO meta (key, value) VALUES ('revision', '0');
`;

// Times in epoch milliseconds (BIGINT: PostgreSQL's INTEGER is 32-bit); hostnames a JSON array.
const v3 = (e: Engine) => `
  ${table(e, "client_certificates_seen", `fingerprint TEXT PRIMARY KEY, subject TEXT NOT NULL, issuer TEXT NOT NULL, serial TEXT NOT NULL, san TEXT NOT NULL, not_after BIGINT NOT NULL, result TEXT NOT NULL, revoked INTEGER, first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, hostnames TEXT NOT NULL, connections BIGINT NOT NULL`, true)}
  CREATE INDEX client_certificates_seen_last ON client_certificates_seen (last_seen);
`;

export const MIGRATIONS: readonly Migration[] = [
  { version: 1, name: "model objects, scalars, tokens, audit", sql: { sqlite: v1("sqlite"), postgres: v1("postgres") } },
  // Vendor fields leave the core objects for per-dialect records (model/upgrade.ts): the rows are
  // rewritten once, so each row again holds exactly one object of the model's current layout.
  { version: 2, name: "per-dialect records (vendor fields out of hosts, certificates, zones and rules)", upgradeLegacyRows: true },
  { version: 3, name: "inventory of client certificates seen", sql: { sqlite: v3("sqlite"), postgres: v3("postgres") } },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export const MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

export function tooNew(newest: number | null): Error | undefined {
  return newest !== null && newest > SCHEMA_VERSION ? new Error(`the store's schema version ${newest} is newer than this certgate's (${SCHEMA_VERSION}); upgrade certgate`) : undefined;
}
