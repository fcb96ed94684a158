// The soak harness: certgate as an operator runs it (`node --openssl-config=… src/cli.js serve`,
// as `npm start` does; a child process with a temp data dir and a bootstrap file, so its memory
// is its own), under steady load for a bounded time, loopback only:
//
//   keep-alive   16 connections, one GET every 20 ms each, good client certificate
//   HTTP/2       4 connections, two streams every 20 ms each (GET), good client certificate
//   new conns    20 new mTLS connections per second, one GET each (Connection: close); one in
//                four presents the latest revoked certificate (403 expected), one in eight a
//                certificate about to be revoked, one in sixteen hangs up right after sending
//                its request (as `printf ... | openssl s_client` does)
//   flip host    a second host whose bundle's `enforced` flips (a policy change: keep-alive
//                connections get 421 and reconnect); clients with and without certificates
//   admin        a route written every 2 s; a CRL revoking one more certificate every 60 s;
//                the flip every 20 s
//
// Every 30 s it samples certgate's own /metrics (RSS, V8 heap, external memory, open fds,
// active handles). It reports failed requests by status and reason (expected refusals apart),
// latency p50/p99/p99.9/max, the memory slope after warm-up (least squares, MB per 10 min; the
// RSS slope also for each whole --window after it),
// and writes JSON and an SVG plot of memory over time. Exit status 1 if any unexpected failure
// occurred or the slowest request took longer than --max-latency.
//
//   npm run soak -- --duration 1h [--sample 30s] [--warmup 5m] [--window 30m] [--out bench/results] [--node-args="--flag ..."]
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import http2 from "node:http2";
import { performance } from "node:perf_hooks";
import tls from "node:tls";
import { parseArgs } from "node:util";
import { startEcho } from "../src/demo/echo.ts";
import { createDevPki, type DevPki } from "../src/pki/devpki.ts";
import { issue, type Issued } from "../src/pki/issue.ts";
import { signCrl } from "./lib/crl.ts";
import { quantileMs, record, type Histogram } from "../src/loadgen/hist.ts";
import { ResponseReader } from "../src/loadgen/http1.ts";
import { freePort, REPO, serveArgs, waitForPort } from "./lib/servers.ts";
import { cpuCount, cpuModel } from "./lib/proc.ts";
import { leastSquaresSlope } from "./lib/slope.ts";
import { memoryPlot } from "./lib/soakplot.ts";
import { FLIP_HOST, writeChurnConfig } from "./lib/churnconfig.ts";

/** "1h", "90m", "30s", "500ms" or plain seconds, in milliseconds. */
function duration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`${what}: expected a duration like 1h, 10m, 30s or 500ms, got "${s}"`);
  return Number(m[1]) * { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] ?? "s"]!;
}

/** A whole number ≥ 0 (0 turns that kind of load off). */
function count(s: string, what: string): number {
  if (!/^\d+$/.test(s.trim())) throw new Error(`${what}: expected a whole number ≥ 0, got "${s}"`);
  return Number(s);
}

