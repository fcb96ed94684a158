// The coordinator: resolves the target once, runs one generator in this process or N
// generator processes (--workers), opens the same measured window in all of them, reads
// the server's CPU (its whole process tree) at the window's two edges, and merges what the
// generators measured into one result: histograms add up bucket by bucket, seconds by index.
import { fork, type ChildProcess } from "node:child_process";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { Generator, PERSISTENT, type GenResult, type GenSpec, type Hists, type Mode, type Second } from "./generator.ts";
import { count, merge, quantileMs, maxMs, type Histogram } from "./hist.ts";
import { busyBetween, cpuByPid, cpuTimes, processTree } from "./proc.ts";
import type { FromWorker, ToWorker } from "./worker.ts";

export interface BenchOptions {
  url: string;
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  insecure: boolean;
  servername?: string;
  mode: Mode;
  concurrency: number;
  /** h2: streams in flight on each connection. */
  streams: number;
  /** Measured window; 0 with `count`. */
  durationMs: number;
  /** Completed attempts that close the window; 0: by duration. */
  count: number;
  rate: number;
  warmupMs: number;
  tls?: "1.2" | "1.3";
  workers: number;
  serverPid?: number;
  timeoutMs: number;
  groups?: string;
  ciphers?: string;
}

export interface Percentiles {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
}

export interface BenchResult {
  url: string;
  options: Omit<BenchOptions, "url">;
  address: string;
  servername: string | null;
  startedAt: string; // the window's start, ISO
  windowS: number;
  attempts: number;
  ok: number;
  failed: number;
  connections: number;
  resumed: number;
  /** Resumed handshakes / handshakes (null without handshakes). */
  resumedShare: number | null;
  dropped: number;
  connPerS: number;
  reqPerS: number;
  /** Milliseconds; connect counts from the due time (open loop: including waiting for a slot). */
  latency: Record<keyof Hists, Percentiles>;
  failures: Record<string, number>;
  generator: { processes: number; cpuS: number; utilisation: number[]; saturated: boolean; maxLateMs: number };
  server: { pid: number; processes: number; cpuS: number; cores: number; unit: "handshake" | "request"; cpuPerOpUs: number | null; opsPerCpuS: number | null } | null;
  /** Busy share of each CPU over the window ("cpu": all). */
  cpuBusy: Record<string, number>;
  warnings: string[];
  hist: Hists;
  /** The window in steps of `stepMs`. */
  stepMs: number;
  series: Second[];
}

export interface Tick {
  phase: "warmup" | "measure" | "drain" | "done";
  elapsedS: number; // since the window opened (negative in warm-up)
  ok: number;
  failed: number;
  conns: number;
}

export interface Target {
  address: string;
  port: number;
  servername: string | undefined;
  hostHeader: string;
  path: string;
}

export async function resolveTarget(url: string, servername?: string): Promise<Target> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`not a URL: "${url}"`);
  }
  if (u.protocol !== "https:") throw new Error(`the URL must be https:// (got ${u.protocol})`);
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = u.port ? Number(u.port) : 443;
  const sni = servername ?? (isIP(host) ? undefined : host);
  const hostPart = sni ?? (isIP(host) === 6 ? `[${host}]` : host);
  const { address } = isIP(host) ? { address: host } : await lookup(host);
  return { address, port, servername: sni, hostHeader: port === 443 ? hostPart : `${hostPart}:${port}`, path: `${u.pathname}${u.search}` };
}

/** The time series' step: whole seconds from 40 s, finer below (at least 40 steps, down to 100 ms). */
export function stepMs(o: Pick<BenchOptions, "durationMs">): number {
  if (!o.durationMs) return 1000;
  return [1000, 500, 250].find((s) => o.durationMs / s >= 40) ?? 100;
}

/** n split into `parts` near-equal shares (the first ones get the remainder). */
const share = (n: number, parts: number, i: number) => Math.floor(n / parts) + (i < n % parts ? 1 : 0);

interface Gen {
  live(): { phase: string; ok: number; failed: number; conns: number };
  stop(): void;
  done: Promise<GenResult>;
}

const WORKER = new URL("./worker.ts", import.meta.url);

