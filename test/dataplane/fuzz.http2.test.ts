// HTTP/2 differential fuzzing: random streams from a raw HTTP/2 client (hand-built frames and
// HPACK, so it can send what node:http2 would refuse to: upper-case names, connection-specific
// fields, CR/LF/NUL in values, a host field beside :authority, cookie crumbs), several at once
// on one connection, bodies split into DATA frames, through certgate to a recording HTTP/1.1
// origin with its own strict parser. The expectation comes from a model of the generated
// requests: a field that makes a request malformed (RFC 9113 §8.2) never reaches the origin
// (nghttp2 resets the stream for most, and drops a regular field whose value holds CR, LF or
// NUL: either way no byte of it reaches the origin); a blocked request never does; any other
// reaches it exactly once, exactly as the model says (method, normalised target, Host, kept
// and added headers, cookies joined, the body), and nothing else reaches it at all.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, startProxy, type Proxy } from "../helpers/harness.ts";
import { startRecorder, type Recorded, type Recorder } from "../helpers/recorder.ts";
import { FLAG, FRAME, frame, hpack, rawH2 } from "../helpers/h2raw.ts";

interface Req {
  method: string;
  segments: string[];
  query: string | null;
  authority: string;
  /** A `host` field too (equal to :authority in another case, or another host). */
  host: string | null;
  headers: [string, string][];
  cookies: string[];
  body: string[] | null;
  declareLength: boolean;
}

const own = fc.tuple(fc.constantFrom("x-a", "x-b", "accept", "user-agent"), fc.stringMatching(/^[a-z0-9;=,/ ]{0,10}$/).map((v) => v.trim()));
// Each makes the request malformed in HTTP/2 (RFC 9113 §8.2.1, §8.2.2): it must never reach the origin.
const malformed = fc.constantFrom<[string, string]>(
  ["X-Upper", "1"],
  ["connection", "keep-alive"],
  ["transfer-encoding", "chunked"],
  ["upgrade", "websocket"],
  ["keep-alive", "timeout=5"],
  ["proxy-connection", "keep-alive"],
  ["te", "gzip"],
  ["x-crlf", "a\r\nx-injected: 1"],
  ["x-lf", "a\nGET /admin HTTP/1.1"],
  ["x-nul", "a\x00b"],
);
// Never forwarded as sent, forwarding on or off.
const spoofed = fc.constantFrom<[string, string]>(["x-forwarded-for", "6.6.6.6"], ["forwarded", "for=6.6.6.6"], ["x-forwarded-client-cert", "Hash=00"], ["client-cert", ":AA==:"], ["x-real-ip", "6.6.6.6"], ["te", "trailers"]);
const req: fc.Arbitrary<{ r: Req; bad: [string, string] | null }> = fc.record({
  r: fc.record({
    method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
    segments: fc.array(fc.constantFrom("a", "admin", "%61dmin", "x-1", ""), { minLength: 1, maxLength: 4 }),
    query: fc.option(fc.constantFrom("q=1", "r=/admin", "a=%2F//b"), { nil: null }),
    authority: fc.constantFrom("localhost", "LocalHost", "localhost:443"),
    host: fc.option(fc.constantFrom("localhost", "other.test"), { nil: null, freq: 4 }),
    headers: fc.array(fc.oneof({ weight: 3, arbitrary: own }, { weight: 1, arbitrary: spoofed }), { maxLength: 4 }),
    cookies: fc.array(fc.constantFrom("a=1", "b=2", "c=x y"), { maxLength: 3 }),
    body: fc.option(fc.array(fc.string({ minLength: 1, maxLength: 30 }), { minLength: 1, maxLength: 3 }), { nil: null }),
    declareLength: fc.boolean(),
  }),
  bad: fc.option(malformed, { nil: null, freq: 3 }),
});

const pathOf = (r: Req) => `/${r.segments.join("/")}`.replace(/%61/g, "a").replace(/\/{2,}/g, "/");
const targetOf = (r: Req) => `${pathOf(r)}${r.query === null ? "" : `?${r.query}`}`;
const bodyOf = (r: Req) => (r.body ?? []).join("");
const SPOOFED = new Set(["x-forwarded-for", "forwarded", "x-forwarded-client-cert", "client-cert", "x-real-ip", "te"]);

/** Whether the model says this request reaches the origin. */
function forwarded(r: Req, bad: [string, string] | null): boolean {
  if (bad) return false;
  // A host field naming another host than :authority is a 400 (as a repeated Host on HTTP/1.1).
  if (r.host !== null && r.host.toLowerCase() !== r.authority.toLowerCase()) return false;
  return pathOf(r) !== "/admin";
}

