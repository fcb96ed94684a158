// The store's files in the data directory, and what keeps them honest.
//
// DATA/store-state.json is written when the store is created and after every commit, outside
// SQLite: {"store": "certgate.db", "commits": N}. Every write transaction also counts itself
// in the database (meta.commits). So:
// - a directory with store-state.json has held a store: a certgate.db that is missing, empty,
//   truncated, not a database or read-only is an error, never a fresh store seeded again;
// - SQLite ignores a WAL whose frames fail their checksums or salts (it rolls back to the last
//   valid commit without a word): a database that counts fewer commits than store-state.json
//   lost committed writes (a corrupt or deleted certgate.db-wal, or an older certgate.db put
//   in place), and certgate refuses to start. The file is rewritten after the commit, so it
//   may lag the database after a crash (fewer commits than the database holds: fine), never
//   lead it. The check runs on a read-only connection, which leaves a suspect WAL as it is.
import { accessSync, closeSync, constants, existsSync, fdatasyncSync, fsyncSync, openSync, readFileSync, readSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { backup, DatabaseSync } from "node:sqlite";

export const DB_FILE = "certgate.db";
const STATE_FILE = "store-state.json";

/** What store-state.json records that certgate checks (the file also names the store it describes, for its reader). */
export interface StoreState {
  commits: number;
}

const stateFile = (db: string): string => join(dirname(db), STATE_FILE);

/** What store-state.json records, or undefined when the directory has never held a store. */
export function readState(db: string): StoreState | undefined {
  const file = stateFile(db);
  if (!existsSync(file)) return undefined;
  let state: unknown;
  try {
    state = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new Error(`${file}: cannot read the store's state (${(e as Error).message}); it records that ${db} holds the data`);
  }
  const commits = (state as { commits?: unknown } | null)?.commits;
  if (typeof commits !== "number" || !Number.isSafeInteger(commits) || commits < 0) throw new Error(`${file}: "commits" is not a count; this file records that ${db} holds the data`);
  return { commits };
}

/** One record, always the same length, so rewriting it never changes the file's size. */
const record = (commits: number): string => JSON.stringify({ store: DB_FILE, commits }).padEnd(63) + "\n";

/**
 * Creates store-state.json (temp file, fsync, rename: never half written) and returns an open
 * descriptor for updateState(). The directory is not fsynced: a rename lost in a power cut
 * leaves no file, which reads as a directory that never held a store (as before this file).
 */
export function createState(db: string, commits: number): number {
  const file = stateFile(db);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, "w", 0o600);
  try {
    writeSync(fd, record(commits));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  return openSync(file, "r+");
}

/** An open descriptor on an existing store-state.json. */
export const openState = (db: string): number => openSync(stateFile(db), "r+");

/**
 * Rewrites the count in place: one 64-byte write at offset 0 (within one sector) and an
 * fdatasync, cheaper than a new file per commit. A count lost in a power cut lags the
 * database, which is safe; one that led it would not be.
 */
export function updateState(fd: number, commits: number): void {
  writeSync(fd, record(commits), 0);
  fdatasyncSync(fd);
}

const HEADER = Buffer.from("SQLite format 3\0", "latin1");

/**
 * Checks certgate.db before SQLite opens it (SQLite would take an empty or missing file for a
 * new database). `held`: store-state.json says this directory has held a store.
 */
export function checkDbFile(db: string, held: boolean): void {
  const restore = `restore it from a backup (README, "Backup and restore"); to start over instead, remove ${stateFile(db)} as well`;
  if (!existsSync(db)) {
    if (held) throw new Error(`${db} is missing, but ${STATE_FILE} records that this directory has held a store: ${restore}`);
    return;
  }
  const st = statSync(db);
  if (!st.isFile()) throw new Error(`${db} is not a file`);
  if (st.size === 0) {
    if (held) throw new Error(`${db} is empty, but ${STATE_FILE} records that this directory has held a store: ${restore}`);
    return;
  }
  // The owner's write bit too: root ignores permissions, and a store nobody may write is an operator's mistake.
  let writable = (st.mode & 0o200) !== 0;
  try {
    accessSync(db, constants.W_OK);
  } catch {
    writable = false;
  }
  if (!writable) throw new Error(`${db} is read-only: certgate must be able to write its store (check its owner and mode)`);
  const head = Buffer.alloc(100);
  const fd = openSync(db, "r");
  let n: number;
  try {
    n = readSync(fd, head, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  if (n < 16 || !head.subarray(0, 16).equals(HEADER)) throw new Error(`${db} is not an SQLite database: ${restore}`);
  if (n < 100) throw new Error(`${db} is truncated (${st.size} bytes, less than its header): ${restore}`);
  // The in-header page count is valid when the change counter matches "version-valid-for" (SQLite file format §1.3).
  const raw = head.readUInt16BE(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const pages = head.readUInt32BE(28);
  if (pages > 0 && head.readUInt32BE(24) === head.readUInt32BE(92) && pages * pageSize > st.size)
    throw new Error(`${db} is truncated (${st.size} bytes; its header says ${pages} pages of ${pageSize}): ${restore}`);
}

/** Commits counted in an open database (0 before the counter existed). */
export function commitsIn(db: DatabaseSync): number {
  const hasMeta = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'meta'").get();
  if (!hasMeta) return 0;
  const row = db.prepare("SELECT value FROM meta WHERE key = 'commits'").get() as { value?: unknown } | undefined;
  return row ? Number(row.value) : 0;
}

/**
 * Reads an existing certgate.db through a read-only connection (which neither checkpoints nor
 * removes a WAL, so a suspect one stays for inspection): SQLite's quick_check, then the commit
 * count against store-state.json.
 */
export function verifyExisting(db: string, state: StoreState | undefined): void {
  let conn: DatabaseSync;
  try {
    conn = new DatabaseSync(db, { readOnly: true });
  } catch (e) {
    throw new Error(`${db}: cannot open: ${(e as Error).message}`);
  }
  try {
    const check = (conn.prepare("PRAGMA quick_check").all() as { quick_check: string }[]).map((r) => r.quick_check);
    if (check.join() !== "ok") throw new Error(`${db} is damaged (SQLite quick_check: ${check.slice(0, 3).join("; ")})`);
    if (!state) return;
    const held = conn.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").get();
    if (!held) throw new Error(`${db} holds no certgate store, but ${STATE_FILE} records that this directory has held one`);
    const commits = commitsIn(conn);
    if (commits < state.commits)
      throw new Error(
        `${db} holds ${commits} commits but ${STATE_FILE} records ${state.commits}: committed writes are missing ` +
          `(a corrupt or deleted ${DB_FILE}-wal, or an older ${DB_FILE} put in place). Nothing was changed; ` +
          `restore from a backup (README, "Backup and restore")`,
      );
  } catch (e) {
    const msg = (e as Error).message;
    throw msg.startsWith(db) ? e : new Error(`${db}: ${msg}`);
  } finally {
    conn.close();
  }
}

/**
 * A consistent copy of the store while certgate runs: SQLite's online backup in one step (one
 * read transaction, so concurrent commits cannot make it restart), written beside `out` and
 * renamed over it once checked. The copy is a single file (rollback journal, no WAL).
 */
export async function backupStore(dataDir: string, out: string): Promise<{ commits: number; revision: number; bytes: number }> {
  const db = join(dataDir, DB_FILE);
  if (!existsSync(db)) throw new Error(`${db} does not exist: nothing to back up`);
  const tmp = `${out}.tmp-${process.pid}`;
  const src = new DatabaseSync(db, { readOnly: true });
  try {
    src.exec("PRAGMA busy_timeout = 5000");
    await backup(src, tmp, { rate: 2 ** 30 });
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new Error(`backup of ${db} failed: ${(e as Error).message}`);
  } finally {
    src.close();
  }
  const copy = new DatabaseSync(tmp);
  let commits: number;
  let revision: number;
  try {
    copy.exec("PRAGMA journal_mode = DELETE");
    const check = (copy.prepare("PRAGMA integrity_check").get() as { integrity_check: string }).integrity_check;
    if (check !== "ok") throw new Error(`the copy fails SQLite's integrity_check: ${check}`);
    commits = commitsIn(copy);
    revision = Number((copy.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: string }).value);
  } catch (e) {
    copy.close();
    rmSync(tmp, { force: true });
    throw new Error(`backup of ${db} failed: ${(e as Error).message}`);
  }
  copy.close();
  renameSync(tmp, out);
  return { commits, revision, bytes: statSync(out).size };
}
