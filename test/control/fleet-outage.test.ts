// A fleet node when its PostgreSQL goes away, on a cluster of its own (the run's shared one
// stays up for the other files): it keeps serving, refuses writes with 503 in each dialect's
// envelope, says so in /healthz and the metrics, restarts from its local copy, and catches up
// once the store is back.
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki } from "../helpers/harness.ts";
import { createDatabase, startCluster } from "../helpers/postgres.setup.ts";
import { get, sample, startGroup, untilTrue, type Group } from "../workers/group.ts";

const havePg = Boolean(inject("pgUrl")) && !process.env.CERTGATE_TEST_PG_URL;

describe.skipIf(!havePg)("a fleet node while PostgreSQL is down", () => {
  let cluster: NonNullable<Awaited<ReturnType<typeof startCluster>>>;
  let p: DevPki;
  let origin: string;
  let storeUrl: string;
  const groups: Group[] = [];
  const closers: (() => void)[] = [];
  const build = (pk: DevPki) => ({
    certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
    hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" as const } }],
    routes: [{ id: "main", hostname: "localhost", origin }],
    default_certificate: "srv",
  });
  const start = async (args: string[]) => {
    const g = await startGroup(build, ["--workers", "1", "--store", storeUrl, ...args]);
    groups.push(g);
    return g;
  };

  beforeAll(async () => {
    p = await pki();
    const echo = await startEcho();
    origin = echo.url;
    closers.push(() => echo.server.close());
    cluster = (await startCluster())!;
    closers.push(() => cluster.remove());
    storeUrl = await createDatabase(cluster.url, "fleet_outage");
  }, 60_000);
  afterAll(async () => {
    await Promise.all(groups.map((g) => g.stop()));
    closers.forEach((c) => c());
  });

  it("keeps serving, answers writes with 503, restarts from its local copy and catches up when the store is back", async () => {
    const a = await start([]);
    await untilTrue(async () => (await a.health() as unknown as { store: { connected: boolean } }).store.connected, 10_000, "the LISTEN connection");
    expect(sample(await a.metrics(), "certgate_store_connected")).toBe(1);
    expect((await get(a.port, { cert: p.client })).status).toBe(200);

    cluster.stop();
    expect((await get(a.port, { cert: p.client })).status).toBe(200);
    await untilTrue(async () => !(await a.health() as unknown as { store: { connected: boolean } }).store.connected, 10_000, "the node to notice");
    expect(sample(await a.metrics(), "certgate_store_connected")).toBe(0);
    const native = await a.api("PUT", "/v1/routes/later", { hostname: "localhost", path_prefix: "/later", origin });
    expect(native.status).toBe(503);
    expect(native.body.error.code).toBe("store_unavailable");
    expect(native.body.error.message).toContain("keeps serving its last configuration");
    // Reads come from memory and the operator token still authenticates; a Fastly write gets its own envelope.
    expect((await fetch(`${a.admin}/tls/activations`, { headers: { "fastly-key": "workers-test-token" } })).status).toBe(200);
    const r = await fetch(`${a.admin}/tls/mutual_authentications`, {
      method: "POST",
      headers: { "fastly-key": "workers-test-token", "content-type": "application/vnd.api+json" },
      body: JSON.stringify({ data: { type: "mutual_authentication", attributes: { cert_bundle: p.ca.certPem, name: "during-outage" } } }),
    });
    expect(r.status).toBe(503);
    expect(((await r.json()) as { errors: { status: string; detail: string }[] }).errors[0]).toMatchObject({ status: "503", detail: expect.stringContaining("configuration store is unreachable") });
    expect(a.log()).toContain("lost the store's notifications: serving the last configuration, reconnecting");

    // A node that never applied a configuration cannot start without the store.
    const fresh = await startGroup(build, ["--workers", "1", "--store", storeUrl]).then(
      (g) => (groups.push(g), null),
      (e: unknown) => (e as Error).message,
    );
    expect(fresh).toContain("holds no configuration this node applied before: cannot start without the store");

    // Restarted while the store is down: it serves from its local copy.
    await a.stop();
    const b = await start(["--data", a.dataDir]);
    expect(b.log()).toContain("the store is unreachable: serving the last configuration this node applied until it is back");
    expect((await get(b.port, { cert: p.client })).status).toBe(200);

    cluster.start();
    await untilTrue(async () => (await b.health() as unknown as { store: { connected: boolean } }).store.connected, 45_000, "the node to reconnect");
    const put = await b.api("PUT", "/v1/routes/later", { hostname: "localhost", path_prefix: "/later", origin: "http://127.0.0.1:9" });
    expect(put.status).toBe(201);
    expect((await get(b.port, { cert: p.client, path: "/later" })).status).toBe(502);
  }, 120_000);
});
