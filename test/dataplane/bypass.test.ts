// No path reaches an origin without the verification its hostname demands.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dirname, join } from "node:path";
import { baseModel, connect, pki, rawExchange, rawRequest, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Model } from "../../src/model/schema.ts";

describe("no bypasses: Host vs SNI, resumption, policy changes", () => {
  let proxy: Proxy;
  let p: DevPki;
  let model: Model;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [
        { hostname: "localhost" },
        { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true } },
        { hostname: "b.test", mtls: { mode: "enforced", trust_bundle: "clients" } },
        // An enforced wildcard (the same policy as b.test) with a host without mTLS under it.
        { hostname: "*.wild.test", mtls: { mode: "enforced", trust_bundle: "clients" } },
        { hostname: "open.wild.test" },
      ]),
    );
    model = proxy.runtime.snapshot.model;
  });
  afterAll(() => proxy.close());

  /** A session ticket from one request on `servername`. */
  const ticketFrom = async (servername: string, cert?: typeof p.client): Promise<Buffer> => {
    const first = await connect(proxy.port, { servername, cert });
    await rawRequest(first.socket, servername);
    const session = await first.session;
    first.socket.destroy();
    return session;
  };

  it("421 when Host names another host than the SNI of an mTLS connection", async () => {
    const r = await request(proxy.port, { servername: "b.test", host: "a.test", cert: p.client });
    expect(r.status).toBe(421);
  });

  it("421 when a connection without mTLS asks for an mTLS host", async () => {
    for (const host of ["b.test", "a.test", "B.TEST:443"]) {
      const r = await request(proxy.port, { servername: "localhost", host });
      expect(r.status).toBe(421);
    }
    // ...and when there is no SNI at all.
    const noSni = await connect(proxy.port, { servername: "" });
    expect((await rawRequest(noSni.socket, "b.test")).status).toBe(421);
    noSni.socket.destroy();
  });

  it("accepts the Host with a port and any letter case when it is the SNI", async () => {
    const r = await request(proxy.port, { servername: "b.test", host: "B.Test:443", cert: p.client });
    expect(r.status).toBe(200);
  });

  it("resumes a session on the same host and policy (positive control)", async () => {
    const session = await ticketFrom("a.test", p.client);
    const again = await connect(proxy.port, { servername: "a.test", cert: p.client, session });
    expect(again.socket.isSessionReused()).toBe(true);
    const r = await rawRequest(again.socket, "a.test");
    expect(r.status).toBe(200);
    expect(r.body).toContain('"client-cert"'); // the verified certificate survives resumption
    again.socket.destroy();
  });

  it("a ticket from a host without mTLS does not resume on an mTLS host", async () => {
    const session = await ticketFrom("localhost");
    // Replayed on the enforced host without a certificate: a full handshake, which fails.
    await expect(connect(proxy.port, { servername: "b.test", session }).then(async (c) => rawRequest(c.socket, "b.test"))).rejects.toThrow();
    // Replayed on the fail-open host: not resumed, so no certificate is assumed.
    const replay = await connect(proxy.port, { servername: "a.test", session });
    expect(replay.socket.isSessionReused()).toBe(false);
    replay.socket.destroy();
  });

  it("a ticket from one mTLS host does not resume on another", async () => {
    const session = await ticketFrom("b.test", p.client);
    const replay = await connect(proxy.port, { servername: "a.test", session });
    expect(replay.socket.isSessionReused()).toBe(false);
    replay.socket.destroy();
  });

  it("a ticket from a server shared by hosts without mTLS never resumes on an enforced host", async () => {
    // open.wild.test, localhost and every name without a host entry share one server (one certificate, no mTLS).
    for (const from of ["open.wild.test", "localhost"]) {
      const session = await ticketFrom(from);
      for (const to of ["y.wild.test", "b.test"]) {
        await expect(connect(proxy.port, { servername: to, session }).then(async (c) => rawRequest(c.socket, to)), `${from} -> ${to}`).rejects.toThrow();
        const replay = await connect(proxy.port, { servername: to, cert: p.client, session });
        expect(replay.socket.isSessionReused(), `${from} -> ${to}`).toBe(false);
        expect((await rawRequest(replay.socket, to)).status).toBe(200);
        replay.socket.destroy();
      }
    }
  });

  it("resumes on a server shared by the names under a wildcard host (positive control)", async () => {
    const session = await ticketFrom("r1.wild.test", p.client);
    await ticketFrom("r2.wild.test", p.client); // the same server
    const again = await connect(proxy.port, { servername: "r1.wild.test", session });
    expect(again.socket.isSessionReused()).toBe(true);
    expect((await rawRequest(again.socket, "r1.wild.test")).status).toBe(200);
    again.socket.destroy();
  });

  it("openssl s_client offering a ticket under another SNI resumes only where the policy is the same", async () => {
    // Node's own client never offers a ticket under another name; OpenSSL's does.
    const f = pemFiles({ cert: p.client.certPem, key: p.client.keyPem });
    let n = 0;
    const sClient = async (servername: string, o: { cert?: boolean; sessIn?: string } = {}) => {
      const sessOut = join(dirname(f.cert!), `sess${n++}`);
      const r = await run(
        "openssl",
        ["s_client", "-connect", `127.0.0.1:${proxy.port}`, "-servername", servername, "-ign_eof", "-sess_out", sessOut,
          ...(o.cert ? ["-cert", f.cert!, "-key", f.key!] : []), ...(o.sessIn ? ["-sess_in", o.sessIn] : [])],
        `GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`,
      );
      return { sessOut, reused: r.stdout.includes("Reused, TLS"), ok: r.stdout.includes("HTTP/1.1 200 OK") };
    };
    const off = (await sClient("localhost")).sessOut;
    expect(await sClient("open.wild.test", { sessIn: off })).toMatchObject({ reused: true, ok: true }); // the same server: the client does offer it
    for (const enforced of ["b.test", "y.wild.test"]) expect(await sClient(enforced, { sessIn: off }), enforced).toMatchObject({ reused: false, ok: false });
    expect(await sClient("a.test", { sessIn: off })).toMatchObject({ reused: false, ok: true }); // fail-open: a full handshake
    const verified = (await sClient("r1.wild.test", { cert: true })).sessOut;
    expect(await sClient("r2.wild.test", { sessIn: verified })).toMatchObject({ reused: true, ok: true }); // same policy: the same verification
    expect(await sClient("a.test", { sessIn: verified })).toMatchObject({ reused: false, ok: true }); // another policy
  });

  it("a policy change invalidates tickets issued under the old policy", async () => {
    const session = await ticketFrom("a.test", p.client);
    // Trust a different CA only: the old verification must not be carried over.
    proxy.runtime.apply({ ...model, trust_bundles: [{ ...model.trust_bundles[0]!, ca: p.otherCa.certPem }] });
    try {
      const replay = await connect(proxy.port, { servername: "a.test", cert: p.client, session });
      expect(replay.socket.isSessionReused()).toBe(false);
      const r = await rawRequest(replay.socket, "a.test");
      expect(r.status).toBe(200);
      expect(r.body).not.toContain('"client-cert"'); // no longer verified under the new bundle
      replay.socket.destroy();
    } finally {
      proxy.runtime.apply(model);
    }
  });

  it("a keep-alive connection opened before a policy change gets 421 on its next request", async () => {
    const c = await connect(proxy.port, { servername: "localhost" });
    expect((await rawRequest(c.socket, "localhost")).status).toBe(200);
    proxy.runtime.apply({ ...model, hosts: model.hosts.map((h) => (h.hostname === "localhost" ? { ...h, mtls: { mode: "enforced" as const, trust_bundle: "clients" } } : h)) });
    try {
      const r = await rawRequest(c.socket, "localhost");
      expect(r.status).toBe(421);
      expect(r.head.toLowerCase()).toContain("connection: close");
      // A new connection without a certificate is now refused.
      await expect(request(proxy.port, { servername: "localhost" })).rejects.toThrow();
    } finally {
      c.socket.destroy();
      proxy.runtime.apply(model);
    }
  });

  it("a keep-alive connection survives a change that does not touch its host's policy", async () => {
    const c = await connect(proxy.port, { servername: "b.test", cert: p.client });
    expect((await rawRequest(c.socket, "b.test")).status).toBe(200);
    proxy.runtime.apply({ ...model, routes: [...model.routes, { ...model.routes[0]!, id: "extra", path_prefix: "/extra" }] });
    try {
      expect((await rawRequest(c.socket, "b.test")).status).toBe(200);
    } finally {
      c.socket.destroy();
      proxy.runtime.apply(model);
    }
  });

  it("strips spoofed client-certificate and forwarding headers whether forwarding is on or off", async () => {
    const spoof = {
      "client-cert": ":c3Bvb2Y=:",
      "client-cert-chain": ":c3Bvb2Y=:",
      "cf-client-cert-der-base64": "c3Bvb2Y=",
      "cf-client-cert-sha256": "00",
      "x-forwarded-client-cert": "Hash=00",
      "x-forwarded-for": "6.6.6.6",
      "x-forwarded-proto": "http",
      forwarded: "for=6.6.6.6",
    };
    for (const servername of ["localhost", "a.test"]) {
      const h = (await request(proxy.port, { servername, headers: spoof })).json().headers;
      for (const name of ["client-cert", "client-cert-chain", "cf-client-cert-der-base64", "cf-client-cert-sha256", "x-forwarded-client-cert", "forwarded"])
        expect(h[name], `${servername} ${name}`).toBeUndefined();
      expect(h["x-forwarded-for"]).toBe("127.0.0.1");
      expect(h["x-forwarded-proto"]).toBe("https");
    }
  });

  it("normalises the path so encoded and dotted forms cannot dodge a prefix", async () => {
    const r = await request(proxy.port, { path: "/x/../%61dmin/%2e%2e/admin/./y?q=%61" });
    expect(r.json().url).toBe("/admin/y?q=%61");
    const bad = await request(proxy.port, { path: "/%zz" });
    expect(bad.status).toBe(400);
  });
});

