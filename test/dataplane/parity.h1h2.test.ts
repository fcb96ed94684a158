// Every HTTP/2 stream is a request like any other: ONE table of cases, each run over HTTP/1.1
// and HTTP/2 (Node's clients, and curl --http1.1 / --http2 with client certificates), must give
// the same status and body, and the origin must see the same request (method, normalised
// target, forwarded certificate and certgate's own headers, spoofed ones gone).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { h2connect, h2once, h2request } from "../helpers/h2client.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { issue } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Model } from "../../src/model/schema.ts";

type CertName = "client" | "untrusted" | "expired" | "none";

interface Case {
  name: string;
  sni: string;
  /** Host header (HTTP/1.1) and :authority (HTTP/2); the SNI when absent. */
  host?: string;
  path: string;
  method?: string;
  cert: CertName;
  headers?: Record<string, string>;
  body?: string;
  status: number;
  /** A substring of the body certgate answers with (refusals), or of what the origin echoes. */
  bodyHas?: string;
  /** Checked on the request the origin received (passes only). */
  origin?: { url?: string; headers?: Record<string, string | undefined>; bodyBytes?: number };
  /** curl cannot send this case as written (a fragment, a raw Host override on HTTP/2). */
  noCurl?: true;
  /** Headers only curl sends (it then waits for 100 Continue instead of racing a refusal with its upload). */
  curlHeaders?: Record<string, string>;
}

// localhost: enforced, forwards the certificate (RFC 9440 and XFCC). a.test: fail-open, zone
// rule on /admin. b.test: no mTLS.
const CASES: Case[] = [
  { name: "valid certificate, enforced host: 200, certificate forwarded", sni: "localhost", path: "/hello?q=1", cert: "client", status: 200, origin: { url: "/hello?q=1", headers: { host: "localhost", "x-forwarded-proto": "https", "x-forwarded-host": "localhost" } } },
  { name: "untrusted certificate: 403 untrusted", sni: "localhost", path: "/", cert: "untrusted", status: 403, bodyHas: "Client certificate error: untrusted" },
  { name: "expired certificate: 403 expired", sni: "localhost", path: "/", cert: "expired", status: 403, bodyHas: "Client certificate error: expired" },
  { name: "mTLS connection, another host: 421", sni: "localhost", host: "b.test", path: "/", cert: "client", status: 421, bodyHas: "cannot serve that host" },
  { name: "mTLS connection, another mTLS host: 421", sni: "localhost", host: "a.test", path: "/", cert: "client", status: 421, bodyHas: "cannot serve that host" },
  { name: "no-mTLS connection asking for an mTLS host: 421", sni: "b.test", host: "localhost", path: "/", cert: "none", status: 421, bodyHas: "cannot serve that host" },
  { name: "host with port and other case is the SNI", sni: "localhost", host: "LocalHost:443", path: "/", cert: "client", status: 200, origin: { headers: { host: "LocalHost:443" } } },
  { name: "fail-open host, rule blocks /admin without a certificate", sni: "a.test", path: "/admin", cert: "none", status: 403, bodyHas: "no certificate, no admin" },
  { name: "fail-open host, rule lets a verified certificate through", sni: "a.test", path: "/admin", cert: "client", status: 200, origin: { url: "/admin" } },
  { name: "fail-open host, untrusted certificate: the rule decides", sni: "a.test", path: "/admin", cert: "untrusted", status: 403, bodyHas: "no certificate, no admin" },
  { name: "escaped unreserved characters meet the rule", sni: "a.test", path: "/%61dmin", cert: "none", status: 403, bodyHas: "no certificate, no admin" },
  { name: "merged slashes meet the rule", sni: "a.test", path: "//admin", cert: "none", status: 403, bodyHas: "no certificate, no admin" },
  { name: "dot segments meet the rule", sni: "a.test", path: "/x/../admin", cert: "none", status: 403, bodyHas: "no certificate, no admin", noCurl: true },
  { name: "the origin gets the normalised path", sni: "a.test", path: "/p//q/%7euser/./r", cert: "none", status: 200, origin: { url: "/p/q/~user/r" } },
  { name: "a fragment is a 400", sni: "b.test", path: "/a#b", cert: "none", status: 400, bodyHas: "Bad request target", noCurl: true },
  { name: "servlet dot segment with parameters is a 400", sni: "b.test", path: "/public/..;/admin", cert: "none", status: 400, bodyHas: "Bad request target", noCurl: true },
  { name: "no route: 404", sni: "b.test", path: "/nowhere/x", cert: "none", status: 404, bodyHas: "No route" },
  {
    name: "spoofed certificate and forwarding headers are replaced",
    sni: "localhost",
    path: "/",
    cert: "client",
    headers: { "client-cert": ":c3Bvb2Y=:", "x-forwarded-client-cert": "Hash=spoof", "x-forwarded-for": "6.6.6.6", "x-real-ip": "6.6.6.6", forwarded: "for=6.6.6.6", "cf-client-cert-sha256": "spoof" },
    status: 200,
    origin: { headers: { "x-forwarded-for": "127.0.0.1", "x-real-ip": undefined, forwarded: undefined, "cf-client-cert-sha256": undefined } },
  },
  {
    name: "spoofed certificate headers are removed on a host without mTLS",
    sni: "b.test",
    path: "/ok",
    cert: "none",
    headers: { "client-cert": ":c3Bvb2Y=:", "x-forwarded-client-cert": "Hash=spoof" },
    status: 200,
    origin: { headers: { "client-cert": undefined, "x-forwarded-client-cert": undefined } },
  },
  { name: "a body reaches the origin whole", sni: "b.test", path: "/upload", method: "POST", cert: "none", body: "x".repeat(70_000), headers: { "content-type": "application/octet-stream" }, status: 200, origin: { bodyBytes: 70_000 } },
  { name: "a body over max_body_bytes: 413", sni: "b.test", path: "/upload", method: "POST", cert: "none", body: "x".repeat(200_001), status: 413, bodyHas: "too large", curlHeaders: { expect: "100-continue" } },
];

