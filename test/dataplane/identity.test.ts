// Identity facts on real connections: certgate's SAN and SPIFFE rule fields and Cloudflare's
// cert_issuer_serial and *_rfc9440_too_large, over HTTP/1.1, HTTP/2 and curl; the access
// log's certificate and TLS fields; failed handshakes logged within a rate limit.
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, issue, pki, rawRequest, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { h2connect, h2once, h2request } from "../helpers/h2client.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Issued } from "../../src/pki/issue.ts";
import { parseModel, type ModelInput } from "../../src/model/schema.ts";
import { Runtime, HANDSHAKE_FAILURE_LOG_PER_SECOND } from "../../src/dataplane/runtime.ts";
import { ClientCertFacts, LOG_SAN_MAX, RFC9440_MAX_BYTES } from "../../src/dataplane/tls/facts.ts";
import { VERIFIED } from "../../src/dataplane/tls/verify.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { createLogger } from "../../src/observability/log.ts";
import { REFUSAL_LABELS } from "../../src/dataplane/request/refusals.ts";
import { startEcho } from "../../src/demo/echo.ts";

const OWN = "certgate.tls_client_auth.";
const SPIFFE = "spiffe://prod.example/ns/payments/sa/api";

/** A client certificate carrying every SAN type, issued by the dev client CA. */
function issueWorkload(p: DevPki, extra: { uris?: string[]; dnsNames?: string[] } = {}): Promise<Issued> {
  return issue(
    {
      subject: "O=payments,CN=api",
      dnsNames: extra.dnsNames ?? ["api.payments.example", "api.payments.svc.cluster.local"],
      uris: extra.uris ?? [SPIFFE, "https://payments.example/api"],
      emails: ["ops@payments.example"],
      ipAddresses: ["10.1.2.3", "2001:db8::7"],
    },
    p.ca,
  );
}

