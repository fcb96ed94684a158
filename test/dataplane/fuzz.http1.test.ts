// HTTP/1 differential fuzzing: random and mutated request streams (pipelining, Content-Length
// and chunked bodies with extensions and trailers, smuggling-shaped bodies, garbage, writes
// split at random points) on one TLS connection through certgate to a recording raw origin.
// The expectation comes from a model of the generated requests, never from certgate's parser:
// what reaches the origin is exactly the requests certgate was expected to forward (method,
// normalised target, Host, the headers it keeps and adds, the body), in order, each whole.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type tls from "node:tls";
import { baseModel, connect, startProxy, type Proxy } from "../helpers/harness.ts";
import { startRecorder, type Recorded, type Recorder } from "../helpers/recorder.ts";
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
}

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
  // "" makes `//`; %61 is an escaped unreserved `a`: both normalised away.
  segments: fc.array(fc.constantFrom("a", "b", "admin", "%61dmin", "x-1", ""), { minLength: 1, maxLength: 4 }),
  query: fc.option(fc.constantFrom("q=1", "r=/admin", "a=%2F//b"), { nil: null }),
  host: fc.constantFrom("localhost", "LocalHost", "localhost:443", "localhost."),
  headers: fc.array(fc.oneof({ weight: 3, arbitrary: ownHeader }, { weight: 1, arbitrary: hopHeader }), { maxLength: 5 }),
  body,
  close: fc.integer({ min: 0, max: 5 }).map((n) => n === 0),
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
  requests: fc.array(request, { minLength: 1, maxLength: 6 }),
  garbage: fc.option(fc.record({ at: fc.nat(), text: fc.constantFrom(...GARBAGE) }), { nil: null }),
  /** Cut points, as fractions of the stream. */
  splits: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 6 }),
});

// ---- the model --------------------------------------------------------------------------
function serialise(r: Req, run: number): string {
  let s = `${r.method} /${r.segments.join("/")}${r.query === null ? "" : `?${r.query}`} HTTP/1.1\r\nHost: ${r.host}\r\n`;
  for (const [n, v] of r.headers) s += `${n}: ${v}\r\n`;
  s += `x-run: ${run}\r\n`;
  if (r.close) s += "Connection: close\r\n";
  const b = r.body;
  if (b.kind === "none") return s + "\r\n";
  if (b.kind === "length") return s + `Content-Length: ${b.data.length}\r\n\r\n${b.data}`;
  s += "Transfer-Encoding: chunked\r\n\r\n";
  for (const c of b.chunks) s += `${c.data.length.toString(16)}${c.ext}\r\n${c.data}\r\n`;
  return s + `0${b.lastExt}\r\n${b.trailers.map((t) => `${t}\r\n`).join("")}\r\n`;
}

const HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "forwarded", "x-forwarded-for", "x-forwarded-client-cert"]);

/** The normalised path: escaped unreserved letters decoded, successive slashes merged. */
const pathOf = (r: Req) => `/${r.segments.join("/")}`.replace(/%61/g, "a").replace(/\/{2,}/g, "/");
const targetOf = (r: Req) => `${pathOf(r)}${r.query === null ? "" : `?${r.query}`}`;
/** The body's bytes once de-framed (chunk extensions and trailers are framing). */
const bodyOf = (r: Req) => (r.body.kind === "length" ? r.body.data : r.body.kind === "chunked" ? r.body.chunks.map((c) => c.data).join("") : "");
/** The global rule blocks exactly /admin. */
const statusOf = (r: Req) => (pathOf(r) === "/admin" ? 403 : 200);

/** What the origin must receive for a forwarded request, as one comparable string. */
function expected(r: Req, run: number): string {
  const listed = new Set(r.headers.filter(([n]) => n.toLowerCase() === "connection").flatMap(([, v]) => v.toLowerCase().split(",").map((t) => t.trim())));
  const headers: [string, string][] = [["host", r.host]];
  for (const [n, v] of r.headers) if (!HOP.has(n.toLowerCase()) && !listed.has(n.toLowerCase())) headers.push([n, v]);
  headers.push(["x-run", String(run)], ["x-forwarded-for", "127.0.0.1"], ["x-forwarded-proto", "https"], ["x-forwarded-host", r.host]);
  // Framing: as the client framed it; a body-less POST, PUT or PATCH says `content-length: 0`.
  const data = bodyOf(r);
  if (r.body.kind === "chunked") headers.push(["transfer-encoding", "chunked"]);
  else if (data.length) headers.push(["content-length", String(data.length)]);
  else if (r.method === "POST" || r.method === "PUT" || r.method === "PATCH") headers.push(["content-length", "0"]);
  return show(r.method, targetOf(r), headers, data);
}

