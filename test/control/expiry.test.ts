// Expiry monitoring (README "Expiry monitoring"), on one certgate over real sockets:
// certgate_certificate_not_after_seconds for server certificates, bundle CAs and the managed CA,
// following applies; certgate_client_certificate_remaining_seconds observed at full handshakes;
// the 7-day upload warning in each dialect's envelope; GET /v1/certificates/expiring.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, issue, pki, rawRequest } from "../helpers/harness.ts";
import { run } from "../helpers/tools.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Issued } from "../../src/pki/issue.ts";
import type { ModelInput } from "../../src/model/schema.ts";
import { api, echo, jsonapi, nativeError, seedModel, startCertgate, type Certgate } from "./helpers.ts";

const DAY = 86_400_000;
const ACC = "acc-exp";
const GAUGE = "certgate_certificate_not_after_seconds";
const HIST = "certgate_client_certificate_remaining_seconds";

/** The samples of one metric: labels → value. */
function samples(text: string, name: string): { labels: Record<string, string>; value: number }[] {
  return text
    .split("\n")
    .filter((l) => l.startsWith(name + "{"))
    .map((l) => {
      const close = l.lastIndexOf("}");
      const labels = Object.fromEntries([...l.slice(name.length + 1, close).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1]!, m[2]!]));
      return { labels, value: Number(l.slice(close + 2)) };
    });
}
const metrics = async (cg: Certgate) => (await fetch(`${cg.admin}/metrics`)).text();
const notAfterS = (i: Issued) => i.cert.notAfter.getTime() / 1000;
/** Count of observations of the histogram at or below `le` for a bundle. */
const bucket = (text: string, bundle: string, le: string) => samples(text, `${HIST}_bucket`).find((s) => s.labels.bundle === bundle && s.labels.le === le)?.value ?? 0;

