// The store: migrations, diffed writes, rollback on a compile failure, a real `certgate serve`
// killed with SIGKILL in the middle of a burst of admin writes, stopped with SIGTERM, started
// on a damaged data directory, and backed up while it takes writes.
import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterEach, describe, expect, it } from "vitest";
import { pki } from "../helpers/harness.ts";
import { SqliteStore, SCHEMA_VERSION } from "../../src/control/store.ts";
import { parseModel } from "../../src/model/schema.ts";
import { api, echo, tmpData, TOKEN } from "./helpers.ts";
import { run } from "../helpers/tools.ts";

const NODE = join(process.cwd(), "node_modules/.bin/node");

describe("SQLite store", () => {
  it("records its migrations and reopens without re-running them", async () => {
    const dir = tmpData();
    const s = SqliteStore.open(dir);
    expect(await s.isEmpty()).toBe(true);
    await s.close();
    const s2 = SqliteStore.open(dir);
    await s2.close();
    const db = new DatabaseSync(join(dir, "certgate.db"));
    const rows = db.prepare("SELECT version FROM schema_migrations").all();
    expect(rows).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
    expect(db.prepare("PRAGMA journal_mode").get()).toEqual({ journal_mode: "wal" });
    db.close();
  });

  it("writes only the rows that changed and keeps order across reorders", async () => {
    const dir = tmpData();
    const s = SqliteStore.open(dir);
    const origin = "http://127.0.0.1:9";
    const m0 = parseModel({ routes: ["a", "b", "c"].map((id) => ({ id, hostname: `${id}.test`, origin })) });
    await s.replace(m0);
    // Every row the store writes from now on, logged by triggers in the database itself.
    const db = new DatabaseSync(join(dir, "certgate.db"));
    db.exec(`
      CREATE TABLE writes (n INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, kind TEXT, key TEXT);
      CREATE TRIGGER objects_ins AFTER INSERT ON objects BEGIN INSERT INTO writes (op, kind, key) VALUES ('insert', NEW.kind, NEW.key); END;
      CREATE TRIGGER objects_upd AFTER UPDATE ON objects BEGIN INSERT INTO writes (op, kind, key) VALUES ('update', NEW.kind, NEW.key); END;
      CREATE TRIGGER objects_del AFTER DELETE ON objects BEGIN INSERT INTO writes (op, kind, key) VALUES ('delete', OLD.kind, OLD.key); END;
    `);
    const writes = () => {
      const rows = db.prepare("SELECT op, kind, key FROM writes ORDER BY n").all() as { op: string; kind: string; key: string }[];
      db.exec("DELETE FROM writes");
      return rows.map((r) => `${r.op} ${r.kind}/${r.key}`);
    };
    const positions = () => (db.prepare("SELECT key FROM objects WHERE kind = 'routes' ORDER BY pos").all() as { key: string }[]).map((r) => r.key);

    await s.transact((m) => ({ model: { ...m, routes: [m.routes[0]!, { ...m.routes[1]!, path_prefix: "/b" }, m.routes[2]!] }, result: null }));
    expect(writes()).toEqual(["update routes/b"]);
    expect(positions()).toEqual(["a", "b", "c"]);
    // An appended object is one insert; a scalar change touches no object row.
    await s.transact((m) => ({ model: { ...m, routes: [...m.routes, { ...m.routes[0]!, id: "d", hostname: "d.test" }] }, result: null }));
    expect(writes()).toEqual(["insert routes/d"]);
    await s.transact((m) => ({ model: { ...m, trust_forwarded_for: true }, result: null }));
    expect(writes()).toEqual([]);
    // A removal is one delete; a reorder rewrites that collection (and only it) in the new order.
    await s.transact((m) => ({ model: { ...m, routes: m.routes.filter((r) => r.id !== "d") }, result: null }));
    expect(writes()).toEqual(["delete routes/d"]);
    await s.transact((m) => ({ model: { ...m, routes: [m.routes[2]!, m.routes[0]!] }, result: null }));
    expect(writes().sort()).toEqual(["delete routes/a", "delete routes/b", "delete routes/c", "insert routes/a", "insert routes/c"]);
    expect(positions()).toEqual(["c", "a"]);
    expect((await s.load()).routes.map((r) => r.id)).toEqual(["c", "a"]);
    await s.close();
    const s2 = SqliteStore.open(dir);
    expect((await s2.load()).routes.map((r) => r.id)).toEqual(["c", "a"]);
    await s2.close();
    db.close();
  });

  it("keeps rule order across a restart after a delete, an append and an edit", async () => {
    // Stored positions keep gaps after a delete; an append or an edit must not take a
    // survivor's position, or the order read back (rule evaluation order) changes on restart.
    const dir = tmpData();
    const s = SqliteStore.open(dir);
    const rule = (id: string) => parseModel({ rules: [{ id, expression: `http.request.uri.path eq "/${id}"`, action: "log" }] }).rules[0]!;
    await s.replace(parseModel({ rules: ["x", "y", "z"].map((id) => ({ ...rule(id) })) }));
    await s.transact((m) => ({ model: { ...m, rules: m.rules.filter((r) => r.id !== "x") }, result: null }));
    await s.transact((m) => ({ model: { ...m, rules: [...m.rules, rule("a")] }, result: null }));
    await s.transact((m) => ({ model: { ...m, rules: m.rules.map((r) => (r.id === "y" ? { ...r, action: "block" as const } : r)) }, result: null }));
    expect((await s.load()).rules.map((r) => r.id)).toEqual(["y", "z", "a"]);
    await s.close();
    const s2 = SqliteStore.open(dir);
    expect((await s2.load()).rules.map((r) => `${r.id}:${r.action}`)).toEqual(["y:block", "z:log", "a:log"]);
    await s2.close();
  });

  it("stores a token write and its audit entry in one transaction", async () => {
    const s = SqliteStore.open(tmpData());
    const audit = (summary: string) => ({ token_id: "admin", method: "POST", path: "/v1/tokens", status: 201, summary });
    const t = { id: "t1", name: "one", hash: "h1", read_only: false, account_id: null, created_at: "2020-01-01T00:00:00.000Z" };
    await s.addToken(t, { audit: audit("create t1") });
    // A second token with the same hash fails: neither it nor its audit entry is stored.
    await expect(s.addToken({ ...t, id: "t2" }, { audit: audit("create t2") })).rejects.toThrow(/UNIQUE/);
    expect((await s.listTokens()).map((x) => x.id)).toEqual(["t1"]);
    expect((await s.listAudit({ limit: 10 })).map((e) => e.summary)).toEqual(["create t1"]);
    // Deleting a token that is not there records nothing.
    expect(await s.deleteToken("nope", { audit: audit("delete nope") })).toBe(false);
    expect(await s.deleteToken("t1", { audit: audit("delete t1") })).toBe(true);
    expect((await s.listAudit({ limit: 10 })).map((e) => e.summary)).toEqual(["delete t1", "create t1"]);
    await s.close();
  });

  it("rolls back when the commit hook throws: nothing stored", async () => {
    const s = SqliteStore.open(tmpData());
    await s.replace(parseModel({}));
    const rev = await s.revision();
    await expect(
      s.transact((m) => ({ model: { ...m, trust_forwarded_for: true }, result: null }), {
        audit: { token_id: "t", method: "PUT", path: "/x", status: 200, summary: "x" },
        beforeCommit: () => {
          throw new Error("does not compile");
        },
      }),
    ).rejects.toThrow("does not compile");
    expect(await s.revision()).toBe(rev);
    expect((await s.load()).trust_forwarded_for).toBe(false);
    expect(await s.listAudit({ limit: 10 })).toEqual([]);
    await s.close();
  });
});


