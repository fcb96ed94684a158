// File-backed certificates, CA bundles and CRLs that reload: rotated on disk as cert-manager,
// Vault agent and Kubernetes secret volumes rotate them, under a load of new connections, on
// real sockets. The deadlines are generous (the watch reacts in about 100 ms, the periodic
// check within a second); nothing asserts how fast.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, pki, request, SERVER_NAMES } from "../helpers/harness.ts";
import { SecretVolume, servedSerial, startLoad, writeAtomic } from "../helpers/rotate.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { sample, untilTrue } from "../workers/group.ts";
import { startCertgate, tmpData, type Certgate } from "./helpers.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Issued } from "../../src/pki/issue.ts";

const DEADLINE = 10_000;

async function newServerCert(p: DevPki): Promise<Issued> {
  const c = await issue({ subject: "O=certgate dev,CN=localhost rotated", dnsNames: SERVER_NAMES, ipAddresses: ["127.0.0.1"], eku: ["serverAuth"], days: 30 }, p.serverCa);
  return { ...c, certPem: c.certPem + p.serverCa.certPem };
}

const serialOf = (c: Issued): string => c.cert.serialNumber.toUpperCase().replace(/^0+/, "");
const served = async (port: number): Promise<string> => (await servedSerial(port)).replace(/^0+/, "");
const metricsText = (cg: Certgate) => cg.metrics.registry.metrics();

/** certgate over files in `dir`: server certificate srv (cert_file, key_file), bundle clients (ca_file) enforced on localhost. */
function startOnFiles(files: { cert: string; key: string; ca: string; crl?: string }): Promise<Certgate> {
  return startCertgate(tmpData(), (_p, origin) => ({
    certificates: [{ id: "srv", cert_file: files.cert, key_file: files.key }],
    trust_bundles: [{ id: "clients", ca_file: files.ca, ...(files.crl ? { revocation: { crl: { crl_file: files.crl } } } : {}) }],
    hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } }],
    routes: [{ id: "r", hostname: "localhost", origin }],
    default_certificate: "srv",
  }));
}

