// certgate vs nginx vs HAProxy on this machine, in one run: `npm run bench` (full) or
// `npm run bench -- --quick` (under 2 minutes). See docs/benchmarks.md.
//
// Starts certgate (child process, generated YAML, fresh PKI), nginx and HAProxy with
// equivalent configurations and one shared origin; pins servers to CPU 1 and load to CPU 0
// (when there are 2+ CPUs); waits for an idle-ish machine; runs every load on every server,
// interleaved (A B C A B C ...), at least twice; reports medians of throughput, latency and
// server CPU per operation, ratios to the peers, and the crypto-only limit. Optionally
// profiles certgate under load (--profile; always in the full run).
//
// The workers axis (--workers 1,2, the default): besides certgate with 1 worker and nginx with
// 1 worker process, both pinned to the server CPU, it runs certgate with --workers N and nginx
// with worker_processes N, servers, origin and load generator all unpinned (they share every
// CPU, as on a real host), and reports server CPU per operation and throughput for both.
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { LoadKind, LoadSpec } from "./load.ts";
import { count, merge, quantileMs, type Histogram } from "../src/loadgen/hist.ts";
import { cpuCount, cpuModel, loadavg, waitForIdle } from "./lib/proc.ts";
import { probe, type ProbeResult } from "./lib/probe.ts";
import { cryptoLimit, type CryptoLimit } from "./lib/speed.ts";
import { profileMarkdown, summariseProfile, type ProfileSummary } from "./lib/cpuprofile.ts";
import { perfAvailable, startPerf, stopPerf, summarisePerf, type PerfSummary } from "./lib/perf.ts";
import { runLoadProcess, target } from "./lib/loadproc.ts";
import { ensurePeers, killLeftovers, REPO, startBareNode, startCaddy, startCertgate, startHaproxy, startNginx, startOrigin, writePki, type Peer, type Pki, type Running } from "./lib/servers.ts";

// ---------------------------------------------------------------- options

interface LoadDef {
  id: string;
  kind: LoadKind;
  title: string;
  concurrency: number; // in flight (closed loop) or connections (keepalive, h2)
  streams?: number; // h2: streams in flight on each connection
  rate: number; // 0: closed loop
  unit: "handshake" | "request";
  /** Open loop at this fraction of the slowest server's req/s in the closed-loop load `of` (first rep), when that ran. */
  rateFrom?: { of: string; fraction: number };
}

const ALL_SERVERS = ["certgate", "node", "nginx", "haproxy", "caddy"];
/** A run of every server over these loads (at least) is a comparison of record: it replaces bench/results/latest-<cpu>.md. */
const RECORD_LOADS = ["full", "resumed", "keepalive", "h2"];

const LOADS: LoadDef[] = [
  { id: "full", kind: "full", title: "Full mTLS handshakes: new connection per GET, 8 in flight", concurrency: 8, rate: 0, unit: "handshake" },
  { id: "resumed", kind: "resumed", title: "Resumed handshakes: TLS 1.3 ticket, new connection per GET, 8 in flight", concurrency: 8, rate: 0, unit: "handshake" },
  { id: "keepalive", kind: "keepalive", title: "Keep-alive proxied GETs: 8 connections, one request at a time each", concurrency: 8, rate: 0, unit: "request" },
  { id: "h2", kind: "h2", title: "HTTP/2 proxied GETs: 2 connections, 8 streams in flight on each (servers that offer h2)", concurrency: 2, streams: 8, rate: 0, unit: "request" },
  {
    id: "full-paced",
    kind: "full",
    title: "Full mTLS handshakes offered at a fixed rate, the same for every server: half the slowest server's req/s under `full` (100/s if `full` did not run); latency counted from the scheduled start",
    concurrency: 8,
    rate: 100,
    unit: "handshake",
    rateFrom: { of: "full", fraction: 0.5 },
  },
  {
    id: "keepalive-paced",
    kind: "keepalive",
    title: "Keep-alive GETs on 8 connections offered at a fixed rate, the same for every server: half the slowest server's req/s under `keepalive` (500/s if it did not run)",
    concurrency: 8,
    rate: 500,
    unit: "request",
    rateFrom: { of: "keepalive", fraction: 0.5 },
  },
];

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    reps: { type: "string" },
    duration: { type: "string" }, // seconds per measured window
    warmup: { type: "string" }, // seconds before each window
    servers: { type: "string", default: ALL_SERVERS.join(",") },
    loads: { type: "string" },
    clients: { type: "string", default: "1" }, // load-generator processes (all on the load CPU)
    profile: { type: "boolean" },
    "no-profile": { type: "boolean", default: false },
    "profile-only": { type: "boolean", default: false },
    "no-install": { type: "boolean", default: false },
    "idle-wait": { type: "string" }, // max seconds to wait for an idle machine
    "keep-temp": { type: "boolean", default: false },
    workers: { type: "string", default: "1,2" }, // the workers axis: 1 (pinned) and N (unpinned)
    help: { type: "boolean", default: false },
  },
  strict: true,
});