function childGen(spec: GenSpec, onWindow: (edge: "start" | "end") => void): Gen {
  let live = { phase: "warmup", ok: 0, failed: 0, conns: 0 };
  const child: ChildProcess = fork(WORKER, [JSON.stringify(spec)], { stdio: ["ignore", "inherit", "inherit", "ipc"], execArgv: [] });
  const done = new Promise<GenResult>((resolve, reject) => {
    let result: GenResult | undefined;
    child.on("message", (m: FromWorker) => {
      if (m.type === "window") onWindow(m.edge);
      else if (m.type === "live") live = m;
      else result = m.result;
    });
    child.on("exit", (code, signal) => (result ? resolve(result) : reject(new Error(`a generator process exited (${code ?? signal}) without a result`))));
  });
  return {
    live: () => live,
    stop: () => child.connected && child.send({ type: "stop" } satisfies ToWorker),
    done,
  };
}

function localGen(spec: GenSpec, onWindow: (edge: "start" | "end") => void): Gen {
  const g = new Generator(spec, onWindow);
  return { live: () => g.live, stop: () => g.stop(), done: g.run() };
}

export async function runBench(o: BenchOptions, hooks: { onTick?: (t: Tick) => void; signal?: AbortSignal } = {}): Promise<BenchResult> {
  const t = await resolveTarget(o.url, o.servername);
  const n = Math.max(1, o.workers);
  if (o.concurrency < n) throw new Error(`-c ${o.concurrency} is less than --workers ${n}: each generator process needs a connection at least`);
  // Child processes need a moment to start: they all start loading at the same time, and
  // the window opens after exactly the warm-up.
  const startAt = Date.now() + (n > 1 ? 800 : 0);
  const measureAt = startAt + o.warmupMs;
  const specs: GenSpec[] = Array.from({ length: n }, (_, i) => {
    const concurrency = share(o.concurrency, n, i);
    const rate = o.rate / n;
    return {
      mode: o.mode,
      host: t.address,
      port: t.port,
      servername: t.servername,
      hostHeader: t.hostHeader,
      path: t.path,
      certFile: o.certFile,
      keyFile: o.keyFile,
      caFile: o.caFile,
      insecure: o.insecure,
      tls: o.tls,
      groups: o.groups,
      ciphers: o.ciphers,
      concurrency,
      streams: o.streams,
      rate,
      // Enough to hold the due requests of a whole timeout: beyond that they would time out anyway.
      queueMax: Math.max(64, Math.ceil((rate * o.timeoutMs) / 1000)),
      startAt,
      measureAt,
      durationMs: o.durationMs,
      maxAttempts: o.count ? share(o.count, n, i) : 0,
      timeoutMs: o.timeoutMs,
      stepMs: stepMs(o),
    };
  });

  // Server CPU over exactly the window: the first generator's start, the last one's end.
  let started = 0;
  let ended = 0;
  let server0: Map<number, number> | undefined;
  let server: BenchResult["server"] = null;
  let cpus0 = cpuTimes();
  let cpuBusy: Record<string, number> = {};
  const onWindow = (edge: "start" | "end") => {
    if (edge === "start" && started++ === 0) {
      cpus0 = cpuTimes();
      if (o.serverPid) server0 = cpuByPid(processTree(o.serverPid));
    }
    if (edge === "end" && ++ended === n) {
      cpuBusy = busyBetween(cpus0, cpuTimes());
      if (o.serverPid && server0) {
        const end = cpuByPid(processTree(o.serverPid));
        let cpuS = 0;
        for (const [pid, s] of end) cpuS += s - (server0.get(pid) ?? 0); // a process born in the window counts whole
        server = { pid: o.serverPid, processes: end.size, cpuS, cores: 0, unit: PERSISTENT.has(o.mode) ? "request" : "handshake", cpuPerOpUs: null, opsPerCpuS: null };
      }
    }
  };
  const gens = specs.map((s) => (n === 1 ? localGen(s, onWindow) : childGen(s, onWindow)));
  const stopAll = () => gens.forEach((g) => g.stop());
  hooks.signal?.addEventListener("abort", stopAll, { once: true });
  const ticker = hooks.onTick
    ? setInterval(() => {
        const lives = gens.map((g) => g.live());
        const phase = lives.every((l) => l.phase === "done") ? "done" : lives.some((l) => l.phase === "measure") ? "measure" : lives.some((l) => l.phase === "warmup") ? "warmup" : "drain";
        hooks.onTick!({ phase, elapsedS: (Date.now() - measureAt) / 1000, ok: sum(lives, (l) => l.ok), failed: sum(lives, (l) => l.failed), conns: sum(lives, (l) => l.conns) });
      }, 250)
    : undefined;
  let results: GenResult[];
  try {
    results = await Promise.all(gens.map((g) => g.done));
  } catch (e) {
    stopAll();
    throw e;
  } finally {
    clearInterval(ticker);
    hooks.signal?.removeEventListener("abort", stopAll);
  }
  return summarise(o, t, results, server, cpuBusy);
}

