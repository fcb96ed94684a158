// The store on PostgreSQL (`serve --store postgres://…`), for a fleet of nodes sharing one
// model. The same rows, migrations and row operations as the SQLite store (rows.ts,
// migrations.ts). Writers serialize on the `revision` row (SELECT … FOR UPDATE): each write
// reads the model at the latest revision, whichever node wrote it, so no update is lost; the
// commit notifies `certgate_config` with the new revision.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { parseModel, type Model } from "../model/schema.ts";
import { isLegacy, upgradeLegacy } from "../model/upgrade.ts";
import { MIGRATIONS, MIGRATIONS_TABLE, tooNew } from "./migrations.ts";
import { allRows, rawFromRows, READ_OBJECTS, READ_SCALARS, rowChanges, statements, type RowOp } from "./rows.ts";
import { COUNT_SEEN, entryOf, LOAD_SEEN, mergeDeltas, PRUNE_SEEN, selectStatements, upsertStatements } from "./seenrows.ts";
import type { SeenDelta, SeenEntry } from "../dataplane/tls/sightings.ts";
import { StoreUnavailable, type AuditEntry, type AuditRecord, type Store, type TokenRecord, type TransactOptions } from "./store.ts";

/** The channel every commit notifies with its revision, and token changes with TOKENS_CHANGED. */
export const CONFIG_CHANNEL = "certgate_config";
export const TOKENS_CHANGED = "tokens";
/** Held while migrating, so nodes starting together migrate once. */
const MIGRATION_LOCK = 0x63657274; // "cert"
/** Held by a flush of the inventory: nodes add their deltas one after the other (read, add, write). */
const SEEN_LOCK = 0x7365656e; // "seen"

type Client = pg.PoolClient;

/** `?` placeholders (rows.ts) as PostgreSQL's $1, $2, … */
const numbered = (sql: string): string => {
  let n = 0;
  return sql.replace(/\?/g, () => `$${++n}`);
};

/**
 * Errors that mean "PostgreSQL cannot be reached right now" rather than "this write is wrong":
 * no connection, a connection cut, the server shutting down or out of connections.
 */
function isDown(e: unknown): boolean {
  const code = String((e as { code?: string }).code ?? "");
  const msg = (e as Error).message ?? "";
  return /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(code) || /^(08|57P|53)/.test(code) || /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(msg);
}