if (args.help) {
  console.log(`usage: npm run bench [-- --quick] [--reps N] [--duration S] [--warmup S] [--servers certgate,node,nginx,haproxy,caddy]
       [--loads ${LOADS.map((l) => l.id).join(",")}] [--clients N] [--profile | --no-profile | --profile-only]
       [--no-install] [--idle-wait S] [--keep-temp] [--workers 1,N]`);
  process.exit(0);
}

const quick = args.quick;
const opt = {
  reps: Number(args.reps ?? (quick ? 2 : 3)),
  durationMs: Number(args.duration ?? (quick ? 2.5 : 10)) * 1000,
  warmupMs: Number(args.warmup ?? (quick ? 0.5 : 2)) * 1000,
  servers: args.servers.split(",").filter(Boolean),
  /** Worker counts beyond 1: certgate and nginx also run unpinned with this many workers. */
  moreWorkers: args.workers.split(",").map(Number).filter((n) => Number.isInteger(n) && n > 1),
  loads: (args.loads?.split(",") ?? (quick ? ["full", "resumed", "keepalive", "h2", "full-paced"] : LOADS.map((l) => l.id))).map((id) => {
    const l = LOADS.find((x) => x.id === id);
    if (!l) throw new Error(`unknown load "${id}" (${LOADS.map((x) => x.id).join(", ")})`);
    return { ...l };
  }),
  clients: Math.max(1, Number(args.clients)),
  profile: args["profile-only"] || (args.profile ?? (!quick && !args["no-profile"])),
  profileOnly: args["profile-only"],
  idleWaitMs: Number(args["idle-wait"] ?? (quick ? 4 : 60)) * 1000,
  speedSeconds: quick ? 1 : 2,
  maxRequests: 5_000_000,
};

const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

// ---------------------------------------------------------------- lifecycle

