// ClientHello fuzzing: random and mutated ClientHellos, sent to the TLS port whole, in
// pieces or a byte at a time, never crash or wedge the listener. Every such connection is
// closed by certgate (at the latest by the handshake timeout, set short here), no socket is
// left behind, and a well-behaved mTLS client is served throughout. Half the connections come
// from the PROXY-protocol-trusted address, each case with or without a PROXY header (valid v1/v2,
// mutated, truncated, oversized) before the hello, from either address.
import { readdirSync } from "node:fs";
import net from "node:net";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, request, startProxy, type Proxy } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { captureClientHello } from "./hellos.ts";
import { v2Inet } from "../helpers/proxyheader.ts";

const TIMEOUT_MS = 1000;
// A connection still open this long after its bytes were sent is wedged (hello timeout + handshake timeout + slack).
const HUNG_MS = 2 * TIMEOUT_MS + 5000;

interface Case {
  bytes: Buffer;
  /** Write sizes: whole, random pieces, or a byte at a time (then the rest whole). */
  delivery: "whole" | "pieces" | "bytes";
  pieces: number[];
  /** Half-close after sending, or keep our side open and wait for certgate to close. */
  end: boolean;
  http: boolean;
  /** Sent from the PROXY-trusted address (127.0.0.2) or an untrusted one (127.0.0.1). */
  from: string;
  /** A PROXY header (or bytes that look like one) before the rest. */
  proxied: boolean;
}

const TRUSTED = "127.0.0.2";

/** PROXY headers: valid v1 and v2 (with TLVs), then mutated, truncated or with a hostile length. */
function proxyHeaders(): fc.Arbitrary<Buffer> {
  const octet = fc.integer({ min: 0, max: 255 });
  const v4 = fc.tuple(octet, octet, octet, octet).map((a) => a.join("."));
  const port = fc.integer({ min: 0, max: 65535 });
  const tlv = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.uint8Array({ maxLength: 40 })).map(([t, v]) => Buffer.concat([Buffer.from([t]), u16(v.length), Buffer.from(v)]));
  const aws = fc.stringMatching(/^vpce-[0-9a-f]{1,17}$/).map((id) => Buffer.concat([Buffer.from([0xea]), u16(id.length + 1), Buffer.from([1]), Buffer.from(id)]));
  const valid = fc.oneof(
    fc.tuple(v4, v4, port, port).map(([a, b, p, q]) => Buffer.from(`PROXY TCP4 ${a} ${b} ${p} ${q}\r\n`)),
    fc.constant(Buffer.from("PROXY TCP6 2001:db8::1 ::1 1 443\r\n")),
    fc.constant(Buffer.from("PROXY UNKNOWN\r\n")),
    fc.tuple(v4, v4, port, port, fc.array(fc.oneof(tlv, aws), { maxLength: 4 })).map(([a, b, p, q, t]) => v2Inet(a, b, p, q, Buffer.concat(t))),
  );
  return fc.oneof(
    valid,
    fc.tuple(valid, fc.array(fc.tuple(fc.nat(), octet), { minLength: 1, maxLength: 4 })).map(([h, edits]) => {
      const b = Buffer.from(h);
      for (const [at, v] of edits) b[at % b.length] = v;
      return b;
    }),
    fc.tuple(valid, fc.nat()).map(([h, n]) => h.subarray(0, n % h.length)),
    fc.tuple(fc.integer({ min: 0, max: 0xffff }), fc.uint8Array({ maxLength: 300 })).map(([len, rest]) => Buffer.concat([v2Inet("1.2.3.4", "5.6.7.8", 1, 2).subarray(0, 14), u16(len), Buffer.from(rest)])),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.concat([Buffer.from("PROXY "), Buffer.from(a)])),
  );
}