const { values: a } = parseArgs({
  options: {
    duration: { type: "string", default: "10m" },
    sample: { type: "string", default: "30s" },
    warmup: { type: "string" },
    window: { type: "string", default: "30m" },
    out: { type: "string", default: "bench/results" },
    "ka-conns": { type: "string", default: "16" },
    "ka-interval": { type: "string", default: "20ms" },
    "h2-conns": { type: "string", default: "4" },
    "new-rate": { type: "string", default: "20" },
    "route-every": { type: "string", default: "2s" },
    "revoke-every": { type: "string", default: "60s" },
    "flip-every": { type: "string", default: "20s" },
    "max-latency": { type: "string", default: "1s" },
    // One process by default: the memory samples (RSS, heap, handles) then describe all of certgate.
    workers: { type: "string", default: "1" },
    "log-level": { type: "string", default: "warn" },
    // Extra Node or V8 flags for certgate (for example "--max-old-space-size=256"), space-separated.
    "node-args": { type: "string", default: "" },
  },
  strict: true,
});
const DURATION_MS = duration(a.duration, "--duration");
const opts = {
  durationMs: DURATION_MS,
  sampleMs: duration(a.sample, "--sample"),
  warmupMs: a.warmup ? duration(a.warmup, "--warmup") : Math.min(300_000, DURATION_MS / 5),
  windowMs: duration(a.window, "--window"),
  kaConns: count(a["ka-conns"], "--ka-conns"),
  kaIntervalMs: duration(a["ka-interval"], "--ka-interval"),
  h2Conns: count(a["h2-conns"], "--h2-conns"),
  newRate: count(a["new-rate"], "--new-rate"),
  routeEveryMs: duration(a["route-every"], "--route-every"),
  revokeEveryMs: duration(a["revoke-every"], "--revoke-every"),
  flipEveryMs: duration(a["flip-every"], "--flip-every"),
  maxLatencyMs: duration(a["max-latency"], "--max-latency"),
  logLevel: a["log-level"],
  nodeArgs: a["node-args"].split(/\s+/).filter(Boolean),
};
/** A request not answered by then counts as a hang (certgate's own origin read timeout is 30 s). */
const CLIENT_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));
const log = (s: string) => console.error(`[soak ${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${s}`);
const t0 = performance.now();

// ------------------------------------------------------------------ outcomes

class Stats {
  readonly hist: Histogram = {};
  maxMs = 0;
  maxAt = "";
  answered = 0;
  ok = 0;
  readonly expected: Record<string, number> = {};
  readonly unexpected: Record<string, number> = {};
  readonly examples: string[] = [];
  admin = { ok: 0, failed: 0 };

