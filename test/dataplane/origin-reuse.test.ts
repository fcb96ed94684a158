// Reusing keep-alive origin connections: a connection goes back to the pool only when the
// next request on it can get its own answer, and a request whose reused connection closes
// under it is retried once when that is safe, else answered 502 at once. The route's read
// timeout is short, so a request left waiting on certgate's bookkeeping shows up as a 504.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { baseModel, connect, pki, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { answer, startRawOrigin, type OriginRequest, type RawOrigin } from "../helpers/rawOrigin.ts";
import { parseModel } from "../../src/model/schema.ts";
import { OriginPool, type BodySink } from "../../src/dataplane/origins/origins.ts";
import type { OriginRoute } from "../../src/dataplane/snapshot.ts";

const READ_TIMEOUT_MS = 3_000;

describe("origin connection reuse", () => {
  let proxy: Proxy;
  let origin: RawOrigin;
  let held: OriginRequest[] = [];
  const model = (url: string, readTimeoutMs = READ_TIMEOUT_MS) => async () =>
    parseModel(
      baseModel(await pki(), url, [{ hostname: "localhost" }], { routes: [{ id: "r", hostname: "localhost", origin: url, read_timeout_ms: readTimeoutMs }] }),
    );

  beforeAll(async () => {
    origin = await startRawOrigin();
    proxy = await startProxy((p) => baseModel(p, origin.url, [{ hostname: "localhost" }], { routes: [{ id: "r", hostname: "localhost", origin: origin.url, read_timeout_ms: READ_TIMEOUT_MS }] }));
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });
  beforeEach(() => {
    held = [];
    origin.seen = [];
    origin.handler = (r) => (r.path.startsWith("/hold") ? held.push(r) : answer(r));
    origin.onBytes = null;
  });

  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(cond()).toBe(true);
  };

  it("a connection idle for 4 s is not reused (it may be the one the origin is closing), and certgate closes it", async () => {
    // A read timeout longer than the wait (this file's 3 s would close the connection first).
    const before = proxy.runtime.snapshot.model;
    proxy.runtime.apply({ ...before, routes: before.routes.map((r) => ({ ...r, read_timeout_ms: 60_000 })) });
    try {
      // Back to back: the second request reuses the first one's connection.
      await request(proxy.port, { path: "/a" });
      await request(proxy.port, { path: "/b" });
      expect(origin.seen[1]!.socket).toBe(origin.seen[0]!.socket);
      const first = origin.seen[0]!.socket;
      const closed = new Promise<void>((r) => first.once("close", () => r()));
      await new Promise((r) => setTimeout(r, 4_200));
      const r = await request(proxy.port, { path: "/c" });
      expect([r.status, r.body]).toEqual([200, "/c"]);
      expect(origin.seen[2]!.socket).not.toBe(first);
      expect(origin.seen[2]!.served).toBe(0);
      await closed; // closed by certgate when it set the stale connection aside
    } finally {
      proxy.runtime.apply(before);
    }
  }, 15_000);

  it("a client that hangs up as its response arrives leaves no paused connection for the next request", async () => {
    // The client sends its request and its FIN; the origin answers after that. The answer
    // cannot be written (the client's socket is ended), which used to pause the origin
    // connection, pool it paused, and make the next request on it wait for the read timeout.
    for (let i = 0; i < 3; i++) {
      const { socket } = await connect(proxy.port);
      socket.on("error", () => {});
      socket.write(`GET /hold-${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await until(() => held.length === 1);
      socket.end();
      answer(held.pop()!);
      const r = await request(proxy.port, { path: `/next-${i}` });
      expect([r.status, r.body]).toEqual([200, `/next-${i}`]);
    }
  });

  it("a response completed while its client was behind does not pool the connection paused", async () => {
    // The pool on its own, with a sink that reports backpressure on the response's last chunk
    // and never drains (a client that stopped reading, then closed).
    const route: OriginRoute = {
      id: "pool",
      pathPrefix: "/",
      origin: new URL(origin.url),
      originKey: "pool",
      protocol: "http1",
      upgrades: [],
      tls: undefined,
      connectTimeoutMs: 1_000,
      readTimeoutMs: READ_TIMEOUT_MS,
    };
    const pool = new OriginPool(route);
    try {
      const get = (path: string) => ({ method: "GET", target: path, headers: ["host", "localhost"], body: null, bodyLength: 0, maxBodyBytes: 0 });
      const stalled: BodySink = { write: () => false, end() {}, destroy() {}, onDrain() {} };
      await pool.exchange(get("/first"), () => stalled).done;
      let body = "";
      const sink: BodySink = { write: (c) => ((body += c.toString()), true), end() {}, destroy() {}, onDrain() {} };
      await pool.exchange(get("/second"), () => sink).done;
      expect(body).toBe("/second");
    } finally {
      pool.close();
    }
  });

  it("retries an idempotent request once on a fresh connection when a reused one closes before answering", async () => {
    await request(proxy.port, { path: "/warm" });
    origin.seen = [];
    // The first attempt of each request finds its (reused) connection closed by the origin.
    const attempts = new Map<string, number>();
    origin.handler = (r) => {
      const n = (attempts.get(r.path) ?? 0) + 1;
      attempts.set(r.path, n);
      if (n > 1 || r.served === 0) answer(r);
      else if (r.path.endsWith("-rst")) r.socket.resetAndDestroy();
      else r.socket.destroy();
    };
    for (const [method, path] of [["GET", "/get"], ["GET", "/get-rst"], ["DELETE", "/delete"], ["PUT", "/put"]] as const) {
      await request(proxy.port, { path: "/warm-again" });
      const r = await request(proxy.port, { method, path });
      expect([method, r.status, r.body]).toEqual([method, 200, path]);
      expect(attempts.get(path)).toBe(2);
    }
  });

  it("retries an idempotent request whose body has not started streaming", async () => {
    await request(proxy.port, { path: "/warm" });
    // The reused connection closes as soon as the request head reaches it, before the client sends its body.
    let closed = 0;
    origin.onBytes = (s, served) => served > 0 && closed++ === 0 && s.destroy();
    origin.seen = [];
    const { socket } = await connect(proxy.port);
    const reply = new Promise<string>((resolve) => {
      let b = "";
      socket.on("data", (d: Buffer) => {
        b += d.toString("latin1");
        const end = b.indexOf("\r\n\r\n");
        if (end > 0 && b.length >= end + 4 + Number(/content-length: *(\d+)/i.exec(b)?.[1])) resolve(b);
      });
    });
    socket.write("PUT /put-late HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\n");
    await until(() => closed === 1);
    socket.write("data");
    expect(await reply).toMatch(/^HTTP\/1.1 200 .*\/put-late$/s);
    socket.destroy();
    expect(origin.seen.map((r) => [r.path, r.body.toString()])).toEqual([["/put-late", "data"]]);
  });

  it("answers 502 at once, without a retry, for a request that cannot be sent again", async () => {
    await request(proxy.port, { path: "/warm" });
    origin.handler = (r) => (r.path === "/warm" ? answer(r) : r.socket.destroy());
    origin.seen = [];
    // Not idempotent.
    const post = await request(proxy.port, { method: "POST", path: "/post", body: "x" });
    expect(post.status).toBe(502);
    // Idempotent, but its body was already streamed to the closed connection.
    await request(proxy.port, { path: "/warm" });
    const put = await request(proxy.port, { method: "PUT", path: "/put-body", body: "payload" });
    expect(put.status).toBe(502);
    // Retried once, and the fresh connection fails too: no second retry.
    await request(proxy.port, { path: "/warm" });
    const get = await request(proxy.port, { path: "/always-closed" });
    expect(get.status).toBe(502);
    expect(origin.seen.map((r) => r.path).filter((p) => p !== "/warm")).toEqual(["/post", "/put-body", "/always-closed", "/always-closed"]);
  });

  it("does not retry once the origin has started answering", async () => {
    await request(proxy.port, { path: "/warm" });
    origin.seen = [];
    origin.handler = (r) => {
      r.socket.write("HTTP/1.1 200 OK\r\nContent-Le");
      r.socket.destroy();
    };
    expect((await request(proxy.port, { path: "/partial-head" })).status).toBe(502);
    expect(origin.seen.map((r) => r.path)).toEqual(["/partial-head"]);
  });

  it("bytes after a response make its connection unusable: the next request gets its own answer", async () => {
    origin.handler = (r) =>
      r.path === "/extra"
        ? r.socket.write("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirstHTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nnot for any")
        : answer(r);
    const first = await request(proxy.port, { path: "/extra" });
    expect([first.status, first.body]).toEqual([200, "first"]);
    const next = await request(proxy.port, { path: "/after-extra" });
    expect([next.status, next.body]).toEqual([200, "/after-extra"]);
  });

  it("a Connection: close trailer from the origin retires its connection: the next request goes on a fresh one", async () => {
    // The origin announces the close in a trailer but leaves the socket open: llhttp then
    // refuses anything more on it, so reusing it would turn the next request into a 502.
    origin.handler = (r) =>
      r.path === "/closing-trailer" ? r.socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nConnection: close\r\n\r\n") : answer(r);
    const accepted = origin.accepted;
    const first = await request(proxy.port, { path: "/closing-trailer" });
    expect([first.status, first.body]).toEqual([200, "ok"]);
    const next = await request(proxy.port, { path: "/after-trailer" });
    expect([next.status, next.body]).toEqual([200, "/after-trailer"]);
    expect(origin.accepted).toBeGreaterThan(accepted);
  });

  it("a config apply that retires the origin pool mid-request lets that request and the next ones finish", async () => {
    const { socket } = await connect(proxy.port);
    const reply = new Promise<string>((resolve) => {
      let b = "";
      socket.on("data", (d: Buffer) => {
        b += d.toString("latin1");
        if (b.endsWith("/hold-apply")) resolve(b);
      });
    });
    socket.write("GET /hold-apply HTTP/1.1\r\nHost: localhost\r\n\r\n");
    await until(() => held.length === 1);
    // A new read timeout is a new origin configuration: the old pool is closed.
    proxy.runtime.apply(await model(origin.url, READ_TIMEOUT_MS + 1)());
    answer(held.pop()!);
    expect(await reply).toMatch(/^HTTP\/1.1 200/);
    socket.destroy();
    for (let i = 0; i < 3; i++) expect((await request(proxy.port, { path: `/after-apply-${i}` })).body).toBe(`/after-apply-${i}`);
  });
});