describe("no bypasses through a trusted front (upstream_client_cert)", () => {
  let proxy: Proxy;
  let p: DevPki;
  // 127.0.0.1 is the front of front.wild.test only; 127.0.0.2 is anyone.
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        [
          { hostname: "front.wild.test", mtls: { mode: "enforced", trust_bundle: "clients" }, upstream_client_cert: { trusted_peers: ["127.0.0.1"], header: "Client-Cert" }, forward_client_cert: { rfc9440: true } },
          { hostname: "open.wild.test", mtls: { mode: "fail_open", trust_bundle: "clients" }, upstream_client_cert: { trusted_peers: ["127.0.0.1"], header: "Client-Cert" }, forward_client_cert: { rfc9440: true } },
          { hostname: "b.test", mtls: { mode: "enforced", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true } },
          { hostname: "localhost" },
        ],
        { rules: [{ id: "admin", expression: 'starts_with(http.request.uri.path, "/admin") and not cf.tls_client_auth.cert_verified', action: "block" }] },
      ),
    );
  });
  afterAll(() => proxy.close());
  const header = () => ({ "client-cert": `:${Buffer.from(p.client.cert.rawData).toString("base64")}:` });

  it("the front's header counts only on the hosts that name it: elsewhere the handshake asks the front for a certificate", async () => {
    await expect(request(proxy.port, { servername: "b.test", localAddress: "127.0.0.1", headers: header() })).rejects.toThrow();
    const r = await request(proxy.port, { servername: "b.test", localAddress: "127.0.0.1", cert: p.untrusted, headers: header() });
    expect(r.status).toBe(403);
  });

  it("a front's connection is good for its SNI host only (421 for any other Host)", async () => {
    for (const host of ["b.test", "open.wild.test", "localhost"]) {
      const c = await connect(proxy.port, { servername: "front.wild.test", localAddress: "127.0.0.1" });
      const r = await rawExchange(c.socket, `GET / HTTP/1.1\r\nHost: ${host}\r\nClient-Cert: ${header()["client-cert"]}\r\n\r\n`).finally(() => c.socket.destroy());
      expect(r.status, host).toBe(421);
    }
  });

  it("a front's ticket does not resume on another host, nor from another peer", async () => {
    const first = await connect(proxy.port, { servername: "front.wild.test", localAddress: "127.0.0.1" });
    await rawExchange(first.socket, `GET / HTTP/1.1\r\nHost: front.wild.test\r\nClient-Cert: ${header()["client-cert"]}\r\n\r\n`);
    const session = await first.session;
    first.socket.destroy();
    for (const [servername, localAddress] of [["b.test", "127.0.0.1"], ["front.wild.test", "127.0.0.2"], ["open.wild.test", "127.0.0.2"]] as const) {
      const replay = await connect(proxy.port, { servername, localAddress, session, cert: p.client });
      expect(replay.socket.isSessionReused(), `${servername} from ${localAddress}`).toBe(false);
      replay.socket.destroy();
    }
  });

  it("fail_open from anyone else: the header is stripped and never believed by rules", async () => {
    const r = await request(proxy.port, { servername: "open.wild.test", localAddress: "127.0.0.2", headers: header(), path: "/admin" });
    expect(r.status).toBe(403);
    const open = await request(proxy.port, { servername: "open.wild.test", localAddress: "127.0.0.2", headers: header() });
    expect(open.status).toBe(200);
    expect(open.json().headers["client-cert"]).toBeUndefined();
    // The same request from the front is verified.
    expect((await request(proxy.port, { servername: "open.wild.test", localAddress: "127.0.0.1", headers: header(), path: "/admin" })).status).toBe(200);
  });
});
