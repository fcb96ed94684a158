// HTTP/1 differential fuzzing: random and mutated request streams (pipelining, Content-Length
// and chunked bodies with extensions and trailers, smuggling-shaped bodies, garbage, targets
// with `//`, escapes, `;`, `%2F` and `..;` segments, heads at and over the header-count limit,
// an allowed WebSocket upgrade followed by tunnelled bytes, writes split at random points) on
// one TLS connection through certgate to a recording raw origin, with url_normalization's
// merge_slashes on and off. The expectation comes from a model of the generated requests,
// never from certgate's parser: what reaches the origin is exactly the requests certgate was
// expected to forward (method, normalised target, Host, the headers it keeps and adds, the
// body, no trailers), in order, each whole, then exactly the tunnelled bytes.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type tls from "node:tls";
import { baseModel, connect, startProxy, type Proxy } from "../helpers/harness.ts";
import { echoReply, startRecorder, type Recorded, type Recorder } from "../helpers/recorder.ts";
import { parseModel, type Model } from "../../src/model/schema.ts";
import { parseResponses } from "../helpers/wire.ts";

interface Chunk {
  data: string;
  ext: string;
}
type Body = { kind: "none" } | { kind: "length"; data: string } | { kind: "chunked"; chunks: Chunk[]; lastExt: string; trailers: string[] };
interface Req {
  method: string;
  segments: string[];
  query: string | null;
  host: string;
  headers: [string, string][];
  body: Body;
  close: boolean;
  /** x-pad lines bringing the head to exactly the header-count limit, or one over it. */
  pad: "none" | "limit" | "over";
  /** An Upgrade: websocket request (a GET without a body, the stream's last). */
  upgrade?: true;
}

/** limits.max_header_count in this test: above every generated head but a padded one. */
const MAX_HEADERS = 12;

