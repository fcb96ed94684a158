// Two certgate nodes (each a primary with two workers) on one real PostgreSQL: a write on
// either node is enforced on the other through LISTEN/NOTIFY, a revocation uploaded on one is
// refused on the other.
import { randomBytes, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../helpers/tools.ts";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { issue } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki } from "../helpers/harness.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { createDatabase } from "../helpers/postgres.setup.ts";
import { get, sample, startGroup, untilTrue, type Group } from "../workers/group.ts";

const pgUrl = inject("pgUrl");

describe.skipIf(!pgUrl)("a fleet of two nodes on one PostgreSQL", () => {
  let a: Group;
  let b: Group;
  let p: DevPki;
  let origin: string;
  let storeUrl: string;
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    p = await pki();
    const echo = await startEcho();
    origin = echo.url;
    closers.push(() => echo.server.close());
    const build = (pk: DevPki) => ({
      certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
      hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" as const } }],
      routes: [{ id: "main", hostname: "localhost", origin }],
      default_certificate: "srv",
    });
    storeUrl = await createDatabase(pgUrl, "cg_fleet");
    // The nodes inherit one key-encryption key for the managed CA kept in the store.
    process.env.CERTGATE_KEK = randomBytes(32).toString("base64");
    a = await startGroup(build, ["--store", storeUrl]);
    b = await startGroup(build, ["--store", storeUrl]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    closers.forEach((c) => c());
  });

  it("seeds the store once: the second node serves what the first stored", async () => {
    expect(a.log()).not.toContain("--config is ignored");
    expect(b.log()).toContain("--config is ignored");
    expect((await get(b.port, { cert: p.client })).status).toBe(200);
  });

  it("enforces a write made on one node on the other, and the other way round", async () => {
    const put = await a.api("PUT", "/v1/routes/blocked", { hostname: "localhost", path_prefix: "/gone", origin: "http://127.0.0.1:9" });
    expect(put.status).toBe(201);
    // Port 9 refuses: once B has the route, /gone answers 502 there instead of the echo's 200.
    const t0 = Date.now();
    await untilTrue(async () => (await get(b.port, { cert: p.client, path: "/gone" })).status === 502, 10_000, "node B to route /gone");
    const ms = Date.now() - t0;
    expect(ms).toBeLessThan(10_000);
    expect((await b.api("DELETE", "/v1/routes/blocked")).status).toBe(204);
    await untilTrue(async () => (await get(a.port, { cert: p.client, path: "/gone" })).status === 200, 10_000, "node A to drop /gone");
    expect(b.log()).toContain("applied a configuration written on another node");
  });

  it("refuses everywhere a certificate revoked through one node", async () => {
    const ca = new OpensslCa(p.ca);
    const victim = await issue({ subject: "O=certgate dev,CN=fleet victim" }, p.ca);
    expect((await get(a.port, { cert: victim })).status).toBe(200);
    await ca.revoke(victim.certPem);
    expect((await b.api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: await ca.gencrl() } })).status).toBe(200);
    expect((await get(b.port, { cert: victim })).status).toBe(403);
    await untilTrue(async () => (await get(a.port, { cert: victim })).status === 403, 10_000, "node A to refuse the revoked certificate");
    expect((await get(a.port, { cert: p.client })).status).toBe(200);
  });

  it("a CRL file declared on one node is read by each node from its own disk, and its rotation reaches both", async () => {
    const ca = new OpensslCa(p.ca);
    const [first, second] = await Promise.all(["fleet file victim 1", "fleet file victim 2"].map((cn) => issue({ subject: `O=certgate dev,CN=${cn}` }, p.ca)));
    const crl = join(mkdtempSync(join(tmpdir(), "certgate-fleet-files-")), "ca.crl");
    await ca.revoke(first!.certPem);
    writeFileSync(crl, await ca.gencrl());
    expect((await a.api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { crl_file: crl } })).status).toBe(200);
    await untilTrue(async () => (await get(b.port, { cert: first })).status === 403, 10_000, "node B to read the CRL file");
    expect((await get(b.port, { cert: second })).status).toBe(200);
    // Rotated on disk: each node's own watch picks it up, no admin write involved.
    await ca.revoke(second!.certPem);
    writeFileSync(`${crl}.tmp`, await ca.gencrl());
    renameSync(`${crl}.tmp`, crl);
    for (const node of [a, b]) await untilTrue(async () => (await get(node.port, { cert: second })).status === 403, 10_000, "both nodes to reload the CRL");
    for (const node of [a, b]) expect(sample(await node.metrics(), 'certgate_file_reloads_total{result="ok"}')).toBe(1);
    expect((await a.api("PUT", "/v1/trust_bundles/clients/revocation", {})).status).toBe(200);
    await untilTrue(async () => (await get(b.port, { cert: second })).status === 200, 10_000, "node B to drop the CRL file");
  });

  it("resumes on one node a session ticket issued by the other (the ticket secret lives in the store)", async () => {
    const first = await get(a.port, { cert: p.client });
    const session = first.socket.getSession()!;
    const resumed = await get(b.port, { cert: p.client, session });
    expect(resumed.reused).toBe(true);
    expect(resumed.status).toBe(200);
  });

  it("shares scoped tokens: one created on a node works on the other, and deleting it anywhere revokes it everywhere", async () => {
    const made = await a.api("POST", "/v1/tokens", { name: "fleet-reader", read_only: true });
    expect(made.status).toBe(201);
    const asReader = (g: Group) => fetch(`${g.admin}/v1/routes`, { headers: { authorization: `Bearer ${made.body.token}` } }).then((r) => r.status);
    expect(await asReader(b)).toBe(200);
    expect(await asReader(a)).toBe(200);
    expect((await b.api("DELETE", `/v1/tokens/${made.body.id}`)).status).toBe(204);
    expect(await asReader(b)).toBe(401);
    await untilTrue(async () => (await asReader(a)) === 401, 10_000, "node A to forget the deleted token");
  });

  it("signs with one managed CA on every node: created through one, served by the other, its key sealed in the store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-fleet-csr-"));
    const r = await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.csr"), "-subj", "/CN=fleet-device"]);
    expect(r.code).toBe(0);
    const zone = (await a.api("POST", "/zones", { name: "fleet.test" })).body.result.id as string;
    const issued = await a.api("POST", `/zones/${zone}/client_certificates`, { csr: readFileSync(join(dir, "c.csr"), "utf8"), validity_days: 30 });
    expect(issued.status).toBe(200);
    const publicOf = (g: Group) => JSON.parse(g.log().split("\n").find((l) => l.includes('"certgate listening"'))!).public as string;
    const caOnB = await (await fetch(`${publicOf(b)}/managed-ca/ca.pem`)).text();
    const leaf = new X509Certificate(issued.body.result.certificate);
    expect(leaf.verify(new X509Certificate(caOnB).publicKey)).toBe(true);
    const c = new pg.Client({ connectionString: storeUrl });
    await c.connect();
    const stored = String((await c.query("SELECT value FROM meta WHERE key = 'secret:managed_ca'")).rows[0].value);
    await c.end();
    expect(stored).toContain("BEGIN CERTIFICATE");
    expect(stored).not.toContain("PRIVATE KEY");
  });

  it("serializes 100 concurrent changes of one object from both nodes: each is committed in turn, none overwritten unseen", async () => {
    const c = new pg.Client({ connectionString: storeUrl });
    await c.connect();
    const revision = async () => Number((await c.query("SELECT value FROM meta WHERE key = 'revision'")).rows[0].value);
    const audited = async () => Number((await c.query("SELECT COUNT(*) AS n FROM audit WHERE path = '/v1/routes/contended'")).rows[0].n);
    const before = { revision: await revision(), audited: await audited() };
    const writes = Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).api("PUT", "/v1/routes/contended", { hostname: "contended.localhost", path_prefix: `/v${i}`, origin }));
    const statuses = (await Promise.all(writes)).map((r) => r.status);
    // Created once, then replaced 99 times: every write answered 200/201, none refused, none lost.
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 200)).toHaveLength(99);
    expect(await revision()).toBe(before.revision + 100);
    expect(await audited()).toBe(before.audited + 100);
    // Both nodes converge on the one value the last commit left.
    const last = (await c.query("SELECT body FROM objects WHERE kind = 'routes' AND key = 'contended'")).rows[0].body as string;
    await c.end();
    const want = JSON.parse(last).path_prefix as string;
    for (const g of [a, b]) await untilTrue(async () => (await g.api("GET", "/v1/routes/contended")).body.path_prefix === want, 10_000, "both nodes on the last value");
  });

  it("keeps every concurrent write of both nodes: none is silently lost", async () => {
    const writes = Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).api("PUT", `/v1/routes/r${i}`, { hostname: `n${i}.localhost`, origin }));
    const statuses = (await Promise.all(writes)).map((r) => r.status);
    expect(statuses.every((s) => s === 201)).toBe(true);
    // Each node answers reads from the model it applied: both converge on every route.
    const want = Array.from({ length: 20 }, (_, i) => `r${i}`);
    for (const g of [a, b]) {
      const has = async () => {
        const ids: string[] = (await g.api("GET", "/v1/routes")).body.routes.map((r: { id: string }) => r.id);
        return want.every((id) => ids.includes(id));
      };
      await untilTrue(has, 10_000, "every route on every node");
    }
  });
});
