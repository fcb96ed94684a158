// PROXY protocol v1 and v2 on the public port: raw headers over real sockets for every case a
// balancer or an attacker can send, then HAProxy (send-proxy-v2, send-proxy) in TCP mode with
// curl and openssl behind it. The echo origin shows what certgate forwarded.
import net from "node:net";
import tls from "node:tls";
import { Writable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { parseModel, type ModelInput } from "../../src/model/schema.ts";
import { parseProxyHeader, V2_MAX_PAYLOAD } from "../../src/dataplane/tls/proxyprotocol.ts";
import { v2, v2Inet } from "../helpers/proxyheader.ts";

function v2Inet6(src: Buffer, sport: number): Buffer {
  const a = Buffer.alloc(36);
  src.copy(a, 0);
  a.writeUInt16BE(sport, 32);
  a.writeUInt16BE(443, 34);
  return v2(1, 0x21, a);
}
function tlv(type: number, value: Buffer): Buffer {
  const h = Buffer.from([type, 0, 0]);
  h.writeUInt16BE(value.length, 1);
  return Buffer.concat([h, value]);
}
const awsTlv = (id: string) => tlv(0xea, Buffer.concat([Buffer.from([0x01]), Buffer.from(id)]));

describe("PROXY protocol header parser", () => {
  it("reads v1 TCP4, TCP6 and UNKNOWN, and v2 INET, INET6 (mapped IPv4 shown as IPv4), LOCAL, UNSPEC and the AWS TLV", () => {
    expect(parseProxyHeader(Buffer.from("PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\nrest"))).toEqual({ kind: "header", length: 43, peer: { source: { address: "203.0.113.7", port: 51000 }, awsVpceId: "" } });
    expect(parseProxyHeader(Buffer.from("PROXY TCP6 2001:db8::7 2001:db8::1 1 443\r\n"))).toMatchObject({ peer: { source: { address: "2001:db8::7", port: 1 } } });
    expect(parseProxyHeader(Buffer.from("PROXY UNKNOWN ffff::1 ::1 1 2\r\n"))).toMatchObject({ kind: "header", peer: { awsVpceId: "" } });
    expect((parseProxyHeader(Buffer.from("PROXY UNKNOWN\r\n")) as { peer: object }).peer).not.toHaveProperty("source");
    expect(parseProxyHeader(v2Inet("198.51.100.2", "10.0.0.1", 4000, 443, awsTlv("vpce-0123abcd")))).toMatchObject({ peer: { source: { address: "198.51.100.2", port: 4000 }, awsVpceId: "vpce-0123abcd" } });
    expect(parseProxyHeader(v2Inet6(Buffer.from("20010db8000000000000000000000042", "hex"), 9))).toMatchObject({ peer: { source: { address: "2001:db8::42", port: 9 } } });
    expect(parseProxyHeader(v2Inet6(Buffer.from("00000000000000000000ffffc6336402", "hex"), 9))).toMatchObject({ peer: { source: { address: "198.51.100.2" } } });
    const local = parseProxyHeader(v2(0, 0x11, Buffer.alloc(12)));
    expect(local).toMatchObject({ kind: "header", length: 28 });
    expect((local as { peer: object }).peer).not.toHaveProperty("source");
    expect(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0)))).toMatchObject({ kind: "header", length: 16 });
  });

  it("asks for more until the header is whole, byte by byte", () => {
    for (const h of [Buffer.from("PROXY TCP4 203.0.113.7 10.0.0.1 51000 443\r\n"), v2Inet("198.51.100.2", "10.0.0.1", 1, 2, awsTlv("vpce-1"))]) {
      for (let n = 0; n < h.length; n++) expect(parseProxyHeader(h.subarray(0, n)).kind).toBe("more");
      expect(parseProxyHeader(h).kind).toBe("header");
    }
  });

  it("refuses malformed headers with a reason", () => {
    const bad = (b: Buffer | string) => parseProxyHeader(typeof b === "string" ? Buffer.from(b) : b);
    for (const h of [
      "PROXY TCP4 203.0.113 10.0.0.1 1 2\r\n",
      "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",
      "PROXY TCP4 203.0.113.7 10.0.0.1 65536 2\r\n",
      "PROXY TCP4 203.0.113.7 10.0.0.1 01 2\r\n",
      "PROXY TCP5 203.0.113.7 10.0.0.1 1 2\r\n",
      "PROXY TCP4 203.0.113.7 10.0.0.1 1\r\n",
      "PROXY TCP4 203.0.113.7 10.0.0.1 1 2\n",
      "PROXY TCP4  203.0.113.7 10.0.0.1 1 2\r\n",
      `PROXY TCP4 ${"1".repeat(120)}`,
      "GET / HTTP/1.1\r\n",
    ])
      expect(bad(h), h).toMatchObject({ kind: "invalid" });
    const inet = v2Inet("198.51.100.2", "10.0.0.1", 1, 2);
    expect(bad(Buffer.concat([inet.subarray(0, 12), Buffer.from([0x31]), inet.subarray(13)]))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/version/) });
    expect(bad(Buffer.concat([inet.subarray(0, 12), Buffer.from([0x22]), inet.subarray(13)]))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/command/) });
    expect(bad(v2(1, 0x12, Buffer.alloc(12)))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/STREAM/) }); // UDP
    expect(bad(v2(1, 0x41, Buffer.alloc(12)))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/family/) });
    expect(bad(v2(1, 0x21, Buffer.alloc(12)))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/address block/) });
    expect(bad(v2(1, 0x11, Buffer.alloc(12), Buffer.from([0xea, 0x00])))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/TLV truncated/) });
    expect(bad(v2(1, 0x11, Buffer.alloc(12), Buffer.from([0x04, 0x00, 0x09, 1])))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/TLV longer/) });
    expect(bad(v2(1, 0x11, Buffer.alloc(12), awsTlv("vpce bad\n")))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/AWS/) });
    // The length cap is judged from the 16-byte prefix: nothing past it is waited for or buffered.
    const big = v2(1, 0x11, Buffer.alloc(12), tlv(0x04, Buffer.alloc(V2_MAX_PAYLOAD)));
    expect(bad(big.subarray(0, 16))).toMatchObject({ kind: "invalid", reason: expect.stringMatching(/above/) });
  });
});