const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** `certgate serve` as a child on ephemeral ports; `exited` settles with its exit code. */
async function serve(dir: string, config: string): Promise<{ child: ChildProcess; admin: string; exited: Promise<number | null> }> {
  const child = spawn(NODE, ["src/cli.js", "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", "--data", dir, "--config", config], {
    env: { ...process.env, CERTGATE_ADMIN_TOKEN: TOKEN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  let err = "";
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const admin = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (d: Buffer) => {
      out += d.toString();
      const m = /"admin":"([\d.]+:\d+)"/.exec(out);
      if (m) resolve(`http://${m[1]}`);
    });
    child.once("exit", (code) => reject(new Error(`certgate exited (${code}): ${err}${out}`)));
  });
  return { child, admin, exited };
}

/** A bootstrap with the dev server certificate and no routes. */
async function bootstrap(dir: string): Promise<string> {
  const p = await pki();
  const config = join(dir, "bootstrap.json");
  writeFileSync(config, JSON.stringify({ certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }], default_certificate: "srv", routes: [] }));
  return config;
}

/** `certgate serve` that is expected to refuse to start. */
function serveRefused(dir: string, config: string) {
  return run(NODE, ["src/cli.js", "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", "--data", dir, "--config", config], "", 20_000);
}

const routeIds = (file: string): string[] => {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return (db.prepare("SELECT key FROM objects WHERE kind = 'routes' ORDER BY pos").all() as { key: string }[]).map((r) => r.key);
  } finally {
    db.close();
  }
};

