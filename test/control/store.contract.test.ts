// The Store contract, run against both engines: SQLite (a file) and PostgreSQL (a real server,
// test/helpers/postgres.setup.ts, one fresh database per case).
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { SqliteStore, SCHEMA_VERSION, type Store } from "../../src/control/store.ts";
import { PostgresStore, redact } from "../../src/control/pgstore.ts";
import { parseModel, type Model } from "../../src/model/schema.ts";
import { tmpData } from "./helpers.ts";
import { createDatabase } from "../helpers/postgres.setup.ts";
import type { SeenDelta } from "../../src/dataplane/tls/sightings.ts";

const pgUrl = inject("pgUrl");
const ORIGIN = "http://127.0.0.1:9";

const freshPgUrl = (): Promise<string> => createDatabase(pgUrl);

interface Engine {
  name: string;
  /** A new, empty store location. */
  location(): Promise<string>;
  open(location: string): Promise<Store>;
}

const ENGINES: Engine[] = [
  { name: "SQLite", location: async () => tmpData(), open: async (dir) => SqliteStore.open(dir) },
  { name: "PostgreSQL", location: freshPgUrl, open: (url) => PostgresStore.open(url) },
];

const routes = (ids: string[]) => parseModel({ routes: ids.map((id) => ({ id, hostname: `${id}.test`, origin: ORIGIN })) });
const ids = (m: Model) => m.routes.map((r) => r.id);