describe("PROXY protocol on the public port", () => {
  let proxy: Proxy;
  let model: ModelInput;
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(...c.toString().trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>)), cb()) });
  beforeAll(async () => {
    proxy = await startProxy(
      (p, origin) =>
        (model = {
          ...baseModel(p, origin, [{ hostname: "localhost" }], {
            proxy_protocol: { trusted: ["127.0.0.1"] },
            limits: { handshake_timeout_ms: 1500 },
            rules: [
              { id: "net", expression: 'ip.src in {203.0.113.0/24} and http.request.uri.path eq "/deny"', action: "block" },
              { id: "vpce", expression: 'certgate.proxy.aws_vpce_id ne "vpce-0123abcd" and http.request.uri.path eq "/private"', action: "block" },
            ],
          }),
        }),
      pino({ level: "info" }, sink),
    );
  });
  afterAll(() => proxy.close());

  const errors = async (reason: string) => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_handshake_errors_total");
    return Number(new RegExp(`reason="${reason}"} (\\d+)`).exec(text)?.[1] ?? 0);
  };
  /** Writes `header`, then speaks HTTPS on the same socket; resolves with the origin's view. */
  const through = async (header: Buffer | string, path = "/", opts: tls.ConnectionOptions = {}) => {
    const p = await pki();
    const raw = net.connect(proxy.port, "127.0.0.1");
    await new Promise((r) => raw.once("connect", r));
    raw.write(header);
    return new Promise<{ status: number; body: string }>((resolve, reject) => {
      const s = tls.connect({ socket: raw, servername: "localhost", ca: p.serverCa.certPem, ...opts }, () =>
        s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 6.6.6.6\r\nConnection: close\r\n\r\n`),
      );
      let out = "";
      s.on("data", (d: Buffer) => (out += d.toString("latin1")));
      s.on("close", () => resolve({ status: Number(out.split(" ")[1]), body: out.slice(out.indexOf("\r\n\r\n") + 4) }));
      s.on("error", reject);
    });
  };
  const forwardedFor = (body: string) => (JSON.parse(body.replace(/^[0-9a-f]+\r\n/, "").replace(/\r\n0\r\n\r\n$/, "")) as { headers: Record<string, string> }).headers["x-forwarded-for"];
  /** Sends raw bytes and resolves when certgate closes the connection (or after `waitMs`, "open"). */
  const closedAfter = (bytes: Buffer | string, endAfter = false) =>
    new Promise<"closed">((resolve) => {
      const s = net.connect(proxy.port, "127.0.0.1", () => (endAfter ? s.end(bytes) : s.write(bytes)));
      s.on("error", () => {});
      s.on("data", () => {});
      s.on("close", () => resolve("closed"));
    });

  it("v1 from a trusted peer: the origin, the rules and the access log see the header's client", async () => {
    const r = await through("PROXY TCP4 198.51.100.9 127.0.0.1 40000 443\r\n");
    expect(r.status).toBe(200);
    expect(forwardedFor(r.body)).toBe("198.51.100.9"); // the client's own X-Forwarded-For is overwritten, as without PROXY
    expect((await through("PROXY TCP4 203.0.113.50 127.0.0.1 40000 443\r\n", "/deny")).status).toBe(403);
    expect((await through("PROXY TCP4 198.51.100.9 127.0.0.1 40000 443\r\n", "/deny")).status).toBe(200);
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.filter((l) => l.msg === "request" && l.path === "/deny").map((l) => [l.client, l.status])).toEqual([
      ["203.0.113.50", 403],
      ["198.51.100.9", 200],
    ]);
  });

  it("v2 INET and INET6, with the AWS VPC endpoint id as a rule field and in the access log", async () => {
    const r = await through(v2Inet("203.0.113.8", "127.0.0.1", 1234, 443), "/deny");
    expect(r.status).toBe(403);
    expect(forwardedFor((await through(v2Inet6(Buffer.from("20010db8000000000000000000000042", "hex"), 5))).body)).toBe("2001:db8::42");
    expect((await through(v2Inet("198.51.100.3", "127.0.0.1", 1, 443, awsTlv("vpce-0123abcd")), "/private")).status).toBe(200);
    expect((await through(v2Inet("198.51.100.3", "127.0.0.1", 1, 443, awsTlv("vpce-other")), "/private")).status).toBe(403);
    expect((await through(v2Inet("198.51.100.3", "127.0.0.1", 1, 443), "/private")).status).toBe(403);
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.filter((l) => l.msg === "request" && l.path === "/private").map((l) => l.aws_vpce_id)).toEqual(["vpce-0123abcd", "vpce-other", undefined]);
  });

  it("v2 LOCAL and v1 UNKNOWN (the balancer's own checks): the connection's own address", async () => {
    expect(forwardedFor((await through(v2(0, 0x00, Buffer.alloc(0)))).body)).toBe("127.0.0.1");
    expect(forwardedFor((await through("PROXY UNKNOWN\r\n")).body)).toBe("127.0.0.1");
  });

  it("a header split into single bytes, and the ClientHello in the same packet as the header", async () => {
    const p = await pki();
    const raw = net.connect(proxy.port, "127.0.0.1");
    await new Promise((r) => raw.once("connect", r));
    for (const b of Buffer.from("PROXY TCP4 198.51.100.77 127.0.0.1 1 443\r\n")) {
      raw.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    const s = tls.connect({ socket: raw, servername: "localhost", ca: p.serverCa.certPem });
    await new Promise((r, j) => (s.once("secureConnect", r), s.once("error", j)));
    s.destroy();
    // Header and ClientHello in one write: a cork on the raw socket.
    const raw2 = net.connect(proxy.port, "127.0.0.1");
    await new Promise((r) => raw2.once("connect", r));
    raw2.cork();
    raw2.write("PROXY TCP4 198.51.100.78 127.0.0.1 1 443\r\n");
    const s2 = tls.connect({ socket: raw2, servername: "localhost", ca: p.serverCa.certPem });
    setImmediate(() => raw2.uncork());
    await new Promise((r, j) => (s2.once("secureConnect", r), s2.once("error", j)));
    s2.destroy();
  });

  it("from a trusted peer, a connection without a header, a malformed or an oversized one is closed and counted", async () => {
    const before = await errors("proxy_invalid");
    const p = await pki();
    // A plain TLS client from a trusted address: its ClientHello is not a PROXY header.
    await expect(new Promise((resolve, reject) => tls.connect({ host: "127.0.0.1", port: proxy.port, servername: "localhost", ca: p.serverCa.certPem }, () => resolve(undefined)).on("error", reject))).rejects.toThrow();
    expect(await closedAfter("PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n")).toBe("closed");
    expect(await closedAfter("PROXY TCP4 1.2.3.4 127.0.0.1 1 2\n")).toBe("closed"); // LF without CR
    expect(await closedAfter(v2(1, 0x11, Buffer.alloc(12), tlv(4, Buffer.alloc(V2_MAX_PAYLOAD))).subarray(0, 16))).toBe("closed");
    expect(await closedAfter(v2(1, 0x11, Buffer.alloc(12), Buffer.from([0xea, 0x00, 0x09])))).toBe("closed");
    expect(await closedAfter(`PROXY TCP4 ${"9".repeat(200)}`)).toBe("closed");
    expect(await errors("proxy_invalid")).toBe(before + 6);
  });

  it("a failed handshake after a header is logged with the header's client", async () => {
    expect(await closedAfter("PROXY TCP4 198.51.100.10 127.0.0.1 1 443\r\nthis is no ClientHello")).toBe("closed");
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.filter((l) => l.msg === "handshake failed" && l.client === "198.51.100.10")).toEqual([expect.objectContaining({ reason: "not_tls" })]);
  });

  it("a truncated header closes the connection when the peer ends; a slow one meets the hello timeout", async () => {
    expect(await closedAfter("PROXY TCP4 198.51.100.9 127.0.0.1", true)).toBe("closed");
    const before = await errors("hello_timeout");
    expect(await closedAfter(v2Inet("198.51.100.2", "127.0.0.1", 1, 2).subarray(0, 20))).toBe("closed"); // after handshake_timeout_ms
    expect(await errors("hello_timeout")).toBe(before + 1);
  });

  it("a PROXY header from a peer not trusted to send one is refused and counted; plain clients still work; live", async () => {
    proxy.runtime.apply(parseModel({ ...model, proxy_protocol: { trusted: ["10.0.0.0/8", "2001:db8::/32"] } }));
    try {
      const before = await errors("proxy_untrusted");
      expect(await closedAfter("PROXY TCP4 198.51.100.9 127.0.0.1 1 443\r\n")).toBe("closed");
      expect(await closedAfter(v2Inet("198.51.100.9", "127.0.0.1", 1, 443))).toBe("closed");
      expect(await closedAfter("PROX")).toBe("closed"); // a prefix then silence: still judged, by the timeout
      expect(await errors("proxy_untrusted")).toBe(before + 2);
      const p = await pki();
      const plain = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const s = tls.connect({ host: "127.0.0.1", port: proxy.port, servername: "localhost", ca: p.serverCa.certPem }, () => resolve(s));
        s.on("error", reject);
      });
      plain.destroy();
    } finally {
      proxy.runtime.apply(parseModel(model));
    }
  });
});
