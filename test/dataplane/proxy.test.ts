import http from "node:http";
import https from "node:https";
import net from "node:net";
import type tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, rawExchange, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { issue } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

function listen(server: net.Server): Promise<number> {
  return new Promise((r) => server.listen(0, "127.0.0.1", () => r((server.address() as net.AddressInfo).port)));
}

describe("origin proxying", () => {
  let proxy: Proxy;
  let p: DevPki;
  let slow: http.Server;
  let tlsOrigin: https.Server;
  let deadPort: number;
  let seenOriginClientCert: string | undefined;
  let hang: http.Server;
  let hangClosed: Promise<void>;
  let drip: http.Server;

  beforeAll(async () => {
    p = await pki();
    slow = http.createServer(() => {}); // never answers
    const slowPort = await listen(slow);
    // Never answers either, and tells us when certgate gives up on the request.
    let closed: () => void = () => {};
    hangClosed = new Promise((r) => (closed = r));
    hang = http.createServer((req) => req.socket.once("close", closed));
    const hangPort = await listen(hang);
    // Sends its body in 12 pieces 100 ms apart: 1.2 s of steady bytes, longer than its route's read timeout.
    drip = http.createServer((_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      let n = 0;
      const t = setInterval(() => {
        res.write(`piece ${n}\n`);
        if (++n === 12) {
          clearInterval(t);
          res.end();
        }
      }, 100);
      res.on("close", () => clearInterval(t));
    });
    const dripPort = await listen(drip);
    const dead = net.createServer();
    deadPort = await listen(dead);
    await new Promise((r) => dead.close(r)); // nothing listens there any more
    const originCert = await issue({ subject: "CN=origin.internal", dnsNames: ["origin.internal"], eku: ["serverAuth"] }, p.serverCa);
    tlsOrigin = https.createServer({ key: originCert.keyPem, cert: originCert.certPem, ca: p.ca.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      seenOriginClientCert = String((req.socket as tls.TLSSocket).getPeerCertificate().subject?.CN);
      res.end("tls origin ok");
    });
    const tlsPort = await listen(tlsOrigin);
    proxy = await startProxy((pk, origin) => ({
      ...baseModel(pk, origin, [{ hostname: "localhost" }, { hostname: "a.test" }]),
      certificates: [
        { id: "srv", cert: pk.server.certPem, key: pk.server.keyPem },
        { id: "to-origin", cert: pk.client.certPem, key: pk.client.keyPem },
      ],
      routes: [
        { id: "root", hostname: "localhost", path_prefix: "/", origin },
        { id: "api", hostname: "localhost", path_prefix: "/api", origin },
        { id: "a", hostname: "a.test", origin },
        { id: "slow", hostname: "localhost", path_prefix: "/slow", origin: `http://127.0.0.1:${slowPort}`, read_timeout_ms: 300 },
        { id: "drip", hostname: "localhost", path_prefix: "/drip", origin: `http://127.0.0.1:${dripPort}`, read_timeout_ms: 500 },
        { id: "dead", hostname: "localhost", path_prefix: "/dead", origin: `http://127.0.0.1:${deadPort}` },
        { id: "hang", hostname: "localhost", path_prefix: "/hang", origin: `http://127.0.0.1:${hangPort}`, read_timeout_ms: 600_000 },
        {
          id: "tls",
          hostname: "localhost",
          path_prefix: "/tls",
          origin: `https://127.0.0.1:${tlsPort}`,
          origin_tls: { ca: pk.serverCa.certPem, server_name: "origin.internal", client_certificate: "to-origin" },
        },
      ],
      limits: { max_header_bytes: 4096, max_body_bytes: 100_000 },
    }));
  });
  afterAll(async () => {
    await proxy.close();
    slow.closeAllConnections();
    slow.close();
    hang.closeAllConnections();
    hang.close();
    drip.closeAllConnections();
    drip.close();
    tlsOrigin.close();
  });

  it("routes by hostname and the longest path prefix; 404 where nothing is routed", async () => {
    const snapshot = proxy.runtime.snapshot;
    expect(snapshot.routes("localhost")!.find((r) => "/api/v1".startsWith(r.pathPrefix))!.id).toBe("api");
    expect((await request(proxy.port, { path: "/api/v1" })).json().url).toBe("/api/v1");
    expect((await request(proxy.port, { servername: "a.test", path: "/" })).status).toBe(200);
    const model = proxy.runtime.snapshot.model;
    proxy.runtime.apply({ ...model, routes: model.routes.filter((r) => r.hostname !== "a.test") });
    try {
      expect((await request(proxy.port, { servername: "a.test" })).status).toBe(404);
    } finally {
      proxy.runtime.apply(model);
    }
  });

  it("removes hop-by-hop headers, including those named in Connection, and sets X-Forwarded-*", async () => {
    const r = await request(proxy.port, { headers: { connection: "keep-alive, x-secret-hop", "x-secret-hop": "1", "keep-alive": "timeout=5", te: "trailers", "x-kept": "yes" } });
    const h = r.json().headers;
    expect(h["x-secret-hop"]).toBeUndefined();
    expect(h["keep-alive"]).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h["x-kept"]).toBe("yes");
    expect(h["x-forwarded-for"]).toBe("127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("https");
    expect(h["x-forwarded-host"]).toBe("localhost");
    expect(h.host).toBe("localhost");
  });

  it("streams request bodies to the origin (fixed length and chunked)", async () => {
    const body = Buffer.alloc(90_000, 7);
    expect((await request(proxy.port, { method: "POST", body })).json().bodyBytes).toBe(90_000);
    const chunked = await new Promise<string>((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port: proxy.port, servername: "localhost", ca: p.serverCa.certPem, method: "POST", path: "/", agent: false, headers: { host: "localhost" } }, (res) => {
        let b = "";
        res.on("data", (d) => (b += d));
        res.on("end", () => resolve(b));
      });
      req.on("error", reject);
      for (let i = 0; i < 10; i++) req.write(Buffer.alloc(1000, i));
      req.end();
    });
    expect(JSON.parse(chunked).bodyBytes).toBe(10_000);
  });

  it("413 for a body over the limit, declared or chunked", async () => {
    expect((await request(proxy.port, { method: "POST", body: Buffer.alloc(100_001) })).status).toBe(413);
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port: proxy.port, servername: "localhost", ca: p.serverCa.certPem, method: "POST", path: "/", agent: false, headers: { host: "localhost" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      for (let i = 0; i < 120; i++) req.write(Buffer.alloc(1000));
      req.end();
    });
    expect(status).toBe(413);
  });

  it("431 for request headers over the limit", async () => {
    const r = await request(proxy.port, { headers: { "x-big": "a".repeat(8000) } });
    expect(r.status).toBe(431);
  });

  it("502 when the origin refuses the connection, 504 when it does not answer in time", async () => {
    const dead = await request(proxy.port, { path: "/dead" });
    expect(dead.status).toBe(502);
    const slowReply = await request(proxy.port, { path: "/slow" });
    expect(slowReply.status).toBe(504);
    // The proxy keeps serving.
    expect((await request(proxy.port)).status).toBe(200);
  });

  it("the read timeout is a silence between reads: a response whose bytes keep coming outlasts it, on a new and on a reused origin connection", async () => {
    const want = Array.from({ length: 12 }, (_, i) => `piece ${i}\n`).join("");
    for (let i = 0; i < 2; i++) {
      const r = await request(proxy.port, { path: "/drip" });
      expect(r.status).toBe(200);
      expect(r.body).toBe(want);
    }
  });

  it("after a 502, the connection stays usable when the request body was read in full, and closes when it was not", async () => {
    const whole = (await connect(proxy.port)).socket;
    const first = await rawExchange(whole, "POST /dead HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello");
    expect(first.status).toBe(502);
    expect(first.head).not.toMatch(/\r\nconnection: close/i);
    expect((await rawExchange(whole, "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n")).status).toBe(200);
    whole.destroy();

    const partial = (await connect(proxy.port)).socket;
    const closed = new Promise((r) => partial.once("close", r));
    expect((await rawExchange(partial, "POST /dead HTTP/1.1\r\nHost: localhost\r\nContent-Length: 50\r\n\r\nonly-part")).status).toBe(502);
    await closed; // the rest of the body never came: the connection cannot carry another request
  });

  it("a client that goes away while the origin is silent aborts the origin request", async () => {
    const { socket } = await connect(proxy.port);
    socket.write("GET /hang HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await new Promise((r) => setTimeout(r, 200)); // the request reaches the origin
    socket.destroy();
    await hangClosed; // with a 10-minute read timeout, only the client's departure can close it
  });

  it("appends to an incoming X-Forwarded-For only when trust_forwarded_for is set", async () => {
    const model = proxy.runtime.snapshot.model;
    expect((await request(proxy.port, { headers: { "x-forwarded-for": "10.1.1.1" } })).json().headers["x-forwarded-for"]).toBe("127.0.0.1");
    proxy.runtime.apply({ ...model, trust_forwarded_for: true });
    try {
      expect((await request(proxy.port, { headers: { "x-forwarded-for": "10.1.1.1" } })).json().headers["x-forwarded-for"]).toBe("10.1.1.1, 127.0.0.1");
    } finally {
      proxy.runtime.apply(model);
    }
  });

  it("records origin latency by route and outcome", async () => {
    await request(proxy.port, { path: "/api/x" });
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_origin_duration_seconds");
    expect(text).toMatch(/certgate_origin_duration_seconds_count\{route="api",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/certgate_origin_duration_seconds_count\{route="dead",outcome="error"\} [1-9]/);
    expect(text).toMatch(/certgate_origin_duration_seconds_count\{route="slow",outcome="timeout"\} [1-9]/);
  });

  it("proxies to an https origin, verifying it and presenting a client certificate", async () => {
    const r = await request(proxy.port, { path: "/tls/x" });
    expect(r.status).toBe(200);
    expect(r.body).toBe("tls origin ok");
    expect(seenOriginClientCert).toBe("client");
  });

  it("passes WebSocket upgrades through", async () => {
    const { socket } = await connect(proxy.port);
    const echoed = await new Promise<string>((resolve, reject) => {
      let buf = "";
      socket.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        const end = buf.indexOf("\r\n\r\n");
        if (end >= 0 && buf.length > end + 4) resolve(buf);
        else if (end >= 0 && !buf.includes("ping")) socket.write("ping-frame-bytes");
      });
      socket.on("error", reject);
      socket.write("GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    });
    expect(echoed).toMatch(/^HTTP\/1.1 101/);
    expect(echoed.toLowerCase()).toContain("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=");
    expect(echoed).toContain("ping-frame-bytes");
    socket.destroy();
  });
});