const sum = <T>(xs: T[], f: (x: T) => number) => xs.reduce((a, x) => a + f(x), 0);

export function percentiles(h: Histogram): Percentiles {
  const q = (x: number) => quantileMs(h, x);
  return { count: count(h), p50: q(0.5), p90: q(0.9), p99: q(0.99), p999: q(0.999), max: maxMs(h) };
}

function summarise(o: BenchOptions, t: Target, rs: GenResult[], server: BenchResult["server"], cpuBusy: Record<string, number>): BenchResult {
  const windowS = Math.max(...rs.map((r) => r.windowS)) || 1e-9;
  const hist: Hists = { connect: {}, handshake: {}, ttfb: {}, total: {} };
  const series: Second[] = [];
  const failures: Record<string, number> = {};
  for (const r of rs) {
    for (const k of Object.keys(hist) as (keyof Hists)[]) merge(hist[k], r.hist[k]);
    r.series.forEach((s, i) => {
      const into = (series[i] ??= { conns: 0, ok: 0, failed: 0, total: {} });
      into.conns += s.conns;
      into.ok += s.ok;
      into.failed += s.failed;
      merge(into.total, s.total);
    });
    for (const [k, v] of Object.entries(r.failures)) failures[k] = (failures[k] ?? 0) + v;
  }
  for (let i = 0; i < series.length; i++) series[i] ??= { conns: 0, ok: 0, failed: 0, total: {} };
  const ok = sum(rs, (r) => r.ok);
  const connections = sum(rs, (r) => r.connections);
  const resumed = sum(rs, (r) => r.resumed);
  const utilisation = rs.map((r) => (r.windowS ? r.clientCpuS / r.windowS : 0));
  const maxLateMs = Math.max(...rs.map((r) => r.maxLateMs));
  const dropped = sum(rs, (r) => r.dropped);
  const warnings: string[] = [];
  // A Node generator runs its connections on one thread: near a whole core it is the bottleneck.
  const saturated = utilisation.some((u) => u >= 0.85) || maxLateMs > 100;
  if (utilisation.some((u) => u >= 0.85))
    warnings.push(`generator saturated: a generator process used ${Math.max(...utilisation).toFixed(2)} of a CPU core, so these figures may describe the client, not the server; add --workers`);
  if (maxLateMs > 100) warnings.push(`generator late: it started due requests up to ${maxLateMs.toFixed(0)} ms after their time (the latencies include it)`);
  if (dropped) warnings.push(`${dropped} due requests were not sent: more than a timeout's worth of requests waited for a free connection (raise -c)`);
  if ((cpuBusy.cpu ?? 0) >= 0.95) warnings.push(`the machine's CPUs were ${((cpuBusy.cpu ?? 0) * 100).toFixed(0)}% busy: client and server competed for them`);
  const opsForServer = PERSISTENT.has(o.mode) ? ok : connections;
  const srv = server as BenchResult["server"];
  if (srv) {
    srv.cores = srv.cpuS / windowS;
    srv.cpuPerOpUs = opsForServer ? (srv.cpuS / opsForServer) * 1e6 : null;
    srv.opsPerCpuS = srv.cpuS > 0 ? opsForServer / srv.cpuS : null;
  }
  const { url: _url, ...options } = o;
  return {
    url: o.url,
    options,
    address: t.address,
    servername: t.servername ?? null,
    startedAt: new Date(Math.min(...rs.map((r) => r.windowStart))).toISOString(),
    windowS,
    attempts: sum(rs, (r) => r.attempts),
    ok,
    failed: sum(rs, (r) => r.failed),
    connections,
    resumed,
    resumedShare: connections ? resumed / connections : null,
    dropped,
    connPerS: connections / windowS,
    reqPerS: ok / windowS,
    latency: { connect: percentiles(hist.connect), handshake: percentiles(hist.handshake), ttfb: percentiles(hist.ttfb), total: percentiles(hist.total) },
    failures: Object.fromEntries(Object.entries(failures).sort((a, b) => b[1] - a[1])),
    generator: { processes: rs.length, cpuS: sum(rs, (r) => r.clientCpuS), utilisation, saturated, maxLateMs },
    server: srv,
    cpuBusy,
    warnings,
    hist,
    stepMs: stepMs(o),
    series,
  };
}
