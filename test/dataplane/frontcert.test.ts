// Client certificates verified from a trusted front (`upstream_client_cert`), on real sockets:
// 127.0.0.1 is the trusted front, 127.0.0.2 (another loopback source address) anyone else.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { FrontCerts } from "../../src/dataplane/tls/frontcerts.ts";
import { createHash } from "node:crypto";
import { baseModel, connect, issue, pki, rawExchange, rawRequest, request, startProxy, withUndecodableKey, type Proxy } from "../helpers/harness.ts";
import { h2connect, h2request } from "../helpers/h2client.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Issued } from "../../src/pki/issue.ts";
import type { Model, UpstreamClientCert } from "../../src/model/schema.ts";

const FRONT = "127.0.0.1";
const OTHER = "127.0.0.2";
const b64 = (c: Issued) => Buffer.from(c.cert.rawData).toString("base64");
const rfc9440 = (c: Issued) => `:${b64(c)}:`;
/** AWS ALB's X-Amzn-Mtls-Clientcert: URL-encoded PEM with `+`, `=` and `/` left as they are. */
const albPem = (...certs: Issued[]) => encodeURIComponent(certs.map((c) => c.certPem).join("")).replace(/%2B/g, "+").replace(/%3D/g, "=").replace(/%2F/g, "/");

