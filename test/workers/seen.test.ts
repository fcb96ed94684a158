// The inventory of client certificates seen with `serve --workers 2`: each worker records its
// own connections, the primary merges them (summed counts, min first seen, max last seen,
// hostnames united) for GET /v1/client_certificates/seen, and SIGTERM flushes everything (the
// workers' last sightings too) to the store, from which the next start reloads it.
import { createHash, X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { ModelInput } from "../../src/model/schema.ts";
import { get, onWorker, startGroup, type Group } from "./group.ts";

const fp = (c: Issued): string => createHash("sha256").update(new X509Certificate(c.certPem).raw).digest("hex");

describe("client certificate inventory with serve --workers 2", () => {
  let g: Group;
  let client: Issued;
  let origin: string;
  let close: () => void;
  const build = (p: DevPki): ModelInput => ({
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: p.ca.certPem }],
    hosts: ["localhost", "b.test"].map((hostname) => ({ hostname, mtls: { trust_bundle: "clients", mode: "enforced" as const } })),
    routes: ["localhost", "b.test"].map((h, i) => ({ id: `r${i}`, hostname: h, origin })),
    default_certificate: "srv",
  });
  const entry = async () => {
    const r = await g.api("GET", "/v1/client_certificates/seen");
    expect(r.status).toBe(200);
    return (r.body.client_certificates as { fingerprint_sha256: string; connections: number; hostnames: string[]; first_seen: string; last_seen: string }[]).find((e) => e.fingerprint_sha256 === fp(client));
  };

  beforeAll(async () => {
    const echo = await startEcho();
    origin = echo.url;
    close = () => echo.server.close();
    const { pki } = await import("../helpers/harness.ts");
    client = await issue({ subject: "O=certgate dev,CN=seen by two workers" }, (await pki()).ca);
    g = await startGroup(build);
  }, 60_000);
  afterAll(async () => {
    await g?.stop();
    close?.();
  });

  it("merges both workers' sightings of one certificate: summed counts, hostnames united", async () => {
    // At least one connection on each worker, each worker on its own hostname first.
    const on0 = await onWorker("0", () => get(g.port, { cert: client }));
    const on1 = await onWorker("1", () => get(g.port, { cert: client, servername: "b.test" }));
    expect([on0.status, on1.status]).toEqual([200, 200]);
    const total = (await g.metrics()).split("\n").filter((l) => l.startsWith("certgate_handshakes_total{") && l.includes('result="verified"')).reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    const e = (await entry())!;
    // Every handshake of this certificate, on whichever worker it landed.
    expect(e.connections).toBe(total);
    expect(e.connections).toBeGreaterThanOrEqual(2);
    expect(e.hostnames.sort()).toEqual(["b.test", "localhost"]);
    // Asked again without new connections: nothing counted twice.
    expect((await entry())!.connections).toBe(total);
  });

  it("flushes on SIGTERM (the workers' last sightings too) and reloads at the next start, counting nothing twice", async () => {
    // Connections on both workers that no query has collected yet: only the drain sends them.
    await onWorker("0", () => get(g.port, { cert: client }));
    await onWorker("1", () => get(g.port, { cert: client }));
    const m = await g.metrics();
    const handshakes = m.split("\n").filter((l) => l.startsWith("certgate_handshakes_total{") && l.includes('result="verified"')).reduce((n, l) => n + Number(l.split(" ").pop()), 0);
    const dataDir = g.dataDir;
    await g.stop();
    expect(g.log()).not.toMatch(/could not flush/);
    // The same data directory (a later --data wins): the store there holds the inventory.
    g = await startGroup(build, ["--data", dataDir]);
    const e = (await entry())!;
    expect(e.connections).toBe(handshakes);
    expect(e.hostnames.sort()).toEqual(["b.test", "localhost"]);
    // One more, then the totals again: loaded totals plus deltas, never totals twice.
    await get(g.port, { cert: client });
    expect((await entry())!.connections).toBe(handshakes + 1);
  }, 90_000);
});
