// The control plane's store: the one model, persisted. SQLite (node:sqlite) in the data
// directory today; the interface is async so a PostgreSQL adapter can implement it as is.
//
// Layout: every array of the model is a collection of rows in `objects` (kind, key, pos,
// body JSON), every other top-level field a row in `scalars`. A write diffs the new model
// against the cached one by object identity and touches only the rows that changed, all in
// ONE transaction (WAL, synchronous=FULL), so a kill -9 leaves either the old or the new model.
// Every transaction counts itself (meta.commits) and store-state.json records the count
// outside SQLite, so a lost or corrupt WAL is an error at the next start (storefile.ts).
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { chmodSync, closeSync, existsSync } from "node:fs";
import { join } from "node:path";
import { checkDbFile, commitsIn, createState, DB_FILE, openState, readState, updateState, verifyExisting } from "./storefile.ts";
import { parseModel, type Model } from "../model/schema.ts";
import { MIGRATIONS, MIGRATIONS_TABLE, tooNew } from "./migrations.ts";
import { allRows, rawFromRows, READ_OBJECTS, READ_SCALARS, rowChanges, statements, type RowOp } from "./rows.ts";

export { COLLECTIONS, keyField } from "./rows.ts";
import { isLegacy, upgradeLegacy } from "../model/upgrade.ts";
import { COUNT_SEEN, entryOf, LOAD_SEEN, mergeDeltas, PRUNE_SEEN, selectStatements, upsertStatements } from "./seenrows.ts";
import type { SeenDelta, SeenEntry } from "../dataplane/tls/sightings.ts";

/** The store cannot be reached (a fleet's PostgreSQL is down): writes are refused with 503, serving goes on. */
export class StoreUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StoreUnavailable";
  }
}

export interface AuditEntry {
  token_id: string;
  method: string;
  path: string;
  status: number;
  summary: string;
}

export interface AuditRecord extends AuditEntry {
  id: number;
  at: string;
}

export interface TokenRecord {
  id: string;
  name: string;
  /** sha256 of the secret, hex. */
  hash: string;
  read_only: boolean;
  /** Limited to this Cloudflare account (and nothing outside it). */
  account_id: string | null;
  created_at: string;
}

export interface TransactOptions {
  /** Recorded in the same transaction as the change. */
  audit?: AuditEntry;
  /**
   * Called with the new model inside the transaction, before commit; throwing rolls back.
   * The admin server compiles (and swaps in) the snapshot here.
   */
  beforeCommit?: (model: Model) => void;
}

export interface Store {
  /** True when nothing has ever been stored (the bootstrap may seed it). */
  isEmpty(): Promise<boolean>;
  load(): Promise<Model>;
  /**
   * Runs `mutate` on the current model (treat it as immutable; return a new one sharing
   * unchanged objects) in one transaction. The result must already be validated.
   */
  transact<T>(mutate: (model: Model) => { model: Model; result: T }, opts?: TransactOptions): Promise<{ model: Model; result: T; revision: number }>;
  /** Replaces the whole model (bootstrap, PUT /v1/config). */
  replace(model: Model, opts?: TransactOptions): Promise<{ model: Model; revision: number }>;
  revision(): Promise<number>;
  audit(entry: AuditEntry): Promise<void>;
  listAudit(opts: { limit: number; before?: number }): Promise<AuditRecord[]>;
  listTokens(): Promise<TokenRecord[]>;
  /** Adds a token; `audit` is recorded in the same transaction. */
  addToken(t: TokenRecord, opts?: { audit?: AuditEntry }): Promise<void>;
  /** Deletes a token (false when there is none); `audit` is recorded in the same transaction, only when one was deleted. */
  deleteToken(id: string, opts?: { audit?: AuditEntry }): Promise<boolean>;
  /**
   * Adds inventory deltas (dataplane/tls/sightings.ts) to the stored inventory in one
   * transaction, keeps its `max` most recently seen entries, and returns the stored totals of
   * the deltas' certificates.
   */
  flushSeen(deltas: readonly SeenDelta[], max: number): Promise<SeenEntry[]>;
  /** The stored inventory's `max` most recently seen entries, oldest first. */
  loadSeen(max: number): Promise<SeenEntry[]>;
  /** Checkpoints the WAL into the database file and closes: the database file alone then holds everything. */
  close(): Promise<void>;
}

type Row = Record<string, unknown>;

export { SCHEMA_VERSION } from "./migrations.ts";

/** The model's rows as this engine reads them (rows.ts maps them to the model). */
function readRaw(db: DatabaseSync): Record<string, unknown> {
  return rawFromRows(db.prepare(READ_OBJECTS).all() as Row[], db.prepare(READ_SCALARS).all() as Row[]);
}