function expected(r: Req, id: string): string {
  const headers: [string, string][] = [["host", r.authority]];
  for (const [n, v] of r.headers) if (!SPOOFED.has(n)) headers.push([n, v]);
  headers.push(["x-id", id]);
  if (r.cookies.length) headers.push(["cookie", r.cookies.join("; ")]);
  headers.push(["x-forwarded-for", "127.0.0.1"], ["x-forwarded-proto", "https"], ["x-forwarded-host", r.authority]);
  const data = bodyOf(r);
  if (r.body) headers.push(r.declareLength ? ["content-length", String(Buffer.byteLength(data))] : ["transfer-encoding", "chunked"]);
  else if (r.method === "POST" || r.method === "PUT") headers.push(["content-length", "0"]);
  return show(r.method, targetOf(r), headers, Buffer.from(data).toString("latin1"));
}
const show = (method: string, target: string, headers: [string, string][], body: string) =>
  `${method} ${target}\n${headers.map(([n, v]) => `${n.toLowerCase()}: ${v}`).join("\n")}\n\n${JSON.stringify(body)}`;
const received = (m: Recorded) => show(m.method, m.target, m.headers, m.body);

describe("HTTP/2 differential fuzzing through certgate", () => {
  let proxy: Proxy;
  let origin: Recorder;
  beforeAll(async () => {
    origin = await startRecorder();
    proxy = await startProxy((pk) => baseModel(pk, origin.url, [{ hostname: "localhost" }], { rules: [{ id: "no-admin", expression: 'http.request.uri.path eq "/admin"', action: "block" }] }));
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });

  let run = 0;
  it("whatever reaches the origin is exactly, and only, what certgate decided to forward", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(req, { minLength: 1, maxLength: 8 }), async (reqs) => {
        const runId = ++run;
        const c = await rawH2(proxy.port);
        try {
          await c.waitFor((f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK));
          const ids = reqs.map((_, i) => `${runId}-${i}`);
          // Every HEADERS first (all streams open at once), then the bodies.
          reqs.forEach(({ r, bad }, i) => {
            const fields: [string, string][] = [[":method", r.method], [":scheme", "https"], [":authority", r.authority], [":path", targetOf(r).replace(pathOf(r), `/${r.segments.join("/")}`)]];
            if (r.host !== null) fields.push(["host", r.host]);
            fields.push(...r.headers, ["x-id", ids[i]!]);
            for (const k of r.cookies) fields.push(["cookie", k]);
            if (bad) fields.push(bad);
            if (r.body && r.declareLength) fields.push(["content-length", String(Buffer.byteLength(bodyOf(r)))]);
            c.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | (r.body ? 0 : FLAG.END_STREAM), 1 + 2 * i, hpack(fields)));
          });
          reqs.forEach(({ r }, i) => {
            const parts = r.body ?? [];
            parts.forEach((p, j) => c.send(frame(FRAME.DATA, j === parts.length - 1 ? FLAG.END_STREAM : 0, 1 + 2 * i, Buffer.from(p))));
          });
          // Every stream is answered (HEADERS) or reset; none is left hanging.
          await Promise.all(reqs.map((_, i) => c.waitFor((f) => f.stream === 1 + 2 * i && (f.type === FRAME.RST_STREAM || (f.type === FRAME.DATA && (f.flags & FLAG.END_STREAM) !== 0) || (f.type === FRAME.HEADERS && (f.flags & FLAG.END_STREAM) !== 0))).catch(() => null)));
          for (const [i, { r, bad }] of reqs.entries()) {
            const got = origin.messages.filter((m) => origin.header(m, "x-id")[0] === ids[i]);
            if (!forwarded(r, null)) {
              expect(got.map(received), `stream ${i} must not reach the origin`).toEqual([]);
              continue;
            }
            // With a malformed field: refused whole, or (nghttp2's choice for bad values) forwarded without that field.
            if (bad && got.length === 0) continue;
            expect(got.length, `stream ${i}`).toBe(1);
            expect(received(got[0]!)).toBe(expected(r, ids[i]!));
            if (bad) expect(bad[0], "a connection-specific or upper-case field always refuses the stream").toMatch(/^x-(crlf|lf|nul)$/);
          }
          // Nothing reached the origin that this run did not send as one whole request.
          expect(origin.errors).toEqual([]);
          const mine = origin.messages.filter((m) => origin.header(m, "x-id")[0]?.startsWith(`${runId}-`));
          expect(mine.length).toBeLessThanOrEqual(reqs.filter(({ r }) => forwarded(r, null)).length);
          expect(mine.length).toBeGreaterThanOrEqual(reqs.filter(({ r, bad }) => forwarded(r, bad)).length);
          expect(origin.messages.filter((m) => origin.header(m, "x-injected").length || m.target.split("?")[0] === "/admin")).toEqual([]);
        } finally {
          c.socket.destroy();
        }
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 60) },
    );
  });
});