  latency(ms: number, what: string): void {
    record(this.hist, ms * 1000);
    if (ms > this.maxMs) {
      this.maxMs = ms;
      this.maxAt = `${what} at ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    }
  }
  good(): void {
    this.ok++;
  }
  refused(key: string): void {
    this.expected[key] = (this.expected[key] ?? 0) + 1;
  }
  failed(key: string, detail: string): void {
    this.unexpected[key] = (this.unexpected[key] ?? 0) + 1;
    const line = `${((performance.now() - t0) / 1000).toFixed(1)} s: ${key}: ${detail}`;
    if (this.examples.length >= 25) return;
    this.examples.push(line);
    log(`UNEXPECTED ${line}`);
  }
}
const stats = new Stats();

interface Reply {
  status: number;
  /** First line of the body: the refusal's reason, or the echo's JSON start. */
  reason: string;
  body: string;
  close: boolean;
}

/** One request on an open socket: its response, or the error that ended it. */
function exchange(socket: tls.TLSSocket, request: string): Promise<Reply | { error: string }> {
  return new Promise((resolve) => {
    const reader = new ResponseReader();
    const chunks: Buffer[] = [];
    const done = (r: Reply | { error: string }) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("close", onClose);
      socket.off("error", onError);
      resolve(r);
    };
    const onData = (d: Buffer) => {
      chunks.push(d);
      let complete: boolean;
      try {
        complete = reader.feed(d);
      } catch (e) {
        return done({ error: `malformed response: ${(e as Error).message}` });
      }
      if (!complete) return;
      const text = Buffer.concat(chunks).toString("latin1");
      const body = text.slice(text.indexOf("\r\n\r\n") + 4);
      done({ status: reader.status, reason: body.split("\n")[0]!.slice(0, 120), body, close: reader.close });
    };
    const onClose = () => done({ error: "connection closed before the response" });
    const onError = (e: Error) => done({ error: (e as NodeJS.ErrnoException).code ?? e.message });
    const timer = setTimeout(() => done({ error: `no response within ${CLIENT_TIMEOUT_MS} ms` }), CLIENT_TIMEOUT_MS);
    socket.on("data", onData);
    socket.on("close", onClose);
    socket.on("error", onError);
    socket.write(request);
  });
}

function open(port: number, servername: string, ctx: tls.SecureContext): Promise<tls.TLSSocket | { error: string }> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, secureContext: ctx });
    const timer = setTimeout(() => (s.destroy(), resolve({ error: "handshake timeout" })), CLIENT_TIMEOUT_MS);
    s.once("secureConnect", () => {
      clearTimeout(timer);
      s.removeAllListeners("error");
      s.on("error", () => {});
      resolve(s);
    });
    s.once("error", (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ error: e.code ?? e.message });
    });
  });
}

const get = (path: string, host: string, close = false) => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: certgate-soak\r\n${close ? "Connection: close\r\n" : ""}\r\n`;

/** The echo origin answers JSON with the URL it received: a response for another request shows. */
function isOwn(r: Reply, path: string): boolean {
  try {
    return r.status === 200 && (JSON.parse(r.body) as { url: string }).url === path;
  } catch {
    return false;
  }
}

// ------------------------------------------------------------------ the run

interface Sample {
  t: number; // seconds since the load started
  rssMb: number | null;
  heapUsedMb: number | null;
  heapTotalMb: number | null;
  externalMb: number | null;
  openFds: number | null;
  activeHandles: number | null;
  requests: number;
}

async function main(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "certgate-soak-"));
  const pki = await createDevPki({ serverNames: ["localhost", FLIP_HOST] });
  const echo = await startEcho();
  const port = await freePort();
  const admin = await freePort();
  const token = randomBytes(24).toString("hex");
  const config = writeChurnConfig(dir, pki, echo.url);
  const childLog = join(dir, "certgate.log");
  // As `npm start` runs it: with certgate's OpenSSL configuration (one session ticket per handshake).
  const child = spawn(process.execPath, serveArgs({ port, admin, data: join(dir, "data"), config, workers: a.workers, nodeArgs: opts.nodeArgs }), {
    env: { ...process.env, CERTGATE_ADMIN_TOKEN: token, CERTGATE_LOG_LEVEL: opts.logLevel },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out = createWriteStream(childLog);
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  // Interrupted (Ctrl-C, or SIGTERM to this process alone): certgate is stopped too, never left running.
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.once(sig, () => {
      log(`${sig}: stopping certgate (pid ${child.pid}); kept ${dir} (certgate's log: ${childLog})`);
      child.kill("SIGTERM");
      process.exit(sig === "SIGINT" ? 130 : 143);
    });
  let exitCode = 1;
  try {
    await waitForPort(port, child, "certgate", childLog, 30_000);
    await waitForPort(admin, child, "certgate admin", childLog, 30_000);
    log(`certgate pid ${child.pid} on 127.0.0.1:${port} (admin ${admin}), echo origin ${echo.url}; ${JSON.stringify(opts)}`);
    const result = await drive(pki, port, `http://127.0.0.1:${admin}`, token, echo.url, child);
    exitCode = report(result);
  } finally {
    await stop(child);
    echo.server.closeAllConnections();
    echo.server.close();
    if (exitCode === 0) rmSync(dir, { recursive: true, force: true });
    else log(`kept ${dir} (certgate's log: ${childLog})`);
  }
  return exitCode;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

interface Result {
  samples: Sample[];
  loadMs: number;
}

async function drive(pki: DevPki, port: number, adminUrl: string, token: string, originUrl: string, child: ChildProcess): Promise<Result> {
  const ctx = (c?: Issued) => tls.createSecureContext({ ca: pki.serverCa.certPem, cert: c?.certPem, key: c?.keyPem });
  const good = ctx(pki.client);
  const noCert = ctx();
  const api = async (method: string, path: string, body: unknown, type = "application/json"): Promise<boolean> => {
    try {
      const r = await fetch(adminUrl + path, { method, headers: { authorization: `Bearer ${token}`, "content-type": type }, body: JSON.stringify(body) });
      const text = await r.text();
      if (r.ok) return (stats.admin.ok++, true);
      stats.admin.failed++;
      stats.failed(`admin ${method} ${path.replace(/\d+$/, "N")} ${r.status}`, text.slice(0, 200));
    } catch (e) {
      stats.admin.failed++;
      stats.failed(`admin ${method} ${path}`, (e as Error).message);
    }
    return false;
  };

  // Revocation: a "next" certificate in use until it is revoked, then kept in use as "revoked".
  const revokedSerials: string[] = [];
  let crlNumber = 1;
  const victim = async () => ({ issued: await issue({ subject: `O=certgate soak,CN=victim ${crlNumber}`, days: 30 }, pki.ca), revokingSince: Infinity });
  let next = await victim();
  let nextCtx = ctx(next.issued);
  let revoked: { ctx: tls.SecureContext; since: number } | null = null;
  const revokeOne = async () => {
    const v = next;
    v.revokingSince = performance.now();
    revokedSerials.push(v.issued.cert.serialNumber);
    const pem = await signCrl(pki.ca, revokedSerials, ++crlNumber);
    if (await api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem } })) revoked = { ctx: ctx(v.issued), since: performance.now() };
    next = await victim();
    nextCtx = ctx(next.issued);
  };

  // The flip host's mode, with when each change was asked for and when it was answered: it
  // takes effect at some moment in between, so a request overlapping that window may meet either mode.
  let enforced = true;
  const flips: { at: number; done: number; enforced: boolean }[] = [];
  const modesDuring = (from: number, to: number) => {
    const modes = new Set<boolean>();
    let before = true;
    for (const f of flips) if (f.done <= from) before = f.enforced;
    modes.add(before);
    for (const f of flips) if (f.done > from && f.at <= to) modes.add(f.enforced).add(!f.enforced);
    return modes;
  };
  const flip = async () => {
    enforced = !enforced;
    const f = { at: performance.now(), done: Infinity, enforced };
    flips.push(f);
    await api("PATCH", "/tls/mutual_authentications/flip", { data: { type: "mutual_authentication", id: "flip", attributes: { enforced } } }, "application/vnd.api+json");
    f.done = performance.now();
  };

  const start = performance.now();
  const deadline = start + opts.durationMs;
  const running = () => performance.now() < deadline && child.exitCode === null;
  const samples: Sample[] = [];
  const sample = async () => samples.push(await sampleMetrics(adminUrl, (performance.now() - start) / 1000));
  await sample();

  /** A keep-alive connection sending a GET every `interval`; reconnects after a close or an expected 421. */
  const keepAlive = async (i: number, host: string, interval: number) => {
    let socket: tls.TLSSocket | null = null;
    let seq = 0;
    let due = performance.now();
    while (running()) {
      if (!socket) {
        const s = await open(port, host, good);
        if ("error" in s) {
          stats.failed(`keep-alive connect ${host}`, s.error);
          await sleep(interval);
          continue;
        }
        socket = s;
      }
      const path = `/ka/${i}/${seq++}`;
      const sent = performance.now();
      const r = await exchange(socket, get(path, host));
      const ms = performance.now() - sent;
      if ("error" in r) {
        stats.failed(`keep-alive ${host}: ${r.error}`, path);
        socket.destroy();
        socket = null;
      } else {
        stats.answered++;
        stats.latency(ms, `keep-alive ${host}${path} ${r.status}`);
        if (isOwn(r, path)) stats.good();
        else if (host === FLIP_HOST && r.status === 421 && /policy changed/.test(r.reason)) stats.refused("421 policy_changed (flip host, keep-alive)");
        else stats.failed(`keep-alive ${host} ${r.status} ${r.reason}`, path);
        if (r.close || r.status !== 200) {
          socket.destroy();
          socket = null;
        }
      }
      due = Math.max(due + interval, performance.now());
      await sleep(due - performance.now());
    }
    socket?.destroy();
  };

  /** An HTTP/2 connection sending two concurrent GETs every `interval`; reconnects after an error or an expected 421. */
  const h2KeepAlive = async (i: number, host: string, interval: number) => {
    const certs = { ca: pki.serverCa.certPem, cert: pki.client.certPem, key: pki.client.keyPem };
    let session: http2.ClientHttp2Session | null = null;
    let seq = 0;
    let due = performance.now();
    const one = (s: http2.ClientHttp2Session, path: string) =>
      new Promise<Reply | { error: string }>((resolve) => {
        const req = s.request({ ":path": path, ":authority": host, "user-agent": "certgate-soak" });
        const chunks: Buffer[] = [];
        let status = 0;
        const timer = setTimeout(() => (req.close(http2.constants.NGHTTP2_CANCEL), resolve({ error: `no response within ${CLIENT_TIMEOUT_MS} ms` })), CLIENT_TIMEOUT_MS);
        req.on("response", (h) => (status = Number(h[":status"])));
        req.on("data", (d: Buffer) => chunks.push(d));
        req.on("end", () => {
          clearTimeout(timer);
          const body = Buffer.concat(chunks).toString();
          resolve({ status, reason: body.split("\n")[0]!.slice(0, 120), body, close: false });
        });
        req.on("error", (e: NodeJS.ErrnoException) => (clearTimeout(timer), resolve({ error: /REFUSED_STREAM/.test(e.message) ? "REFUSED_STREAM" : (e.code ?? e.message) })));
        req.end();
      });
    while (running()) {
      if (!session || session.closed || session.destroyed) {
        const s = http2.connect(`https://127.0.0.1:${port}`, { ...certs, servername: host });
        s.on("error", () => {});
        const ok = await new Promise<string | null>((r) => {
          const timer = setTimeout(() => r("handshake timeout"), CLIENT_TIMEOUT_MS);
          s.once("connect", () => (clearTimeout(timer), r(null)));
          s.once("error", (e: NodeJS.ErrnoException) => (clearTimeout(timer), r(e.code ?? e.message)));
        });
        if (ok !== null) {
          s.destroy();
          stats.failed(`h2 connect ${host}`, ok);
          await sleep(interval);
          continue;
        }
        session = s;
      }
      const s = session;
      const paths = [`/h2/${i}/${seq++}`, `/h2/${i}/${seq++}`];
      const sent = performance.now();
      const replies = await Promise.all(paths.map((p) => one(s, p).then((r) => ({ r, ms: performance.now() - sent, p }))));
      let reconnect = false;
      for (const { r, ms, p } of replies) {
        reconnect ||= "error" in r || r.status === 421;
        // A stream above the GOAWAY's last stream id was never processed (RFC 9113 §6.8): safe to retry.
        if ("error" in r && r.error === "REFUSED_STREAM" && host === FLIP_HOST) stats.refused("REFUSED_STREAM after a 421's GOAWAY (flip host, HTTP/2)");
        if ("error" in r) {
          if (r.error !== "REFUSED_STREAM" || host !== FLIP_HOST) stats.failed(`h2 ${host}: ${r.error}`, p);
          continue;
        }
        stats.answered++;
        stats.latency(ms, `h2 ${host}${p} ${r.status}`);
        if (isOwn(r, p)) stats.good();
        else if (host === FLIP_HOST && r.status === 421 && /policy changed/.test(r.reason)) stats.refused("421 policy_changed (flip host, HTTP/2)");
        else stats.failed(`h2 ${host} ${r.status} ${r.reason}`, p);
      }
      if (reconnect) {
        s.destroy();
        session = null;
      }
      due = Math.max(due + interval, performance.now());
      await sleep(due - performance.now());
    }
    session?.destroy();
  };

  /** A client that sends its request and shuts its side a moment later, without reading. */
  const hangUp = async (path: string) => {
    const s = await open(port, "localhost", good);
    if ("error" in s) return stats.failed(`new connection: ${s.error}`, path);
    s.write(get(path, "localhost"));
    await sleep(1);
    s.end();
    s.resume();
    await new Promise((r) => (s.destroyed ? r(null) : s.once("close", r)));
    stats.refused("client hung up after sending (no answer expected)");
  };

  /** One new connection, one GET, and what it should have got. */
  const oneShot = async (n: number) => {
    if (n % 16 === 13) return hangUp(`/new/${n}`);
    const kind = n % 8;
    // 0, 4: the latest revoked certificate; 2: the one about to be revoked; 6: the flip host without a certificate; else the good one.
    const useRevoked = (kind === 0 || kind === 4) && revoked !== null;
    const host = kind === 6 ? FLIP_HOST : "localhost";
    const target = kind === 2 ? next : null;
    const c = kind === 6 ? noCert : useRevoked ? revoked!.ctx : kind === 2 ? nextCtx : good;
    const path = `/new/${n}`;
    const sent = performance.now();
    const s = await open(port, host, c);
    const r = "error" in s ? s : await exchange(s, get(path, host, true));
    if (!("error" in s)) s.destroy();
    const end = performance.now();
    if (kind === 6) {
      const modes = modesDuring(sent, end);
      if (!("error" in r) && isOwn(r, path) && modes.has(false)) stats.refused("200 without a certificate (flip host fail-open)");
      // Enforced: TLS 1.3 alert 116 (certificate required), seen by the client as an error once it reads.
      else if (("error" in r ? /CERTIFICATE_REQUIRED|ECONNRESET|closed before/.test(r.error) : r.status === 403) && modes.has(true))
        stats.refused("refused without a certificate (flip host enforced)");
      // Handshake under one mode, request after the flip: the new policy answers 421 (reconnect).
      else if (!("error" in r) && r.status === 421 && /policy changed/.test(r.reason) && modes.size > 1) stats.refused("421 policy_changed (flip host, flip between handshake and request)");
      else stats.failed(`no certificate on ${FLIP_HOST} (${[...modes].map((m) => (m ? "enforced" : "fail_open")).join("/")}): ${"error" in r ? r.error : `${r.status} ${r.reason}`}`, path);
      if (!("error" in r)) stats.latency(end - sent, `new ${host}${path} ${r.status}`);
      return;
    }
    if ("error" in r) return stats.failed(`new connection: ${r.error}`, path);
    stats.answered++;
    stats.latency(end - sent, `new ${host}${path} ${r.status}`);
    const revokedRefusal = r.status === 403 && /revoked/.test(r.reason);
    if (useRevoked) {
      if (revokedRefusal) stats.refused("403 cert_revoked (revoked client)");
      else stats.failed(`revoked certificate got ${r.status} ${r.reason}`, path);
    } else if (isOwn(r, path)) stats.good();
    else if (revokedRefusal && target && target.revokingSince <= end) stats.refused("403 cert_revoked (revoked while in flight)");
    else stats.failed(`new connection ${r.status} ${r.reason}`, path);
  };

  const loops: Promise<unknown>[] = [];
  for (let i = 0; i < opts.kaConns; i++) loops.push(keepAlive(i, "localhost", opts.kaIntervalMs));
  for (let i = 0; i < 2; i++) loops.push(keepAlive(1000 + i, FLIP_HOST, 100));
  for (let i = 0; i < opts.h2Conns; i++) loops.push(h2KeepAlive(i, "localhost", opts.kaIntervalMs));
  if (opts.h2Conns > 0) loops.push(h2KeepAlive(1000, FLIP_HOST, 100));
  // New connections at a fixed rate (open loop), each on its own; none with --new-rate 0.
  const inFlight = new Set<Promise<void>>();
  if (opts.newRate > 0)
    loops.push(
      (async () => {
        let n = 0;
        const every = 1000 / opts.newRate;
        let due = performance.now();
        while (running()) {
          const p = oneShot(n++).finally(() => inFlight.delete(p));
          inFlight.add(p);
          due = Math.max(due + every, performance.now() - 1000);
          await sleep(due - performance.now());
        }
      })(),
    );
  const every = (ms: number, fn: (i: number) => Promise<unknown>) =>
    loops.push(
      (async () => {
        for (let i = 0; ; i++) {
          await sleep(Math.min(ms, deadline - performance.now()));
          if (!running()) return;
          await fn(i);
        }
      })(),
    );
  every(opts.routeEveryMs, (i) => api("PUT", `/v1/routes/soak-${i % 32}`, { hostname: "localhost", path_prefix: `/soak/${i % 32}/`, origin: originUrl }));
  every(opts.revokeEveryMs, revokeOne);
  every(opts.flipEveryMs, flip);
  every(opts.sampleMs, async () => {
    await sample();
    const s = samples.at(-1)!;
    log(`rss ${s.rssMb} MB, heap ${s.heapUsedMb}/${s.heapTotalMb} MB, external ${s.externalMb} MB, fds ${s.openFds}, handles ${s.activeHandles}; ${stats.answered} answered, ${Object.values(stats.unexpected).reduce((x, y) => x + y, 0)} unexpected, max ${stats.maxMs.toFixed(1)} ms`);
  });
  await Promise.all(loops);
  await Promise.all(inFlight);
  if (child.exitCode !== null) stats.failed("certgate exited", `code ${child.exitCode}`);
  else await sample();
  return { samples, loadMs: performance.now() - start };
}

const MB = 1024 * 1024;

async function sampleMetrics(adminUrl: string, t: number): Promise<Sample> {
  let text = "";
  try {
    text = await (await fetch(`${adminUrl}/metrics`)).text();
  } catch (e) {
    stats.failed("metrics", (e as Error).message);
  }
  const metric = (name: string) => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, "m").exec(text);
    return m ? Number(m[1]) : null;
  };
  const mb = (name: string) => {
    const v = metric(name);
    return v === null ? null : Math.round((v / MB) * 10) / 10;
  };
  return {
    t: Math.round(t),
    rssMb: mb("process_resident_memory_bytes"),
    heapUsedMb: mb("nodejs_heap_size_used_bytes"),
    heapTotalMb: mb("nodejs_heap_size_total_bytes"),
    externalMb: mb("nodejs_external_memory_bytes"),
    openFds: metric("process_open_fds"),
    activeHandles: metric("nodejs_active_handles_total"),
    requests: stats.answered,
  };
}

