// certgate's own HTTP/1.1 front end (src/dataplane/http1.ts), on real TLS sockets: request
// smuggling, pipelining, 100-continue, HTTP/1.0, HEAD, CONNECT, deadlines and bad input.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { HTTPParser } from "../../src/dataplane/http1/llhttp.ts";
import { exchange, parseResponses, responses } from "../helpers/wire.ts";

describe("HTTP/1.1 front end", () => {
  let proxy: Proxy;
  // An origin that counts what reaches it, so tests can prove a request did not.
  let seen: string[] = [];
  const stalled: (() => void)[] = [];
  let origin: http.Server;
  beforeAll(async () => {
    origin = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      // Answered only when the test says so.
      if (req.url === "/stall") return void stalled.push(() => res.end("late\n"));
      let n = 0;
      req.on("data", (c: Buffer) => (n += c.length));
      req.on("end", () => {
        if (req.url === "/close-delimited") {
          // No length and no chunking: the body ends when the origin closes.
          res.socket!.write(`HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil-close`);
          return void res.socket!.end();
        }
        const body = `${req.method} ${req.url} ${n}\n`;
        res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
        res.end(body);
      });
    });
    origin.on("upgrade", (req, socket) => {
      seen.push(`UPGRADE ${req.url}`);
      if (req.url === "/no-upgrade") return void socket.end("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
      socket.write("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
      socket.pipe(socket);
    });
    await new Promise<void>((r) => origin.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;
    // The test origin speaks a made-up `echo` protocol: allowed on this route.
    proxy = await startProxy((p) => baseModel(p, url, [{ hostname: "localhost" }], { routes: [{ id: "r0", hostname: "localhost", origin: url, upgrades: ["echo"] }], limits: { request_timeout_ms: 800, keep_alive_timeout_ms: 400, max_body_bytes: 1 << 20 } }));
  });
  afterAll(async () => {
    await proxy.close();
    origin.closeAllConnections();
    origin.close();
  });

  const open = async () => (await connect(proxy.port)).socket;

  it("answers pipelined requests in order, bodies included, on one connection", async () => {
    seen = [];
    const s = await open();
    const { text } = await exchange(
      s,
      "GET /one HTTP/1.1\r\nHost: localhost\r\n\r\n" +
        "POST /two HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello" +
        "POST /three HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n" +
        "GET /four HTTP/1.1\r\nHost: localhost\r\n\r\n",
      responses(4),
    );
    expect(parseResponses(text).map((r) => `${r.status} ${r.body.trim()}`)).toEqual(["200 GET /one 0", "200 POST /two 5", "200 POST /three 3", "200 GET /four 0"]);
    s.destroy();
  });

  it("stops reading a client that pipelines behind a slow answer: 30 MB of requests are not read into memory", async () => {
    seen = [];
    const s = await open();
    s.on("error", () => {});
    const padding = "x".repeat(1000);
    const one = `GET /p HTTP/1.1\r\nHost: localhost\r\nX-Pad: ${padding}\r\n\r\n`;
    const flood = "GET /stall HTTP/1.1\r\nHost: localhost\r\n\r\n" + one.repeat(Math.ceil((30 << 20) / one.length));
    s.write(flood);
    // Until what the client could hand to the kernel stops changing: certgate read what fits
    // in its socket buffers and then stopped (reading on, it would take it all in).
    let last = -1;
    for (let stable = 0, i = 0; stable < 5 && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 100));
      stable = s.writableLength === last ? stable + 1 : 0;
      last = s.writableLength;
    }
    expect(s.writableLength).toBeGreaterThan(8 << 20);
    expect(seen).toEqual(["GET /stall"]);
    s.destroy();
    stalled.splice(0).forEach((answer) => answer());
    // The proxy goes on serving.
    const again = await open();
    const { text } = await exchange(again, "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n", responses(1));
    expect(parseResponses(text)[0]!.status).toBe(200);
    again.destroy();
  });

  it("a pipelined request whose body is still arriving when it is dispatched gets the rest of it (reads resume)", async () => {
    seen = [];
    const s = await open();
    // Reads pause while /two waits behind /one; the rest of its body comes during that pause.
    const both = exchange(s, "GET /one HTTP/1.1\r\nHost: localhost\r\n\r\nPOST /two HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhel", responses(2));
    s.write("lo");
    const { text, closed } = await both;
    s.destroy();
    expect(closed).toBe(false);
    expect(parseResponses(text).map((r) => `${r.status} ${r.body.trim()}`)).toEqual(["200 GET /one 0", "200 POST /two 5"]);
  });

  it("what follows a request with Connection: close is ignored: its response, then the close, no 400", async () => {
    seen = [];
    const s = await open();
    const { text, closed } = await exchange(s, "GET /last HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\nGET /ignored HTTP/1.1\r\nHost: localhost\r\n\r\n");
    expect(closed).toBe(true);
    expect(parseResponses(text).map((r) => `${r.status} ${r.body.trim()}`)).toEqual(["200 GET /last 0"]);
    expect(seen).toEqual(["GET /last"]);
  });

  it("refuses Content-Length with Transfer-Encoding (request smuggling) with 400, and nothing reaches the origin", async () => {
    seen = [];
    const s = await open();
    const smuggled = "GET /inner HTTP/1.1\r\nHost: localhost\r\n\r\n";
    const { text, closed } = await exchange(
      s,
      `POST /outer HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${smuggled.length + 5}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${smuggled}`,
    );
    expect(closed).toBe(true);
    expect(parseResponses(text).map((r) => r.status)).toEqual([400]);
    expect(seen).toEqual([]);
  });

  it.each([
    ["two different Content-Lengths", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"],
    ["a Transfer-Encoding other than chunked last", "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"],
    ["bare LF line endings", "GET / HTTP/1.1\nHost: localhost\n\n"],
    ["a space before the colon", "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n"],
    ["garbage instead of a request line", "\x16\x03\x01 not http at all\r\n\r\n"],
  ])("400 and close for %s", async (_what, raw) => {
    seen = [];
    const s = await open();
    const { text, closed } = await exchange(s, raw);
    expect(closed).toBe(true);
    expect(parseResponses(text).map((r) => r.status)).toEqual([400]);
    expect(seen).toEqual([]);
  });

  it("a malformed chunk inside a body being forwarded cuts the connection: the origin sees an aborted request, not an ended one", async () => {
    seen = [];
    const s = await open();
    const { text, closed } = await exchange(s, "POST /bad-chunk HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n");
    expect(closed).toBe(true);
    expect(text).toBe("");
    expect(seen).toEqual(["POST /bad-chunk"]);
  });

  it("a valid request followed by garbage: the answer, then 400 and close", async () => {
    const s = await open();
    const { text, closed } = await exchange(s, "GET /ok HTTP/1.1\r\nHost: localhost\r\n\r\nBLAH BLAH\r\n\r\n");
    expect(closed).toBe(true);
    expect(parseResponses(text).map((r) => r.status)).toEqual([200, 400]);
  });

  it("100-continue: sends 100 Continue only when it forwards, then the body reaches the origin", async () => {
    const s = await open();
    const first = await exchange(s, "POST /cont HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", (t) => t.includes("\r\n\r\n"));
    expect(first.text).toMatch(/^HTTP\/1.1 100 Continue\r\n\r\n$/);
    const rest = await exchange(s, "data", responses(1));
    const [r] = parseResponses(rest.text);
    expect(r!.status).toBe(200);
    expect(r!.body).toBe("POST /cont 4\n");
    s.destroy();
  });

  it("100-continue refused (declared body too large): no 100, a 413, and the connection closes", async () => {
    const s = await open();
    const { text, closed } = await exchange(s, `POST /big HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${2 << 20}\r\nExpect: 100-continue\r\n\r\n`);
    expect(closed).toBe(true);
    expect(text).not.toContain("100 Continue");
    expect(parseResponses(text).map((r) => r.status)).toEqual([413]);
  });

  it("417 for an expectation other than 100-continue", async () => {
    const s = await open();
    const { text } = await exchange(s, "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nExpect: teapot\r\n\r\nx");
    expect(parseResponses(text).map((r) => r.status)).toEqual([417]);
  });

  it("HTTP/1.0: closes after the response unless keep-alive was asked for", async () => {
    const a = await open();
    const closeByDefault = await exchange(a, "GET /ten HTTP/1.0\r\nHost: localhost\r\n\r\n");
    expect(closeByDefault.closed).toBe(true);
    expect(parseResponses(closeByDefault.text)[0]!.head).toMatch(/\r\nconnection: close/i);

    const b = await open();
    const kept = await exchange(b, "GET /k1 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n", responses(1));
    expect(parseResponses(kept.text)[0]!.head).toMatch(/\r\nconnection: keep-alive/i);
    const again = await exchange(b, "GET /k2 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n", responses(1));
    expect(parseResponses(again.text)[0]!.body).toBe("GET /k2 0\n");
    b.destroy();
  });

  it("HTTP/1.0 client, close-delimited origin body: the body ends with the connection; HTTP/1.1 gets it chunked", async () => {
    const a = await open();
    const old = await exchange(a, "GET /close-delimited HTTP/1.0\r\nHost: localhost\r\n\r\n");
    expect(old.closed).toBe(true);
    expect(parseResponses(old.text)[0]!.body).toBe("until-close");
    const b = await open();
    const cur = await exchange(b, "GET /close-delimited HTTP/1.1\r\nHost: localhost\r\n\r\n", responses(1));
    const [r] = parseResponses(cur.text);
    expect(r!.head).toMatch(/\r\ntransfer-encoding: chunked/i);
    expect(r!.body).toBe("until-close");
    b.destroy();
  });

  it("HEAD: the origin's Content-Length, no body, and the connection serves the next request", async () => {
    const s = await open();
    const head = await exchange(s, "HEAD /h HTTP/1.1\r\nHost: localhost\r\n\r\n", (t) => t.includes("\r\n\r\n"));
    expect(head.text).toMatch(/\r\ncontent-length: 10\r\n/i); // "HEAD /h 0\n", as the origin would have sent
    expect(head.text.endsWith("\r\n\r\n")).toBe(true);
    const next = await exchange(s, "GET /after HTTP/1.1\r\nHost: localhost\r\n\r\n", responses(1));
    expect(parseResponses(next.text)[0]!.body).toBe("GET /after 0\n");
    s.destroy();
  });

  it("an Upgrade pipelined behind a request waits for its response, then the bytes after it reach the origin", async () => {
    seen = [];
    const s = await open();
    const { text } = await exchange(
      s,
      "GET /first HTTP/1.1\r\nHost: localhost\r\n\r\nGET /tunnel HTTP/1.1\r\nHost: localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nPING",
      (t) => t.endsWith("PING"),
    );
    const [first] = parseResponses(text);
    expect(first!.body).toBe("GET /first 0\n");
    expect(text.slice(text.indexOf("GET /first 0\n") + 13)).toMatch(/^HTTP\/1.1 101 Switching Protocols\r\n[\s\S]*\r\n\r\nPING$/);
    expect(seen).toEqual(["GET /first", "UPGRADE /tunnel"]);
    s.destroy();
  });

  it("an origin that does not switch protocols: 502 with its reason phrase, and the connection closes", async () => {
    const s = await open();
    const { text, closed } = await exchange(s, "GET /no-upgrade HTTP/1.1\r\nHost: localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n");
    expect(closed).toBe(true);
    const [r] = parseResponses(text);
    expect(r!.head).toMatch(/^HTTP\/1.1 502 Bad Gateway\r\n/);
    expect(r!.head).toMatch(/\r\nconnection: close/i);
    expect(r!.body).toContain("did not accept the upgrade");
  });

  it("an Upgrade request with a body is served as a plain request (the Upgrade is ignored), and the connection goes on", async () => {
    seen = [];
    const s = await open();
    const { text } = await exchange(
      s,
      "POST /up HTTP/1.1\r\nHost: localhost\r\nUpgrade: echo\r\nConnection: Upgrade\r\nContent-Length: 3\r\n\r\nabcGET /next HTTP/1.1\r\nHost: localhost\r\n\r\n",
      responses(2),
    );
    expect(parseResponses(text).map((r) => `${r.status} ${r.body.trim()}`)).toEqual(["200 POST /up 3", "200 GET /next 0"]);
    expect(seen).toEqual(["POST /up", "GET /next"]);
    s.destroy();
  });

  it("405 and close for CONNECT", async () => {
    const s = await open();
    const { text, closed } = await exchange(s, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    expect(closed).toBe(true);
    expect(parseResponses(text).map((r) => r.status)).toEqual([405]);
  });

  it("closes an idle keep-alive connection after keep_alive_timeout_ms", async () => {
    const s = await open();
    await exchange(s, "GET /idle HTTP/1.1\r\nHost: localhost\r\n\r\n", responses(1));
    const started = Date.now();
    const { closed } = await exchange(s, "");
    expect(closed).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("a body that stops arriving is cut at request_timeout_ms, and the origin request is aborted", async () => {
    seen = [];
    const s = await open();
    const { closed } = await exchange(s, "POST /slow-body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\nonly-some");
    expect(closed).toBe(true);
    expect(seen).toEqual(["POST /slow-body"]);
  });

  it("a 1 MiB body crosses with backpressure intact", async () => {
    const s = await open();
    const body = Buffer.alloc(1 << 20, 0x61);
    const { text } = await exchange(s, Buffer.concat([Buffer.from(`PUT /bulk HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${body.length}\r\n\r\n`), body]), responses(1));
    expect(parseResponses(text)[0]!.body).toBe(`PUT /bulk ${1 << 20}\n`);
    s.destroy();
  });

  it("counts requests the HTTP layer refuses", async () => {
    const before = (await proxy.metrics.registry.getSingleMetricAsString("certgate_refusals_total")).match(/reason="bad_request"} (\d+)/)?.[1] ?? "0";
    const s = await open();
    await exchange(s, "NOT A REQUEST\r\n\r\n");
    const after = (await proxy.metrics.registry.getSingleMetricAsString("certgate_refusals_total")).match(/reason="bad_request"} (\d+)/)?.[1];
    expect(Number(after)).toBe(Number(before) + 1);
  });

  it("deletes each connection's native parser when it closes (they are never garbage-collected)", async () => {
    const proto = HTTPParser.prototype as unknown as { close(this: unknown): void };
    const original = proto.close;
    let deleted = 0;
    proto.close = function (this: unknown) {
      deleted++;
      original.call(this);
    };
    try {
      for (let i = 0; i < 5; i++) await exchange(await open(), "GET /p HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
      await new Promise((r) => setTimeout(r, 50));
      expect(deleted).toBeGreaterThanOrEqual(5);
    } finally {
      proto.close = original;
    }
  });

  it("reports open client connections at scrape time", async () => {
    const gauge = async () => Number(/certgate_http_connections (\d+)/.exec(await proxy.metrics.registry.getSingleMetricAsString("certgate_http_connections"))?.[1]);
    const before = await gauge();
    const s = await open();
    await exchange(s, "GET /g HTTP/1.1\r\nHost: localhost\r\n\r\n", responses(1));
    expect(await gauge()).toBe(before + 1);
    s.destroy();
    await new Promise((r) => setTimeout(r, 50));
    expect(await gauge()).toBe(before);
  });

  it("interop: curl reuses one connection for two requests", async () => {
    const caFile = pemFiles({ "ca.pem": (await pki()).serverCa.certPem })["ca.pem"]!;
    const url = (p: string) => `https://localhost:${proxy.port}${p}`;
    const r = await run("curl", ["-sS", "--http1.1", "--cacert", caFile, "--resolve", `localhost:${proxy.port}:127.0.0.1`, "-w", "%{http_code} %{num_connects}\\n", url("/c1"), url("/c2")]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("GET /c1 0\n200 1\n");
    expect(r.stdout).toContain("GET /c2 0\n200 0\n");
  });
});