for (const engine of ENGINES) {
  const skip = engine.name === "PostgreSQL" && !pgUrl;
  describe.skipIf(skip)(`${engine.name} store contract`, () => {
    it("starts empty, stores a model, and reads it back after a reopen", async () => {
      const where = await engine.location();
      const s = await engine.open(where);
      expect(await s.isEmpty()).toBe(true);
      expect(await s.revision()).toBe(0);
      const m = parseModel({ ...routes(["a", "b"]), limits: { max_header_count: 50 }, trust_forwarded_for: true });
      const r = await s.replace(m);
      expect(r.revision).toBe(1);
      await s.close();
      const again = await engine.open(where);
      expect(await again.isEmpty()).toBe(false);
      expect(await again.load()).toEqual(m);
      expect(await again.revision()).toBe(1);
      await again.close();
    });

    it("keeps order through appends, edits, deletes and reorders, across reopens", async () => {
      const where = await engine.location();
      const s = await engine.open(where);
      await s.replace(routes(["a", "b", "c"]));
      const step = async (f: (m: Model) => Model) => (await s.transact((m) => ({ model: f(m), result: null }))).model;
      await step((m) => ({ ...m, routes: m.routes.filter((r) => r.id !== "b") }));
      await step((m) => ({ ...m, routes: [...m.routes, ...routes(["d"]).routes] }));
      await step((m) => ({ ...m, routes: m.routes.map((r) => (r.id === "a" ? { ...r, path_prefix: "/edited" } : r)) }));
      const last = await step((m) => ({ ...m, routes: [...m.routes].reverse() }));
      expect(ids(last)).toEqual(["d", "c", "a"]);
      await s.close();
      const again = await engine.open(where);
      const loaded = await again.load();
      expect(ids(loaded)).toEqual(["d", "c", "a"]);
      expect(loaded.routes.find((r) => r.id === "a")?.path_prefix).toBe("/edited");
      expect(await again.revision()).toBe(5);
      await again.close();
    });

    it("rolls back a write whose beforeCommit throws: model, revision and audit unchanged", async () => {
      const s = await engine.open(await engine.location());
      await s.replace(routes(["a"]));
      await expect(
        s.transact((m) => ({ model: { ...m, routes: [] }, result: null }), {
          audit: { token_id: "t", method: "PUT", path: "/x", status: 200, summary: "doomed" },
          beforeCommit: () => {
            throw new Error("does not compile");
          },
        }),
      ).rejects.toThrow("does not compile");
      expect(ids(await s.load())).toEqual(["a"]);
      expect(await s.revision()).toBe(1);
      expect(await s.listAudit({ limit: 10 })).toEqual([]);
      await s.close();
    });

    it("audits in the write's transaction and pages the log newest first", async () => {
      const s = await engine.open(await engine.location());
      await s.replace(routes(["a"]), { audit: { token_id: "system", method: "SEED", path: "", status: 200, summary: "seeded" } });
      for (let i = 0; i < 5; i++) await s.audit({ token_id: "t", method: "POST", path: `/p${i}`, status: 403, summary: `refused ${i}` });
      const page = await s.listAudit({ limit: 3 });
      expect(page.map((e) => e.path)).toEqual(["/p4", "/p3", "/p2"]);
      const next = await s.listAudit({ limit: 10, before: page[2]!.id });
      expect(next.map((e) => e.summary)).toEqual(["refused 1", "refused 0", "seeded"]);
      expect(next[2]).toMatchObject({ token_id: "system", method: "SEED", status: 200 });
      await s.close();
    });

    it("adds, lists and deletes tokens (hashes unique), auditing only what happened", async () => {
      const s = await engine.open(await engine.location());
      const t = { id: "tok_1", name: "ops", hash: "ab".repeat(32), read_only: true, account_id: "acc", created_at: new Date(0).toISOString() };
      await s.addToken(t, { audit: { token_id: "admin", method: "POST", path: "/v1/tokens", status: 201, summary: "create" } });
      expect(await s.listTokens()).toEqual([t]);
      await expect(s.addToken({ ...t, id: "tok_2" })).rejects.toThrow();
      expect(await s.deleteToken("tok_1", { audit: { token_id: "admin", method: "DELETE", path: "/v1/tokens/tok_1", status: 204, summary: "delete" } })).toBe(true);
      expect(await s.deleteToken("tok_1", { audit: { token_id: "admin", method: "DELETE", path: "/v1/tokens/tok_1", status: 204, summary: "again" } })).toBe(false);
      expect(await s.listTokens()).toEqual([]);
      expect((await s.listAudit({ limit: 10 })).map((e) => e.summary)).toEqual(["delete", "create"]);
      await s.close();
    });

    it("loses no update when two store instances on one database write concurrently", async () => {
      const where = await engine.location();
      const a = await engine.open(where);
      await a.replace(routes(["counter"]));
      const b = await engine.open(where);
      // Each write appends its mark to the one route's path: a lost update would drop a mark.
      const write = (s: Store, mark: string) => s.transact((m) => ({ model: { ...m, routes: m.routes.map((r) => ({ ...r, path_prefix: `${r.path_prefix ?? ""}/${mark}` })) }, result: null }));
      await Promise.all(Array.from({ length: 40 }, (_, i) => write(i % 2 ? a : b, `m${i}`)));
      const path = (await a.load()).routes[0]!.path_prefix ?? "";
      expect(path.split("/").filter(Boolean).sort()).toEqual(Array.from({ length: 40 }, (_, i) => `m${i}`).sort());
      expect(await b.revision()).toBe(41);
      await a.close();
      await b.close();
    });

    it("adds inventory deltas from two instances without double counting, and keeps the newest entries up to the bound", async () => {
      const where = await engine.location();
      const a = await engine.open(where);
      const b = await engine.open(where);
      const day = 86_400_000;
      const delta = (fp: string, at: number, connections: number, hostnames: string[], extra: Partial<SeenDelta> = {}): SeenDelta => ({
        fingerprint: fp.repeat(64),
        subject: `CN=${fp}`,
        issuer: "O=certgate dev,CN=certgate dev client CA",
        serial: "0A1B",
        san: "DNS:x.test, URI:spiffe://example.org/x",
        notAfter: 2_000_000_000_000,
        result: "verified",
        revoked: null,
        firstSeen: at,
        lastSeen: at,
        hostnames,
        connections,
        ...extra,
      });
      // Two nodes flush their own deltas for one certificate, concurrently, many times.
      await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).flushSeen([delta("a", day * (10 + i), 3, [i % 2 ? "a.test" : "b.test"])], 10)));
      const [only] = await a.loadSeen(10);
      expect(only).toMatchObject({ fingerprint: "a".repeat(64), connections: 30, firstSeen: day * 10, lastSeen: day * 19, san: "DNS:x.test, URI:spiffe://example.org/x", notAfter: 2_000_000_000_000, revoked: null });
      expect(only!.hostnames.sort()).toEqual(["a.test", "b.test"]);
      // The newer sighting's verdicts win; an older one does not undo them.
      const totals = await b.flushSeen([delta("a", day * 30, 1, ["a.test"], { result: "cert_has_expired", revoked: true }), delta("a", day * 5, 1, [], { revoked: false })], 10);
      expect(totals).toEqual([expect.objectContaining({ connections: 32, firstSeen: day * 5, lastSeen: day * 30, result: "cert_has_expired", revoked: true })]);
      // Bounded: beyond 3 entries, the least recently seen go.
      await a.flushSeen(["b", "c", "d"].map((fp, i) => delta(fp, day * (40 + i), 1, ["c.test"])), 3);
      expect((await b.loadSeen(10)).map((e) => e.subject)).toEqual(["CN=b", "CN=c", "CN=d"]);
      expect((await b.loadSeen(2)).map((e) => e.subject)).toEqual(["CN=c", "CN=d"]);
      await a.close();
      await b.close();
    });

    it("records every migration once, also when reopened", async () => {
      const where = await engine.location();
      await (await engine.open(where)).close();
      const s = await engine.open(where);
      await s.close();
      if (engine.name === "PostgreSQL") {
        const c = new pg.Client({ connectionString: where });
        await c.connect();
        const rows = (await c.query("SELECT version FROM schema_migrations ORDER BY version")).rows;
        await c.end();
        expect(rows).toEqual(Array.from({ length: SCHEMA_VERSION }, (_, i) => ({ version: i + 1 })));
      }
    });
  });
}

describe.skipIf(!pgUrl)("PostgreSQL store errors", () => {
  it("names the server (never its password) when it cannot connect", async () => {
    const u = new URL(pgUrl);
    u.port = "1";
    u.password = "s3cret";
    const err = await PostgresStore.open(u.toString()).then(
      () => null,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain(`127.0.0.1:1`);
    expect(err?.message).not.toContain("s3cret");
    expect(redact(u.toString())).toContain("***");
  });
});