/** Offsets inside a one-record ClientHello as Node sends it. */
function extensionsOf(h: Buffer): { start: number; list: { type: number; at: number; len: number }[] } {
  let p = 9 + 2 + 32;
  p += 1 + h[p]!;
  p += 2 + h.readUInt16BE(p);
  p += 1 + h[p]!;
  const start = p;
  const end = p + 2 + h.readUInt16BE(p);
  const list = [];
  for (p += 2; p + 4 <= end; p += 4 + h.readUInt16BE(p + 2)) list.push({ type: h.readUInt16BE(p), at: p, len: h.readUInt16BE(p + 2) });
  return { start, list };
}

/** The hello with its extensions replaced (server_name first when given) and every length fixed. */
function withExtensions(h: Buffer, exts: Buffer[]): Buffer {
  const { start } = extensionsOf(h);
  const block = Buffer.concat(exts);
  const body = Buffer.concat([h.subarray(9, start), u16(block.length), block]);
  const hs = Buffer.concat([Buffer.from([1]), u24(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}

const u16 = (n: number) => Buffer.from([(n >> 8) & 255, n & 255]);
const u24 = (n: number) => Buffer.from([(n >> 16) & 255, (n >> 8) & 255, n & 255]);
const ext = (type: number, data: Buffer) => Buffer.concat([u16(type), u16(data.length), data]);
const sniExt = (name: Buffer, nameType = 0, listLen?: number) => ext(0, Buffer.concat([u16(listLen ?? name.length + 3), Buffer.from([nameType]), u16(name.length), name]));
const others = (h: Buffer) => extensionsOf(h).list.filter((e) => e.type !== 0).map((e) => h.subarray(e.at, e.at + 4 + e.len));

/** Splits a one-record hello's handshake bytes into several records at the given cut points. */
function fragmented(h: Buffer, cuts: number[], version: number): Buffer {
  const hs = h.subarray(5);
  const points = [...new Set(cuts.map((c) => 1 + (c % (hs.length - 1))))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const to of [...points, hs.length]) {
    out.push(Buffer.from([0x16, 3, version]), u16(to - from), hs.subarray(from, to));
    from = to;
  }
  return Buffer.concat(out);
}

function cases(hellos: Buffer[]): fc.Arbitrary<Case> {
  const hello = fc.constantFrom(...hellos);
  const byte = fc.integer({ min: 0, max: 255 });
  const u16Arb = fc.oneof(fc.constantFrom(0, 1, 0x3fff, 0x4000, 0x4801, 0xffff), fc.integer({ min: 0, max: 0xffff }));
  const weirdName = fc.oneof(
    fc.constantFrom("", ".", "..", "a..b", "b.test.", "B.TEST", "x".repeat(254), `${"a".repeat(63)}.${"b".repeat(64)}`, "b.test\0.evil", "é.test", "*.wild.test", "127.0.0.1", "[::1]", "b.test ", "-.test").map((s) => Buffer.from(s, "utf8")),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
    fc.stringMatching(/^[a-z0-9.-]{1,80}$/).map((s) => Buffer.from(s)),
  );
  const tls: fc.Arbitrary<Buffer> = fc.oneof(
    hello, // intact, as a control
    fc.tuple(hello, fc.nat()).map(([h, n]) => h.subarray(0, n % h.length)), // truncated
    fc.tuple(hello, fc.array(fc.tuple(fc.nat(), byte), { minLength: 1, maxLength: 8 })).map(([h, edits]) => {
      const b = Buffer.from(h);
      for (const [at, v] of edits) b[at % b.length] = v;
      return b;
    }),
    fc.tuple(hello, u16Arb).map(([h, n]) => Buffer.concat([h.subarray(0, 3), u16(n), h.subarray(5)])), // record length
    fc.tuple(hello, fc.integer({ min: 0, max: 0xffffff })).map(([h, n]) => Buffer.concat([h.subarray(0, 6), u24(n), h.subarray(9)])), // handshake length
    fc.tuple(hello, u16Arb).map(([h, n]) => {
      const b = Buffer.from(h); // the extensions block's length
      b.writeUInt16BE(n, extensionsOf(h).start);
      return b;
    }),
    fc.tuple(hello, fc.nat(), u16Arb).map(([h, i, n]) => {
      const b = Buffer.from(h); // one extension's length
      const list = extensionsOf(h).list;
      b.writeUInt16BE(n, list[i % list.length]!.at + 2);
      return b;
    }),
    fc.tuple(hello, weirdName).map(([h, name]) => withExtensions(h, [sniExt(name), ...others(h)])), // bad SNI, lengths consistent
    fc.tuple(hello, weirdName, byte, u16Arb).map(([h, name, t, l]) => withExtensions(h, [sniExt(name, t, l), ...others(h)])), // bad SNI list
    fc.tuple(hello, fc.constantFrom("b.test", "localhost"), fc.constantFrom("localhost", "b.test")).map(([h, a, b]) =>
      withExtensions(h, [sniExt(Buffer.from(a)), sniExt(Buffer.from(b)), ...others(h)]), // two server_name extensions
    ),
    fc.tuple(hello, fc.array(fc.nat(), { minLength: 1, maxLength: 12 }), fc.constantFrom(0, 1, 3)).map(([h, cuts, v]) => fragmented(h, cuts, v)), // multiple records
    fc.tuple(hello, fc.constantFrom(0x14, 0x15, 0x17, 0x18, 0x16), fc.uint8Array({ maxLength: 64 })).map(([h, type, junk]) =>
      Buffer.concat([h, Buffer.from([type, 3, 3]), u16(junk.length), junk]), // a second record after the hello
    ),
    fc.tuple(fc.integer({ min: 4, max: 12 }), byte).map(([n, fill]) => {
      // Huge: a ClientHello claiming 16 MB, sent in full-size records.
      const rec = Buffer.concat([Buffer.from([0x16, 3, 1]), u16(16_384), Buffer.alloc(16_384, fill)]);
      const first = Buffer.from(rec);
      first.set([1, 0xff, 0xff, 0xff], 5);
      return Buffer.concat([first, ...Array.from({ length: n - 1 }, () => rec)]);
    }),
    fc.uint8Array({ minLength: 1, maxLength: 2000 }).map((a) => Buffer.from(a)), // garbage
    fc.uint8Array({ maxLength: 600 }).map((a) => Buffer.concat([Buffer.from([0x16, 3]), Buffer.from(a)])), // garbage behind a handshake record type
    fc.uint8Array({ minLength: 3, maxLength: 200 }).map((a) => {
      const b = Buffer.concat([Buffer.from([0x80, 0, 1, 3, 1]), Buffer.from(a)]); // SSLv2-style CLIENT-HELLO
      b[1] = (b.length - 2) & 255;
      return b;
    }),
    fc.constant(Buffer.alloc(0)), // nothing at all
  );
  const http = fc
    .constantFrom(
      "GET / HTTP/1.1\r\nHost: b.test\r\n\r\n",
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      "CONNECT b.test:443 HTTP/1.1\r\nHost: b.test\r\n\r\n",
      "POST /x HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
      "OPTIONS * HTTP/1.1\r\n\r\n",
    )
    .map((s) => Buffer.from(s));
  return fc.record({
    sent: fc.oneof({ arbitrary: tls.map((bytes) => ({ bytes, http: false })), weight: 6 }, { arbitrary: http.map((bytes) => ({ bytes, http: true })), weight: 1 }),
    delivery: fc.constantFrom<Case["delivery"][]>("whole", "pieces", "bytes"),
    pieces: fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 8 }),
    end: fc.boolean(),
    from: fc.constantFrom("127.0.0.1", TRUSTED),
    header: fc.option(proxyHeaders(), { freq: 2 }),
  }).map(({ sent, header, ...c }) => ({ ...c, bytes: header ? Buffer.concat([header, sent.bytes]) : sent.bytes, http: sent.http, proxied: header !== null }));
}

/** Sends one case; resolves with what certgate answered once it closed the connection, or "hung". */
function send(port: number, c: Case): Promise<{ hung: boolean; reply: string }> {
  return new Promise((resolve) => {
    let reply = "";
    let hungTimer: NodeJS.Timeout | undefined;
    const s = net.connect({ port, host: "127.0.0.1", localAddress: c.from, noDelay: true }, async () => {
      const writes: Buffer[] = [];
      if (c.delivery === "whole") writes.push(c.bytes);
      else {
        const sizes = c.delivery === "bytes" ? [1] : c.pieces;
        let at = 0;
        for (let i = 0; at < c.bytes.length; i++) {
          if (c.delivery === "bytes" && at >= 4096) break;
          const n = sizes[i % sizes.length]!;
          writes.push(c.bytes.subarray(at, at + n));
          at += n;
        }
        if (at < c.bytes.length) writes.push(c.bytes.subarray(at));
      }
      for (const w of writes) {
        if (s.destroyed || !s.writable) break;
        s.write(w);
        if (writes.length > 1) await new Promise((r) => setImmediate(r));
      }
      if (c.end && !s.destroyed) s.end();
      hungTimer = setTimeout(() => {
        resolve({ hung: true, reply });
        s.destroy();
      }, HUNG_MS);
    });
    s.on("data", (d: Buffer) => (reply += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => {
      clearTimeout(hungTimer);
      resolve({ hung: false, reply });
    });
  });
}

describe("ClientHello fuzzing: the listener survives anything and keeps serving", () => {
  let proxy: Proxy;
  let p: DevPki;
  let hellos: Buffer[];
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        [
          { hostname: "localhost" },
          { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" } },
          { hostname: "b.test", mtls: { mode: "enforced", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true } },
        ],
        { limits: { handshake_timeout_ms: TIMEOUT_MS }, proxy_protocol: { trusted: [TRUSTED] } },
      ),
    );
    hellos = await Promise.all([
      captureClientHello({ servername: "b.test" }),
      captureClientHello({ servername: "a.test", maxVersion: "TLSv1.2" }),
      captureClientHello({ servername: "" }),
    ]);
  });
  afterAll(() => proxy.close());

  const served = async () => {
    const r = await request(proxy.port, { servername: "b.test", cert: p.client });
    expect(r.status).toBe(200);
    expect(r.body).toContain("client-cert"); // forwarded: the certificate was verified
  };
  const fds = () => readdirSync("/proc/self/fd").length;

  it("never crashes or wedges; every fuzzed connection is closed; an mTLS client is served throughout", async () => {
    await served();
    const baseline = fds();
    const run = await fc.check(
      fc.asyncProperty(fc.array(cases(hellos), { minLength: 20, maxLength: 30 }), async (batch) => {
        const sent = batch.map((c) => send(proxy.port, c));
        // Real handshakes interleaved with the garbage.
        for (let i = 0; i < 3; i++) await served();
        const results = await Promise.all(sent);
        batch.forEach((c, i) => {
          expect(results[i]!.hung, `hung: ${c.delivery} ${c.bytes.subarray(0, 64).toString("hex")}`).toBe(false);
          // Plain HTTP from an untrusted peer gets its 400; a trusted peer's connection must start with a PROXY header.
          if (c.http && !c.proxied && c.from !== TRUSTED) expect(results[i]!.reply, `${c.delivery} ${c.bytes.toString("latin1")}`).toMatch(/^HTTP\/1.1 400 /);
        });
      }),
      { numRuns: 5, endOnFailure: true },
    );
    // The failing case is in the message; the whole batch would be megabytes of output.
    if (run.failed) throw new Error(`seed ${run.seed}: ${(run.errorInstance as Error | undefined)?.message}`);
    await served();
    // Nothing left behind: certgate's sockets are closed too (a few pooled origin connections aside).
    for (let i = 0; i < 50 && fds() > baseline + 8; i++) await new Promise((r) => setTimeout(r, 100));
    expect(fds()).toBeLessThanOrEqual(baseline + 8);
    // Random SNI names built no servers: one certificate × {off, fail_open, enforced}.
    expect(Number(/certgate_tls_servers (\d+)/.exec(await proxy.metrics.registry.getSingleMetricAsString("certgate_tls_servers"))![1])).toBeLessThanOrEqual(3);
  });
});