/** Copies one file alone into a new directory (no -wal, no -shm) and returns its path there. */
function alone(file: string): string {
  const copy = join(mkdtempSync(join(tmpdir(), "certgate-alone-")), "copy.db");
  copyFileSync(file, copy);
  return copy;
}

describe("kill -9 during a burst of writes", () => {
  it("leaves the store consistent: every acknowledged write is there, the model loads, a restart serves it", async () => {
    const p = await pki();
    const origin = await echo();
    const dir = tmpData();
    const config = join(dir, "bootstrap.json");
    writeFileSync(config, JSON.stringify({ certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }], default_certificate: "srv", routes: [] }));

    const first = await serve(dir, config);
    const acked = new Set<string>();
    let sent = 0;
    let killed = false;
    const worker = async (w: number) => {
      for (let i = 0; !killed; i++) {
        const id = `w${w}-${i}`;
        sent++;
        try {
          const r = await api(first.admin, "PUT", `/v1/routes/${id}`, { hostname: `h${w}-${i}.test`, origin });
          if (r.status === 201) acked.add(id);
          else throw new Error(`unexpected ${r.status}: ${r.text}`);
        } catch (e) {
          if (!killed) throw e;
        }
        if (acked.size >= 60 && !killed) {
          killed = true;
          first.child.kill("SIGKILL");
        }
      }
    };
    await Promise.all([0, 1, 2, 3, 4, 5].map(worker));
    await first.exited;
    expect(first.child.signalCode).toBe("SIGKILL");

    const store = SqliteStore.open(dir);
    const { integrity, model } = store.check();
    expect(integrity).toBe("ok");
    const stored = new Set(model.routes.map((r) => r.id));
    for (const id of acked) expect(stored.has(id), id).toBe(true);
    expect(stored.size).toBeLessThanOrEqual(sent);
    // Each route row is whole: it parses as a route (parseModel ran in check()) and matches its id.
    for (const r of model.routes) expect(r.hostname).toBe(`h${r.id.slice(1)}.test`);
    await store.close();

    const second = await serve(dir, config);
    const routes = await api(second.admin, "GET", "/v1/routes");
    expect(routes.status).toBe(200);
    expect(new Set(routes.body.routes.map((r: { id: string }) => r.id))).toEqual(stored);
    second.child.kill("SIGTERM");
    await second.exited;
  });
});