describe("upstream_client_cert: certificates verified from a trusted front", () => {
  let proxy: Proxy;
  let p: DevPki;
  let revoked: Issued;
  let model: Model;
  const front = (header: UpstreamClientCert["header"]) => ({ trusted_peers: ["127.0.0.1/32", "10.0.0.0/8"], header });
  beforeAll(async () => {
    p = await pki();
    revoked = await issue({ subject: "O=certgate dev,CN=revoked via front" }, p.ca);
    const ca = new OpensslCa(p.ca);
    await ca.revoke(revoked.certPem);
    const crl = await ca.gencrl();
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        [
          { hostname: "a.test", mtls: { mode: "enforced", trust_bundle: "clients" }, upstream_client_cert: front("Client-Cert"), forward_client_cert: { rfc9440: true, cloudflare: true, xfcc: true } },
          { hostname: "b.test", mtls: { mode: "enforced", trust_bundle: "clients" }, upstream_client_cert: front("Cf-Client-Cert-Der-Base64"), forward_client_cert: { rfc9440: true } },
          { hostname: "c.wild.test", mtls: { mode: "enforced", trust_bundle: "clients" }, upstream_client_cert: front("X-Amzn-Mtls-Clientcert"), forward_client_cert: { rfc9440: true } },
          { hostname: "f.wild.test", mtls: { mode: "fail_open", trust_bundle: "clients" }, upstream_client_cert: front("Client-Cert"), forward_client_cert: { rfc9440: true } },
        ],
        {
          trust_bundles: [{ id: "clients", ca: pk.ca.certPem, revocation: { crl: { pem: crl } } }],
          rules: [{ id: "admin", expression: 'http.host eq "f.wild.test" and starts_with(http.request.uri.path, "/admin") and not cf.tls_client_auth.cert_verified', action: "block" }],
          // Large enough for an oversized certificate header to reach certgate's own limit.
          limits: { max_header_bytes: 65_536 },
        },
      ),
    );
    model = proxy.runtime.snapshot.model;
  });
  afterAll(() => proxy.close());

  const viaFront = (servername: string, headers: Record<string, string>, path = "/") => request(proxy.port, { servername, headers, path, localAddress: FRONT });

  describe("from the trusted front", () => {
    it.each([
      ["Client-Cert (RFC 9440)", "a.test", "client-cert"],
      ["Cf-Client-Cert-Der-Base64 (Cloudflare)", "b.test", "cf-client-cert-der-base64"],
      ["X-Amzn-Mtls-Clientcert (AWS ALB)", "c.wild.test", "x-amzn-mtls-clientcert"],
    ])("%s: a valid certificate → 200, and the origin gets certgate's forwarded headers only", async (_, host, header) => {
      const value = header === "client-cert" ? rfc9440(p.client) : header === "x-amzn-mtls-clientcert" ? albPem(p.client) : b64(p.client);
      const r = await viaFront(host, { [header]: value });
      expect(r.status).toBe(200);
      const h = r.json().headers;
      expect(h["client-cert"]).toBe(rfc9440(p.client));
      expect(h["x-amzn-mtls-clientcert"]).toBeUndefined();
      if (host === "a.test") {
        expect(h["cf-client-cert-der-base64"]).toBe(b64(p.client));
        expect(h["x-forwarded-client-cert"]).toContain(`Hash=${createHash("sha256").update(Buffer.from(p.client.cert.rawData)).digest("hex")}`);
      } else expect(h["cf-client-cert-der-base64"]).toBeUndefined();
      expect(h["x-forwarded-for"]).toBe(FRONT);
    });

    it("intermediates the front forwards are used as the client's: Client-Cert-Chain, and the ALB chain", async () => {
      const a = await viaFront("a.test", { "client-cert": rfc9440(p.clientViaIntermediate), "client-cert-chain": rfc9440(p.intermediate) });
      expect(a.status).toBe(200);
      const c = await viaFront("c.wild.test", { "x-amzn-mtls-clientcert": albPem(p.clientViaIntermediate, p.intermediate) });
      expect(c.status).toBe(200);
      // Without its intermediate the leaf does not chain to the bundle.
      const bare = await viaFront("a.test", { "client-cert": rfc9440(p.clientViaIntermediate) });
      expect([bare.status, bare.body]).toEqual([403, "Client certificate error: untrusted. The client certificate is not trusted for this host.\n"]);
    });

    it.each([
      ["no header", {}, "missing", "no_certificate"],
      ["expired", { "client-cert": "EXPIRED" }, "expired", "cert_has_expired"],
      ["not yet valid", { "client-cert": "FUTURE" }, "not_yet_valid", "cert_not_yet_valid"],
      ["revoked (CRL)", { "client-cert": "REVOKED" }, "revoked", null],
      ["untrusted CA", { "client-cert": "UNTRUSTED" }, "untrusted", "unable_to_verify_leaf_signature"],
      ["wrong purpose (serverAuth EKU)", { "client-cert": "SERVERAUTH" }, "untrusted", "invalid_purpose"],
      ["not a certificate", { "client-cert": ":Zm9vYmFy:" }, "untrusted", "header_malformed"],
      ["not a byte sequence", { "client-cert": "MIIB" }, "untrusted", "header_malformed"],
      ["non-canonical base64", { "client-cert": ":Zm9=:" }, "untrusted", "header_malformed"],
      ["trailing bytes after the DER", { "client-cert": "TRAILING" }, "untrusted", "header_malformed"],
      ["oversized", { "client-cert": `:${"A".repeat(20_000)}:` }, "untrusted", "header_too_large"],
    ])("%s → 403 %s over HTTP/1.1, the reason counted", async (_, headers: Record<string, string>, failure, reason) => {
      const value = headers["client-cert"];
      const certs: Record<string, Issued> = { EXPIRED: p.expired, FUTURE: p.notYetValid, REVOKED: revoked, UNTRUSTED: p.untrusted, SERVERAUTH: p.serverAuthOnly };
      if (value && certs[value]) headers = { "client-cert": rfc9440(certs[value]!) };
      if (value === "TRAILING") headers = { "client-cert": `:${Buffer.concat([Buffer.from(p.client.cert.rawData), Buffer.from([0])]).toString("base64")}:` };
      const r = await viaFront("a.test", headers);
      expect(r.status).toBe(403);
      expect(r.body).toMatch(new RegExp(`^Client certificate error: ${failure}\\.`));
      if (reason) expect(await proxy.metrics.registry.getSingleMetricAsString("certgate_verify_failures_total")).toContain(`host="a.test",reason="${reason}"`);
    });

    it("a repeated certificate header is malformed, never merged", async () => {
      const socket = (await connect(proxy.port, { servername: "a.test", localAddress: FRONT })).socket;
      const r = await rawExchange(socket, `GET / HTTP/1.1\r\nHost: a.test\r\nClient-Cert: ${rfc9440(p.client)}\r\nClient-Cert: ${rfc9440(p.client)}\r\n\r\n`);
      socket.destroy();
      expect(r.status).toBe(403);
    });

    it("HTTP/2: one session carries many clients' certificates; a refused one does not end the session", async () => {
      const s = await h2connect(proxy.port, { servername: "a.test", localAddress: FRONT });
      try {
        const ok = await h2request(s, { authority: "a.test", headers: { "client-cert": rfc9440(p.client) } });
        expect(ok.status).toBe(200);
        expect(JSON.parse(ok.body).headers["client-cert"]).toBe(rfc9440(p.client));
        const bad = await h2request(s, { authority: "a.test", headers: { "client-cert": rfc9440(p.expired) } });
        expect([bad.status, bad.body.split(".")[0]]).toEqual([403, "Client certificate error: expired"]);
        const none = await h2request(s, { authority: "a.test" });
        expect(none.status).toBe(403);
        const rev = await h2request(s, { authority: "a.test", headers: { "client-cert": rfc9440(revoked) } });
        expect(rev.body).toContain("revoked");
        const other = await h2request(s, { authority: "a.test", headers: { "client-cert": rfc9440(p.clientViaIntermediate), "client-cert-chain": rfc9440(p.intermediate) } });
        expect(other.status).toBe(200);
        expect(JSON.parse(other.body).headers["client-cert"]).toBe(rfc9440(p.clientViaIntermediate));
      } finally {
        s.close();
      }
    });

    it("HTTP/1.1 keep-alive: a refused certificate does not close the front's connection", async () => {
      const socket = (await connect(proxy.port, { servername: "b.test", localAddress: FRONT })).socket;
      try {
        const bad = await rawExchange(socket, `GET / HTTP/1.1\r\nHost: b.test\r\ncf-client-cert-der-base64: ${b64(p.untrusted)}\r\n\r\n`);
        expect(bad.status).toBe(403);
        expect(bad.head).not.toMatch(/connection: close/i);
        const good = await rawExchange(socket, `GET / HTTP/1.1\r\nHost: b.test\r\ncf-client-cert-der-base64: ${b64(p.client)}\r\n\r\n`);
        expect(good.status).toBe(200);
      } finally {
        socket.destroy();
      }
    });

    it("fail_open: rules see the header's certificate; nothing is forwarded for a bad one", async () => {
      expect((await viaFront("f.wild.test", { "client-cert": rfc9440(p.client) }, "/admin")).status).toBe(200);
      expect((await viaFront("f.wild.test", {}, "/admin")).status).toBe(403);
      expect((await viaFront("f.wild.test", { "client-cert": rfc9440(p.expired) }, "/admin")).status).toBe(403);
      const open = await viaFront("f.wild.test", { "client-cert": rfc9440(p.untrusted) });
      expect(open.status).toBe(200);
      expect(open.json().headers["client-cert"]).toBeUndefined();
    });

    it("the handshake asks the front for no certificate (openssl s_client from 127.0.0.1)", async () => {
      const files = pemFiles({ serverCa: p.serverCa.certPem });
      const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${proxy.port}`, "-servername", "a.test", "-CAfile", files.serverCa!], "");
      expect(r.stdout).toContain("No client certificate CA names sent");
    });
  });

  describe("from any other peer: the host's normal mTLS, the header stripped", () => {
    it("no client certificate: the handshake is refused (certificate_required), header or not", async () => {
      await expect(request(proxy.port, { servername: "a.test", localAddress: OTHER, headers: { "client-cert": rfc9440(p.client) } })).rejects.toThrow(/certificate required|alert|socket hang up|ECONNRESET/i);
    });

    it("a presented certificate decides; a spoofed header is stripped, not forwarded nor believed", async () => {
      const r = await request(proxy.port, { servername: "a.test", localAddress: OTHER, cert: p.clientViaIntermediate, headers: { "client-cert": rfc9440(p.client) } });
      // clientViaIntermediate without its chain fails in the handshake: the header's valid certificate does not rescue it.
      expect(r.status).toBe(403);
      const ok = await request(proxy.port, { servername: "a.test", localAddress: OTHER, cert: p.client, headers: { "client-cert": rfc9440(p.untrusted), "x-amzn-mtls-clientcert": albPem(p.untrusted) } });
      expect(ok.status).toBe(200);
      expect(ok.json().headers["client-cert"]).toBe(rfc9440(p.client));
      expect(ok.json().headers["x-amzn-mtls-clientcert"]).toBeUndefined();
    });

    it("HTTP/2 without a certificate is refused in the handshake; with one it is verified as always", async () => {
      // The alert arrives after the client's handshake completed: the session fails or its first stream is reset.
      const refused = await h2connect(proxy.port, { servername: "b.test", localAddress: OTHER })
        .then((s) => h2request(s, { authority: "b.test", headers: { "cf-client-cert-der-base64": b64(p.client) } }).finally(() => s.destroy()))
        .catch(() => undefined);
      expect(refused === undefined || (refused.status === 0 && refused.rstCode !== undefined)).toBe(true);
      const s = await h2connect(proxy.port, { servername: "b.test", localAddress: OTHER, cert: p.expired });
      try {
        const r = await h2request(s, { authority: "b.test", headers: { "cf-client-cert-der-base64": b64(p.client) } });
        expect(r.body).toMatch(/^Client certificate error: expired/);
      } finally {
        s.destroy();
      }
    });

    it("the handshake still asks for a certificate with the bundle's CA names (s_client to a host, then its front variant is not used)", async () => {
      // openssl s_client cannot bind a source address: a Node client from 127.0.0.2 sees the CertificateRequest as a required certificate.
      const c = await connect(proxy.port, { servername: "c.wild.test", localAddress: OTHER, cert: p.client });
      expect(c.socket.authorized).toBe(true);
      const r = await rawRequest(c.socket, "c.wild.test");
      c.socket.destroy();
      expect(r.status).toBe(200);
    });
  });

  describe("resumption never carries the front's skipped CertificateRequest to anyone else", () => {
    it("a session from the front's connection does not resume from another peer (which must then present a certificate)", async () => {
      const first = await connect(proxy.port, { servername: "a.test", localAddress: FRONT });
      await rawExchange(first.socket, `GET / HTTP/1.1\r\nHost: a.test\r\nClient-Cert: ${rfc9440(p.client)}\r\n\r\n`);
      const session = await first.session;
      first.socket.destroy();
      // From the front again: resumed (the same server, the same scope).
      const again = await connect(proxy.port, { servername: "a.test", localAddress: FRONT, session });
      expect(again.socket.isSessionReused()).toBe(true);
      again.socket.destroy();
      // From another peer without a certificate: refused, never resumed into a verified state.
      await expect(
        connect(proxy.port, { servername: "a.test", localAddress: OTHER, session }).then(async (c) => {
          const reused = c.socket.isSessionReused();
          const r = await rawRequest(c.socket, "a.test").finally(() => c.socket.destroy());
          return { reused, status: r.status };
        }),
      ).rejects.toThrow();
      // With a certificate: a full handshake that verifies it.
      const full = await connect(proxy.port, { servername: "a.test", localAddress: OTHER, session, cert: p.client });
      expect(full.socket.isSessionReused()).toBe(false);
      expect(full.socket.getPeerCertificate().subject).toBeDefined();
      full.socket.destroy();
    });

    it("openssl s_client as the front: its sessions resume, and after it stops being trusted they do not", async () => {
      // s_client cannot bind 127.0.0.2: the front stops being one instead, so the same peer is another peer.
      const files = pemFiles({ serverCa: p.serverCa.certPem });
      let n = 0;
      const sClient = async (sessIn?: string) => {
        const sessOut = `${files.serverCa}.sess${n++}`;
        const r = await run(
          "openssl",
          ["s_client", "-connect", `127.0.0.1:${proxy.port}`, "-servername", "a.test", "-CAfile", files.serverCa!, "-ign_eof", "-sess_out", sessOut, ...(sessIn ? ["-sess_in", sessIn] : [])],
          `GET / HTTP/1.1\r\nHost: a.test\r\nClient-Cert: ${rfc9440(p.client)}\r\nConnection: close\r\n\r\n`,
        );
        return { sessOut, reused: r.stdout.includes("Reused, TLS"), ok: r.stdout.includes("HTTP/1.1 200 OK"), asked: !r.stdout.includes("No client certificate CA names sent") };
      };
      const first = await sClient();
      expect(first).toMatchObject({ reused: false, ok: true, asked: false });
      expect(await sClient(first.sessOut)).toMatchObject({ reused: true, ok: true });
      try {
        proxy.runtime.apply({ ...model, hosts: model.hosts.map((h) => (h.hostname === "a.test" ? { ...h, upstream_client_cert: { trusted_peers: ["10.0.0.0/8"], header: "Client-Cert" as const } } : h)) });
        expect(await sClient(first.sessOut)).toMatchObject({ reused: false, ok: false, asked: true });
      } finally {
        proxy.runtime.apply(model);
      }
    });
  });

  describe("live changes", () => {
    it("a front removed from trusted_peers: its open connection gets 421, new ones must present a certificate", async () => {
      const socket = (await connect(proxy.port, { servername: "a.test", localAddress: FRONT })).socket;
      try {
        expect((await rawExchange(socket, `GET / HTTP/1.1\r\nHost: a.test\r\nClient-Cert: ${rfc9440(p.client)}\r\n\r\n`)).status).toBe(200);
        proxy.runtime.apply({ ...model, hosts: model.hosts.map((h) => (h.hostname === "a.test" ? { ...h, upstream_client_cert: { trusted_peers: ["10.0.0.0/8"], header: "Client-Cert" as const } } : h)) });
        expect((await rawExchange(socket, `GET / HTTP/1.1\r\nHost: a.test\r\nClient-Cert: ${rfc9440(p.client)}\r\n\r\n`)).status).toBe(421);
        await expect(viaFront("a.test", { "client-cert": rfc9440(p.client) })).rejects.toThrow();
        const withCert = await request(proxy.port, { servername: "a.test", localAddress: FRONT, cert: p.client, headers: { "client-cert": rfc9440(p.untrusted) } });
        expect(withCert.status).toBe(200);
        expect(withCert.json().headers["client-cert"]).toBe(rfc9440(p.client));
      } finally {
        socket.destroy();
        proxy.runtime.apply(model);
      }
      expect((await viaFront("a.test", { "client-cert": rfc9440(p.client) })).status).toBe(200);
    });
  });
});

describe("upstream_client_cert in the model: checked when written", () => {
  const host = (u: unknown) => ({ hosts: [{ hostname: "a.test", mtls: { trust_bundle: "b" }, upstream_client_cert: u }] });
  it.each([
    [{ trusted_peers: ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7", "::1"], header: "Client-Cert" }, null],
    [{ trusted_peers: [], header: "Client-Cert" }, /trusted_peers/],
    [{ trusted_peers: ["10.0.0.0/33"], header: "Client-Cert" }, /trusted_peers\[0\].*CIDR/],
    [{ trusted_peers: ["010.0.0.0/8"], header: "Client-Cert" }, /trusted_peers\[0\]/],
    [{ trusted_peers: ["example.com"], header: "Client-Cert" }, /trusted_peers\[0\]/],
    [{ trusted_peers: ["10.0.0.0/8"], header: "client-cert" }, /header/],
    [{ trusted_peers: ["10.0.0.0/8"], header: "X-Forwarded-Client-Cert" }, /header/],
    [{ trusted_peers: ["10.0.0.0/8"], header: "Client-Cert", extra: 1 }, /extra/],
  ])("%j", async (u, error) => {
    const { parseModel } = await import("../../src/model/schema.ts");
    if (error === null) expect(parseModel(host(u)).hosts[0]!.upstream_client_cert).toEqual(u);
    else expect(() => parseModel(host(u))).toThrow(error);
  });
});

describe("certificate headers decoded strictly", () => {
  let p: DevPki;
  beforeAll(async () => (p = await pki()));
  const read = async (raw: string[], header: "client-cert" | "cf-client-cert-der-base64" | "x-amzn-mtls-clientcert") => (await import("../../src/dataplane/tls/certheaders.ts")).readFrontCerts(raw, header);

  it("RFC 9440: Client-Cert and a Client-Cert-Chain list with optional whitespace", async () => {
    const r = await read(["Client-Cert", rfc9440(p.clientViaIntermediate), "client-cert-chain", `${rfc9440(p.intermediate)} ,\t${rfc9440(p.ca)}`], "client-cert");
    expect(r.kind === "certs" && [r.leaf.subject, r.intermediates.length]).toEqual([expect.stringContaining("client via intermediate"), 2]);
    expect((await read(["client-cert", `${rfc9440(p.client)};a=1`], "client-cert")).kind).toBe("malformed");
    expect((await read(["client-cert", rfc9440(p.client), "client-cert-chain", `${rfc9440(p.ca)},`], "client-cert")).kind).toBe("malformed");
    expect((await read(["client-cert", ""], "client-cert")).kind).toBe("absent");
  });

  it("Cloudflare: base64 DER only", async () => {
    expect((await read(["cf-client-cert-der-base64", b64(p.client)], "cf-client-cert-der-base64")).kind).toBe("certs");
    expect((await read(["cf-client-cert-der-base64", rfc9440(p.client)], "cf-client-cert-der-base64")).kind).toBe("malformed");
    expect((await read(["cf-client-cert-der-base64", b64(p.client).replace(/=+$/, "")], "cf-client-cert-der-base64")).kind).toBe(b64(p.client).endsWith("=") ? "malformed" : "certs");
    expect((await read(["cf-client-cert-der-base64", p.client.certPem], "cf-client-cert-der-base64")).kind).toBe("malformed");
  });

  it("AWS ALB: URL-encoded PEM with + = / as they are, leaf first", async () => {
    const r = await read(["x-amzn-mtls-clientcert", albPem(p.clientViaIntermediate, p.intermediate)], "x-amzn-mtls-clientcert");
    expect(r.kind === "certs" && r.intermediates.length).toBe(1);
    // Fully encoded (+ = / escaped) decodes to the same PEM: still valid.
    expect((await read(["x-amzn-mtls-clientcert", encodeURIComponent(p.client.certPem)], "x-amzn-mtls-clientcert")).kind).toBe("certs");
    for (const bad of [p.client.certPem, albPem(p.client) + "junk", "%ZZ", albPem(p.client).replace("CERTIFICATE", "PRIVATE%20KEY"), `%20${albPem(p.client)}`])
      expect((await read(["x-amzn-mtls-clientcert", bad], "x-amzn-mtls-clientcert")).kind, bad.slice(0, 40)).toBe("malformed");
    const nine = albPem(...Array.from({ length: 9 }, () => p.client));
    expect((await read(["x-amzn-mtls-clientcert", nine], "x-amzn-mtls-clientcert")).kind).toBe("malformed");
  });
});

describe("fuzz: hostile certificate headers from the trusted front", () => {
  let proxy: Proxy;
  let p: DevPki;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        (["Client-Cert", "Cf-Client-Cert-Der-Base64", "X-Amzn-Mtls-Clientcert"] as const).map((header, i) => ({
          hostname: `h${i}.wild.test`,
          mtls: { mode: "enforced" as const, trust_bundle: "clients" },
          upstream_client_cert: { trusted_peers: ["127.0.0.1"], header },
          forward_client_cert: { rfc9440: true },
        })),
        { limits: { max_header_bytes: 65_536 } },
      ),
    );
  });
  afterAll(() => proxy.close());

  it("an intermediate whose public key does not decode gets a 403 (the fuzzer's counterexample: it threw out of the request handler)", async () => {
    const agent = new (await import("node:https")).Agent({ keepAlive: true, maxSockets: 1, localAddress: FRONT } as object);
    const ask = (chain: Issued[]) => request(proxy.port, { servername: "h2.wild.test", agent, localAddress: FRONT, headers: { "x-amzn-mtls-clientcert": albPem(...chain) } });
    const refused = await ask([p.clientViaIntermediate, withUndecodableKey(p.intermediate)]);
    expect(refused.status).toBe(403);
    // The same keep-alive connection goes on: the good chain is let through.
    const r = await ask([p.clientViaIntermediate, p.intermediate]);
    expect(r.status).toBe(200);
    agent.destroy();
  });

  const internalErrors = async () => Number(/certgate_refusals_total\{[^}]*reason="internal_error"[^}]*\} (\d+)/.exec(await proxy.metrics.registry.metrics())?.[1] ?? 0);
  const UPGRADE = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

  // The Upgrade path (WebSockets) runs apart from the rest of the pipeline, and asynchronously:
  // an exception there used to escape llhttp's callback or become an unhandled rejection.
  it.each([
    ["a plain request", ""],
    ["an Upgrade request", UPGRADE],
  ])("an exception inside the pipeline (injected here) on %s is a logged 500 that closes the connection: no hang, no crash", async (_what, extra) => {
    const spy = vi.spyOn(FrontCerts.prototype, "facts").mockImplementationOnce(() => {
      throw new Error("injected fault");
    });
    const before = await internalErrors();
    try {
      const { socket } = await connect(proxy.port, { servername: "h0.wild.test", localAddress: FRONT });
      const closed = new Promise<void>((r) => socket.once("close", () => r()));
      const r = await rawExchange(socket, `GET / HTTP/1.1\r\nHost: h0.wild.test\r\n${extra}Client-Cert: ${rfc9440(p.client)}\r\n\r\n`);
      expect(r.status).toBe(500);
      expect(r.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
      await closed;
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
    expect(await internalErrors()).toBe(before + 1);
    // The next request is served.
    const ok = await request(proxy.port, { servername: "h0.wild.test", localAddress: FRONT, headers: { "client-cert": rfc9440(p.client) } });
    expect(ok.status).toBe(200);
  });

  it("every value gets a 200 (only for the valid certificate) or a 403, on one keep-alive connection per header", async () => {
    const fc = (await import("fast-check")).default;
    const https = await import("node:https");
    const valid = [rfc9440(p.client), b64(p.client), albPem(p.clientViaIntermediate, p.intermediate)];
    const printable = (s: string) => s.replace(/[^\x21-\x7e]/g, "");
    const mutate = fc.oneof(
      fc.record({ at: fc.nat(), del: fc.nat({ max: 8 }), ins: fc.string({ maxLength: 6 }) }).map(({ at, del, ins }) => (v: string) => v.slice(0, at % (v.length + 1)) + printable(ins) + v.slice((at % (v.length + 1)) + del)),
      fc.nat().map((n) => (v: string) => v.slice(0, n % (v.length + 1))),
      fc.constant((v: string) => v + v),
      fc.constant((v: string) => v.repeat(12)),
      fc.string({ maxLength: 200 }).map((s) => () => printable(s)),
    );
    for (let i = 0; i < 3; i++) {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1, localAddress: FRONT } as object);
      await fc.assert(
        fc.asyncProperty(mutate, async (m) => {
          const value = m(valid[i]!);
          const r = await request(proxy.port, { servername: `h${i}.wild.test`, agent, localAddress: FRONT, headers: value ? { [["client-cert", "cf-client-cert-der-base64", "x-amzn-mtls-clientcert"][i]!]: value } : {} });
          expect([200, 403]).toContain(r.status);
          if (r.status === 200) expect(r.json().headers["client-cert"]).toBe(rfc9440(i === 2 ? p.clientViaIntermediate : p.client));
        }),
        { numRuns: 60 },
      );
      agent.destroy();
    }
  });
});