const running: Running[] = [];
let serverCpuId: string | null = null;
let tempDir = "";
async function stopAll(): Promise<void> {
  for (const s of running.splice(0).reverse()) await s.stop().catch((e: Error) => log(`stopping ${s.name}: ${e.message}`));
}
let interrupted = false;
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping servers`);
    void stopAll().then(() => {
      killLeftovers();
      process.exit(130);
    });
  });

// ---------------------------------------------------------------- one measurement

interface RunRecord {
  server: string;
  load: string;
  rep: number;
  seq: number;
  windowS: number;
  ok: number;
  failed: number;
  firstError: string | null;
  dropped: number;
  connections: number;
  resumedPct: number | null;
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  serverCpuS: number | null;
  cpuPerOpUs: number | null;
  opsPerCpuS: number | null;
  serverUtil: number | null; // server CPU-seconds per wall second
  clientUtil: number;
  cpuBusy: Record<string, number>;
}

let seq = 0;
/** Servers of the workers axis (certgate-2w, nginx-2w): unpinned, like their load generator. */
const multiWorker = (name: string): boolean => /-\d+w$/.test(name);

async function measure(server: Running, load: LoadDef, pki: Pki, rep: number, loadCpu: string | null, durationMs: number): Promise<RunRecord> {
  if (multiWorker(server.name)) loadCpu = null;
  const n = opt.clients;
  const measureAt = Date.now() + 600 + opt.warmupMs; // node start-up, then the warm-up
  const specs: LoadSpec[] = Array.from({ length: n }, (_, i) => ({
    kind: load.kind,
    ...target(server.port, pki),
    concurrency: Math.max(1, Math.round(load.concurrency / n)),
    streams: load.streams,
    rate: load.rate / n,
    measureAt,
    durationMs,
    maxRequests: Math.ceil(opt.maxRequests / n),
    serverPid: i === 0 ? server.pid : 0,
  }));
  const results = await Promise.all(specs.map((s) => runLoadProcess(s, loadCpu)));
  const hist: Histogram = {};
  for (const r of results) merge(hist, r.hist);
  const first = results[0]!;
  const ok = results.reduce((a, r) => a + r.ok, 0);
  const windowS = first.windowS;
  const serverCpuS = first.serverCpuS;
  const connections = results.reduce((a, r) => a + r.connections, 0);
  const resumed = results.reduce((a, r) => a + r.resumed, 0);
  return {
    server: server.name,
    load: load.id,
    rep,
    seq: seq++,
    windowS,
    ok,
    failed: results.reduce((a, r) => a + r.failed, 0),
    firstError: results.find((r) => r.firstError)?.firstError ?? null,
    dropped: results.reduce((a, r) => a + r.dropped, 0),
    connections,
    resumedPct: load.kind === "keepalive" || !connections ? null : (100 * resumed) / connections,
    rps: ok / windowS,
    p50Ms: count(hist) ? quantileMs(hist, 0.5) : null,
    p99Ms: count(hist) ? quantileMs(hist, 0.99) : null,
    serverCpuS,
    cpuPerOpUs: serverCpuS !== null && ok ? (serverCpuS / ok) * 1e6 : null,
    opsPerCpuS: serverCpuS ? ok / serverCpuS : null,
    serverUtil: serverCpuS !== null ? serverCpuS / windowS : null,
    clientUtil: results.reduce((a, r) => a + r.clientCpuS, 0) / windowS,
    cpuBusy: first.cpuBusy,
  };
}


// ---------------------------------------------------------------- aggregation

function median(xs: (number | null)[]): number | null {
  const v = xs.filter((x): x is number => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

interface Cell {
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  cpuPerOpUs: number | null;
  opsPerCpuS: number | null;
  serverUtil: number | null;
  clientUtil: number | null;
  failed: number;
  resumedPct: number | null;
  opsPerCpuSRuns: (number | null)[];
  rpsRuns: number[];
  /** Busy share of the server CPU not used by the server: other processes (noise). */
  otherOnServerCpu: number | null;
}

function aggregate(runs: RunRecord[], server: string, load: string): Cell | null {
  const rs = runs.filter((r) => r.server === server && r.load === load);
  if (!rs.length) return null;
  return {
    rps: median(rs.map((r) => r.rps)),
    p50Ms: median(rs.map((r) => r.p50Ms)),
    p99Ms: median(rs.map((r) => r.p99Ms)),
    cpuPerOpUs: median(rs.map((r) => r.cpuPerOpUs)),
    opsPerCpuS: median(rs.map((r) => r.opsPerCpuS)),
    serverUtil: median(rs.map((r) => r.serverUtil)),
    clientUtil: median(rs.map((r) => r.clientUtil)),
    failed: rs.reduce((a, r) => a + r.failed, 0),
    resumedPct: median(rs.map((r) => r.resumedPct)),
    opsPerCpuSRuns: rs.map((r) => r.opsPerCpuS),
    rpsRuns: rs.map((r) => r.rps),
    otherOnServerCpu: median(rs.map((r) => (serverCpuId !== null && !multiWorker(server) && r.cpuBusy[`cpu${serverCpuId}`] !== undefined && r.serverUtil !== null ? Math.max(0, r.cpuBusy[`cpu${serverCpuId}`]! - r.serverUtil) : null))),
  };
}

// ---------------------------------------------------------------- report

const fmt = (x: number | null | undefined, digits = 0): string => (x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits }));
const ratio = (a: number | null | undefined, b: number | null | undefined): string => (a && b ? `${(a / b).toFixed(2)}×` : "–");

interface Report {
  startedAt: string;
  mode: string;
  machine: Record<string, unknown>;
  options: typeof opt & { loads: LoadDef[] };
  cpus: { server: string | null; load: string | null };
  idle: { busy: number; waitedMs: number; idle: boolean; loadavg: number[] } | null;
  servers: { name: string; version: string; probe: ProbeResult | null; skipped?: string }[];
  origin: string;
  crypto: CryptoLimit | { error: string } | null;
  runs: RunRecord[];
  medians: Record<string, Record<string, Cell | null>>;
  profiles: { load: string; run: RunRecord; summary: ProfileSummary | null; perf: PerfSummary | { error: string } | null; perfRun: boolean }[];
  skipped: string[];
  durationS: number;
}

function markdown(rep: Report): string {
  const servers = rep.servers.filter((s) => !s.skipped).map((s) => s.name);
  // certgate / node is certgate's own overhead on Node's TLS and HTTP stack (issue 20's first target).
  const peers = ["node", "nginx", "haproxy", "caddy", ...servers.filter((s) => s.startsWith("nginx-"))].filter((p) => servers.includes(p));
  const cg = servers.includes("certgate");
  const crypto = rep.crypto && "handshakesPerCpuS" in rep.crypto ? rep.crypto : null;
  const m = rep.machine;
  const L: string[] = [];
  L.push(`### certgate vs Node, nginx, HAProxy and Caddy (${rep.mode}, ${rep.startedAt.slice(0, 16).replace("T", " ")} UTC, ${String(m.cpuModel)})`, "");
  L.push(
    `Machine: ${String(m.cpuModel)}, ${String(m.cpus)} CPUs, ${String(m.memGiB)} GiB, Linux ${String(m.kernel)}, Node ${String(m.node)}, OpenSSL ${String(m.openssl)}. ` +
      (rep.cpus.server !== null ? `Servers pinned to CPU ${rep.cpus.server}, load generator and origin to CPU ${rep.cpus.load}. ` : "Not pinned (one CPU). ") +
      (rep.idle ? `Before the first run the machine was ${(rep.idle.busy * 100).toFixed(0)}% busy (waited ${(rep.idle.waitedMs / 1000).toFixed(0)} s${rep.idle.idle ? "" : ", gave up waiting"}; load average ${rep.idle.loadavg.join(" ")}).` : ""),
  );
  L.push("");
  L.push(`Servers: ${rep.servers.map((s) => (s.skipped ? `${s.name} (skipped: ${s.skipped})` : s.version)).join("; ")}. Origin: ${rep.origin}.`);
  L.push(
    `${rep.options.reps} runs of ${rep.options.durationMs / 1000} s per server and load (after ${rep.options.warmupMs / 1000} s warm-up), interleaved across servers; medians shown. ` +
      `Client: Node ${process.versions.node} (OpenSSL ${process.versions.openssl}), TLS 1.3, TLS_AES_128_GCM_SHA256, P-256 key exchange, ECDSA P-256 certificates both ways.`,
  );
  L.push("");
  if (crypto)
    L.push(
      `Crypto-only limit (${crypto.openssl}, \`openssl speed -seconds ${crypto.seconds} ecdsap256 ecdhp256\` on the server CPU): ` +
        `sign ${fmt(crypto.signPerS)}/s, verify ${fmt(crypto.verifyPerS)}/s, ECDH ${fmt(crypto.ecdhPerS)}/s → 1 sign + 1 ECDH + 2 verifies = ` +
        `${crypto.handshakeCpuMs.toFixed(3)} ms per handshake = **${fmt(crypto.handshakesPerCpuS)} full handshakes per CPU-second**.`,
      "",
    );
  else if (rep.crypto && "error" in rep.crypto) L.push(`Crypto-only limit: not measured (${rep.crypto.error}).`, "");

  const head = ["load", "figure", ...servers, ...(cg ? peers.map((p) => `certgate / ${p}`) : [])];
  L.push(`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`);
  for (const load of rep.options.loads) {
    const cells = Object.fromEntries(servers.map((s) => [s, rep.medians[load.id]?.[s] ?? null]));
    const unit = load.unit;
    const rows: [string, (c: Cell) => number | null, number, boolean][] = [
      [`**${unit}s per server CPU-second** (higher is better)`, (c) => c.opsPerCpuS, 0, true],
      [`server CPU per ${unit}, µs`, (c) => c.cpuPerOpUs, 0, false],
      [load.rate ? `req/s (offered ${load.rate}/s)` : "req/s", (c) => c.rps, 0, true],
      ["p50 latency, ms", (c) => c.p50Ms, 2, false],
      ["p99 latency, ms", (c) => c.p99Ms, 2, false],
      ["server CPU use (cores)", (c) => c.serverUtil, 2, false],
    ];
    if (load.kind === "full" && crypto && !load.rate) rows.splice(2, 0, ["% of the crypto-only limit", (c) => (c.opsPerCpuS ? (100 * c.opsPerCpuS) / crypto.handshakesPerCpuS : null), 1, true]);
    rows.forEach(([name, get, digits], i) => {
      const vals = servers.map((s) => (cells[s] ? get(cells[s]) : null));
      const cgv = cg ? (cells.certgate ? get(cells.certgate) : null) : null;
      const ratios = cg ? peers.map((p) => ratio(cgv, cells[p] ? get(cells[p]) : null)) : [];
      L.push(`| ${i === 0 ? load.id : ""} | ${name} | ${vals.map((v) => fmt(v, digits)).join(" | ")} | ${ratios.join(" | ")}${ratios.length ? " |" : ""}`);
    });
  }
  L.push("");
  L.push(...workersMarkdown(rep, servers));
  L.push("Loads: " + rep.options.loads.map((l) => `\`${l.id}\`: ${l.title}`).join("; ") + ".");
  L.push("");
  L.push(
    "Per-run spread (ops per server CPU-second, each run in order), saturation (median load-generator CPU use: near 1.00 means the client, not the server, limited req/s) " +
      "and noise (median share of the server's CPU busy with other processes during the window):",
    "",
  );
  L.push("| load | server | ops per server CPU-s, each run | req/s, each run | client CPU | other load on server CPU | failed | resumed |", "|---|---|---|---|---:|---:|---:|---:|");
  for (const load of rep.options.loads)
    for (const s of servers) {
      const c = rep.medians[load.id]?.[s];
      if (!c) continue;
      L.push(
        `| ${load.id} | ${s} | ${c.opsPerCpuSRuns.map((x) => fmt(x)).join(", ")} | ${c.rpsRuns.map((x) => fmt(x)).join(", ")} | ${fmt(c.clientUtil, 2)} | ${c.otherOnServerCpu === null ? "–" : `${(c.otherOnServerCpu * 100).toFixed(0)}%`} | ${c.failed} | ${c.resumedPct === null ? "–" : `${c.resumedPct.toFixed(0)}%`} |`,
      );
    }
  L.push("");
  for (const s of rep.servers) if (s.probe && !s.probe.ok) L.push(`Probe problems for ${s.name}: ${s.probe.problems.join("; ")}`);
  if (rep.skipped.length) L.push(`Skipped: ${rep.skipped.join("; ")}.`, "");
  if (rep.profiles.length) L.push(profilesMarkdown(rep.profiles));
  return L.join("\n") + "\n";
}

