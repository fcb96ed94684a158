// gRPC through certgate on real sockets, with gRPC framing by hand (the @grpc/grpc-js interop
// is test/dataplane/grpc-js.test.ts): HTTP/2 end to end to h2c and h2 origins, trailers passed
// through, streaming both ways with backpressure, grpc-timeout, and gRPC-shaped refusals.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import http2 from "node:http2";
import net from "node:net";
import { baseModel, connect, pki, received, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { h2connect, h2once, h2request } from "../helpers/h2client.ts";
import { GrpcReader, grpcEcho, grpcFrame, startH2Origin, type H2Origin } from "../helpers/h2origin.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { ModelError, parseModel } from "../../src/model/schema.ts";
import { Snapshot } from "../../src/dataplane/snapshot.ts";

const GRPC = { "content-type": "application/grpc", te: "trailers" };

describe("gRPC through certgate", () => {
  let proxy: Proxy;
  let p: DevPki;
  let h2c: H2Origin;
  let h2tls: H2Origin;
  let deadPort: number;

  beforeAll(async () => {
    p = await pki();
    h2c = await startH2Origin();
    h2tls = await startH2Origin({ key: p.server.keyPem, cert: p.server.certPem });
    const dead = net.createServer();
    await new Promise<void>((r) => dead.listen(0, "127.0.0.1", r));
    deadPort = (dead.address() as net.AddressInfo).port;
    await new Promise((r) => dead.close(r));
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        [
          { hostname: "localhost", mtls: { mode: "enforced", trust_bundle: "clients" }, forward_client_cert: { xfcc: true } },
          { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" } },
          { hostname: "b.test" },
        ],
        {
          routes: [
            { id: "grpc", hostname: "localhost", path_prefix: "/pkg.", origin: h2c.url, origin_protocol: "h2c" },
            { id: "grpc-tls", hostname: "localhost", path_prefix: "/tls.", origin: h2tls.url.replace("127.0.0.1", "localhost"), origin_protocol: "h2", origin_tls: { ca: pk.serverCa.certPem } },
            { id: "down", hostname: "localhost", path_prefix: "/down.", origin: `http://127.0.0.1:${deadPort}`, origin_protocol: "h2c" },
            { id: "http1", hostname: "localhost", path_prefix: "/", origin },
            { id: "a", hostname: "a.test", origin: h2c.url, origin_protocol: "h2c" },
            { id: "b", hostname: "b.test", origin: h2c.url, origin_protocol: "h2c" },
          ],
          zones: [{ id: "z", name: "a.test", rules: [{ id: "m", expression: 'http.request.uri.path eq "/pkg.Service/Method"', action: "block" }] }],
        },
      ),
    );
  });
  afterAll(async () => {
    await proxy.close();
    await h2c.close();
    await h2tls.close();
  });

  const call = (sni: string, path: string, cert: typeof p.client | undefined, body: Buffer, headers: Record<string, string> = {}) =>
    h2once(proxy.port, { servername: sni, cert }, { method: "POST", path, headers: { ...GRPC, ...headers }, body });

  it("unary over h2c and over h2 (TLS, ALPN): messages and trailers pass through, te: trailers reaches the origin", async () => {
    for (const path of ["/pkg.Echo/Say", "/tls.Echo/Say"]) {
      h2c.handler = h2tls.handler = grpcEcho;
      const r = await call("localhost", path, p.client, grpcFrame("hello"));
      expect(r.status).toBe(200);
      expect(r.headers["content-type"]).toBe("application/grpc");
      expect(new GrpcReader().push(Buffer.from(r.body, "latin1")).map(String)).toEqual(["HELLO"]);
      expect(r.trailers["grpc-status"]).toBe("0");
      expect(r.trailers["grpc-message"]).toBe("ok");
    }
    const seen = h2c.seen[h2c.seen.length - 1]!;
    expect(seen.te).toBe("trailers");
    expect(seen[":authority"]).toBe("localhost");
    expect(seen["x-forwarded-client-cert"]).toMatch(/^Hash=/);
  });

  it("an origin's trailers-only error passes through as the status", async () => {
    h2c.handler = (s) => s.respond({ ":status": 200, "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "not here" }, { endStream: true });
    const r = await call("localhost", "/pkg.Echo/Missing", p.client, grpcFrame("x"));
    expect([r.status, r.headers["grpc-status"], r.headers["grpc-message"]]).toEqual([200, "5", "not here"]);
  });

  it("bidirectional streaming: each message is answered before the next is sent (nothing is buffered to the end)", async () => {
    h2c.handler = grpcEcho;
    const s = await h2connect(proxy.port, { cert: p.client });
    try {
      const stream = s.request({ ":method": "POST", ":path": "/pkg.Echo/Chat", ":authority": "localhost", ...GRPC });
      const reader = new GrpcReader();
      const got: string[] = [];
      let wake: (() => void) | null = null;
      stream.on("data", (c: Buffer) => {
        got.push(...reader.push(c).map(String));
        wake?.();
      });
      const trailers = new Promise<http2.IncomingHttpHeaders>((r) => stream.on("trailers", r));
      for (let i = 0; i < 20; i++) {
        stream.write(grpcFrame(`m${i}`));
        while (got.length <= i) await new Promise<void>((r) => (wake = r));
        expect(got[i]).toBe(`M${i}`);
      }
      stream.end();
      expect((await trailers)["grpc-status"]).toBe("0");
    } finally {
      s.close();
    }
  });

  it("server streaming with backpressure: a client that stops reading stops the origin, and then gets every byte", async () => {
    const total = 32 << 20;
    let written = 0;
    let resumeOrigin: (() => void) | null = null;
    h2c.handler = (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      const chunk = grpcFrame(Buffer.alloc(16 * 1024 - 5, 97));
      const pump = () => {
        while (written < total) {
          written += chunk.length;
          if (!stream.write(chunk)) return void stream.once("drain", pump);
        }
        stream.end();
      };
      resumeOrigin = pump;
      pump();
    };
    // A small window, and nothing read for a while.
    const s = await h2connect(proxy.port, { cert: p.client, settings: { initialWindowSize: 65_535 } });
    try {
      const stream = s.request({ ":method": "POST", ":path": "/pkg.Big/Stream", ":authority": "localhost", ...GRPC }, { endStream: false });
      stream.end(grpcFrame("go"));
      stream.pause();
      await new Promise((r) => setTimeout(r, 800));
      // Bounded by flow-control windows and socket buffers on the way, far below what the origin would send.
      expect(written).toBeLessThan(8 << 20);
      expect(resumeOrigin).not.toBeNull();
      let received = 0;
      stream.on("data", (c: Buffer) => (received += c.length));
      const trailers = new Promise<http2.IncomingHttpHeaders>((r) => stream.on("trailers", r));
      stream.resume();
      expect((await trailers)["grpc-status"]).toBe("0");
      await new Promise((r) => stream.on("close", r));
      expect(received).toBe(written);
      expect(received).toBeGreaterThanOrEqual(total);
    } finally {
      s.close();
    }
  });

  it("client streaming: many messages in, one answer with the count", async () => {
    h2c.handler = (stream) => {
      const reader = new GrpcReader();
      let n = 0;
      stream.on("data", (c: Buffer) => (n += reader.push(c).length));
      stream.on("end", () => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(grpcFrame(String(n)));
      });
    };
    const body = Buffer.concat(Array.from({ length: 500 }, (_, i) => grpcFrame(`part ${i}`)));
    const r = await call("localhost", "/pkg.Up/Load", p.client, body);
    expect(new GrpcReader().push(Buffer.from(r.body, "latin1")).map(String)).toEqual(["500"]);
    expect(r.trailers["grpc-status"]).toBe("0");
  });

  it("grpc-timeout is honoured: a silent origin gives DEADLINE_EXCEEDED (4), and the origin's stream is cancelled", async () => {
    let cancelled: Promise<number> = Promise.resolve(-1);
    h2c.handler = (stream) => (cancelled = new Promise((r) => stream.on("close", () => r(stream.rstCode))));
    const r = await call("localhost", "/pkg.Slow/Never", p.client, grpcFrame("x"), { "grpc-timeout": "300m" });
    expect([r.status, r.headers["grpc-status"]]).toEqual([200, "4"]);
    expect(await cancelled).toBe(http2.constants.NGHTTP2_CANCEL);
    // After the response head went out, the deadline is a status in the trailers.
    h2c.handler = (stream) => stream.respond({ ":status": 200, "content-type": "application/grpc" });
    const late = await call("localhost", "/pkg.Slow/Headers", p.client, grpcFrame("x"), { "grpc-timeout": "300m" });
    expect([late.status, late.trailers["grpc-status"]]).toEqual([200, "4"]);
    expect(h2c.seen[h2c.seen.length - 1]!["grpc-timeout"]).toBe("300m");
  });

  it("gRPC-shaped refusals: 16 for a bad certificate, 7 for a rule, 14 for an origin down, 12 on an HTTP/1.1-only route", async () => {
    h2c.handler = grpcEcho;
    const cases: [string, string, typeof p.client | undefined, string][] = [
      ["localhost", "/pkg.Echo/Say", p.untrusted, "16"],
      ["localhost", "/pkg.Echo/Say", p.expired, "16"],
      ["a.test", "/pkg.Service/Method", p.client, "7"],
      ["a.test", "/pkg.Service/Method", undefined, "7"],
      ["a.test", "/pkg.Service/Other", undefined, "0"],
      ["localhost", "/down.Svc/M", p.client, "14"],
      ["localhost", "/http1only.Svc/M", p.client, "12"],
      ["b.test", "/pkg.Echo/Say", undefined, "0"],
    ];
    for (const [sni, path, cert, status] of cases) {
      const r = await call(sni, path, cert, grpcFrame("x"));
      expect(r.status, `${sni}${path}`).toBe(200);
      const got = r.headers["grpc-status"] ?? r.trailers["grpc-status"];
      expect(got, `${sni}${path}`).toBe(status);
      if (status !== "0") {
        expect(r.body).toBe("");
        expect(String(r.headers["grpc-message"]).length).toBeGreaterThan(0);
      }
    }
    // Not gRPC: the same refusals as on HTTP/1.1.
    const plain = await h2once(proxy.port, { servername: "a.test" }, { path: "/pkg.Service/Method" });
    expect([plain.status, plain.body]).toEqual([403, "Forbidden\n"]);
  });

  it("an HTTP/1.1 client reaches an h2c origin too (the route says how certgate speaks to the origin)", async () => {
    h2c.handler = (stream, headers) => {
      stream.respond({ ":status": 200, "content-type": "text/plain" });
      stream.end(`${String(headers[":method"])} ${String(headers[":path"])} via h2`);
    };
    const r = await request(proxy.port, { servername: "b.test", path: "/x//y?z" });
    expect([r.status, r.body]).toEqual([200, "GET /x/y?z via h2"]);
    const s = await h2connect(proxy.port, { servername: "b.test" });
    try {
      // Many streams on one client connection, multiplexed on the pooled origin session.
      const all = await Promise.all(Array.from({ length: 50 }, (_, i) => h2request(s, { authority: "b.test", path: `/n${i}` })));
      expect(all.map((a) => a.body)).toEqual(Array.from({ length: 50 }, (_, i) => `GET /n${i} via h2`));
    } finally {
      s.close();
    }
  });

  it("an HTTP/1.1 client gets an h2c origin's response head before the body, which comes later", async () => {
    let sendBody!: () => void;
    const bodyWanted = new Promise<void>((r) => (sendBody = r));
    h2c.handler = (stream) => {
      stream.respond({ ":status": 200, "content-type": "text/plain", "content-length": "4" });
      void bodyWanted.then(() => stream.end("late"));
    };
    const { socket } = await connect(proxy.port, { servername: "b.test" });
    const reply = received(socket);
    socket.write("GET /late HTTP/1.1\r\nHost: b.test\r\n\r\n");
    // The origin sends the body only once the client has the head: a head held for it would wait forever.
    await reply.until("\r\n\r\n");
    expect(reply.text()).toMatch(/^HTTP\/1.1 200/);
    sendBody();
    await reply.until("\r\n\r\nlate");
    socket.destroy();
  });

  it("origin_protocol: h2 needs an https origin, h2c an http one, and the error names the route's path", async () => {
    const pk = await pki();
    const compile = (origin: string, origin_protocol: "h2" | "h2c" | "http1") =>
      new Snapshot(parseModel({ ...baseModel(pk, "http://127.0.0.1:1", [{ hostname: "b.test" }]), routes: [{ id: "r", hostname: "b.test", origin, origin_protocol }] }), 1);
    expect(() => compile("http://127.0.0.1:1", "h2")).toThrow(ModelError);
    expect(() => compile("http://127.0.0.1:1", "h2")).toThrow(/routes\[0\]\.origin_protocol: h2 needs an https origin/);
    expect(() => compile("https://127.0.0.1:1", "h2c")).toThrow(/routes\[0\]\.origin_protocol: h2c needs an http origin/);
    expect(compile("https://127.0.0.1:1", "h2").routes("b.test")![0]!.protocol).toBe("h2");
    expect(compile("http://127.0.0.1:1", "http1").routes("b.test")![0]!.protocol).toBe("http1");
    expect(() => parseModel({ routes: [{ id: "r", hostname: "b.test", origin: "http://x", origin_protocol: "h3" }] })).toThrow(/routes\[0\]\.origin_protocol/);
    expect(() => parseModel({ hosts: [{ hostname: "b.test", http2: "yes" }] })).toThrow(/hosts\[0\]\.http2/);
  });

  it("one pooled session per origin; after the origin's GOAWAY the next request opens a new one", async () => {
    h2c.handler = grpcEcho;
    const before = h2c.sessions();
    for (let i = 0; i < 5; i++) expect((await call("localhost", "/pkg.Echo/Say", p.client, grpcFrame("x"))).trailers["grpc-status"]).toBe("0");
    expect(h2c.sessions() - before).toBeLessThanOrEqual(1);
    await h2c.goaway();
    const after = h2c.sessions();
    expect((await call("localhost", "/pkg.Echo/Say", p.client, grpcFrame("y"))).trailers["grpc-status"]).toBe("0");
    expect(h2c.sessions()).toBe(after + 1);
  });

  it("a stream the origin refuses unprocessed (REFUSED_STREAM) is sent again once when no body went out; twice is a 502", async () => {
    let refusals = 1;
    h2c.handler = (stream) => {
      if (refusals-- > 0) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
      stream.respond({ ":status": 200 });
      stream.end("served");
    };
    const r = await h2once(proxy.port, { servername: "b.test" }, { authority: "b.test", path: "/retry" });
    expect([r.status, r.body]).toEqual([200, "served"]);
    refusals = 2;
    const twice = await h2once(proxy.port, { servername: "b.test" }, { authority: "b.test", path: "/retry" });
    expect(twice.status).toBe(502);
  });
});