// Several certgate starts per test: room for a loaded machine.
describe("the data directory across stops, damage and backups", { timeout: 90_000 }, () => {
  it("SIGTERM checkpoints and closes the store: certgate.db alone holds an acknowledged write", async () => {
    const dir = tmpData();
    const s = await serve(dir, await bootstrap(dir));
    const r = await api(s.admin, "PUT", "/v1/routes/kept", { hostname: "kept.test", origin: await echo() });
    expect(r.status).toBe(201);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    const wal = join(dir, "certgate.db-wal");
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
    expect(routeIds(alone(join(dir, "certgate.db")))).toEqual(["kept"]);
  });

  it("refuses to start, naming the file, when certgate.db is missing, empty, truncated, not a database or read-only; never re-seeds", async () => {
    const good = tmpData();
    const config = await bootstrap(good);
    const s = await serve(good, config);
    for (let i = 0; i < 40; i++) expect((await api(s.admin, "PUT", `/v1/routes/r${i}`, { hostname: `r${i}.test`, origin: await echo(), path_prefix: "/" + "p".repeat(200) })).status).toBe(201);
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    const size = statSync(join(good, "certgate.db")).size;
    expect(size).toBeGreaterThan(3 * 4096);

    const damage: [string, RegExp, (db: string) => void][] = [
      ["missing", /is missing, but store-state.json records/, (db) => rmSync(db)],
      ["empty", /is empty, but store-state.json records/, (db) => truncateSync(db, 0)],
      ["truncated", /is truncated/, (db) => truncateSync(db, size - 4096)],
      ["not a database", /is not an SQLite database/, (db) => writeFileSync(db, "routes: []\n".repeat(500))],
      ["read-only", /is read-only/, (db) => chmodSync(db, 0o400)],
    ];
    // `certgate serve` for the case that used to re-seed silently; the store's own open for the
    // others (the same refusal, without a process start each).
    for (const [what, message, mutate] of damage) {
      const dir = tmpData();
      for (const f of ["certgate.db", "store-state.json"]) copyFileSync(join(good, f), join(dir, f));
      const db = join(dir, "certgate.db");
      mutate(db);
      const before = existsSync(db) ? readFileSync(db) : undefined;
      if (what === "missing") {
        const r = await serveRefused(dir, config);
        expect(r.code, what).toBe(1);
        expect(r.stderr, what).toContain(`certgate: ${db} is missing`);
      } else {
        expect(() => SqliteStore.open(dir), what).toThrow(db);
      }
      expect(() => SqliteStore.open(dir), what).toThrow(message);
      // Nothing seeded in its place, nothing rewritten.
      expect(existsSync(db) ? readFileSync(db) : undefined, what).toEqual(before);
    }
  });

  it("a corrupt WAL is an error, not a silent rollback; the WAL is left as it was", async () => {
    const dir = tmpData();
    const config = await bootstrap(dir);
    const s = await serve(dir, config);
    for (let i = 0; i < 12; i++) expect((await api(s.admin, "PUT", `/v1/routes/w${i}`, { hostname: `w${i}.test`, origin: await echo() })).status).toBe(201);
    // Killed: the acknowledged writes are only in certgate.db-wal (no checkpoint yet).
    s.child.kill("SIGKILL");
    await s.exited;
    const walFile = join(dir, "certgate.db-wal");
    const wal = readFileSync(walFile);
    const pageSize = wal.readUInt32BE(8);
    const frames = Math.floor((wal.length - 32) / (24 + pageSize));
    expect(frames).toBeGreaterThan(12);
    // One flipped byte in the page of a frame in the middle: SQLite would drop it and every later frame.
    wal[32 + Math.floor(frames / 2) * (24 + pageSize) + 24 + 100]! ^= 0xff;
    writeFileSync(walFile, wal);
    const r = await serveRefused(dir, config);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(join(dir, "certgate.db"));
    expect(r.stderr).toMatch(/committed writes are missing/);
    expect(readFileSync(walFile)).toEqual(wal);
  });

  it("certgate backup makes a consistent copy while certgate takes writes; the README's restore serves it", async () => {
    const dir = tmpData();
    const config = await bootstrap(dir);
    const s = await serve(dir, config);
    const origin = await echo();
    const acked: string[] = [];
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop && i < 5000; i++) {
        const r = await api(s.admin, "PUT", `/v1/routes/b${i}`, { hostname: `b${i}.test`, origin });
        expect(r.status).toBe(201);
        acked.push(`b${i}`);
      }
    })();
    while (acked.length < 10) await new Promise((r) => setTimeout(r, 20));
    const out = join(mkdtempSync(join(tmpdir(), "certgate-backup-")), "certgate-backup.db");
    const ackedBefore = acked.length;
    const b = await run(NODE, ["src/cli.js", "backup", "--data", dir, "--out", out]);
    const sentAfter = acked.length + 1; // at most one write was in flight when the backup finished
    expect(b.code, b.stderr).toBe(0);
    expect(JSON.parse(b.stdout)).toMatchObject({ backup: out });
    // The backup alone (no -wal): intact, and a prefix of the writes: every write acknowledged
    // before it started, nothing that was never sent.
    const copy = alone(out);
    const check = new DatabaseSync(copy, { readOnly: true });
    expect(check.prepare("PRAGMA integrity_check").get()).toEqual({ integrity_check: "ok" });
    check.close();
    const ids = routeIds(copy);
    expect(ids.length).toBeGreaterThanOrEqual(ackedBefore);
    expect(ids.length).toBeLessThanOrEqual(sentAfter);
    expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => `b${i}`));
    // Writes go on after the backup, and none of them is in it.
    while (acked.length < ids.length + 5) await new Promise((r) => setTimeout(r, 20));
    stop = true;
    await writer;
    expect(routeIds(alone(out))).toEqual(ids);

    // Restore as the README says: stop certgate, put the copy in place of certgate.db, remove
    // certgate.db-wal, certgate.db-shm and store-state.json, start.
    s.child.kill("SIGTERM");
    expect(await s.exited).toBe(0);
    copyFileSync(out, join(dir, "certgate.db"));
    for (const f of ["certgate.db-wal", "certgate.db-shm", "store-state.json"]) rmSync(join(dir, f), { force: true });
    const restored = await serve(dir, config);
    const routes = await api(restored.admin, "GET", "/v1/routes");
    expect(routes.body.routes.map((r: { id: string }) => r.id)).toEqual(ids);
    restored.child.kill("SIGTERM");
    expect(await restored.exited).toBe(0);
  });
});
