// Origin chaos on real sockets: an origin that closes keep-alive connections at random
// moments (before, during and after a response, and while idle), resets, stalls, restarts
// under load, or answers with trailers; among the clients, some hang up as soon as they
// have sent their request. Every request must get its own answer, a 502 or a
// 504 that the origin's behaviour explains, or one safe retry: never a hang (a request
// waiting on certgate's bookkeeping would get the read timeout's 504), never another
// request's response. The origin echoes each request's path as its body and in x-path.
import https from "node:https";
import type net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { baseModel, connect, pki, rawExchange, startProxy, type Proxy } from "../helpers/harness.ts";
import { answer, startRawOrigin, type OriginRequest, type RawOrigin } from "../helpers/rawOrigin.ts";
import { prng } from "../helpers/prng.ts";

const READ_TIMEOUT_MS = 400;
/** A request still unanswered after this is a hang (the default read timeout is 30 s). */
const HANG_MS = 8_000;

type Action = "ok" | "late" | "close_after" | "close_before" | "reset" | "close_during" | "stall";
const ACTIONS: [Action, number][] = [
  ["ok", 55],
  ["close_after", 12],
  ["close_before", 12],
  ["reset", 9],
  ["close_during", 8],
  ["stall", 4],
];

function pick(rand: () => number): Action {
  let x = rand() * 100;
  for (const [a, w] of ACTIONS) if ((x -= w) < 0) return a;
  return "ok";
}

/** What the client saw: a status and body, the proxy cutting the response short, or nothing in time. */
interface Outcome {
  status: number | "cut" | "hang";
  body: string;
  xPath: string | undefined;
  xTrailer: string | undefined;
}

function send(port: number, agent: https.Agent | false, ca: string, method: string, path: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const body = method === "POST" ? `body of ${path}` : undefined;
    const req = https.request(
      { host: "127.0.0.1", port, servername: "localhost", ca, method, path, agent, headers: { host: "localhost", ...(body ? { "content-length": String(body.length) } : {}) } },
      (res) => {
        let text = "";
        res.on("data", (c: Buffer) => (text += c.toString()));
        res.on("end", () => {
          clearTimeout(timer);
          const h = (n: string) => res.headers[n] as string | undefined;
          resolve({ status: res.statusCode ?? 0, body: text, xPath: h("x-path"), xTrailer: h("x-trailer") });
        });
        res.on("aborted", () => done("cut"));
      },
    );
    const done = (status: "cut" | "hang") => {
      clearTimeout(timer);
      req.destroy();
      resolve({ status, body: "", xPath: undefined, xTrailer: undefined });
    };
    const timer = setTimeout(() => done("hang"), HANG_MS);
    req.on("error", () => done("cut"));
    req.end(body);
  });
}

/** Requests the origin holds until their client hung up: path to the origin's answer. */
const heldForHangUp = new Map<string, (reply: () => void) => void>();

/** A client that sends its request and, once the origin has it, its FIN; then the origin answers. */
function hangUp(port: number, ca: string, path: string): Promise<void> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca }, () => {
      heldForHangUp.set(path, (reply) => {
        s.end();
        reply();
      });
      s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    });
    s.on("error", () => {});
    s.on("close", () => resolve());
    s.resume();
  });
}

