// The origin client against a scripted raw-TCP origin: response framings, interim
// responses, keep-alive reuse and the stale-connection race, malformed answers.
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, rawRequest, received, request, startProxy, type Proxy } from "../helpers/harness.ts";

/** What the origin writes for a request line's path; `close` ends the connection after it. */
const SCRIPT: Record<string, { reply: string; close?: boolean }> = {
  "/close-delimited": { reply: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of this until EOF", close: true },
  "/interim": { reply: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal" },
  "/chunked": { reply: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" },
  "/head": { reply: "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nX-Head: yes\r\n\r\n" },
  "/smuggle": { reply: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" },
  "/huge-head": { reply: `HTTP/1.1 200 OK\r\nX-Big: ${"a".repeat(70_000)}\r\nContent-Length: 0\r\n\r\n` },
  "/post": { reply: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", close: true },
  "/truncated": { reply: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this", close: true },
};

describe("origin client", () => {
  let proxy: Proxy;
  let origin: net.Server;
  const originConns = new Set<net.Socket>();
  let heads: string[] = [];
  let accepted = 0;
  /** The origin connection that sent /late-body's head and holds its body back. */
  let lateBody: ((s: net.Socket) => void) | null = null;

  beforeAll(async () => {
    origin = net.createServer((s) => {
      accepted++;
      originConns.add(s);
      s.on("close", () => originConns.delete(s));
      let buf = "";
      s.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        let end: number;
        while (!s.writableEnded && (end = buf.indexOf("\r\n\r\n")) >= 0) {
          const head = buf.slice(0, end);
          buf = buf.slice(end + 4);
          heads.push(head);
          const path = head.split(" ")[1]!;
          if (path === "/late-body") {
            s.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n");
            lateBody?.(s);
            continue;
          }
          const step = SCRIPT[path] ?? { reply: `HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}` };
          s.write(step.reply);
          if (step.close) s.end();
        }
      });
    });
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(origin.address() as net.AddressInfo).port}`;
    proxy = await startProxy((pk) => baseModel(pk, url, [{ hostname: "localhost" }]));
  });
  afterAll(async () => {
    await proxy.close();
    for (const s of originConns) s.destroy();
    origin.close();
  });

  it("passes close-delimited, chunked and interim-then-final responses through", async () => {
    const closed = await request(proxy.port, { path: "/close-delimited" });
    expect([closed.status, closed.body]).toEqual([200, "all of this until EOF"]);
    const chunked = await request(proxy.port, { path: "/chunked" });
    expect([chunked.status, chunked.body]).toEqual([200, "hello world"]);
    const interim = await request(proxy.port, { path: "/interim" });
    expect([interim.status, interim.body]).toEqual([200, "final"]);
  });

  it("answers HEAD with the origin's headers and no body, and the connection stays usable", async () => {
    const { socket } = await connect(proxy.port);
    const reply = await new Promise<string>((resolve) => {
      let buf = "";
      socket.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        if (buf.split("\r\n\r\n").length >= 3 && buf.endsWith("/after")) resolve(buf);
      });
      socket.write("HEAD /head HTTP/1.1\r\nHost: localhost\r\n\r\nGET /after HTTP/1.1\r\nHost: localhost\r\n\r\n");
    });
    socket.destroy();
    const [head, second] = reply.split(/\r\n\r\n/);
    expect(head).toMatch(/^HTTP\/1.1 200/);
    expect(head!.toLowerCase()).toContain("content-length: 1234");
    expect(head!.toLowerCase()).toContain("x-head: yes");
    expect(second).toMatch(/^HTTP\/1.1 200/);
  });

  it("reuses origin connections across requests and clients", async () => {
    await request(proxy.port, { path: "/warm" });
    const before = accepted;
    for (let i = 0; i < 5; i++) expect((await request(proxy.port, { path: `/reuse-${i}` })).body).toBe(`/reuse-${i}`);
    expect(accepted - before).toBe(0);
  });

  it("retries an idempotent request once when a reused connection was closed by the origin", async () => {
    await request(proxy.port, { path: "/warm" });
    // The origin drops its idle keep-alive connections without telling certgate first.
    for (const s of originConns) s.destroy();
    const r = await request(proxy.port, { path: "/after-drop" });
    expect([r.status, r.body]).toEqual([200, "/after-drop"]);
  });

  it("502 for a malformed, oversized or truncated origin response; the proxy keeps serving", async () => {
    for (const path of ["/smuggle", "/huge-head"]) expect((await request(proxy.port, { path })).status, path).toBe(502);
    // Headers already sent: the client connection is cut rather than given a short body.
    const { socket } = await connect(proxy.port);
    const got = await new Promise<string>((resolve) => {
      let buf = "";
      socket.on("data", (d: Buffer) => (buf += d.toString("latin1")));
      socket.on("close", () => resolve(buf));
      socket.on("error", () => {});
      socket.write("GET /truncated HTTP/1.1\r\nHost: localhost\r\n\r\n");
    });
    expect(got).toMatch(/^HTTP\/1.1 200/);
    expect(got.toLowerCase()).toContain("content-length: 100");
    expect(got.endsWith("only this")).toBe(true);
    expect((await request(proxy.port, { path: "/fine" })).status).toBe(200);
  });

  it("refuses a repeated Host header (400) before anything reaches the origin", async () => {
    heads = [];
    const { socket } = await connect(proxy.port);
    const r = await new Promise<string>((resolve) => {
      socket.on("data", (d: Buffer) => resolve(d.toString("latin1")));
      socket.write("GET /host-check HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n");
    });
    socket.destroy();
    expect(r).toMatch(/^HTTP\/1.1 400/);
    expect(heads.find((h) => h.startsWith("GET /host-check"))).toBeUndefined();
  });

  it("sends the client's Host, port included, once, and the same in X-Forwarded-Host", async () => {
    heads = [];
    const host = `LocalHost:${proxy.port}`;
    expect((await request(proxy.port, { path: "/host-port", host })).status).toBe(200);
    const head = heads.find((h) => h.startsWith("GET /host-port"))!;
    expect(head.match(/^host:/gim)).toHaveLength(1);
    expect(head.split("\r\n")).toEqual(expect.arrayContaining([`host: ${host}`, `x-forwarded-host: ${host}`]));
  });

  it("passes header bytes outside ASCII through unchanged", async () => {
    heads = [];
    const { socket } = await connect(proxy.port);
    await new Promise<void>((resolve) => {
      socket.once("data", () => resolve());
      socket.write(Buffer.from("GET /bytes HTTP/1.1\r\nHost: localhost\r\nX-Name: caf\xe9\r\n\r\n", "latin1"));
    });
    socket.destroy();
    expect(heads.find((h) => h.startsWith("GET /bytes"))).toContain("X-Name: caf\xe9");
  });

  it("forwards request bodies of unknown length as chunked", async () => {
    heads = [];
    const r = await new Promise<number>((resolve, reject) => {
      const req = https.request({ host: "127.0.0.1", port: proxy.port, servername: "localhost", method: "POST", path: "/post", rejectUnauthorized: false, headers: { host: "localhost" } }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on("error", reject);
      req.write("part one");
      req.end();
    });
    expect(r).toBe(200);
    expect(heads.find((h) => h.startsWith("POST /post"))!.toLowerCase()).toContain("transfer-encoding: chunked");
  });

  it("sends the head at once when the body comes later (held only to share a TLS record with it)", async () => {
    const held = new Promise<net.Socket>((r) => (lateBody = r));
    const { socket } = await connect(proxy.port);
    const reply = received(socket);
    socket.write("GET /late-body HTTP/1.1\r\nHost: localhost\r\n\r\n");
    // The origin sends the body only once the client has the head: a head held for it would wait forever.
    await reply.until("\r\n\r\n");
    expect(reply.text()).toMatch(/^HTTP\/1.1 200/);
    (await held).write("done");
    await reply.until("\r\n\r\ndone");
    socket.destroy();
    lateBody = null;
  });

  it("sends a small response's head and body in one TLS record", async () => {
    const p = await pki();
    // A TCP relay counts the application-data records (type 23) coming from the proxy.
    let records = 0;
    const relay = net.createServer((c) => {
      const up = net.connect(proxy.port, "127.0.0.1");
      let pending = Buffer.alloc(0);
      c.pipe(up);
      up.on("data", (d: Buffer) => {
        pending = Buffer.concat([pending, d]);
        while (pending.length >= 5 && pending.length >= 5 + pending.readUInt16BE(3)) {
          if (pending[0] === 23) records++;
          pending = pending.subarray(5 + pending.readUInt16BE(3));
        }
        c.write(d);
      });
      c.on("close", () => up.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    const socket = tls.connect({ host: "127.0.0.1", port: (relay.address() as net.AddressInfo).port, servername: "localhost", ca: p.serverCa.certPem });
    await new Promise((r) => socket.once("secureConnect", r));
    // The first exchange lets the session tickets (application-data records too) arrive first.
    expect((await rawRequest(socket, "localhost", "/first")).body).toBe("/first");
    records = 0;
    const r = await rawRequest(socket, "localhost", "/second-of-two");
    expect([r.status, r.body]).toEqual([200, "/second-of-two"]);
    expect(records).toBe(1);
    socket.destroy();
    relay.close();
  });
});