/** Runs row operations (rows.ts) with prepared statements. */
function runOps(db: DatabaseSync, ops: readonly RowOp[]): void {
  for (const { sql, args } of statements(ops)) db.prepare(sql).run(...(args as SQLInputValue[]));
}

/** Counts the transaction it runs in; store-state.json gets the count after the commit. */
const COUNT_COMMIT = "INSERT INTO meta (key, value) VALUES ('commits', '1') ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1";

export class SqliteStore implements Store {
  readonly #db: DatabaseSync;
  /** store-state.json, open for updates after each commit (set once the store is open). */
  #state = -1;
  #cache: { revision: number; model: Model } | undefined;
  readonly #stmts: Record<string, StatementSync>;

  /**
   * Opens (or creates) the store in `file`. Refuses, naming the file, a database that is
   * missing, empty, truncated, damaged, read-only or short of commits while store-state.json
   * says the directory has held a store.
   */
  constructor(file: string) {
    const state = readState(file);
    checkDbFile(file, state !== undefined);
    const fresh = !existsSync(file);
    if (!fresh) verifyExisting(file, state);
    try {
      this.#db = new DatabaseSync(file);
      if (fresh) chmodSync(file, 0o600);
      this.#db.exec("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;");
      this.#migrate();
    } catch (e) {
      throw new Error(`${file}: ${(e as Error).message}`);
    }
    const commits = commitsIn(this.#db);
    // First open (or a store from before store-state.json); the count may lag after a crash.
    this.#state = state ? openState(file) : createState(file, commits);
    if (state && commits > state.commits) updateState(this.#state, commits);
    const p = (sql: string) => this.#db.prepare(sql);
    this.#stmts = {
      revision: p("SELECT value FROM meta WHERE key = 'revision'"),
      setRevision: p("UPDATE meta SET value = ? WHERE key = 'revision'"),
      audit: p("INSERT INTO audit (at, token_id, method, path, status, summary) VALUES (?, ?, ?, ?, ?, ?)"),
      listAudit: p("SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?"),
      tokens: p("SELECT * FROM tokens ORDER BY created_at, id"),
      addToken: p("INSERT INTO tokens (id, name, hash, read_only, account_id, created_at) VALUES (?, ?, ?, ?, ?, ?)"),
      delToken: p("DELETE FROM tokens WHERE id = ?"),
    };
  }

  static open(dataDir: string): SqliteStore {
    return new SqliteStore(join(dataDir, DB_FILE));
  }

  #migrate(): void {
    this.#db.exec(MIGRATIONS_TABLE);
    const done = new Set((this.#db.prepare("SELECT version FROM schema_migrations").all() as Row[]).map((r) => Number(r.version)));
    const newest = (this.#db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as Row).v;
    const refused = tooNew(typeof newest === "number" ? newest : null);
    if (refused) throw refused;
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      this.#tx(() => {
        if (m.sql) this.#db.exec(m.sql.sqlite);
        if (m.upgradeLegacyRows) {
          const raw = readRaw(this.#db);
          if (isLegacy(raw)) runOps(this.#db, allRows(upgradeLegacy(raw) as Record<string, unknown>));
        }
        this.#db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)").run(m.version, m.name, new Date().toISOString());
      });
    }
  }

  #tx<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    let result: T;
    let commits: number;
    try {
      result = fn();
      this.#db.exec(COUNT_COMMIT);
      commits = commitsIn(this.#db);
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
    try {
      this.#db.exec("COMMIT");
    } catch (e) {
      if (this.#db.isTransaction) this.#db.exec("ROLLBACK");
      throw e;
    }
    // After the commit (durable by then): a crash in between leaves the count behind the database,
    // never ahead. A failed update (disk full) is not the write's failure: the write is committed,
    // and a count that lags only narrows what the next start can check.
    try {
      if (this.#state >= 0) updateState(this.#state, commits);
    } catch {
      /* lagging is safe */
    }
    return result;
  }

  #revision(): number {
    return Number((this.#stmts.revision!.get() as Row).value);
  }

  /** The model as stored; cached while the revision is unchanged (another process may write). */
  #current(): { revision: number; model: Model } {
    const revision = this.#revision();
    if (this.#cache?.revision === revision) return this.#cache;
    this.#cache = { revision, model: parseModel(readRaw(this.#db)) };
    return this.#cache;
  }

  isEmpty(): Promise<boolean> {
    return Promise.resolve(this.#revision() === 0);
  }

  load(): Promise<Model> {
    return Promise.resolve(this.#current().model);
  }

  revision(): Promise<number> {
    return Promise.resolve(this.#revision());
  }

  transact<T>(mutate: (model: Model) => { model: Model; result: T }, opts: TransactOptions = {}): Promise<{ model: Model; result: T; revision: number }> {
    try {
      return Promise.resolve(
        this.#tx(() => {
          const cur = this.#current();
          const { model, result } = mutate(cur.model);
          if (model === cur.model && !opts.audit) return { model, result, revision: cur.revision };
          const revision = this.#write(cur.model, model, opts);
          this.#cache = { revision, model };
          return { model, result, revision };
        }),
      );
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  replace(model: Model, opts: TransactOptions = {}): Promise<{ model: Model; revision: number }> {
    return this.transact(() => ({ model, result: undefined }), opts).then(({ model, revision }) => ({ model, revision }));
  }

  /** Writes `next` (into an empty store: every row; else the difference from `prev`); returns the new revision. */
  #write(prev: Model, next: Model, opts: TransactOptions): number {
    runOps(this.#db, this.#revision() === 0 ? allRows(next) : rowChanges(prev, next));
    const revision = this.#revision() + 1;
    this.#stmts.setRevision!.run(String(revision));
    if (opts.audit) this.#audit(opts.audit);
    opts.beforeCommit?.(next);
    return revision;
  }

  #audit(e: AuditEntry): void {
    this.#stmts.audit!.run(new Date().toISOString(), e.token_id, e.method, e.path, e.status, e.summary.slice(0, 1000));
  }

  audit(entry: AuditEntry): Promise<void> {
    try {
      this.#tx(() => this.#audit(entry));
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  listAudit(opts: { limit: number; before?: number }): Promise<AuditRecord[]> {
    const rows = this.#stmts.listAudit!.all(opts.before ?? Number.MAX_SAFE_INTEGER, opts.limit) as Row[];
    return Promise.resolve(
      rows.map((r) => ({
        id: Number(r.id),
        at: String(r.at),
        token_id: String(r.token_id),
        method: String(r.method),
        path: String(r.path),
        status: Number(r.status),
        summary: String(r.summary),
      })),
    );
  }

  listTokens(): Promise<TokenRecord[]> {
    return Promise.resolve(
      (this.#stmts.tokens!.all() as Row[]).map((r) => ({
        id: String(r.id),
        name: String(r.name),
        hash: String(r.hash),
        read_only: Boolean(r.read_only),
        account_id: r.account_id == null ? null : String(r.account_id),
        created_at: String(r.created_at),
      })),
    );
  }

  addToken(t: TokenRecord, opts: { audit?: AuditEntry } = {}): Promise<void> {
    try {
      this.#tx(() => {
        this.#stmts.addToken!.run(t.id, t.name, t.hash, t.read_only ? 1 : 0, t.account_id, t.created_at);
        if (opts.audit) this.#audit(opts.audit);
      });
      return Promise.resolve();
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  deleteToken(id: string, opts: { audit?: AuditEntry } = {}): Promise<boolean> {
    try {
      return Promise.resolve(
        this.#tx(() => {
          const deleted = Number(this.#stmts.delToken!.run(id).changes) > 0;
          if (deleted && opts.audit) this.#audit(opts.audit);
          return deleted;
        }),
      );
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  flushSeen(deltas: readonly SeenDelta[], max: number): Promise<SeenEntry[]> {
    try {
      return Promise.resolve(
        this.#tx(() => {
          // BEGIN IMMEDIATE holds the write lock: nobody changes these rows between the read and the write.
          const stored = selectStatements(deltas).flatMap(({ sql, args }) => this.#db.prepare(sql).all(...(args as SQLInputValue[])) as Row[]);
          const totals = mergeDeltas(stored, deltas);
          for (const { sql, args } of upsertStatements(totals)) this.#db.prepare(sql).run(...(args as SQLInputValue[]));
          if (Number((this.#db.prepare(COUNT_SEEN).get() as Row).n) > max) this.#db.prepare(PRUNE_SEEN).run(max);
          return totals;
        }),
      );
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }

  loadSeen(max: number): Promise<SeenEntry[]> {
    return Promise.resolve((this.#db.prepare(LOAD_SEEN).all(max) as Row[]).map(entryOf));
  }

  /** Integrity check for tests and operators: SQLite's own, plus "the model loads and parses". */
  check(): { integrity: string; revision: number; model: Model } {
    const integrity = String((this.#db.prepare("PRAGMA integrity_check").get() as Row).integrity_check);
    this.#cache = undefined;
    const { revision, model } = this.#current();
    return { integrity, revision, model };
  }

  close(): Promise<void> {
    if (!this.#db.isOpen) return Promise.resolve();
    try {
      // TRUNCATE: everything into certgate.db and an empty WAL, even if another connection
      // (a running `certgate backup`) keeps SQLite from removing the WAL on close.
      this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } finally {
      this.#db.close();
      if (this.#state >= 0) closeSync(this.#state);
      this.#state = -1;
    }
    return Promise.resolve();
  }
}