const show = (method: string, target: string, headers: [string, string][], body: string) =>
  `${method} ${target}\n${headers.map(([n, v]) => `${n.toLowerCase()}: ${v}`).join("\n")}\n\n${JSON.stringify(body)}`;
const received = (m: Recorded) => show(m.method, m.target, m.headers, m.body);

// ---- the property -----------------------------------------------------------------------
describe("HTTP/1 differential fuzzing through certgate", () => {
  let proxy: Proxy;
  let origin: Recorder;
  beforeAll(async () => {
    origin = await startRecorder();
    proxy = await startProxy((pk) =>
      baseModel(pk, origin.url, [{ hostname: "localhost" }], { rules: [{ id: "no-admin", expression: 'http.request.uri.path eq "/admin"', action: "block" }] }),
    );
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  /** Writes the pieces one read apart and collects the answer until `enough` responses or the close. */
  async function send(pieces: string[], enough: number): Promise<{ text: string; closed: boolean; stuck: boolean }> {
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
    socket.destroy();
    return out;
  }

  let run = 0;
  it("whatever reaches the origin is exactly, and only, what certgate decided to forward", async () => {
    await fc.assert(
      fc.asyncProperty(stream, async ({ requests, garbage, splits }) => {
        const id = ++run;
        // Requests after a Connection: close, as a header or a trailer, are never read.
        const closeAt = requests.findIndex((r) => r.close || (r.body.kind === "chunked" && r.body.trailers.includes("Connection: close")));
        const live = closeAt < 0 ? requests : requests.slice(0, closeAt + 1);
        const before = garbage ? garbage.at % (live.length + 1) : live.length;
        const served = live.slice(0, before);
        let wire = served.map((r) => serialise(r, id)).join("");
        if (garbage) wire += garbage.text + live.slice(before).map((r) => serialise(r, id)).join("");
        const cuts = [...new Set(splits.map((f) => Math.floor(f * wire.length)))].sort((a, b) => a - b);
        const pieces = [0, ...cuts].map((c, i, all) => wire.slice(c, all[i + 1] ?? wire.length)).filter((p) => p.length);

        const { text, closed, stuck } = await send(pieces, garbage || closeAt >= 0 ? Infinity : served.length);
        expect(stuck, `answers so far: ${JSON.stringify(text)}`).toBe(false);
        const answers = parseResponses(text);
        const forward = served.map((r, i) => ({ r, i })).filter(({ r }) => statusOf(r) === 200);
        const mine = () => origin.messages.filter((m) => origin.header(m, "x-run")[0] === String(id));

        // The client's answers: the model's statuses in order. With garbage, the requests still
        // queued behind it may go unanswered; then at most one 400 and the close (none when the
        // garbage cuts a body being forwarded).
        const statuses = answers.map((a) => a.status);
        const modelled = served.map(statusOf);
        if (!garbage) expect(statuses).toEqual(modelled);
        else {
          let k = 0;
          while (k < statuses.length && statuses[k] === modelled[k]) k++;
          expect([[], [400]]).toContainEqual(statuses.slice(k));
          expect(closed).toBe(true);
        }
        // Each 200 is the origin's (echo) answer to the request in its place.
        answers.forEach((a, i) => {
          const r = served[i];
          if (a.status === 200 && r) expect(a.body).toBe(`${r.method} ${targetOf(r)} ${bodyOf(r).length}`);
        });

        // The origin: a prefix of the forwarded requests (all of them without garbage), each exactly as modelled.
        const answered = answers.filter((a, i) => a.status === 200 && i < served.length).length;
        if (!garbage) expect(mine().length).toBe(forward.length); // each was recorded before its answer went out
        const got = mine().map(received);
        expect(got.length).toBeGreaterThanOrEqual(answered);
        expect(got).toEqual(forward.slice(0, got.length).map(({ r }) => expected(r, id)));
        expect(origin.errors).toEqual([]);
        expect(origin.raw).toEqual([]);
      }),
      // Bounded for CI (about 3 s here); FUZZ_RUNS=5000 FUZZ_MS=600000 for a longer hunt.
      { numRuns: Number(process.env.FUZZ_RUNS ?? 200), interruptAfterTimeLimit: Number(process.env.FUZZ_MS ?? 15_000) },
    );
  });
});