describe("file-backed certificates that reload", () => {
  let p: DevPki;
  let ca2: Issued;
  let client2: Issued;
  beforeAll(async () => {
    p = await pki();
    ca2 = await issue({ subject: "O=certgate dev,CN=next client CA", ca: true, days: 3650 });
    client2 = await issue({ subject: "O=certgate dev,CN=client of the next CA" }, ca2);
  });
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), "certgate-files-"));
    dirs.push(d);
    return d;
  };
  afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

  /** The files laid out for `how`, and how to rotate them. */
  function layout(how: "rename" | "symlink swap", files: Record<string, string>): { path(name: string): string; rotate(files: Record<string, string>): void } {
    const dir = tmp();
    if (how === "symlink swap") {
      const vol = new SecretVolume(join(dir, "secret"), files);
      return { path: (n) => vol.path(n), rotate: (f) => vol.swap({ ...files, ...f }) };
    }
    for (const [n, text] of Object.entries(files)) writeFileSync(join(dir, n), text);
    return { path: (n) => join(dir, n), rotate: (f) => Object.entries(f).forEach(([n, text]) => writeAtomic(join(dir, n), text)) };
  }

  for (const how of ["rename", "symlink swap"] as const) {
    it(`rotates the server certificate under load (${how}): new connections get the new one, no request fails`, async () => {
      const files = layout(how, { "tls.crt": p.server.certPem, "tls.key": p.server.keyPem, "ca.crt": p.ca.certPem });
      const cg = await startOnFiles({ cert: files.path("tls.crt"), key: files.path("tls.key"), ca: files.path("ca.crt") });
      try {
        expect(await served(cg.port)).toBe(serialOf(p.server));
        const next = await newServerCert(p);
        const load = startLoad(cg.port, () => p.client);
        await new Promise((r) => setTimeout(r, 500));
        const t0 = Date.now();
        files.rotate({ "tls.crt": next.certPem, "tls.key": next.keyPem });
        await untilTrue(async () => (await served(cg.port)) === serialOf(next), DEADLINE, "the new certificate");
        const took = Date.now() - t0;
        await new Promise((r) => setTimeout(r, 500));
        const r = await load.stop();
        expect(r.failures).toEqual([]);
        expect(r.ok).toBeGreaterThan(10);
        // The compiled certificate is the one expiry metrics read: the rotated file's.
        expect(cg.runtime.snapshot.certs.get("srv")!.notAfter).toBe(next.cert.notAfter.getTime());
        const m = await metricsText(cg);
        expect(sample(m, 'certgate_file_reloads_total{result="ok"}')).toBeGreaterThanOrEqual(2);
        expect(m).toContain(`certgate_file_last_reload_timestamp_seconds{path="${files.path("tls.crt")}"}`);
        console.log(`server certificate (${how}): new connections got it ${took} ms after the rotation; ${r.ok} requests, ${r.retried} retried 421`);
      } finally {
        await cg.close();
      }
    });

    it(`rotates a CA bundle under load (${how}): clients of the added CA verify at once, the old CA's keep working until it is removed`, async () => {
      const files = layout(how, { "tls.crt": p.server.certPem, "tls.key": p.server.keyPem, "ca.crt": p.ca.certPem });
      const cg = await startOnFiles({ cert: files.path("tls.crt"), key: files.path("tls.key"), ca: files.path("ca.crt") });
      try {
        expect((await request(cg.port, { cert: client2 })).status).toBe(403);
        const load = startLoad(cg.port, () => p.client);
        await new Promise((r) => setTimeout(r, 500));
        const t0 = Date.now();
        files.rotate({ "ca.crt": p.ca.certPem + ca2.certPem });
        await untilTrue(async () => (await request(cg.port, { cert: client2 })).status === 200, DEADLINE, "the added CA");
        const took = Date.now() - t0;
        await new Promise((r) => setTimeout(r, 500));
        const r = await load.stop();
        expect(r.failures).toEqual([]);
        expect(r.ok).toBeGreaterThan(10);
        // The old CA removed: its clients are refused, the new CA's verify.
        files.rotate({ "ca.crt": ca2.certPem });
        await untilTrue(async () => (await request(cg.port, { cert: p.client })).status === 403, DEADLINE, "the old CA's removal");
        expect((await request(cg.port, { cert: client2 })).status).toBe(200);
        console.log(`CA bundle (${how}): the added CA verified ${took} ms after the rotation; ${r.ok} requests, ${r.retried} retried 421`);
      } finally {
        await cg.close();
      }
    });
  }

  it("a half-written certificate, a key that does not match, an unreadable file, a bundle without a CA, an expired certificate: the last good version stays, each counted and logged once", async () => {
    const dir = tmp();
    const [cert, key, ca] = ["tls.crt", "tls.key", "ca.crt"].map((n) => join(dir, n)) as [string, string, string];
    writeFileSync(cert, p.server.certPem);
    writeFileSync(key, p.server.keyPem);
    writeFileSync(ca, p.ca.certPem);
    const cg = await startOnFiles({ cert, key, ca });
    try {
      const invalid = async () => sample(await metricsText(cg), 'certgate_file_reloads_total{result="invalid"}') ?? 0;
      const unreadable = async () => sample(await metricsText(cg), 'certgate_file_reloads_total{result="unreadable"}') ?? 0;
      const good = serialOf(p.server);
      const next = await newServerCert(p);
      // Half written, in place (no rename): the PEM stops in the middle.
      writeFileSync(cert, next.certPem.slice(0, 200));
      await untilTrue(async () => (await invalid()) === 1, DEADLINE, "the half-written file refused");
      expect(await served(cg.port)).toBe(good);
      // The whole new certificate, but the old key: they do not match.
      writeFileSync(cert, next.certPem);
      await untilTrue(async () => (await invalid()) === 2, DEADLINE, "the unmatched certificate refused");
      expect(await served(cg.port)).toBe(good);
      // The key file gone: unreadable; still the old pair. (It comes back below.)
      rmSync(key);
      await untilTrue(async () => (await unreadable()) === 1, DEADLINE, "the missing key");
      expect(await served(cg.port)).toBe(good);
      // A bundle holding a leaf, not a CA: refused, clients of the old CA still verify.
      writeFileSync(ca, p.client.certPem);
      await untilTrue(async () => (await invalid()) === 3, DEADLINE, "the bundle without a CA");
      expect((await request(cg.port, { cert: p.client })).status).toBe(200);
      // An expired certificate with its own key: refused, as an upload of it would be.
      const expired = await issue({ subject: "O=certgate dev,CN=localhost expired", dnsNames: SERVER_NAMES, notBefore: new Date(Date.now() - 20 * 86_400_000), notAfter: new Date(Date.now() - 86_400_000) }, p.serverCa);
      writeAtomic(key, expired.keyPem);
      writeAtomic(cert, expired.certPem);
      await untilTrue(async () => (await invalid()) === 5, DEADLINE, "the expired certificate refused");
      expect(await served(cg.port)).toBe(good);
      // The periodic checks do not count the same refused version again.
      await new Promise((r) => setTimeout(r, 2_500));
      expect(await invalid()).toBe(5);
      expect(await unreadable()).toBe(1);
      // The matching key arrives: the pair goes live together.
      writeAtomic(cert, next.certPem);
      writeAtomic(key, next.keyPem);
      await untilTrue(async () => (await served(cg.port)) === serialOf(next), DEADLINE, "the new pair");
      expect(sample(await metricsText(cg), 'certgate_file_reloads_total{result="ok"}')).toBe(2);
    } finally {
      await cg.close();
    }
  });

  it("a CRL file: a revocation takes effect when the file changes; a CRL signed by another CA keeps the last good one", async () => {
    const dir = tmp();
    const ossl = new OpensslCa(p.ca);
    const victim = await issue({ subject: "O=certgate dev,CN=victim" }, p.ca);
    const [cert, key, ca, crl] = ["tls.crt", "tls.key", "ca.crt", "ca.crl"].map((n) => join(dir, n)) as [string, string, string, string];
    writeFileSync(cert, p.server.certPem);
    writeFileSync(key, p.server.keyPem);
    writeFileSync(ca, p.ca.certPem);
    writeFileSync(crl, await ossl.gencrl());
    const cg = await startOnFiles({ cert, key, ca, crl });
    try {
      expect((await request(cg.port, { cert: victim })).status).toBe(200);
      await ossl.revoke(victim.certPem);
      writeAtomic(crl, await ossl.gencrl());
      await untilTrue(async () => (await request(cg.port, { cert: victim })).status === 403, DEADLINE, "the revocation");
      expect((await request(cg.port, { cert: p.client })).status).toBe(200);
      // A CRL of a CA the bundle does not hold does not verify: the last good CRL stays.
      writeAtomic(crl, await new OpensslCa(p.otherCa).gencrl());
      await untilTrue(async () => sample(await metricsText(cg), 'certgate_file_reloads_total{result="invalid"}') === 1, DEADLINE, "the foreign CRL refused");
      expect((await request(cg.port, { cert: victim })).status).toBe(403);
    } finally {
      await cg.close();
    }
  });
});