describe("expiry monitoring", () => {
  let cg: Certgate;
  let p: DevPki;
  let origin: string;
  let renewedCa: Issued; // same subject as p.ca, another key: the usual CA renewal
  let soonCa: Issued;
  let expiredCa: Issued;
  let soonServer: Issued;
  let shortClient: Issued;

  beforeAll(async () => {
    p = await pki();
    origin = await echo();
    renewedCa = await issue({ subject: "O=certgate dev,CN=certgate dev client CA", ca: true, days: 3650 });
    soonCa = await issue({ subject: "O=certgate test,CN=soon client CA", ca: true, notBefore: new Date(Date.now() - 300 * DAY), notAfter: new Date(Date.now() + 3 * DAY + 3_600_000) });
    expiredCa = await issue({ subject: "O=certgate test,CN=retired client CA", ca: true, notBefore: new Date(Date.now() - 300 * DAY), notAfter: new Date(Date.now() - DAY) });
    soonServer = await issue({ subject: "CN=soon.test", dnsNames: ["soon.test"], eku: ["serverAuth"], notBefore: new Date(Date.now() - 80 * DAY), notAfter: new Date(Date.now() + 2 * DAY + 3_600_000) }, p.serverCa);
    shortClient = await issue({ subject: "O=certgate test,CN=short-lived client", days: 20 }, p.ca);
    const seed = (d: DevPki, o: string): ModelInput => {
      const m = seedModel(d, o);
      return {
        ...m,
        // The bootstrap is not an upload: what it holds gets no warning, but it is monitored.
        certificates: [...(m.certificates ?? []), { id: "soon", cert: soonServer.certPem, key: soonServer.keyPem }],
        trust_bundles: [
          { id: "clients", ca: d.ca.certPem + renewedCa.certPem + d.ca.certPem }, // the same CA twice: one series
          { id: "soon-ca", ca: soonCa.certPem },
          { id: "old", ca: expiredCa.certPem },
        ],
        hosts: [
          { hostname: "localhost", mtls: { mode: "enforced", trust_bundle: "clients" } },
          { hostname: "soon.test", mtls: { mode: "fail_open", trust_bundle: "soon-ca" } },
        ],
        routes: [...(m.routes ?? []), { id: "soon", hostname: "soon.test", origin: o }],
      };
    };
    cg = await startCertgate(undefined, seed);
  });
  afterAll(() => cg.close());

  describe("certgate_certificate_not_after_seconds", () => {
    it("one series per server certificate, per CA of each bundle (renewed CAs told apart by serial), with not_after in Unix seconds", async () => {
      const s = samples(await metrics(cg), GAUGE);
      expect(s).toContainEqual({ labels: { kind: "server", id: "srv", subject: "CN=localhost,O=certgate dev" }, value: notAfterS(p.server) });
      expect(s).toContainEqual({ labels: { kind: "server", id: "soon", subject: "CN=soon.test" }, value: notAfterS(soonServer) });
      const clients = s.filter((x) => x.labels.id === "clients");
      expect(clients.map((x) => x.labels.kind)).toEqual(["ca", "ca"]);
      const serial = (i: Issued) => new X509Certificate(i.certPem).serialNumber.toUpperCase();
      expect(clients.map((x) => x.labels.subject).sort()).toEqual(
        [p.ca, renewedCa].map((c) => `CN=certgate dev client CA,O=certgate dev (serial ${serial(c)})`).sort(),
      );
      expect(s.find((x) => x.labels.id === "old")).toMatchObject({ labels: { kind: "ca", subject: "CN=retired client CA,O=certgate test" }, value: notAfterS(expiredCa) });
      expect(s.map((x) => x.labels.id).sort()).toEqual(["clients", "clients", "old", "soon", "soon-ca", "srv"]);
    });

    it("follows applies: a bundle added appears, its removal takes its series away; the managed CA appears once it is used", async () => {
      const cur = (await api(cg, "GET", "/v1/config")).body;
      const add = await api(cg, "PUT", "/v1/config", { ...cur, trust_bundles: [...cur.trust_bundles, { id: "extra", ca: p.otherCa.certPem + p.intermediate.certPem }] });
      expect(add.status).toBe(200);
      let s = samples(await metrics(cg), GAUGE).filter((x) => x.labels.id === "extra");
      expect(s.map((x) => x.labels.subject).sort()).toEqual(["CN=certgate dev intermediate CA,O=certgate dev", "CN=some other CA,O=elsewhere"]);
      expect((await api(cg, "PUT", "/v1/config", cur)).status).toBe(200);
      expect(samples(await metrics(cg), GAUGE).filter((x) => x.labels.id === "extra")).toEqual([]);

      // The managed CA: created by its first use (a zone's hostname association).
      const zone = (await api(cg, "POST", "/zones", { name: "managed.test", account: { id: ACC } })).body.result.id;
      const assoc = await api(cg, "PUT", `/zones/${zone}/certificate_authorities/hostname_associations`, { hostnames: ["m.managed.test"] });
      expect(assoc.status).toBe(200);
      s = samples(await metrics(cg), GAUGE).filter((x) => x.labels.kind === "managed_ca");
      expect(s).toEqual([{ labels: { kind: "managed_ca", id: "managed-ca", subject: "CN=certgate managed client CA,OU=managed client CA,O=certgate" }, value: expect.any(Number) }]);
      expect(s[0]!.value * 1000 - Date.now()).toBeGreaterThan(3000 * DAY);
    });
  });

  describe("certgate_client_certificate_remaining_seconds", () => {
    it("observes a verified client certificate at its full handshake in its lifetime's bucket, an expired one as 0, an untrusted one and resumed handshakes not at all", async () => {
      const before = await metrics(cg);
      const count = (t: string) => samples(t, `${HIST}_count`).find((x) => x.labels.bundle === "clients")?.value ?? 0;
      const { socket, session } = await connect(cg.port, { cert: shortClient });
      expect((await rawRequest(socket, "localhost")).status).toBe(200);
      const ticket = await session;
      socket.destroy();
      const t = await metrics(cg);
      expect(count(t) - count(before)).toBe(1);
      // 20 days: above 14 days, within 30.
      expect(bucket(t, "clients", String(14 * 86_400)) - bucket(before, "clients", String(14 * 86_400))).toBe(0);
      expect(bucket(t, "clients", String(30 * 86_400)) - bucket(before, "clients", String(30 * 86_400))).toBe(1);

      const resumed = await connect(cg.port, { cert: shortClient, session: ticket });
      expect(resumed.socket.isSessionReused()).toBe(true);
      expect((await rawRequest(resumed.socket, "localhost")).status).toBe(200);
      resumed.socket.destroy();
      const untrusted = await connect(cg.port, { cert: p.untrusted });
      expect((await rawRequest(untrusted.socket, "localhost")).status).toBe(403);
      untrusted.socket.destroy();
      expect(count(await metrics(cg)) - count(t)).toBe(0);

      const expired = await connect(cg.port, { cert: p.expired });
      expect((await rawRequest(expired.socket, "localhost")).body).toMatch(/expired/);
      expired.socket.destroy();
      const after = await metrics(cg);
      expect(count(after) - count(t)).toBe(1);
      expect(bucket(after, "clients", "0") - bucket(t, "clients", "0")).toBe(1);
      expect(samples(after, `${HIST}_sum`).find((x) => x.labels.bundle === "clients")!.value).toBeGreaterThan(19 * 86_400);
    });
  });

  describe("upload warnings: a certificate expiring within 7 days", () => {
    it("Fastly: a server certificate and a mutual authentication carry it in meta.warnings (201)", async () => {
      const later = await issue({ subject: "CN=later.test", dnsNames: ["later.test"], eku: ["serverAuth"], notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 5 * DAY + 3_600_000) }, p.serverCa);
      expect((await api(cg, "POST", "/tls/private_keys", jsonapi("tls_private_key", { key: later.keyPem }))).status).toBe(201);
      const cert = await api(cg, "POST", "/tls/certificates", jsonapi("tls_certificate", { cert_blob: later.certPem }));
      expect(cert.status).toBe(201);
      expect(cert.body.meta.warnings).toEqual([expect.stringMatching(/^certificate "[^"]+" \(CN=later\.test\) expires on \d{4}-\d\d-\d\dT.*, in 5 days: /)]);
      const ma = await api(cg, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { name: "soon", cert_bundle: p.ca.certPem + soonCa.certPem }));
      expect(ma.status).toBe(201);
      expect(ma.body.meta.warnings).toEqual([expect.stringMatching(/CA certificate 2 \(O=certgate test, CN=soon client CA\) expires on .*, in 3 days; client certificates issued by it stop verifying then$/)]);
      // Only what a write brings in: renaming it warns no more.
      const again = await api(cg, "PATCH", `/tls/mutual_authentications/${ma.body.data.id}`, jsonapi("mutual_authentication", { name: "renamed" }, undefined, ma.body.data.id));
      expect(again.status).toBe(200);
      expect(again.body.meta?.warnings).toBeUndefined();
    });

    it("Cloudflare: an Access certificate carries it in messages[] (201)", async () => {
      const r = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { name: "soon", certificate: soonCa.certPem });
      expect(r.status).toBe(201);
      expect(r.body.success).toBe(true);
      expect(r.body.messages).toEqual([{ code: expect.any(Number), message: expect.stringMatching(/CA certificate 1 .*soon client CA.* expires on .*, in 3 days/) }]);
    });

    it("native: PUT /v1/config carries every warning in warnings (expired and expiring CAs in one bundle); the same model again carries none", async () => {
      const cur = (await api(cg, "GET", "/v1/config")).body;
      const next = { ...cur, trust_bundles: [...cur.trust_bundles, { id: "mixed", ca: expiredCa.certPem + soonCa.certPem + p.ca.certPem }] };
      const r = await api(cg, "PUT", "/v1/config", next);
      expect(r.status).toBe(200);
      expect(r.body.warnings).toEqual([
        expect.stringMatching(/^trust bundle "mixed": CA certificate 1 \(.*retired client CA\) expired on /),
        expect.stringMatching(/^trust bundle "mixed": CA certificate 2 \(.*soon client CA\) expires on .*, in 3 days/),
      ]);
      const again = await api(cg, "PUT", "/v1/config", (await api(cg, "GET", "/v1/config")).body);
      expect(again.status).toBe(200);
      expect(again.body.warnings).toBeUndefined();
      expect((await api(cg, "PUT", "/v1/config", cur)).status).toBe(200);
    });

    it("Apinizer: an API proxy's client CA carries it in warnings", async () => {
      expect((await api(cg, "POST", "/apiops/projects/Soon", {})).status).toBe(200);
      const r = await api(cg, "POST", "/apiops/projects/Soon/apiProxies/Api/", { hostname: "up.test", relativePath: "/soon", backendUrl: origin, clientCaCertificate: soonCa.certPem });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ success: true, warnings: [expect.stringMatching(/soon client CA\) expires on .*, in 3 days/)] });
    });

    it("a certificate valid for longer than 7 days gets no warning", async () => {
      const r = await api(cg, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { name: "fine", cert_bundle: renewedCa.certPem }));
      expect(r.status).toBe(201);
      expect(r.body.meta?.warnings).toBeUndefined();
    });
  });

  describe("GET /v1/certificates/expiring", () => {
    const expiring = (q: string, token?: string) => api(cg, "GET", `/v1/certificates/expiring${q}`, undefined, token === undefined ? {} : { token });

    it("lists what expires within the window, soonest first, with where each is used", async () => {
      const r = await expiring("?within=30d");
      expect(r.status).toBe(200);
      expect(r.body.within_seconds).toBe(30 * 86_400);
      const seed = r.body.certificates.filter((c: { id: string }) => ["old", "soon", "soon-ca"].includes(c.id));
      expect(seed).toEqual([
        expect.objectContaining({ kind: "ca", id: "old", subject: "CN=retired client CA,O=certgate test", expired: true, bundles: ["old"], hosts: [] }),
        expect.objectContaining({ kind: "server", id: "soon", subject: "CN=soon.test", issuer: "CN=certgate dev server CA,O=certgate dev", expired: false, hosts: ["soon.test"], default_certificate: false }),
        expect.objectContaining({ kind: "ca", id: "soon-ca", expired: false, bundles: ["soon-ca"], hosts: ["soon.test"] }),
      ]);
      const [old, soon] = seed;
      expect(old.seconds_remaining).toBeLessThan(0);
      expect(old.not_after).toBe(expiredCa.cert.notAfter.toISOString());
      expect(soon.seconds_remaining).toBeGreaterThan(2 * 86_400);
      expect(soon.seconds_remaining).toBeLessThan(3 * 86_400);
      expect(soon.fingerprint_sha256).toBe(new X509Certificate(soonServer.certPem).fingerprint256);
      const times = r.body.certificates.map((c: { not_after: string }) => Date.parse(c.not_after));
      expect(times).toEqual([...times].sort((a, b) => a - b));
      expect(r.body.certificates.find((c: { id: string }) => c.id === "srv")).toBeUndefined();
    });

    it("a longer window takes in the long-lived ones: the default certificate with every name it serves, the bundle CAs with their hosts", async () => {
      const r = await expiring("?within=3650d");
      const srv = r.body.certificates.find((c: { id: string }) => c.id === "srv");
      // Names no SAN covers get the default certificate (m.managed.test: the managed CA's host above).
      expect(srv).toMatchObject({ kind: "server", default_certificate: true, hosts: ["a.test", "b.test", "localhost", "m.managed.test", "up.test"] });
      const clients = r.body.certificates.filter((c: { id: string }) => c.id === "clients");
      expect(clients).toHaveLength(2);
      for (const c of clients) expect(c).toMatchObject({ kind: "ca", bundles: ["clients"], hosts: ["localhost"] });
      // Without ?within: 30 days.
      expect((await expiring("")).body.within_seconds).toBe(30 * 86_400);
    });

    it("takes 12h and 3600s; anything else is a 400 naming within", async () => {
      for (const [q, s] of [["12h", 43_200], ["3600s", 3_600], ["90m", 5_400]] as const) {
        const r = await expiring(`?within=${q}`);
        expect(r.status).toBe(200);
        expect(r.body.within_seconds).toBe(s);
        expect(r.body.certificates.map((c: { id: string }) => c.id)).toContain("old");
      }
      for (const bad of ["30", "abc", "-1d", "1.5d", "30D", "1w", "99999999999d", "40000d", ""]) {
        const r = await expiring(`?within=${encodeURIComponent(bad)}`);
        expect(r.status, bad).toBe(400);
        expect(nativeError(r)).toMatchObject({ code: "bad_request", path: "within" });
        expect(nativeError(r).message).toMatch(/within must be a whole number with a unit s, m, h or d \(e\.g\. 30d, 12h, 3600s\)/);
      }
    });

    it("read-only tokens may read it; account tokens may not (server certificates are the operator's)", async () => {
      const ro = (await api(cg, "POST", "/v1/tokens", { name: "ro", read_only: true })).body.token;
      const acc = (await api(cg, "POST", "/v1/tokens", { name: "acc", account_id: ACC })).body.token;
      expect((await expiring("?within=30d", ro)).status).toBe(200);
      const r = await expiring("?within=30d", acc);
      expect(r.status).toBe(403);
      expect(nativeError(r).code).toBe("forbidden");
      expect((await expiring("?within=30d", null as unknown as string)).status).toBe(401);
    });
  });

  it("curl with a client certificate is observed too (a real peer)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-expiry-"));
    writeFileSync(join(dir, "c.pem"), shortClient.certPem);
    writeFileSync(join(dir, "c.key"), shortClient.keyPem);
    writeFileSync(join(dir, "ca.pem"), p.serverCa.certPem);
    const before = bucket(await metrics(cg), "clients", String(30 * 86_400));
    const r = await run("curl", ["-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", "ca.pem", "--cert", "c.pem", "--key", "c.key", `https://localhost:${cg.port}/`], "", 15_000, dir);
    expect(r.stdout).toBe("200");
    expect(bucket(await metrics(cg), "clients", String(30 * 86_400)) - before).toBe(1);
  });
});