function mapDown(e: unknown): never {
  throw isDown(e) ? new StoreUnavailable((e as Error).message || String((e as { code?: string }).code)) : e;
}

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly url: string;
  #cache: { revision: number; model: Model } | undefined;
  /** The tail of this node's queue of write transactions. */
  #writes: Promise<unknown> = Promise.resolve();
  /** Settles once the schema is migrated (retried after a failure). */
  #ready: Promise<void> | undefined;

  private constructor(url: string) {
    this.url = url;
    this.#pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5_000 });
    // An idle client's error (the server went away) must not crash the process: the next query reconnects.
    this.#pool.on("error", () => {});
  }

  /** Connects and migrates; the error names the URL (without its password) and why (StoreUnavailable when unreachable). */
  static async open(url: string): Promise<PostgresStore> {
    const store = new PostgresStore(url);
    try {
      await store.ready();
    } catch (e) {
      await store.#pool.end().catch(() => {});
      const message = `${redact(url)}: ${(e as Error).message}`;
      throw e instanceof StoreUnavailable ? new StoreUnavailable(message) : new Error(message);
    }
    return store;
  }

  /** A store whose server is unreachable now: every call fails with StoreUnavailable until it is back (and migrated). */
  static offline(url: string): PostgresStore {
    return new PostgresStore(url);
  }

  /** Migrates once the server answers; later calls wait for that. */
  ready(): Promise<void> {
    return (this.#ready ??= this.#migrate().catch((e: unknown) => {
      this.#ready = undefined;
      throw e;
    }));
  }

  async #migrate(): Promise<void> {
    await this.#tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK]);
      await c.query(MIGRATIONS_TABLE);
      const done = new Set((await c.query("SELECT version FROM schema_migrations")).rows.map((r: { version: number }) => Number(r.version)));
      const newest = done.size ? Math.max(...done) : null;
      const refused = tooNew(newest);
      if (refused) throw refused;
      for (const m of MIGRATIONS) {
        if (done.has(m.version)) continue;
        if (m.sql) await c.query(m.sql.postgres);
        if (m.upgradeLegacyRows) {
          const raw = await readRaw(c);
          if (isLegacy(raw)) await runOps(c, allRows(upgradeLegacy(raw) as Record<string, unknown>));
        }
        await c.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [m.version, m.name, new Date().toISOString()]);
      }
    }, false);
  }

  /** A query outside a transaction, once migrated. */
  async #query(sql: string, args: unknown[] = []): Promise<pg.QueryResult> {
    await this.ready();
    return this.#pool.query(sql, args).catch(mapDown);
  }

  async #tx<T>(fn: (c: Client) => Promise<T>, migrated = true): Promise<T> {
    if (migrated) await this.ready();
    const c = await this.#pool.connect().catch(mapDown);
    try {
      await c.query("BEGIN");
      const r = await fn(c);
      await c.query("COMMIT");
      return r;
    } catch (e) {
      await c.query("ROLLBACK").catch(() => {});
      return mapDown(e);
    } finally {
      c.release();
    }
  }

  async #revision(c: Client, lock = false): Promise<number> {
    const r = await c.query(`SELECT value FROM meta WHERE key = 'revision'${lock ? " FOR UPDATE" : ""}`);
    return Number(r.rows[0].value);
  }

  /** The model at `revision`: the cached one, or read afresh (another node wrote meanwhile). */
  async #modelAt(c: Client, revision: number): Promise<{ revision: number; model: Model }> {
    if (this.#cache?.revision === revision) return this.#cache;
    this.#cache = { revision, model: parseModel(await readRaw(c)) };
    return this.#cache;
  }

  async isEmpty(): Promise<boolean> {
    return Number((await this.#query("SELECT value FROM meta WHERE key = 'revision'")).rows[0].value) === 0;
  }

  async load(): Promise<Model> {
    // One snapshot for the revision and the rows it names.
    return this.#tx(async (c) => {
      await c.query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
      return (await this.#modelAt(c, await this.#revision(c))).model;
    });
  }

  async revision(): Promise<number> {
    return Number((await this.#query("SELECT value FROM meta WHERE key = 'revision'")).rows[0].value);
  }

  transact<T>(mutate: (model: Model) => { model: Model; result: T }, opts: TransactOptions = {}): Promise<{ model: Model; result: T; revision: number }> {
    // This node's writes go one at a time: they serialize on the revision row anyway, and a
    // write waiting here holds no pool connection. Queued in pg.Pool instead, a burst of
    // writes would wait out its connect timeout and be refused as if the store were down.
    const run = this.#writes.then(() => this.#transact(mutate, opts));
    this.#writes = run.catch(() => {});
    return run;
  }

  #transact<T>(mutate: (model: Model) => { model: Model; result: T }, opts: TransactOptions): Promise<{ model: Model; result: T; revision: number }> {
    return this.#tx(async (c) => {
      const at = await this.#revision(c, true);
      const cur = await this.#modelAt(c, at);
      const { model, result } = mutate(cur.model);
      if (model === cur.model && !opts.audit) return { model, result, revision: at };
      await runOps(c, at === 0 ? allRows(model) : rowChanges(cur.model, model));
      const revision = at + 1;
      await c.query("UPDATE meta SET value = $1 WHERE key = 'revision'", [String(revision)]);
      if (opts.audit) await insertAudit(c, opts.audit);
      opts.beforeCommit?.(model);
      await c.query("SELECT pg_notify($1, $2)", [CONFIG_CHANNEL, String(revision)]);
      this.#cache = { revision, model };
      return { model, result, revision };
    }).catch((e: unknown) => {
      this.#cache = undefined; // the rollback may have left it ahead of the database
      throw e;
    });
  }

  async replace(model: Model, opts: TransactOptions = {}): Promise<{ model: Model; revision: number }> {
    const r = await this.transact(() => ({ model, result: undefined }), opts);
    return { model: r.model, revision: r.revision };
  }

  audit(entry: AuditEntry): Promise<void> {
    return this.#tx((c) => insertAudit(c, entry));
  }

  async listAudit(opts: { limit: number; before?: number }): Promise<AuditRecord[]> {
    const r = await this.#query("SELECT * FROM audit WHERE id < $1 ORDER BY id DESC LIMIT $2", [opts.before ?? Number.MAX_SAFE_INTEGER, opts.limit]);
    return r.rows.map((x: Record<string, unknown>) => ({ id: Number(x.id), at: String(x.at), token_id: String(x.token_id), method: String(x.method), path: String(x.path), status: Number(x.status), summary: String(x.summary) }));
  }

  async listTokens(): Promise<TokenRecord[]> {
    const r = await this.#query("SELECT * FROM tokens ORDER BY created_at, id");
    return r.rows.map((x: Record<string, unknown>) => ({ id: String(x.id), name: String(x.name), hash: String(x.hash), read_only: Boolean(x.read_only), account_id: x.account_id == null ? null : String(x.account_id), created_at: String(x.created_at) }));
  }

  addToken(t: TokenRecord, opts: { audit?: AuditEntry } = {}): Promise<void> {
    return this.#tx(async (c) => {
      await c.query("INSERT INTO tokens (id, name, hash, read_only, account_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)", [t.id, t.name, t.hash, t.read_only ? 1 : 0, t.account_id, t.created_at]);
      if (opts.audit) await insertAudit(c, opts.audit);
      await c.query("SELECT pg_notify($1, $2)", [CONFIG_CHANNEL, TOKENS_CHANGED]);
    });
  }

  deleteToken(id: string, opts: { audit?: AuditEntry } = {}): Promise<boolean> {
    return this.#tx(async (c) => {
      const deleted = ((await c.query("DELETE FROM tokens WHERE id = $1", [id])).rowCount ?? 0) > 0;
      if (deleted && opts.audit) await insertAudit(c, opts.audit);
      // Every node drops its cached tokens: a token deleted here stops working everywhere.
      if (deleted) await c.query("SELECT pg_notify($1, $2)", [CONFIG_CHANNEL, TOKENS_CHANGED]);
      return deleted;
    });
  }

  /**
   * A secret every node shares (the session-ticket secret: a ticket from one node resumes on
   * another), made by the first node that asks and kept in `meta`.
   */
  async sharedSecret(name: string, bytes: number): Promise<Buffer> {
    return Buffer.from(await this.putIfAbsent(`secret:${name}`, randomBytes(bytes).toString("base64")), "base64");
  }

  /** A value every node shares, by key (undefined while none was stored). */
  async get(key: string): Promise<string | undefined> {
    const r = await this.#query("SELECT value FROM meta WHERE key = $1", [key]);
    return r.rows[0] ? String(r.rows[0].value) : undefined;
  }

  /** Stores `value` under `key` unless a value is there already; returns the stored one (the first writer wins). */
  async putIfAbsent(key: string, value: string): Promise<string> {
    await this.#query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", [key, value]);
    return (await this.get(key))!;
  }

  flushSeen(deltas: readonly SeenDelta[], max: number): Promise<SeenEntry[]> {
    return this.#tx(async (c) => {
      await c.query("SELECT pg_advisory_xact_lock($1)", [SEEN_LOCK]);
      const stored: Record<string, unknown>[] = [];
      for (const { sql, args } of selectStatements(deltas)) stored.push(...(await c.query(numbered(sql), args)).rows);
      const totals = mergeDeltas(stored, deltas);
      for (const { sql, args } of upsertStatements(totals)) await c.query(numbered(sql), args);
      if (Number((await c.query(COUNT_SEEN)).rows[0].n) > max) await c.query(numbered(PRUNE_SEEN), [max]);
      return totals;
    });
  }

  async loadSeen(max: number): Promise<SeenEntry[]> {
    return (await this.#query(numbered(LOAD_SEEN), [max])).rows.map(entryOf);
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

async function readRaw(c: Client | pg.Pool): Promise<Record<string, unknown>> {
  const [objects, scalars] = [await c.query(READ_OBJECTS), await c.query(READ_SCALARS)];
  return rawFromRows(objects.rows, scalars.rows);
}

async function runOps(c: Client, ops: readonly RowOp[]): Promise<void> {
  for (const { sql, args } of statements(ops)) await c.query(numbered(sql), args);
}

async function insertAudit(c: Client, e: AuditEntry): Promise<void> {
  await c.query("INSERT INTO audit (at, token_id, method, path, status, summary) VALUES ($1, $2, $3, $4, $5, $6)", [new Date().toISOString(), e.token_id, e.method, e.path, e.status, e.summary.slice(0, 1000)]);
}

/** A connection URL fit for logs and errors: without its password. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(unparseable store URL)";
  }
}