// ---- generators -------------------------------------------------------------------------
const BYTES = [..."abcXYZ09 ;:=,\"'\t{}/?#%", "\r\n", "\r", "\n", "\x00", "\x7f", "\xe9", "\xff", "0\r\n\r\n", "GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n"];
const bytes = (min: number) => fc.array(fc.constantFrom(...BYTES), { minLength: min, maxLength: 12 }).map((a) => a.join(""));
const ext = fc.constantFrom("", "", ";a=b", ";x", ';q="v;w"', ";n=1;m=2");
const body: fc.Arbitrary<Body> = fc.oneof(
  fc.constant({ kind: "none" as const }),
  bytes(0).map((data) => ({ kind: "length" as const, data })),
  fc.record({
    kind: fc.constant("chunked" as const),
    chunks: fc.array(fc.record({ data: bytes(1), ext }), { maxLength: 4 }),
    lastExt: ext,
    trailers: fc.array(fc.constantFrom("X-Injected: 1", "Host: evil.test", "Connection: close", "X-Trailer: v"), { maxLength: 2 }),
  }),
);
const ownHeader = fc.tuple(fc.constantFrom("x-a", "X-B", "x-c", "Accept", "User-Agent"), fc.stringMatching(/^[a-z0-9;=,/]{0,10}$/));
// Hop-by-hop and spoofable headers: never forwarded as sent.
const hopHeader = fc.constantFrom<[string, string]>(
  ["Connection", "keep-alive"],
  ["Keep-Alive", "timeout=5"],
  ["TE", "trailers"],
  ["Proxy-Connection", "keep-alive"],
  ["X-Forwarded-For", "6.6.6.6"],
  ["Forwarded", "for=6.6.6.6"],
  ["Connection", "x-drop"],
  ["X-Drop", "1"],
  ["X-Forwarded-Client-Cert", "Hash=00"],
  // An h2c upgrade is not allowed: served as a plain request, none of these forwarded.
  ["Upgrade", "h2c"],
  ["Connection", "Upgrade, HTTP2-Settings"],
  ["HTTP2-Settings", "AAMAAABkAAQAAP__"],
);
const request: fc.Arbitrary<Req> = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"),
  // "" makes `//` (merged unless merge_slashes is off); %61 is an escaped unreserved `a`
  // (decoded); `;` and `%2F` are kept as sent (`%2f` as `%2F`); a `..;` segment is a 400.
  segments: fc.array(fc.constantFrom("a", "b", "admin", "%61dmin", "x-1", "", ";p=1", "x;y", "%2F", "%2f", "..;"), { minLength: 1, maxLength: 4 }),
  query: fc.option(fc.constantFrom("q=1", "r=/admin", "a=%2F//b"), { nil: null }),
  host: fc.constantFrom("localhost", "LocalHost", "localhost:443", "localhost."),
  headers: fc.array(fc.oneof({ weight: 3, arbitrary: ownHeader }, { weight: 1, arbitrary: hopHeader }), { maxLength: 5 }),
  body,
  close: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
  pad: fc.constantFrom("none", "none", "none", "none", "limit", "over"),
});
/** An allowed WebSocket upgrade (its own headers only, so the Connection header stays `Upgrade`). */
const upgradeRequest: fc.Arbitrary<Req> = fc.record({
  method: fc.constant("GET"),
  // No `..;`: refused (400), the upgrade is a plain request, and the bytes meant for the tunnel
  // are then malformed: see "pipelining" below.
  segments: fc.array(fc.constantFrom("a", "admin", "ws", ""), { minLength: 1, maxLength: 3 }),
  query: fc.option(fc.constant("q=1"), { nil: null }),
  host: fc.constantFrom("localhost", "localhost:443"),
  headers: fc.array(ownHeader, { maxLength: 3 }),
  body: fc.constant({ kind: "none" as const }),
  close: fc.constant(false),
  pad: fc.constant("none" as const),
  upgrade: fc.constant(true as const),
});
/** Each is answered with an error (and a close), or cuts the connection; nothing after it is served. */
const GARBAGE = [
  "GARBAGE\r\n\r\n",
  "\x16\x03\x01\x02\x00",
  "GET / HTTP/1.1\nHost: localhost\n\n",
  "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
  "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
  "GET / HTTP/1.1\r\nHost : localhost\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: localhost\r\nHost: other\r\n\r\n",
  "GET /admin#x HTTP/1.1\r\nHost: localhost\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: [localhost]x\r\n\r\n",
  "POST /cut HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\n",
  // llhttp refuses framing fields in a trailer section: the body being forwarded is cut.
  "POST /cut HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nContent-Length: 5\r\n\r\n",
  "POST /cut HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n",
  "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: localhost\r\nX-Folded: a\r\n b\r\n\r\n",
  "GET / HTTP/1.1\r\nHost: localhost\r\n\x00: x\r\n\r\n",
];
const stream = fc.record({
  // A head over the header-count limit only first: see "pipelining" below.
  requests: fc.array(request, { minLength: 1, maxLength: 6 }).map((rs) => rs.map((r, i) => (i > 0 && r.pad === "over" ? { ...r, pad: "limit" as const } : r))),
  garbage: fc.option(fc.record({ at: fc.nat(), text: fc.constantFrom(...GARBAGE) }), { nil: null }),
  /** An upgrade after the requests (in place of garbage), then bytes for the tunnel: opaque, even when they look like HTTP. */
  upgrade: fc.option(fc.record({ req: upgradeRequest, tail: bytes(1) }), { nil: null }),
  /** Cut points, as fractions of the stream. */
  splits: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
});

// ---- the model --------------------------------------------------------------------------
/** Header lines before padding: Host, the generated ones, x-run, Connection: close, Upgrade and Connection, the framing line. */
const linesOf = (r: Req) => 2 + r.headers.length + (r.close ? 1 : 0) + (r.upgrade ? 2 : 0) + (r.body.kind === "none" ? 0 : 1);
const padsOf = (r: Req): [string, string][] =>
  r.pad === "none" ? [] : Array.from({ length: MAX_HEADERS - linesOf(r) + (r.pad === "over" ? 1 : 0) }, (_, i) => [`x-pad-${i}`, "p"]);

function serialise(r: Req, run: number): string {
  let s = `${r.method} /${r.segments.join("/")}${r.query === null ? "" : `?${r.query}`} HTTP/1.1\r\nHost: ${r.host}\r\n`;
  for (const [n, v] of r.headers) s += `${n}: ${v}\r\n`;
  s += `x-run: ${run}\r\n`;
  for (const [n, v] of padsOf(r)) s += `${n}: ${v}\r\n`;
  if (r.close) s += "Connection: close\r\n";
  if (r.upgrade) s += "Upgrade: websocket\r\nConnection: Upgrade\r\n";
  const b = r.body;
  if (b.kind === "none") return s + "\r\n";
  if (b.kind === "length") return s + `Content-Length: ${b.data.length}\r\n\r\n${b.data}`;
  s += "Transfer-Encoding: chunked\r\n\r\n";
  for (const c of b.chunks) s += `${c.data.length.toString(16)}${c.ext}\r\n${c.data}\r\n`;
  return s + `0${b.lastExt}\r\n${b.trailers.map((t) => `${t}\r\n`).join("")}\r\n`;
}

const HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "forwarded", "x-forwarded-for", "x-forwarded-client-cert"]);

/** How the proxy under test normalises targets. */
interface Normalization {
  mergeSlashes: boolean;
}

/** The normalised path: escaped unreserved letters decoded, other escapes in upper case, successive slashes merged when configured. */
function pathOf(r: Req, n: Normalization): string {
  const path = `/${r.segments.join("/")}`.replace(/%61/g, "a").replace(/%2f/g, "%2F");
  return n.mergeSlashes ? path.replace(/\/{2,}/g, "/") : path;
}
const targetOf = (r: Req, n: Normalization) => `${pathOf(r, n)}${r.query === null ? "" : `?${r.query}`}`;
/** The body's bytes once de-framed (chunk extensions and trailers are framing). */
const bodyOf = (r: Req) => (r.body.kind === "length" ? r.body.data : r.body.kind === "chunked" ? r.body.chunks.map((c) => c.data).join("") : "");
/** Too many header lines: 431; a `..;` segment: 400; the global rule blocks exactly /admin: 403; an upgrade: 101. */
function statusOf(r: Req, n: Normalization): number {
  if (r.pad === "over") return 431;
  if (r.segments.includes("..;")) return 400;
  if (pathOf(r, n) === "/admin") return 403;
  return r.upgrade ? 101 : 200;
}
/** Nothing after this request is read as a request: it closes the connection, or switches it to a tunnel. */
const last = (r: Req, n: Normalization) =>
  r.close || (r.body.kind === "chunked" && r.body.trailers.includes("Connection: close")) || [400, 431].includes(statusOf(r, n)) || r.upgrade === true;

/** What the origin must receive for a forwarded request, as one comparable string. */
function expected(r: Req, run: number, n: Normalization): string {
  const listed = new Set(r.headers.filter(([n]) => n.toLowerCase() === "connection").flatMap(([, v]) => v.toLowerCase().split(",").map((t) => t.trim())));
  const headers: [string, string][] = [["host", r.host]];
  for (const [n, v] of r.headers) if (!HOP.has(n.toLowerCase()) && !listed.has(n.toLowerCase())) headers.push([n, v]);
  headers.push(["x-run", String(run)], ...padsOf(r));
  if (r.upgrade) headers.push(["connection", "upgrade"], ["upgrade", "websocket"]);
  headers.push(["x-forwarded-for", "127.0.0.1"], ["x-forwarded-proto", "https"], ["x-forwarded-host", r.host]);
  // Framing: as the client framed it; a body-less POST, PUT or PATCH says `content-length: 0`.
  const data = bodyOf(r);
  if (r.body.kind === "chunked") headers.push(["transfer-encoding", "chunked"]);
  else if (data.length) headers.push(["content-length", String(data.length)]);
  else if (r.method === "POST" || r.method === "PUT" || r.method === "PATCH") headers.push(["content-length", "0"]);
  return show(r.method, targetOf(r, n), headers, data);
}

const show = (method: string, target: string, headers: [string, string][], body: string) =>
  `${method} ${target}\n${headers.map(([n, v]) => `${n.toLowerCase()}: ${v}`).join("\n")}\n\n${JSON.stringify(body)}`;
const received = (m: Recorded) => show(m.method, m.target, m.headers, m.body);

// ---- the property -----------------------------------------------------------------------
const SWITCH = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