/**
 * The workers axis: what N workers cost per operation against one (the target: within 5% for
 * certgate) and what they bought in throughput, beside nginx doing the same.
 */
function workersMarkdown(rep: Report, servers: string[]): string[] {
  const multi = servers.filter(multiWorker);
  if (!multi.length) return [];
  const L = [
    "Workers axis: the same servers with more worker processes, all processes unpinned (servers, origin and load generator share every CPU); server CPU per operation against one worker (pinned, above):",
    "",
    "| load | server | workers | server CPU per op, µs | vs 1 worker | req/s | vs 1 worker |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const load of rep.options.loads)
    for (const name of multi) {
      const base = name.replace(/-\d+w$/, "");
      const one = rep.medians[load.id]?.[base];
      const many = rep.medians[load.id]?.[name];
      if (!many) continue;
      L.push(`| ${load.id} | ${base} | ${/-(\d+)w$/.exec(name)![1]} | ${fmt(many.cpuPerOpUs)} | ${ratio(many.cpuPerOpUs, one?.cpuPerOpUs)} | ${fmt(many.rps)} | ${ratio(many.rps, one?.rps)} |`);
    }
  L.push("");
  return L;
}

// ---------------------------------------------------------------- profiling

function profilesMarkdown(profiles: Report["profiles"]): string {
  const L: string[] = ["#### certgate profiles", ""];
  L.push(
    "Each load on a fresh certgate started with `--cpu-prof` (250 µs sampling), then, where `perf` works, on another fresh certgate sampled by `perf record -F 997 -p PID`; " +
      "only the measured window is summarised. The profilers cost some CPU: the figures of these runs are not comparable with the table above.",
    "",
  );
  for (const p of profiles) {
    const r = p.run;
    L.push(`Under the \`${p.load}\` load with ${p.perfRun ? "perf" : "--cpu-prof"}: ${fmt(r.rps)} req/s, ${fmt(r.cpuPerOpUs)} µs of server CPU per operation, ${fmt(r.serverUtil, 2)} cores.`, "");
    if (p.summary) L.push(profileMarkdown(`--cpu-prof, ${p.load}`, p.summary));
    if (p.perf && "error" in p.perf) L.push(`perf: ${p.perf.error}`, "");
    else if (p.perf) {
      L.push(`#### perf, ${p.load} (${p.perf.samples} samples)`, "", "| share % | family |", "|---:|---|");
      for (const f of p.perf.families) L.push(`| ${f.pct.toFixed(1)} | ${f.family} |`);
      L.push("", "| self % | symbol | object |", "|---:|---|---|");
      for (const x of p.perf.top.slice(0, 20)) L.push(`| ${x.pct.toFixed(1)} | \`${x.symbol}\` | ${x.dso} |`);
      L.push("");
    }
  }
  return L.join("\n");
}

async function profileCertgate(dir: string, pki: Pki, originPort: number, serverCpu: string | null, loadCpu: string | null, load: LoadDef, durationMs: number, usePerf: boolean): Promise<Report["profiles"][number]> {
  const profDir = join(dir, `prof-${load.id}`);
  mkdirSync(profDir, { recursive: true });
  const t0 = Date.now(); // the profile starts with the process, just after this
  const cg = usePerf
    ? await startCertgate(dir, pki, originPort, serverCpu, [], `certgate-perf-${load.id}`)
    : await startCertgate(dir, pki, originPort, serverCpu, ["--cpu-prof", `--cpu-prof-dir=${profDir}`, "--cpu-prof-interval=250"], `certgate-prof-${load.id}`);
  running.push(cg);
  // measure() starts its window 600 ms + warm-up after it is called.
  const fromS = (Date.now() - t0 + 600 + opt.warmupMs) / 1000;
  const perfData = join(profDir, "perf.data");
  let perf: ReturnType<typeof startPerf> | undefined;
  const perfStart = usePerf ? setTimeout(() => (perf = startPerf(cg.pid, perfData)), 600 + opt.warmupMs) : undefined;
  const perfStop = usePerf ? setTimeout(() => perf && void stopPerf(perf), 600 + opt.warmupMs + durationMs) : undefined;
  let run: RunRecord;
  try {
    run = await measure(cg, load, pki, 0, loadCpu, durationMs);
  } finally {
    clearTimeout(perfStart);
    clearTimeout(perfStop);
    if (perf) await stopPerf(perf);
    running.splice(running.indexOf(cg), 1);
    await cg.stop();
  }
  log(`  under ${usePerf ? "perf" : "--cpu-prof"}: ${fmt(run.rps)} req/s, ${fmt(run.cpuPerOpUs)} µs/op, ${fmt(run.serverUtil, 2)} cores${run.failed ? `, failed ${run.failed} (${run.firstError})` : ""}`);
  let summary: ProfileSummary | null = null;
  const files = readdirSync(profDir).filter((f) => f.endsWith(".cpuprofile"));
  if (!files.length) {
    if (!usePerf) log(`no .cpuprofile written for ${load.id} (log: ${cg.log})`);
  } else {
    const file = join(profDir, files[0]!);
    summary = summariseProfile(file, REPO, { fromS, toS: fromS + durationMs / 1000 });
    const keep = join(REPO, "bench/results", `certgate-${load.id}.cpuprofile`);
    writeFileSync(keep, readFileSync(file));
    summary.file = keep;
  }
  const perfSummary = perf ? summarisePerf(perfData) : null;
  return { load: load.id, run, summary, perf: perfSummary, perfRun: usePerf };
}

// ---------------------------------------------------------------- main

/** Every server the bench knows, pinned to the server CPU: certgate, its bare-Node baseline and the peers. */
const STARTERS: Record<string, (dir: string, pki: Pki, originPort: number, cpu: string | null) => Promise<Running>> = {
  certgate: (d, p, o, c) => startCertgate(d, p, o, c),
  node: startBareNode,
  nginx: (d, p, o, c) => startNginx(d, p, o, c),
  haproxy: startHaproxy,
  caddy: startCaddy,
};

async function main(): Promise<void> {
  const started = Date.now();
  if (process.platform !== "linux") throw new Error("the benchmark reads /proc: Linux only");
  if (Number(process.versions.node.split(".")[0]) < 24) log(`warning: running on Node ${process.version}; use \`npm run bench\` (Node 24 from devDependencies)`);
  const ncpu = cpuCount();
  const serverCpu = ncpu >= 2 ? "1" : null;
  serverCpuId = serverCpu;
  const loadCpu = ncpu >= 2 ? "0" : null;
  const skipped: string[] = [];

  const peers = ensurePeers(!args["no-install"], log);
  tempDir = mkdtempSync(join(os.tmpdir(), "certgate-bench-"));
  mkdirSync(join(REPO, "bench/results"), { recursive: true });
  log(`temp dir ${tempDir}; ${ncpu} CPUs${serverCpu ? `: servers on CPU ${serverCpu}, load on CPU ${loadCpu}` : " (no pinning)"}`);
  const pki = await writePki(tempDir);

  const crypto = opt.profileOnly ? null : cryptoLimit(serverCpu, opt.speedSeconds);
  if (crypto && "error" in crypto) log(crypto.error);
  else if (crypto) log(`crypto-only limit: ${crypto.handshakeCpuMs.toFixed(3)} ms per handshake = ${crypto.handshakesPerCpuS.toFixed(0)}/CPU-s`);

  const origin = await startOrigin(tempDir, loadCpu);
  running.push(origin);
  log(`origin: ${origin.version} on ${origin.port}`);

  const servers: Running[] = [];
  const serverInfo: Report["servers"] = [];
  if (!opt.profileOnly)
    for (const name of opt.servers) {
      if (name in peers && !peers[name as Peer]) {
        const why = `${name} is not installed and could not be installed`;
        serverInfo.push({ name, version: "", probe: null, skipped: why });
        skipped.push(why);
        log(`skipping ${name}: ${why}`);
        continue;
      }
      try {
        const start = STARTERS[name];
        if (!start) throw new Error(`unknown server "${name}" (${Object.keys(STARTERS).join(", ")})`);
        const s = await start(tempDir, pki, origin.port, serverCpu);
        running.push(s);
        const p = await probe(s.port, pki);
        serverInfo.push({ name, version: s.version, probe: p });
        if (!p.ok) log(`${name}: probe problems: ${p.problems.join("; ")}`);
        log(`${name}: ${s.version}, pid ${s.pid}, port ${s.port}; ${p.protocol} ${p.cipher} ${p.keyExchange}; no certificate → ${p.noCertificate}; resumes: ${p.resumes}; tickets per handshake: ${p.ticketsPerHandshake}`);
        if (p.problems.some((x) => x.startsWith("request with a client certificate"))) {
          skipped.push(`${name}: probe failed (${p.problems.join("; ")})`);
          serverInfo[serverInfo.length - 1]!.skipped = "probe failed";
          continue;
        }
        servers.push(s);
        // The workers axis: the same server with more workers, unpinned.
        if (name === "certgate" || name === "nginx")
          for (const n of opt.moreWorkers) {
            const m = name === "certgate" ? await startCertgate(tempDir, pki, origin.port, null, [], `certgate-${n}w`, n) : await startNginx(tempDir, pki, origin.port, null, n);
            running.push(m);
            const mp = await probe(m.port, pki);
            serverInfo.push({ name: m.name, version: `${m.version}, ${n} workers, unpinned`, probe: mp });
            log(`${m.name}: ${m.version}, pid ${m.pid}, port ${m.port}, ${n} workers, unpinned`);
            if (mp.problems.some((x) => x.startsWith("request with a client certificate"))) skipped.push(`${m.name}: probe failed (${mp.problems.join("; ")})`);
            else servers.push(m);
          }
      } catch (e) {
        const why = (e as Error).message.split("\n")[0]!;
        serverInfo.push({ name, version: "", probe: null, skipped: why });
        skipped.push(`${name}: ${why}`);
        log(`skipping ${name}: ${(e as Error).message}`);
      }
    }

  let idle: Report["idle"] = null;
  if (!opt.profileOnly) {
    log(`waiting for an idle machine (≤ ${opt.idleWaitMs / 1000} s) ...`);
    const w = await waitForIdle(0.15, opt.idleWaitMs);
    idle = { ...w, loadavg: loadavg() };
    log(`machine ${(w.busy * 100).toFixed(0)}% busy after ${(w.waitedMs / 1000).toFixed(0)} s${w.idle ? "" : " (proceeding anyway)"}`);
  }

  const runs: RunRecord[] = [];
  if (!opt.profileOnly)
    for (let rep = 1; rep <= opt.reps; rep++)
      for (const load of opt.loads) {
        if (rep === 1 && load.rateFrom) {
          // Fix the offered rate once, from the closed-loop load's first round, for every server and rep.
          const base = runs.filter((r) => r.load === load.rateFrom!.of && r.rep === 1 && r.ok > 0).map((r) => r.rps);
          if (base.length) load.rate = Math.max(10, Math.round((Math.min(...base) * load.rateFrom.fraction) / 10) * 10);
          log(`${load.id}: offering ${load.rate}/s to every server`);
        }
        for (const s of servers) {
          if (interrupted) return;
          if (load.kind === "h2" && !s.h2) continue;
          const r = await measure(s, load, pki, rep, loadCpu, opt.durationMs);
          runs.push(r);
          log(
            `rep ${rep} ${load.id.padEnd(14)} ${s.name.padEnd(8)} ${fmt(r.rps).padStart(7)} req/s  p50 ${fmt(r.p50Ms, 2)} p99 ${fmt(r.p99Ms, 2)} ms  ` +
              `server ${fmt(r.cpuPerOpUs)} µs/op = ${fmt(r.opsPerCpuS)} ops/CPU-s (${fmt(r.serverUtil, 2)} cores)  client ${fmt(r.clientUtil, 2)}` +
              (r.failed ? `  failed ${r.failed} (${r.firstError})` : "") +
              (r.resumedPct !== null && load.kind === "resumed" ? `  resumed ${r.resumedPct.toFixed(0)}%` : "") +
              (r.dropped ? `  dropped ${r.dropped}` : ""),
          );
        }
      }
  // The peers are done: stop them before profiling.
  for (const s of servers) {
    running.splice(running.indexOf(s), 1);
    await s.stop();
  }

  const profiles: Report["profiles"] = [];
  if (opt.profile && opt.servers.includes("certgate")) {
    const usePerf = perfAvailable();
    if (!usePerf) log("perf is not available or not permitted: --cpu-prof only");
    for (const id of ["full", "resumed", "keepalive", "h2"].filter((id) => opt.loads.some((l) => l.id === id)))
      for (const withPerf of usePerf ? [false, true] : [false]) {
        const load = LOADS.find((l) => l.id === id)!;
        log(`profiling certgate under ${id} (${withPerf ? "perf" : "--cpu-prof"}) ...`);
        try {
          profiles.push(await profileCertgate(tempDir, pki, origin.port, serverCpu, loadCpu, load, quick ? 4_000 : 10_000, withPerf));
        } catch (e) {
          log(`profiling ${id} failed: ${(e as Error).message}`);
        }
      }
  }
  await stopAll();

  const medians: Report["medians"] = {};
  for (const load of opt.loads) {
    medians[load.id] = {};
    for (const s of servers) medians[load.id]![s.name] = aggregate(runs, s.name, load.id);
  }
  const model = cpuModel();
  const report: Report = {
    startedAt: new Date(started).toISOString(),
    mode: quick ? "quick" : "full",
    machine: { cpuModel: model, cpus: ncpu, memGiB: Math.round(os.totalmem() / 2 ** 30), kernel: os.release(), node: process.version, openssl: process.versions.openssl },
    options: opt,
    cpus: { server: serverCpu, load: loadCpu },
    idle,
    servers: serverInfo,
    origin: origin.version,
    crypto,
    runs,
    medians,
    profiles,
    skipped,
    durationS: (Date.now() - started) / 1000,
  };
  const stamp = new Date(started).toISOString().replace(/[:.]/g, "-").slice(0, 19);
  const jsonFile = join(REPO, "bench/results", `${stamp}-${report.mode}.json`);
  writeFileSync(jsonFile, JSON.stringify(report, null, 2) + "\n");
  const md = markdown(report);
  // The latest comparison of record per CPU type (figures differ between the AMD and Intel VMs);
  // a run of some servers or loads only is printed and kept in its JSON, never in place of it.
  const latest = `bench/results/latest-${cpuFamily(model)}.md`;
  const ofRecord = !opt.profileOnly && ALL_SERVERS.every((s) => opt.servers.includes(s)) && RECORD_LOADS.every((l) => opt.loads.some((x) => x.id === l));
  if (ofRecord) writeFileSync(join(REPO, latest), md);
  if (profiles.length) writeFileSync(join(REPO, "bench/results/profile-latest.md"), profilesMarkdown(profiles));
  process.stdout.write(md);
  log(`wrote ${jsonFile}${ofRecord ? ` and ${latest}` : ` (${latest} left as it was: only a run of every server over ${RECORD_LOADS.join(", ")} replaces it)`} in ${report.durationS.toFixed(0)} s`);
}

/** "amd-epyc", "intel-xeon", ...: the file name of a CPU type's latest results. */
function cpuFamily(model: string): string {
  const m = /(AMD|Intel)\S*\s+(?:\S+\s+)?(EPYC|Xeon|Core|Ryzen)/i.exec(model);
  return m ? `${m[1]!}-${m[2]!}`.toLowerCase() : model.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 40) || "unknown";
}

try {
  await main();
} catch (e) {
  log(`failed: ${(e as Error).stack ?? String(e)}`);
  process.exitCode = 1;
} finally {
  await stopAll();
  killLeftovers();
  if (tempDir && !args["keep-temp"]) rmSync(tempDir, { recursive: true, force: true });
}
