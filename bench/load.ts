// The load generator: one process (pinned by the harness to the load CPU) that presents a
// client certificate and drives one of three loads against one server, bounded in time and
// count. It measures the server's CPU time (/proc, the whole process tree) over exactly its
// measurement window and prints one JSON line.
//
//   full       a new TLS 1.3 connection per request, one GET each, no session offered
//   resumed    the same, offering the latest session ticket received from that server
//   keepalive  a few persistent connections, one GET after another on each
//
// Closed loop (`concurrency` requests in flight) unless `rate` is set: then requests are
// scheduled at a fixed rate (open loop) and latency counts from the scheduled time, so a
// stalled server cannot hide its queueing delay.
//
// Usage: node bench/load.ts '<LoadSpec as JSON>'
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { ResponseReader } from "../src/loadgen/http1.ts";
import { record, type Histogram } from "../src/loadgen/hist.ts";
import { busyBetween, cpuSeconds, cpuTimes, processTree } from "./lib/proc.ts";

export type LoadKind = "full" | "resumed" | "keepalive";

export interface LoadSpec {
  kind: LoadKind;
  host: string; // 127.0.0.1
  port: number;
  servername: string;
  path: string;
  certFile: string;
  keyFile: string;
  /** Requests in flight (closed loop), or connections (keepalive). */
  concurrency: number;
  /** Requests per second (open loop); 0 = closed loop. */
  rate: number;
  /** Epoch ms: load runs from spawn; the measured window is [measureAt, measureAt + durationMs). */
  measureAt: number;
  durationMs: number;
  /** Stop the window early after this many completed requests. */
  maxRequests: number;
  /** Root PID of the server to measure (0: do not measure). */
  serverPid: number;
}

export interface LoadResult {
  kind: LoadKind;
  windowS: number;
  ok: number; // 200 responses completed in the window
  failed: number; // errors, resets and non-200 in the window
  firstError: string | null;
  dropped: number; // open loop: requests not started because too many were in flight
  resumed: number; // connections whose session was resumed (full / resumed)
  connections: number; // connections opened in the window
  hist: Histogram; // latency, µs buckets
  serverCpuS: number | null;
  serverPids: number[];
  clientCpuS: number;
  cpuBusy: Record<string, number>; // per CPU busy fraction over the window
}

const spec = JSON.parse(process.argv[2] ?? "") as LoadSpec;
const secureContext = tls.createSecureContext({
  cert: readFileSync(spec.certFile),
  key: readFileSync(spec.keyFile),
  minVersion: "TLSv1.3",
  maxVersion: "TLSv1.3",
  // One key-exchange group and one cipher suite for every server: P-256 ECDHE (what the
  // crypto-only limit counts; OpenSSL 3.5 would otherwise offer the X25519MLKEM768 hybrid
  // that only some peers accept) and AES-128-GCM.
  ecdhCurve: "P-256",
  ciphers: "TLS_AES_128_GCM_SHA256",
});
const REQ_CLOSE = Buffer.from(`GET ${spec.path} HTTP/1.1\r\nHost: ${spec.servername}\r\nUser-Agent: certgate-bench\r\nConnection: close\r\n\r\n`);
const REQ_KEEP = Buffer.from(`GET ${spec.path} HTTP/1.1\r\nHost: ${spec.servername}\r\nUser-Agent: certgate-bench\r\n\r\n`);

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

// --- the window ---
type Phase = "warmup" | "measure" | "drain";
let phase: Phase = "warmup";
const r: LoadResult = {
  kind: spec.kind,
  windowS: 0,
  ok: 0,
  failed: 0,
  firstError: null,
  dropped: 0,
  resumed: 0,
  connections: 0,
  hist: {},
  serverCpuS: null,
  serverPids: [],
  clientCpuS: 0,
  cpuBusy: {},
};
let inFlight = 0;

function done(startUs: number, ok: boolean, err?: string): void {
  if (phase !== "measure") return;
  if (ok) {
    r.ok++;
    record(r.hist, nowUs() - startUs);
    if (r.ok >= spec.maxRequests) endWindow();
  } else {
    r.failed++;
    r.firstError ??= err ?? "failed";
  }
}

let windowStart = { t: 0, server: 0, client: process.cpuUsage(), cpus: cpuTimes() };
function startWindow(): void {
  phase = "measure";
  if (spec.serverPid) r.serverPids = processTree(spec.serverPid);
  windowStart = { t: performance.now(), server: cpuSeconds(r.serverPids), client: process.cpuUsage(), cpus: cpuTimes() };
}

let ended = false;
function endWindow(): void {
  if (ended) return;
  ended = true;
  const t = performance.now();
  if (spec.serverPid) r.serverCpuS = cpuSeconds(r.serverPids) - windowStart.server;
  const c = process.cpuUsage(windowStart.client);
  r.clientCpuS = (c.user + c.system) / 1e6;
  r.cpuBusy = busyBetween(windowStart.cpus, cpuTimes());
  r.windowS = (t - windowStart.t) / 1000;
  phase = "drain";
  // Let in-flight requests finish (bounded), then report.
  const t0 = Date.now();
  const check = setInterval(() => {
    if (inFlight > 0 && Date.now() - t0 < 2_000) return;
    clearInterval(check);
    for (const c of kaConns) c.sock?.destroy();
    process.stdout.write(JSON.stringify(r) + "\n", () => process.exit(0));
  }, 20);
}

// --- full and resumed handshakes: a new connection per request ---
let session: Buffer | undefined; // the latest ticket (resumed)

