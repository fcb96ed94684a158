// File-backed certificates with worker processes: the primary alone reads and watches the
// files; both workers serve a rotated certificate and bundle, and /metrics counts each reload
// once (the primary's), not once per process.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki, SERVER_NAMES } from "../helpers/harness.ts";
import { SecretVolume, startLoad } from "../helpers/rotate.ts";
import { get, onWorker, sample, startGroup, untilTrue, type Group } from "./group.ts";

describe("serve --workers 2 with file-backed certificates", () => {
  let g: Group;
  let p: DevPki;
  let vol: SecretVolume;
  let next: Issued;
  let ca2: Issued;
  let client2: Issued;
  let closeEcho = () => {};

  beforeAll(async () => {
    p = await pki();
    const echo = await startEcho();
    closeEcho = () => echo.server.close();
    next = await issue({ subject: "O=certgate dev,CN=localhost rotated", dnsNames: SERVER_NAMES, ipAddresses: ["127.0.0.1"], eku: ["serverAuth"], days: 30 }, p.serverCa);
    next.certPem += p.serverCa.certPem;
    ca2 = await issue({ subject: "O=certgate dev,CN=next client CA", ca: true, days: 3650 });
    client2 = await issue({ subject: "O=certgate dev,CN=client of the next CA" }, ca2);
    vol = new SecretVolume(join(mkdtempSync(join(tmpdir(), "certgate-workers-files-")), "secret"), { "tls.crt": p.server.certPem, "tls.key": p.server.keyPem, "ca.crt": p.ca.certPem });
    g = await startGroup(() => ({
      certificates: [{ id: "srv", cert_file: vol.path("tls.crt"), key_file: vol.path("tls.key") }],
      trust_bundles: [{ id: "clients", ca_file: vol.path("ca.crt") }],
      hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } }],
      routes: [{ id: "r", hostname: "localhost", origin: echo.url }],
      default_certificate: "srv",
    }));
  }, 60_000);
  afterAll(async () => {
    await g?.stop();
    closeEcho();
  });

  const servedBy = async (worker: string) => {
    const a = await onWorker(worker, () => get(g.port, { cert: p.client }));
    return a.socket.getPeerX509Certificate()!.serialNumber.replace(/^0+/, "");
  };
  const serialOf = (c: Issued) => c.cert.serialNumber.toUpperCase().replace(/^0+/, "");

  it("a secret-volume swap of the certificate and the bundle reaches both workers; no request fails; one reload count on /metrics", async () => {
    expect(await servedBy("0")).toBe(serialOf(p.server));
    const load = startLoad(g.port, () => p.client);
    await new Promise((r) => setTimeout(r, 500));
    vol.swap({ "tls.crt": next.certPem, "tls.key": next.keyPem, "ca.crt": p.ca.certPem + ca2.certPem });
    const want = serialOf(next);
    await untilTrue(async () => (await servedBy("0")) === want && (await servedBy("1")) === want, 10_000, "both workers on the new certificate");
    for (const w of ["0", "1"]) expect((await onWorker(w, () => get(g.port, { cert: client2 }))).status).toBe(200);
    const r = await load.stop();
    expect(r.failures).toEqual([]);
    expect(r.ok).toBeGreaterThan(10);
    const m = await g.metrics();
    // Three files changed, each reloaded once, counted by the primary alone.
    expect(sample(m, 'certgate_file_reloads_total{result="ok"}')).toBe(3);
    expect(m.match(/^certgate_file_reloads_total\{/gm)).toHaveLength(1);
    expect(m).toMatch(new RegExp(`^certgate_file_last_reload_timestamp_seconds\\{path="${vol.path("tls.crt")}"\\} \\d`, "m"));
    expect(m).not.toMatch(/certgate_file_last_reload_timestamp_seconds\{[^}]*worker=/);
    expect(g.log()).toContain('"file reloaded"');
  });

  it("writes a broken certificate: both workers keep the last good one", async () => {
    writeFileSync(vol.path("tls.crt"), "-----BEGIN CERTIFICATE-----\nMIIB");
    await untilTrue(async () => sample(await g.metrics(), 'certgate_file_reloads_total{result="invalid"}') === 1, 10_000, "the broken file refused");
    const want = serialOf(next);
    expect(await servedBy("0")).toBe(want);
    expect(await servedBy("1")).toBe(want);
    expect(g.log()).toContain('"file not reloaded: keeping its last good contents"');
  });
});