interface Answer {
  status: number;
  body: string;
}

describe("one table of cases, over HTTP/1.1 and HTTP/2", () => {
  let proxy: Proxy;
  let p: DevPki;
  let files: Record<string, string>;
  const certOf = (c: CertName) => (c === "none" ? undefined : p[c]);

  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        [
          { hostname: "localhost", mtls: { mode: "enforced", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true, xfcc: true } },
          { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" } },
          { hostname: "b.test" },
        ],
        {
          routes: [
            { id: "l", hostname: "localhost", origin },
            { id: "a", hostname: "a.test", origin },
            { id: "b", hostname: "b.test", path_prefix: "/upload", origin },
            { id: "b2", hostname: "b.test", path_prefix: "/public", origin },
            { id: "b3", hostname: "b.test", path_prefix: "/ok", origin },
          ],
          zones: [{ id: "z", name: "a.test", rules: [{ id: "admin", expression: 'not cf.tls_client_auth.cert_verified and http.request.uri.path eq "/admin"', action: "block", response: { body: "no certificate, no admin\n" } }] }],
          limits: { max_body_bytes: 200_000 },
        },
      ),
    );
    files = pemFiles({
      "server-ca.pem": p.serverCa.certPem,
      ...Object.fromEntries((["client", "untrusted", "expired"] as const).flatMap((n) => [[`${n}.pem`, p[n].certPem], [`${n}.key`, p[n].keyPem]])),
    });
  });
  afterAll(() => proxy.close());

  const viaH1 = async (c: Case): Promise<Answer> => {
    const r = await request(proxy.port, { servername: c.sni, host: c.host ?? c.sni, path: c.path, method: c.method, headers: { ...(c.body !== undefined && { "content-length": String(Buffer.byteLength(c.body)) }), ...c.headers }, body: c.body, cert: certOf(c.cert) });
    return { status: r.status, body: r.body };
  };
  const viaH2 = async (c: Case): Promise<Answer> => {
    const r = await h2once(proxy.port, { servername: c.sni, cert: certOf(c.cert) }, { authority: c.host ?? c.sni, path: c.path, method: c.method, headers: { ...(c.body !== undefined && { "content-length": String(Buffer.byteLength(c.body)) }), ...c.headers }, body: c.body });
    return { status: r.status, body: r.body };
  };
  const viaCurl = async (c: Case, proto: "--http1.1" | "--http2"): Promise<Answer & { version: string }> => {
    const certArgs = c.cert === "none" ? [] : ["--cert", files[`${c.cert}.pem`]!, "--key", files[`${c.cert}.key`]!];
    const host = c.host ?? c.sni;
    const args = ["-s", proto, "--path-as-is", "--cacert", files["server-ca.pem"]!, ...certArgs, "--resolve", `${c.sni}:${proxy.port}:127.0.0.1`, "-o", "-", "-w", "\n%{http_code} %{http_version}"];
    if (host !== c.sni) args.push("-H", `host: ${host}`);
    for (const [k, v] of Object.entries({ ...c.headers, ...c.curlHeaders })) args.push("-H", `${k}: ${v}`);
    if (c.body !== undefined) args.push("-X", c.method ?? "POST", "--data-binary", "@-");
    else if (c.method) args.push("-X", c.method);
    args.push(`https://${c.sni}:${proxy.port}${c.path}`);
    const out = await run("curl", args, c.body);
    const nl = out.stdout.lastIndexOf("\n");
    const [status, version] = out.stdout.slice(nl + 1).split(" ");
    return { status: Number(status), body: out.stdout.slice(0, nl), version: version! };
  };

  for (const c of CASES) {
    it(c.name, async () => {
      const h1 = await viaH1(c);
      const h2 = await viaH2(c);
      expect(h1.status, "HTTP/1.1").toBe(c.status);
      expect(h2.status, "HTTP/2").toBe(c.status);
      if (c.bodyHas) {
        expect(h1.body).toContain(c.bodyHas);
        expect(h2.body).toBe(h1.body);
      }
      if (c.origin) {
        const o1 = JSON.parse(h1.body) as { url: string; headers: Record<string, string>; bodyBytes: number };
        const o2 = JSON.parse(h2.body) as typeof o1;
        for (const o of [o1, o2]) {
          if (c.origin.url !== undefined) expect(o.url).toBe(c.origin.url);
          if (c.origin.bodyBytes !== undefined) expect(o.bodyBytes).toBe(c.origin.bodyBytes);
          for (const [k, v] of Object.entries(c.origin.headers ?? {})) expect(o.headers[k], k).toBe(v);
        }
        // The same request reached the origin, whichever protocol the client spoke (framing apart).
        const same = (o: typeof o1) => {
          const h = { ...o.headers };
          for (const k of ["connection", "transfer-encoding", "content-length"]) delete h[k];
          return { url: o.url, bodyBytes: o.bodyBytes, headers: h };
        };
        expect(same(o2)).toEqual(same(o1));
        if (c.sni === "localhost" && c.cert === "client") {
          expect(o2.headers["client-cert"]).toMatch(/^:[A-Za-z0-9+/=]+:$/);
          expect(o2.headers["client-cert"]).not.toBe(":c3Bvb2Y=:");
          expect(o2.headers["x-forwarded-client-cert"]).toMatch(/^Hash=[0-9a-f]{64};/);
        }
      }
      if (c.noCurl) return;
      for (const proto of ["--http1.1", "--http2"] as const) {
        const r = await viaCurl(c, proto);
        expect(r.version, proto).toBe(proto === "--http2" ? "2" : "1.1");
        expect(r.status, `curl ${proto}`).toBe(c.status);
        if (c.bodyHas) expect(r.body, `curl ${proto}`).toBe(h1.body);
        if (c.origin?.url !== undefined) expect((JSON.parse(r.body) as { url: string }).url).toBe(c.origin.url);
      }
    });
  }

  it("a policy change since the handshake gives the connection's next request (HTTP/1.1) or stream (HTTP/2) 421", async () => {
    const h2 = await h2connect(proxy.port, { servername: "localhost", cert: p.client });
    expect((await h2request(h2, { authority: "localhost" })).status).toBe(200);
    const https = await import("node:https");
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const h1first = await request(proxy.port, { servername: "localhost", cert: p.client, agent });
    expect(h1first.status).toBe(200);
    const before: Model = proxy.runtime.snapshot.model;
    // Same bundle, another depth: another policy version for localhost.
    proxy.runtime.apply({ ...before, trust_bundles: before.trust_bundles.map((b) => ({ ...b, verify_depth: 3 })) });
    try {
      const s = await h2request(h2, { authority: "localhost" });
      expect(s.status).toBe(421);
      expect(s.body).toContain("policy changed");
      const h1 = await request(proxy.port, { servername: "localhost", cert: p.client, agent });
      expect(h1.status).toBe(421);
      expect(h1.body).toBe(s.body);
      // HTTP/2: GOAWAY after that answer; a new connection is served under the new policy.
      await new Promise<void>((r) => (h2.closed ? r() : h2.once("close", () => r())));
      expect((await h2once(proxy.port, { servername: "localhost", cert: p.client })).status).toBe(200);
    } finally {
      proxy.runtime.apply(before);
      agent.destroy();
      h2.destroy();
    }
  });

  it("421 on one stream leaves the connection serving the others (RFC 9113 §9.1.2: the client retries elsewhere)", async () => {
    const s = await h2connect(proxy.port, { servername: "localhost", cert: p.client });
    try {
      const [mis, ok] = await Promise.all([h2request(s, { authority: "b.test" }), h2request(s, { authority: "localhost" })]);
      expect([mis.status, ok.status]).toEqual([421, 200]);
      expect((await h2request(s, { authority: "localhost" })).status).toBe(200);
    } finally {
      s.close();
    }
  });

  it(":authority and a different host field: 400, as a repeated Host is on HTTP/1.1", async () => {
    const r = await h2once(proxy.port, { servername: "b.test" }, { authority: "b.test", headers: { host: "localhost" } });
    expect(r.status).toBe(400);
    const same = await h2once(proxy.port, { servername: "b.test" }, { authority: "b.test", path: "/ok", headers: { host: "B.test" } });
    expect(same.status).toBe(200);
  });

  it("a revocation published while a connection is open applies to its next request (HTTP/1.1) and stream (HTTP/2); gRPC gets 16", async () => {
    const victim = await issue({ subject: "O=certgate dev,CN=h2 victim" }, p.ca);
    const ca = new OpensslCa(p.ca);
    const h2 = await h2connect(proxy.port, { servername: "localhost", cert: victim });
    const https = await import("node:https");
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const before: Model = proxy.runtime.snapshot.model;
    try {
      expect((await h2request(h2, { authority: "localhost" })).status).toBe(200);
      expect((await request(proxy.port, { servername: "localhost", cert: victim, agent })).status).toBe(200);
      await ca.revoke(victim.certPem);
      const crl = await ca.gencrl();
      // Revocation data is not a policy change: the connections stay, their next requests are refused.
      proxy.runtime.apply({ ...before, trust_bundles: before.trust_bundles.map((b) => ({ ...b, revocation: { crl: { pem: crl, urls: [], fetch_distribution_points: false, when_missing: "ignore" as const } } })) });
      const s2 = await h2request(h2, { authority: "localhost" });
      const s1 = await request(proxy.port, { servername: "localhost", cert: victim, agent });
      expect([s1.status, s2.status]).toEqual([403, 403]);
      expect(s2.body).toBe(s1.body);
      expect(s2.body).toContain("revoked");
      const g = await h2once(proxy.port, { servername: "localhost", cert: victim }, { method: "POST", headers: { "content-type": "application/grpc" }, body: "" });
      expect([g.status, g.headers["grpc-status"]]).toEqual([200, "16"]);
      // Nothing of a revoked certificate is forwarded to the origin: the good client still is.
      expect((await h2once(proxy.port, { servername: "localhost", cert: p.client })).status).toBe(200);
    } finally {
      proxy.runtime.apply(before);
      agent.destroy();
      h2.destroy();
    }
  });
});