/** certgate with its log in a file, for the tests that read the log. */
async function startLogged(build: (p: DevPki, origin: string) => ModelInput) {
  const p = await pki();
  const echo = await startEcho();
  const file = join(mkdtempSync(join(tmpdir(), "certgate-log-")), "certgate.log");
  const log = createLogger({ level: "info", destination: file });
  const runtime = new Runtime(parseModel(build(p, echo.url)), { log, metrics: createMetrics({ refusalReasons: REFUSAL_LABELS }) });
  const { port } = await runtime.listen("127.0.0.1", 0);
  const lines = (): Record<string, unknown>[] => {
    log.flush();
    return readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  /** Waits (flushing) until `until` holds for the log's lines; no time limit of its own (vitest's applies). */
  const waitFor = async (until: (ls: Record<string, unknown>[]) => boolean) => {
    for (;;) {
      const ls = lines();
      if (until(ls)) return ls;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  return {
    port,
    file,
    waitFor,
    async close() {
      await runtime.close();
      echo.server.closeAllConnections();
      await new Promise((r) => echo.server.close(r));
    },
  };
}

describe("SAN, SPIFFE and validity rule fields", () => {
  let proxy: Proxy;
  let p: DevPki;
  let workload: Issued;
  let twoSpiffe: Issued;
  let leaf: X509Certificate;
  const cases: Record<string, string> = {};
  beforeAll(async () => {
    p = await pki();
    workload = await issueWorkload(p);
    twoSpiffe = await issueWorkload(p, { uris: [SPIFFE, "spiffe://prod.example/ns/payments/sa/other"] });
    leaf = new X509Certificate(workload.certPem);
    Object.assign(cases, {
      "uri-any": `any(${OWN}san.uri[*] eq "${SPIFFE}")`,
      "uri-in": `any(${OWN}san.uri[*] in {"https://payments.example/api"}) and len(${OWN}san.uri) eq 2`,
      spiffe: `${OWN}spiffe_id eq "${SPIFFE}"`,
      "dns-any": `any(${OWN}san.dns[*] wildcard "*.svc.cluster.local")`,
      "dns-all": `all(${OWN}san.dns[*] contains ".payments.")`,
      email: `${OWN}san.email[0] eq "ops@payments.example"`,
      "ip-v4": `any(${OWN}san.ip[*] eq "10.1.2.3")`,
      "ip-v6": `any(${OWN}san.ip[*] eq "2001:db8::7")`,
      // OpenSSL-issued only (@peculiar/x509 mis-encodes IPv4-mapped addresses)
      "ip-mapped": `any(${OWN}san.ip[*] eq "::ffff:10.0.0.1")`,
      "not-before": `${OWN}not_before eq ${Math.floor(leaf.validFromDate.getTime() / 1000)}`,
      "not-after": `${OWN}not_after eq ${Math.floor(leaf.validToDate.getTime() / 1000)} and ${OWN}not_after gt ${Math.floor(Date.now() / 1000)}`,
      "issuer-serial": `cf.tls_client_auth.cert_issuer_serial eq "${new X509Certificate(p.ca.certPem).serialNumber.toUpperCase()}"`,
      "not-too-large": "not cf.tls_client_auth.cert_rfc9440_too_large and not cf.tls_client_auth.cert_chain_rfc9440_too_large and cf.tls_client_auth.cert_rfc9440 ne \"\"",
      // controls: must not match this certificate
      "other-spiffe": `any(${OWN}san.uri[*] eq "spiffe://prod.example/ns/payments/sa/web")`,
      "dns-all-fails": `all(${OWN}san.dns[*] eq "api.payments.example")`,
      // two SPIFFE URIs: no SPIFFE id
      "spiffe-none": `${OWN}spiffe_id eq "" and len(${OWN}san.uri) eq 2 and ${OWN}san.uri[1] ne ""`,
      "no-sans": `not len(${OWN}san.dns) gt 0 and not any(${OWN}san.uri[*] ne "") and ${OWN}spiffe_id eq ""`,
    });
    const rules = Object.entries(cases).map(([name, expression]) => ({
      id: name,
      expression: `http.request.uri.path eq "/f/${name}" and (${expression})`,
      action: "block" as const,
      response: { status: 418, body: "match" },
    }));
    proxy = await startProxy((pk, origin) => baseModel(pk, origin, [{ hostname: "a.test", mtls: { trust_bundle: "clients", mode: "fail_open" } }], { rules }));
  });
  afterAll(() => proxy.close());

  // The workload certificate matches every case but the controls and the other certificates' cases.
  const matching = (name: string) => !["other-spiffe", "dns-all-fails", "spiffe-none", "no-sans", "ip-mapped"].includes(name);

  it("match the certificate over HTTP/1.1, all on one keep-alive connection", async () => {
    const { socket } = await connect(proxy.port, { servername: "a.test", cert: workload });
    for (const name of Object.keys(cases)) expect((await rawRequest(socket, "a.test", `/f/${name}`)).status, name).toBe(matching(name) ? 418 : 200);
    socket.destroy();
  });

  it("match the certificate over HTTP/2, all on one session", async () => {
    const s = await h2connect(proxy.port, { servername: "a.test", cert: workload });
    try {
      for (const name of Object.keys(cases)) expect((await h2request(s, { authority: "a.test", path: `/f/${name}` })).status, name).toBe(matching(name) ? 418 : 200);
    } finally {
      s.close();
    }
  });

  it("curl --http2 with the certificate meets the SPIFFE rule", async () => {
    const f = pemFiles({ "c.pem": workload.certPem, "c.key": workload.keyPem, "ca.pem": p.serverCa.certPem });
    const args = ["-s", "--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "--cacert", f["ca.pem"]!, "--cert", f["c.pem"]!, "--key", f["c.key"]!, "--resolve", `a.test:${proxy.port}:127.0.0.1`];
    expect((await run("curl", [...args, `https://a.test:${proxy.port}/f/uri-any`])).stdout).toBe("418 2");
    expect((await run("curl", [...args, `https://a.test:${proxy.port}/f/other-spiffe`])).stdout).toBe("200 2");
  });

  it("two SPIFFE URIs give no SPIFFE id; no certificate gives missing arrays and an empty id", async () => {
    const { socket } = await connect(proxy.port, { servername: "a.test", cert: twoSpiffe });
    expect((await rawRequest(socket, "a.test", "/f/spiffe-none")).status).toBe(418);
    expect((await rawRequest(socket, "a.test", "/f/spiffe")).status).toBe(200);
    socket.destroy();
    const bare = await connect(proxy.port, { servername: "a.test" });
    expect((await rawRequest(bare.socket, "a.test", "/f/no-sans")).status).toBe(418);
    expect((await rawRequest(bare.socket, "a.test", "/f/dns-all")).status).toBe(200); // all() over a missing array is false
    expect((await rawRequest(bare.socket, "a.test", "/f/not-after")).status).toBe(200);
    bare.socket.destroy();
  });

  it("an OpenSSL-issued certificate's SANs read the same", async () => {
    // openssl x509 -req signs a CSR with SANs from a config: an independent encoder.
    const f = pemFiles({ "ca.pem": p.ca.certPem, "ca.key": p.ca.keyPem, "ext.cnf": `subjectAltName=URI:${SPIFFE},DNS:api.payments.example,email:ops@payments.example,IP:10.1.2.3,IP:2001:db8:0:0:0:0:0:7,IP:::ffff:10.0.0.1\nextendedKeyUsage=clientAuth\n` });
    const dir = f["ca.pem"]!.replace(/\/ca\.pem$/, "");
    const key = join(dir, "w.key"), csr = join(dir, "w.csr"), crt = join(dir, "w.pem");
    expect((await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/O=payments/CN=api"])).code).toBe(0);
    const signed = await run("openssl", ["x509", "-req", "-in", csr, "-CA", f["ca.pem"]!, "-CAkey", f["ca.key"]!, "-CAcreateserial", "-days", "2", "-extfile", f["ext.cnf"]!, "-out", crt]);
    expect(signed.code, signed.stderr).toBe(0);
    const cert = { certPem: readFileSync(crt, "utf8"), keyPem: readFileSync(key, "utf8") };
    const { socket } = await connect(proxy.port, { servername: "a.test", cert });
    for (const name of ["uri-any", "spiffe", "email", "ip-v4", "ip-v6", "ip-mapped", "issuer-serial"]) expect((await rawRequest(socket, "a.test", `/f/${name}`)).status, name).toBe(418);
    socket.destroy();
  });
});

describe("RFC 9440 forwarding limit (cert_rfc9440_too_large)", () => {
  let proxy: Proxy;
  let big: Issued;
  beforeAll(async () => {
    const p = await pki();
    // 400 DNS SANs: about 11 KB of DER, over 10 KiB once base64-encoded.
    big = await issueWorkload(p, { dnsNames: Array.from({ length: 400 }, (_, i) => `host-${String(i).padStart(4, "0")}.payments.example`) });
    const rules = [
      { id: "big", expression: 'http.request.uri.path eq "/big" and cf.tls_client_auth.cert_rfc9440_too_large and cf.tls_client_auth.cert_rfc9440 eq "" and not cf.tls_client_auth.cert_chain_rfc9440_too_large', action: "block" as const, response: { status: 418, body: "match" } },
    ];
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [{ hostname: "a.test", mtls: { trust_bundle: "clients", mode: "fail_open" }, forward_client_cert: { rfc9440: true, cloudflare: true } }], { rules }),
    );
  });
  afterAll(() => proxy.close());

  it("is true over 10 KiB: the field is empty and Client-Cert is not forwarded; the Cloudflare headers still are", async () => {
    expect(4 * Math.ceil(new X509Certificate(big.certPem).raw.length / 3) + 2).toBeGreaterThan(RFC9440_MAX_BYTES);
    expect((await request(proxy.port, { servername: "a.test", path: "/big", cert: big })).status).toBe(418);
    const echo = (await request(proxy.port, { servername: "a.test", path: "/echo", cert: big })).json();
    expect(echo.headers["client-cert"]).toBeUndefined();
    expect(echo.headers["cf-client-cert-der-base64"]).toBe(new X509Certificate(big.certPem).raw.toString("base64"));
    // A certificate under the limit is forwarded as before.
    const small = (await request(proxy.port, { servername: "a.test", path: "/echo", cert: await issueWorkload(await pki()) })).json();
    expect(small.headers["client-cert"]).toMatch(/^:[A-Za-z0-9+/=]+:$/);
  });
});

describe("access log: certificate and TLS fields", () => {
  let srv: Awaited<ReturnType<typeof startLogged>>;
  let workload: Issued;
  let revoked: Issued;
  let many: Issued;
  beforeAll(async () => {
    const p = await pki();
    workload = await issueWorkload(p);
    revoked = await issueWorkload(p);
    many = await issueWorkload(p, { dnsNames: Array.from({ length: 30 }, (_, i) => `n${i}.payments.example`) });
    const ca = new OpensslCa(p.ca);
    await ca.revoke(revoked.certPem);
    const crl = await ca.gencrl();
    srv = await startLogged((pk, origin) => ({
      ...baseModel(pk, origin, [{ hostname: "a.test", mtls: { trust_bundle: "clients", mode: "fail_open" } }]),
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem, revocation: { crl: { pem: crl, urls: [], fetch_distribution_points: false, when_missing: "ignore" } } }],
    }));
  });
  afterAll(() => srv.close());

  it("one line per request over HTTP/1.1 and HTTP/2: subject, issuer, serial, fingerprint, SPIFFE id, SANs, verified, revoked, TLS version, cipher, resumed, protocol", async () => {
    const leaf = new X509Certificate(workload.certPem);
    expect((await request(srv.port, { servername: "a.test", path: "/log-h1", cert: workload })).status).toBe(200);
    expect((await h2once(srv.port, { servername: "a.test", cert: workload }, { path: "/log-h2" })).status).toBe(200);
    const lines = await srv.waitFor((ls) => ls.some((l) => l.path === "/log-h1") && ls.some((l) => l.path === "/log-h2"));
    const cert = {
      subject: "CN=api,O=payments",
      issuer: "CN=certgate dev client CA,O=certgate dev",
      serial: leaf.serialNumber.toUpperCase(),
      sha256: leaf.fingerprint256.replace(/:/g, "").toLowerCase(),
      spiffe_id: SPIFFE,
      san: ["DNS:api.payments.example", "DNS:api.payments.svc.cluster.local", "IP:10.1.2.3", "IP:2001:db8::7", `URI:${SPIFFE}`, "URI:https://payments.example/api", "email:ops@payments.example"],
      verified: true,
      revoked: false,
    };
    for (const [path, protocol] of [["/log-h1", "http/1.1"], ["/log-h2", "h2"]]) {
      const line = lines.find((l) => l.path === path)!;
      expect(line).toMatchObject({ msg: "request", protocol, sni: "a.test", client: "127.0.0.1", status: 200, tls: { version: "TLSv1.3", resumed: false } });
      expect((line.tls as { cipher: string }).cipher).toMatch(/^TLS_(AES_(128|256)_GCM_SHA(256|384)|CHACHA20_POLY1305_SHA256)$/);
      // The SAN order is the certificate's, whatever order Node prints the types in.
      expect({ ...(line.cert as object), san: [...((line.cert as { san: string[] }).san)].sort() }).toEqual({ ...cert, san: [...cert.san].sort() });
    }
    // Keys are never logged: neither the client's nor any PEM key block.
    const text = readFileSync(srv.file, "utf8");
    expect(text).not.toContain("PRIVATE KEY");
    expect(text).not.toContain(workload.keyPem.split("\n")[1]!);
  });

  it("says revoked for a revoked certificate, and bounds the SAN list", async () => {
    expect((await request(srv.port, { servername: "a.test", path: "/log-revoked", cert: revoked })).status).toBe(200); // fail-open: rules decide
    expect((await request(srv.port, { servername: "a.test", path: "/log-many", cert: many })).status).toBe(200);
    const lines = await srv.waitFor((ls) => ls.some((l) => l.path === "/log-revoked") && ls.some((l) => l.path === "/log-many"));
    expect(lines.find((l) => l.path === "/log-revoked")!.cert).toMatchObject({ verified: true, revoked: true });
    const c = lines.find((l) => l.path === "/log-many")!.cert as { san: string[]; san_omitted: number };
    expect(c.san).toHaveLength(LOG_SAN_MAX);
    expect(c.san_omitted).toBe(30 + 2 + 1 + 2 - LOG_SAN_MAX); // 30 DNS, 2 URI, 1 email, 2 IP
  });

  it("no certificate: no cert object; the TLS fields are there", async () => {
    expect((await request(srv.port, { servername: "a.test", path: "/log-bare" })).status).toBe(200);
    const line = (await srv.waitFor((ls) => ls.some((l) => l.path === "/log-bare"))).find((l) => l.path === "/log-bare")!;
    expect(line.cert).toBeUndefined();
    expect(line.tls).toMatchObject({ version: "TLSv1.3" });
  });

  it("the log object is built once per connection and verdict, not per request", async () => {
    const facts = new ClientCertFacts(new X509Certificate(workload.certPem), VERIFIED);
    expect(facts.logFields(false)).toBe(facts.logFields(false));
    expect(facts.logFields(true)).not.toBe(facts.logFields(false));
    expect(facts.sanUri).toBe(facts.sanUri);
  });

  it("IP SANs read in RFC 5952 form, whatever OpenSSL prints", async () => {
    const ips = ["10.1.2.3", "2001:db8::7", "::1", "2001:db8:0:0:1:0:0:1", "1:2:3:4:5:6:7:8", "::", "fe80::1:0:0"];
    const c = await issue({ subject: "CN=ips", ipAddresses: ips }, (await pki()).ca);
    expect(new ClientCertFacts(new X509Certificate(c.certPem), VERIFIED).sanIp).toEqual(["10.1.2.3", "2001:db8::7", "::1", "2001:db8::1:0:0:1", "1:2:3:4:5:6:7:8", "::", "fe80::1:0:0"]);
  });
});

describe("failed handshakes are logged, rate-limited", () => {
  let srv: Awaited<ReturnType<typeof startLogged>>;
  let p: DevPki;
  beforeAll(async () => {
    p = await pki();
    // No default certificate: an unknown SNI is refused (unknown_sni).
    srv = await startLogged((pk, origin) => ({
      ...baseModel(pk, origin, [{ hostname: "a.test", mtls: { trust_bundle: "clients", mode: "enforced" } }]),
      default_certificate: null,
      limits: { handshake_timeout_ms: 2000 }, // short, for hello_timeout; long enough for a handshake on a busy machine
    }));
  });
  afterAll(() => srv.close());
  const failures = (ls: Record<string, unknown>[]) => ls.filter((l) => l.msg === "handshake failed");

  it("a single failure is logged with its SNI, client address and reason", async () => {
    // No certificate on an enforced host: the TLS alert certificate_required.
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: srv.port, servername: "a.test", ca: p.serverCa.certPem });
      s.on("error", () => resolve());
      s.on("close", () => resolve());
      s.on("secureConnect", () => s.write("GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"));
    });
    // An untrusted certificate: a verification failure.
    const untrusted = await request(srv.port, { servername: "a.test", cert: p.untrusted });
    expect(untrusted.status).toBe(403);
    // An SNI nobody serves.
    const unknown = await run("openssl", ["s_client", "-connect", `127.0.0.1:${srv.port}`, "-servername", "nobody.example"], "", 10_000);
    expect(unknown.code).not.toBe(0);
    // Bytes that are neither TLS nor HTTP.
    await new Promise<void>((resolve) => {
      const s = net.connect(srv.port, "127.0.0.1", () => s.write(Buffer.from([0x01, 0x02, 0x03, 0x04, 0x05, 0x06])));
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    // A TLS 1.1 client against certgate's TLS 1.2 minimum: OpenSSL refuses it in the handshake.
    await new Promise<void>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: srv.port, servername: "a.test", minVersion: "TLSv1", maxVersion: "TLSv1.1", ciphers: "DEFAULT@SECLEVEL=0", rejectUnauthorized: false });
      s.on("error", () => resolve());
      s.on("close", () => resolve());
    });
    // A client that connects and says nothing: hello_timeout once the handshake deadline passes.
    await new Promise<void>((resolve) => net.connect(srv.port, "127.0.0.1").on("close", () => resolve()).on("error", () => resolve()));
    const ls = await srv.waitFor((l) => failures(l).length >= 6);
    expect(failures(ls)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ sni: "a.test", client: "127.0.0.1", reason: "no_certificate" }),
        expect.objectContaining({ sni: "a.test", client: "127.0.0.1", reason: "unable_to_verify_leaf_signature" }),
        expect.objectContaining({ sni: "nobody.example", client: "127.0.0.1", reason: "unknown_sni" }),
        expect.objectContaining({ client: "127.0.0.1", reason: "not_tls" }),
        expect.objectContaining({ sni: "a.test", client: "127.0.0.1", reason: "tls_error", error: expect.stringMatching(/PROTOCOL|VERSION/i) }),
        expect.objectContaining({ client: "127.0.0.1", reason: "hello_timeout" }),
      ]),
    );
  });

  it(`a flood is cut to ${HANDSHAKE_FAILURE_LOG_PER_SECOND} lines per second, with a count of the rest`, async () => {
    const N = 150;
    const started = Date.now();
    // Plaintext HTTP on the TLS port: each is answered 400 and counted as a failed handshake (plaintext_http).
    await Promise.all(
      Array.from({ length: N }, () =>
        new Promise<void>((resolve) => {
          const s = net.connect(srv.port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: flood.example\r\n\r\n"));
          s.on("data", () => {});
          s.on("error", () => resolve());
          s.on("close", () => resolve());
        }),
      ),
    );
    // One-second windows the flood can overlap: those starting within it, plus one opened just before it.
    const windows = Math.floor((Date.now() - started) / 1000) + 2;
    // Every one is accounted for: written, or counted in a "more not logged" line.
    const ls = await srv.waitFor((l) => {
      const written = failures(l).filter((x) => x.reason === "plaintext_http").length;
      const suppressed = l.filter((x) => x.msg === "handshake failed: more not logged").reduce((n, x) => n + (x.suppressed as number), 0);
      return written + suppressed >= N;
    });
    const flood = failures(ls).filter((x) => x.reason === "plaintext_http");
    const counts = ls.filter((x) => x.msg === "handshake failed: more not logged");
    expect(flood.length + counts.reduce((n, x) => n + (x.suppressed as number), 0)).toBe(N);
    expect(flood.length).toBeLessThanOrEqual(HANDSHAKE_FAILURE_LOG_PER_SECOND * windows);
    if (HANDSHAKE_FAILURE_LOG_PER_SECOND * windows < N) expect(counts.length).toBeGreaterThan(0);
    for (const c of counts) expect(c).toMatchObject({ limit_per_second: HANDSHAKE_FAILURE_LOG_PER_SECOND });
    expect(flood[0]).toMatchObject({ client: "127.0.0.1", reason: "plaintext_http" });
  });
});