/** Least-squares slope of `y` over time, in MB per 10 minutes, from samples at or after `fromS`. */
function slopePer10Min(samples: readonly Sample[], y: (s: Sample) => number | null, fromS: number, toS = Infinity): number | null {
  const slope = leastSquaresSlope(samples.filter((s) => s.t >= fromS && s.t <= toS && y(s) !== null).map((s) => [s.t / 600, y(s)!] as const));
  return slope === null ? null : Math.round(slope * 100) / 100;
}

/**
 * RSS slope in each whole window (--window, 30 minutes) after the warm-up: whether memory levels
 * off, and when (the allocator's high-water marks can take longer than the warm-up to settle).
 */
function rssWindows(samples: readonly Sample[], warmupS: number, windowS: number): { from_s: number; to_s: number; rss_slope_mb_per_10min: number | null }[] {
  const end = samples.at(-1)?.t ?? 0;
  const out = [];
  for (let from = warmupS; from + windowS <= end + 1; from += windowS)
    out.push({ from_s: from, to_s: from + windowS, rss_slope_mb_per_10min: slopePer10Min(samples, (s) => s.rssMb, from, from + windowS) });
  return out;
}

/** A time into the soak: whole minutes as minutes. */
const at = (s: number) => (s % 60 === 0 ? `${s / 60} min` : `${s} s`);