describe("origin chaos", () => {
  let proxy: Proxy;
  let origin: RawOrigin;
  let ca: string;

  beforeAll(async () => {
    ca = (await pki()).serverCa.certPem;
    origin = await startRawOrigin();
    const route = { id: "r", hostname: "localhost", origin: origin.url, read_timeout_ms: READ_TIMEOUT_MS, connect_timeout_ms: 1_000 };
    proxy = await startProxy((p) => baseModel(p, origin.url, [{ hostname: "localhost" }], { routes: [route] }));
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });
  beforeEach(() => {
    origin.seen = [];
    origin.handler = answer;
  });

  /**
   * Runs `total` requests from `workers` concurrent loops over a few keep-alive agents and some
   * fresh connections; each answer is timed, and `after` runs before its worker's next request.
   */
  async function load(
    total: number,
    workers: number,
    request: (i: number) => { method: string; path: string },
    after?: (o: Outcome) => Promise<void> | void,
  ): Promise<Map<string, Outcome & { method: string; start: number; end: number }>> {
    const agents = [0, 1, 2].map(() => new https.Agent({ keepAlive: true, maxSockets: 3 }));
    const out = new Map<string, Outcome & { method: string; start: number; end: number }>();
    let next = 0;
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = next++; i < total; i = next++) {
          const { method, path } = request(i);
          if (path.startsWith("/h/")) {
            await hangUp(proxy.port, ca, path);
            continue;
          }
          const agent = i % 7 === 0 ? false : agents[i % agents.length]!;
          const start = performance.now();
          const o = await send(proxy.port, agent, ca, method, path);
          out.set(path, { method, start, end: performance.now(), ...o });
          await after?.(o);
        }
      }),
    );
    for (const a of agents) a.destroy();
    return out;
  }

  it("closes, resets and stalls at random moments: every request gets its own answer, an explained 502/504, or one safe retry", async () => {
    const rand = prng(22);
    const total = 240;
    // One request in nine is from a client that hangs up after sending it; the origin answers just after.
    const plan = Array.from({ length: total }, (_, i) =>
      i % 9 === 4 ? { path: `/h/${i}`, method: "GET", action: "late" as Action } : { path: `/c/${i}`, method: rand() < 0.25 ? "POST" : "GET", action: pick(rand) },
    );
    const action = new Map(plan.map((p) => [p.path, p.action]));
    /** Per path: attempts the origin saw, and how many requests its first attempt's connection had served before. */
    const seen = new Map<string, { attempts: number; firstServed: number }>();
    const stalled = new Set<net.Socket>();
    const served = new WeakMap<net.Socket, number>();
    origin.handler = (r: OriginRequest) => {
      const s = r.socket;
      served.set(s, r.served + 1);
      const rec = seen.get(r.path) ?? { attempts: 0, firstServed: r.served };
      seen.set(r.path, rec);
      // A retry is answered: the chaos is for the first attempt.
      if (++rec.attempts > 1) return answer(r);
      switch (action.get(r.path)) {
        case "close_after":
          answer(r);
          return void s.end();
        case "close_before":
          return void s.destroy();
        case "reset":
          return void s.resetAndDestroy();
        case "close_during":
          s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${r.path.length + 10}\r\nx-path: ${r.path}\r\n\r\n${r.path.slice(0, 2)}`);
          return void setImmediate(() => s.destroy());
        case "stall":
          return void stalled.add(s);
        case "late":
          return heldForHangUp.get(r.path)!(() => answer(r));
        default:
          return answer(r);
      }
    };
    // Meanwhile, keep-alive connections that served a request are closed while idle, as an
    // origin's keep-alive timeout does, at random moments relative to the proxy's next request.
    const closer = setInterval(() => {
      const idle = [...origin.sockets].filter((s) => (served.get(s) ?? 0) > 0 && !stalled.has(s));
      if (idle.length && rand() < 0.7) idle[Math.floor(rand() * idle.length)]!.destroy();
    }, 7);
    let results: Awaited<ReturnType<typeof load>>;
    try {
      results = await load(total, 8, (i) => plan[i]!);
    } finally {
      clearInterval(closer);
    }

    const problems: string[] = [];
    for (const { path, method, action: a } of plan) {
      const o = results.get(path);
      if (!o) continue; // the client hung up
      const rec = seen.get(path) ?? { attempts: 0, firstServed: 0 };
      const why = `${method} ${path} (${a}, origin saw ${rec.attempts} attempt(s), first on a connection that had served ${rec.firstServed}): got ${o.status}`;
      if (o.status === "hang") problems.push(`${why}: no answer`);
      else if (o.status === 200) {
        if (o.body !== path || o.xPath !== path) problems.push(`${why} with another request's response (${o.xPath}: ${o.body})`);
        if (rec.attempts === 2 && (method === "POST" || !["close_before", "reset"].includes(a))) problems.push(`${why}: retried`);
      } else if (o.status === 504) {
        if (a !== "stall") problems.push(`${why}: a 504 though the origin did not stall`);
      } else if (o.status === 502) {
        const explained = (["close_before", "reset"].includes(a) && !(method === "GET" && rec.firstServed > 0)) || (method === "POST" && rec.attempts === 0);
        if (!explained) problems.push(`${why}: a 502 the origin does not explain`);
      } else if (o.status === "cut") {
        if (a !== "close_during") problems.push(`${why}: cut short`);
      } else problems.push(`${why}: unexpected status`);
      if (rec.attempts > (method === "POST" ? 1 : 2)) problems.push(`${why}: sent too often`);
    }
    expect(problems).toEqual([]);
    // The mix did exercise what it is meant to: answers, retries, 502s, 504s and cuts.
    const statuses = new Set([...results.values()].map((o) => o.status));
    expect([...statuses].sort()).toEqual([200, 502, 504, "cut"]);
    expect([...seen.values()].some((r) => r.attempts === 2)).toBe(true);
  });

  it("restarts under load: every request gets its own answer or a 502 while the origin is down, and all succeed once it is back", async () => {
    const total = 200;
    const workers = 8;
    const restartsWanted = 4;
    // The origin restarts after every 40 answers (progress, not a clock: a fast or a slow machine
    // sees the same restarts): it stops (its connections dropped), stays down until a request
    // has failed meanwhile (the proxy answers it, with a 502, instead of leaving it hanging),
    // and listens again on the same port.
    const windows: { from: number; to: number }[] = [];
    let down: Promise<void> | undefined;
    let failures = 0;
    let wake: (() => void) | undefined;
    const restart = async () => {
      const from = performance.now();
      const before = failures;
      await origin.stop();
      if (failures === before) await new Promise<void>((r) => (wake = r));
      await origin.listen();
      windows.push({ from, to: performance.now() });
    };
    let answered = 0;
    const results = await load(
      total,
      workers,
      (i) => ({ method: i % 5 === 0 ? "POST" : "GET", path: `/r/${i}` }),
      // A client that got a 502 waits for the restart to finish before its next request, as a
      // client backing off would: a restart costs each worker at most one 502, not a burst of them.
      async (o) => {
        if (o.status !== 200) {
          failures++;
          wake?.();
          wake = undefined;
        }
        if (++answered % 40 === 0 && windows.length + (down ? 1 : 0) < restartsWanted) down ??= restart().finally(() => (down = undefined));
        if (o.status === 502 && down) await down;
      },
    );
    await down;
    expect(windows.length).toBe(restartsWanted);
    const problems: string[] = [];
    let failed = 0;
    for (const [path, o] of results) {
      if (o.status === 200) {
        if (o.body !== path || o.xPath !== path) problems.push(`${path}: another request's response (${o.xPath}: ${o.body})`);
      } else if (o.status === 502) {
        failed++;
        // A 502 only for a request that was under way while the origin was down.
        if (!windows.some((w) => o.start <= w.to && o.end >= w.from)) problems.push(`${o.method} ${path}: a 502 while the origin was up`);
      } else problems.push(`${o.method} ${path}: ${o.status}`);
    }
    expect(problems).toEqual([]);
    // At least one 502 per restart (its window ends on one), at most one per worker per restart
    // (the workers back off), and the rest succeed.
    expect(failed).toBeGreaterThanOrEqual(restartsWanted);
    expect(failed).toBeLessThanOrEqual(restartsWanted * workers);
    expect(results.size - failed).toBeGreaterThanOrEqual(total - restartsWanted * workers);
    // Recovery: once the restarts are over, every request gets its own answer.
    const recovered = await load(20, 4, (i) => ({ method: i % 5 === 0 ? "POST" : "GET", path: `/after/${i}` }));
    expect([...recovered].filter(([path, o]) => !(o.status === 200 && o.body === path && o.xPath === path)).map(([path, o]) => `${path}: ${o.status}`)).toEqual([]);
    expect(recovered.size).toBe(20);
  });

  it("fails while the request body is still arriving: the 502 says `connection: close` before the connection closes", async () => {
    // The origin resets at the request's first bytes; the client has sent 10 of 100 body bytes.
    origin.onBytes = (s) => s.resetAndDestroy();
    try {
      const { socket } = await connect(proxy.port);
      const closed = new Promise<void>((r) => socket.once("close", () => r()));
      const res = await rawExchange(socket, "POST /early HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789");
      expect(res.status).toBe(502);
      // Without it a keep-alive client sends its next request into a closing connection.
      expect(res.head).toMatch(/\r\nconnection: close(\r\n|$)/i);
      await closed;
    } finally {
      origin.onBytes = null;
    }
  });

  it("answers with trailers: no trailer ever reaches another request's response", async () => {
    // Depends on llhttp.ts no longer carrying a response's trailers into the next message's head.
    origin.handler = (r) =>
      r.path.startsWith("/t/")
        ? r.socket.write(
            `HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-trailer\r\nx-path: ${r.path}\r\n\r\n${r.path.length.toString(16)}\r\n${r.path}\r\n0\r\nx-trailer: ${r.path}\r\n\r\n`,
          )
        : answer(r);
    const results = await load(60, 4, (i) => ({ method: "GET", path: i % 2 ? `/t/${i}` : `/plain/${i}` }));
    const wrong = [...results].filter(([path, o]) => o.status !== 200 || o.body !== path || o.xPath !== path || (o.xTrailer !== undefined && o.xTrailer !== path));
    expect(wrong).toEqual([]);
  });
});