function oneConnection(scheduledUs: number, next: () => void): void {
  inFlight++;
  const startUs = scheduledUs || nowUs();
  const counted = phase === "measure";
  if (counted) r.connections++;
  const reader = new ResponseReader();
  let finished = false;
  const sock = tls.connect({
    host: spec.host,
    port: spec.port,
    servername: spec.servername,
    secureContext,
    // The harness checks each server's identity once with full verification (sanity probe);
    // under load the client skips chain building to leave the load CPU for more handshakes.
    rejectUnauthorized: false,
    session: spec.kind === "resumed" ? session : undefined,
  });
  const finish = (ok: boolean, err?: string) => {
    if (finished) return;
    finished = true;
    inFlight--;
    done(startUs, ok, err);
    sock.destroy();
    next();
  };
  sock.setNoDelay(true);
  if (spec.kind === "resumed") sock.on("session", (s: Buffer) => (session = s));
  sock.on("secureConnect", () => {
    if (counted && phase === "measure" && sock.isSessionReused()) r.resumed++;
  });
  sock.on("data", (chunk: Buffer) => {
    try {
      if (reader.feed(chunk)) finish(reader.status === 200, `HTTP ${reader.status}`);
    } catch (e) {
      finish(false, (e as Error).message);
    }
  });
  sock.on("error", (e: Error) => finish(false, e.message));
  sock.on("close", () => finish(false, "connection closed before the response"));
  sock.write(REQ_CLOSE);
}

// --- keep-alive: persistent connections ---
interface KaConn {
  sock: tls.TLSSocket | undefined;
  reader: ResponseReader;
  startUs: number;
  busy: boolean;
}
const kaConns: KaConn[] = [];
const queue: number[] = []; // open loop: scheduled start times waiting for a connection

function kaOpen(c: KaConn): void {
  const sock = tls.connect({ host: spec.host, port: spec.port, servername: spec.servername, secureContext, rejectUnauthorized: false });
  sock.setNoDelay(true);
  if (phase === "measure") r.connections++;
  c.sock = sock;
  sock.on("data", (chunk: Buffer) => {
    if (!c.busy) return;
    let complete = false;
    try {
      complete = c.reader.feed(chunk);
    } catch (e) {
      kaFinish(c, false, (e as Error).message);
      sock.destroy();
      return;
    }
    if (!complete) return;
    const close = c.reader.close;
    kaFinish(c, c.reader.status === 200, `HTTP ${c.reader.status}`);
    if (close) sock.destroy(); // the 'close' handler reconnects
    else kaNext(c);
  });
  sock.on("error", () => {});
  sock.on("close", () => {
    if (c.sock !== sock) return;
    c.sock = undefined;
    if (c.busy) kaFinish(c, false, "connection closed before the response");
    if (phase !== "drain") {
      kaOpen(c);
      kaNext(c);
    }
  });
}

function kaSend(c: KaConn, startUs: number): void {
  if (!c.sock) kaOpen(c);
  c.busy = true;
  inFlight++;
  c.startUs = startUs;
  c.reader.reset();
  c.sock!.write(REQ_KEEP);
}

function kaFinish(c: KaConn, ok: boolean, err?: string): void {
  c.busy = false;
  inFlight--;
  done(c.startUs, ok, err);
}

function kaNext(c: KaConn): void {
  if (phase === "drain" || c.busy) return;
  if (!spec.rate) kaSend(c, nowUs());
  else if (queue.length) kaSend(c, queue.shift()!);
}

// --- drivers ---
function closedLoop(): void {
  if (spec.kind === "keepalive") {
    for (let i = 0; i < spec.concurrency; i++) {
      const c: KaConn = { sock: undefined, reader: new ResponseReader(), startUs: 0, busy: false };
      kaConns.push(c);
      kaOpen(c);
      kaNext(c);
    }
    return;
  }
  const loop = () => {
    if (phase === "drain") return;
    oneConnection(0, () => setImmediate(loop));
  };
  for (let i = 0; i < spec.concurrency; i++) loop();
}

function openLoop(): void {
  const cap = Math.max(64, spec.concurrency * 8); // requests in flight or queued before dropping
  if (spec.kind === "keepalive")
    for (let i = 0; i < spec.concurrency; i++) {
      const c: KaConn = { sock: undefined, reader: new ResponseReader(), startUs: 0, busy: false };
      kaConns.push(c);
      kaOpen(c);
    }
  const t0 = nowUs();
  const intervalUs = 1e6 / spec.rate;
  let issued = 0;
  const tick = () => {
    if (phase === "drain") return;
    const due = Math.floor((nowUs() - t0) / intervalUs);
    for (; issued < due; issued++) {
      const at = t0 + issued * intervalUs;
      if (spec.kind === "keepalive") {
        if (queue.length + inFlight >= cap) {
          if (phase === "measure") r.dropped++;
          continue;
        }
        queue.push(at);
      } else {
        if (inFlight >= cap) {
          if (phase === "measure") r.dropped++;
          continue;
        }
        oneConnection(at, () => {});
      }
    }
    if (spec.kind === "keepalive") for (const c of kaConns) if (queue.length) kaNext(c);
    setTimeout(tick, 1);
  };
  tick();
}

if (spec.rate > 0) openLoop();
else closedLoop();
setTimeout(startWindow, Math.max(0, spec.measureAt - Date.now()));
setTimeout(endWindow, Math.max(0, spec.measureAt + spec.durationMs - Date.now()));