function report(r: Result): number {
  const unexpected = Object.values(stats.unexpected).reduce((x, y) => x + y, 0);
  const warmupS = opts.warmupMs / 1000;
  const q = (p: number) => {
    const v = quantileMs(stats.hist, p);
    return v === null ? null : Math.round(v * 100) / 100;
  };
  const cpu = cpuModel();
  const json = {
    when: new Date().toISOString(),
    machine: { cpu, cpus: cpuCount(), node: process.version, openssl: process.versions.openssl },
    options: opts,
    load_seconds: Math.round(r.loadMs / 1000),
    requests: { answered: stats.answered, per_second: Math.round(stats.answered / (r.loadMs / 1000)), ok: stats.ok, expected_refusals: stats.expected, unexpected_failures: stats.unexpected, unexpected_total: unexpected, examples: stats.examples },
    admin_writes: stats.admin,
    latency_ms: { p50: q(0.5), p99: q(0.99), p999: q(0.999), max: Math.round(stats.maxMs * 10) / 10, max_request: stats.maxAt },
    memory: {
      warmup_seconds: warmupS,
      rss_slope_mb_per_10min: slopePer10Min(r.samples, (s) => s.rssMb, warmupS),
      heap_used_slope_mb_per_10min: slopePer10Min(r.samples, (s) => s.heapUsedMb, warmupS),
      external_slope_mb_per_10min: slopePer10Min(r.samples, (s) => s.externalMb, warmupS),
      window_seconds: opts.windowMs / 1000,
      rss_slope_by_window: rssWindows(r.samples, warmupS, opts.windowMs / 1000),
      samples: r.samples,
    },
  };
  const outDir = resolve(REPO, a.out);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "soak.json"), JSON.stringify(json, null, 2) + "\n");
  writeFileSync(join(outDir, "soak.svg"), memoryPlot(r.samples, warmupS, `certgate soak, ${json.load_seconds} s, ${stats.answered} requests; RSS slope after warm-up ${json.memory.rss_slope_mb_per_10min ?? "n/a"} MB/10 min`));
  const tooSlow = stats.maxMs > opts.maxLatencyMs;
  console.log(
    [
      `soak: ${json.load_seconds} s, ${stats.answered} requests answered (${json.requests.per_second}/s, ${stats.ok} ok), ${stats.admin.ok} admin writes (${stats.admin.failed} failed)`,
      `expected refusals: ${JSON.stringify(stats.expected)}`,
      `unexpected failures: ${unexpected} ${JSON.stringify(stats.unexpected)}`,
      `latency ms: p50 ${q(0.5)}, p99 ${q(0.99)}, p99.9 ${q(0.999)}, max ${stats.maxMs.toFixed(1)} (${stats.maxAt})`,
      `memory after ${warmupS} s warm-up, MB per 10 min: RSS ${json.memory.rss_slope_mb_per_10min}, heap used ${json.memory.heap_used_slope_mb_per_10min}, external ${json.memory.external_slope_mb_per_10min}`,
      ...json.memory.rss_slope_by_window.map((w) => `  RSS from ${at(w.from_s)} to ${at(w.to_s)}: ${w.rss_slope_mb_per_10min} MB per 10 min`),
      `wrote ${join(a.out, "soak.json")} and ${join(a.out, "soak.svg")}`,
      unexpected || tooSlow ? `FAILED: ${unexpected ? `${unexpected} unexpected failure(s)` : ""}${unexpected && tooSlow ? "; " : ""}${tooSlow ? `max latency ${stats.maxMs.toFixed(0)} ms > ${opts.maxLatencyMs} ms` : ""}` : "soak: PASSED",
    ].join("\n"),
  );
  return unexpected || tooSlow ? 1 : 0;
}

process.exitCode = await main();