describe("HTTP/1 differential fuzzing through certgate", () => {
  let proxy: Proxy;
  let origin: Recorder;
  let model: Model;
  beforeAll(async () => {
    // The origin accepts every WebSocket upgrade it is asked for; after it, it records raw bytes.
    origin = await startRecorder((m) => (origin.header(m, "upgrade").length ? { data: SWITCH, tunnel: true } : echoReply(m)));
    proxy = await startProxy((pk) =>
      baseModel(pk, origin.url, [{ hostname: "localhost" }], {
        rules: [{ id: "no-admin", expression: 'http.request.uri.path eq "/admin"', action: "block" }],
        limits: { max_header_count: MAX_HEADERS },
      }),
    );
    model = proxy.runtime.snapshot.model;
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  /** Writes the pieces one read apart and collects the answer until `enough` responses or the close; the caller destroys the socket. */
  async function send(pieces: string[], enough: number): Promise<{ text: string; closed: boolean; stuck: boolean; socket: tls.TLSSocket }> {
    const socket: tls.TLSSocket = (await connect(proxy.port)).socket;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<{ text: string; closed: boolean; stuck: boolean }>((resolve) => {
      let text = "";
      socket.on("data", (d: Buffer) => {
        text += d.toString("latin1");
        if (parseResponses(text).length >= enough) resolve({ text, closed: false, stuck: false });
      });
      socket.on("close", () => resolve({ text, closed: true, stuck: false }));
      socket.on("error", () => {});
      // A bound, not a measurement: a stream that is neither answered nor closed is a failure to shrink.
      timer = setTimeout(() => resolve({ text, closed: false, stuck: true }), 5_000);
    });
    for (const p of pieces) {
      if (socket.destroyed) break;
      socket.write(p, "latin1");
      await new Promise((r) => setImmediate(r));
    }
    const out = await done;
    clearTimeout(timer);
    return { ...out, socket };
  }

  /** Until `cond` holds, or a bound (a failure then, not a measurement). */
  async function until(cond: () => boolean): Promise<boolean> {
    for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
    return cond();
  }

  let run = 0;
  /** Every tunnel the origin accepted: its connection and the bytes the client sent into it. */
  const tails = new Map<number, string>();
  /** What each run sent, to name the run behind a late surprise. */
  const wires = new Map<number, string>();
  async function fuzz(n: Normalization): Promise<void> {
    await fc.assert(
      fc.asyncProperty(stream, async ({ requests, garbage: garbageIn, upgrade, splits }) => {
        const id = ++run;
        // Requests after a Connection: close (as a header or a trailer), a refusal that closes,
        // or an upgrade, are never read as requests.
        const closeAt = requests.findIndex((r) => last(r, n));
        const live = closeAt < 0 ? [...requests] : requests.slice(0, closeAt + 1);
        // The upgrade comes after the requests, in place of garbage, when nothing closed before it.
        const up = closeAt < 0 ? upgrade : null;
        const garbage = up ? null : garbageIn;
        if (up) live.push(up.req);
        const before = garbage ? garbage.at % (live.length + 1) : live.length;
        const served = live.slice(0, before);
        let wire = served.map((r) => serialise(r, id)).join("");
        if (garbage) wire += garbage.text + live.slice(before).map((r) => serialise(r, id)).join("");
        if (up) wire += up.tail;
        wires.set(id, JSON.stringify({ wire, splits }));
        const cuts = [...new Set(splits.map((f) => Math.floor(f * wire.length)))].sort((a, b) => a - b);
        const pieces = [0, ...cuts].map((c, i, all) => wire.slice(c, all[i + 1] ?? wire.length)).filter((p) => p.length);
        const tunnel = up !== null && statusOf(up.req, n) === 101;
        const mine = () => origin.messages.filter((m) => origin.header(m, "x-run")[0] === String(id));
        /** The bytes the origin received on this run's tunnel (after its 101), if it has one. */
        const tunnelled = () => {
          const m = mine().find((x) => origin.header(x, "upgrade").length);
          return m && origin.tunnels.get(m.conn);
        };

        const closes = garbage || (closeAt >= 0 && !tunnel) || (up && !tunnel);
        const { text, closed, stuck, socket } = await send(pieces, closes ? Infinity : served.length);
        try {
          expect(stuck, `answers so far: ${JSON.stringify(text)}`).toBe(false);
          // Through a tunnel, the bytes after the upgrade reach the origin as they are (wait for them before closing).
          if (tunnel) expect(await until(() => (tunnelled()?.length ?? 0) >= up.tail.length), `tunnelled ${JSON.stringify(tunnelled())}`).toBe(true);
        } finally {
          socket.destroy();
        }
        expect(tunnelled()).toBe(tunnel ? up.tail : undefined);
        if (tunnel) tails.set(mine().find((x) => origin.header(x, "upgrade").length)!.conn, up.tail);
        const answers = parseResponses(text);
        const forward = served.map((r, i) => ({ r, i })).filter(({ r }) => [200, 101].includes(statusOf(r, n)));

        // The client's answers: the model's statuses in order. With garbage, a prefix of them
        // (requests pipelined before the garbage may go unanswered: the known bug under
        // "pipelining" below, tolerated here until it is fixed); then at most one 400 and the
        // close (none when the garbage cuts a body being forwarded).
        const statuses = answers.map((a) => a.status);
        const modelled = served.map((r) => statusOf(r, n));
        if (!garbage) {
          expect(statuses).toEqual(modelled);
          if (closes) expect(closed).toBe(true);
        } else {
          let k = 0;
          while (k < statuses.length && statuses[k] === modelled[k]) k++;
          expect([[], [400]]).toContainEqual(statuses.slice(k));
          expect(closed).toBe(true);
        }
        // Each 200 is the origin's (echo) answer to the request in its place.
        answers.forEach((a, i) => {
          const r = served[i];
          if (a.status === 200 && r) expect(a.body).toBe(`${r.method} ${targetOf(r, n)} ${bodyOf(r).length}`);
        });

        // The origin: a prefix of the forwarded requests (all of them without garbage), each
        // exactly as modelled, and never a trailer (certgate drops them).
        const answered = answers.filter((a, i) => [200, 101].includes(a.status) && i < served.length).length;
        if (!garbage) expect(mine().length).toBe(forward.length); // each was recorded before its answer went out
        const got = mine().map(received);
        expect(got.length).toBeGreaterThanOrEqual(answered);
        expect(got).toEqual(forward.slice(0, got.length).map(({ r }) => expected(r, id, n)));
        expect(mine().flatMap((m) => m.trailers)).toEqual([]);
        expect(origin.errors).toEqual([]);
      }),
      // Bounded for CI (about 3 s here); FUZZ_RUNS=5000 FUZZ_MS=600000 for a longer hunt.
      // FUZZ_SEED and FUZZ_PATH replay a counterexample fast-check printed.
      { numRuns: Number(process.env.FUZZ_RUNS ?? 200), interruptAfterTimeLimit: Number(process.env.FUZZ_MS ?? 15_000), seed: process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : undefined, path: process.env.FUZZ_PATH },
    );
    // Afterwards too: no tunnel got a byte more than its client sent, and there is no other tunnel.
    const unexpected = [...origin.tunnels].filter(([conn, bytes]) => tails.get(conn) !== bytes);
    const runOf = (conn: number) => origin.messages.filter((m) => m.conn === conn).map((m) => origin.header(m, "x-run")[0]);
    expect(unexpected.map(([conn, bytes]) => ({ conn, bytes, expected: tails.get(conn), runs: runOf(conn).map((r) => ({ run: r, wire: wires.get(Number(r)) })) }))).toEqual([]);
  }

  it("whatever reaches the origin is exactly, and only, what certgate decided to forward", async () => {
    await fuzz({ mergeSlashes: true });
  });

  it("the same with url_normalization.merge_slashes false: `//` reaches rules and the origin as sent", async () => {
    proxy.runtime.apply(parseModel({ ...model, url_normalization: { merge_slashes: false } }));
    try {
      await fuzz({ mergeSlashes: false });
    } finally {
      proxy.runtime.apply(model);
    }
  });

  // The front end's own refusals (a head over a limit, malformed bytes...) behind pipelined
  // requests: the requests before the refused one are answered first, then the refusal, in its
  // place. (Once a bug: the queued request was dropped and the refusal went out as its answer.)
  describe("pipelining: a refusal after two pipelined requests", () => {
    const get = "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n";
    async function exchange(third: string): Promise<{ statuses: number[]; forwarded: number }> {
      const before = origin.messages.length;
      const { text, socket } = await send([get + get + third], Infinity);
      socket.destroy();
      return { statuses: parseResponses(text).map((a) => a.status), forwarded: origin.messages.length - before };
    }
    it("over the header-count limit: both earlier requests are answered, then the 431", async () => {
      const pads = Array.from({ length: MAX_HEADERS }, (_, i) => `x-pad-${i}: p\r\n`).join("");
      expect(await exchange(`GET /a HTTP/1.1\r\nHost: localhost\r\n${pads}\r\n`)).toEqual({ statuses: [200, 200, 431], forwarded: 2 });
    });
    it("malformed (garbage, or the bytes after an upgrade served as a plain request): both earlier requests are answered, then the 400", async () => {
      expect(await exchange("GARBAGE\r\n\r\n")).toEqual({ statuses: [200, 200, 400], forwarded: 2 });
    });
    it("a refusal that decide() makes (a `..;` target) is in its place: both earlier requests are answered first", async () => {
      expect(await exchange("GET /..; HTTP/1.1\r\nHost: localhost\r\n\r\n")).toEqual({ statuses: [200, 200, 400], forwarded: 2 });
    });
  });
});
