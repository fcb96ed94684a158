// What a V8 or Node flag on certgate's command line costs and saves: memory under load against
// server CPU per operation, each variant against certgate's defaults in the same run (the
// README's "Memory against CPU" table).
//
// For each variant, two fresh certgates (`--workers 1`, pinned to the server CPU; origin and
// load on the other): the default and the variant. Each in turn takes --burst seconds of
// keep-alive GETs and full mTLS handshakes flat out at once, and its RSS is read every second
// (the table shows the highest). Then, for each load, --pairs interleaved runs on both
// (default first in odd pairs, the variant first in even ones): server CPU per operation, and
// the median of the pairs' ratios.
//
// Usage: node bench/v8flags.bench.ts [--variants="--heap-growing-percent=100;--memory-saver-mode"]
//          [--loads full,h2,keepalive] [--pairs 6] [--burst 60] [--duration 4]
import os from "node:os";
import { parseArgs } from "node:util";
import { runLoadProcess, target } from "./lib/loadproc.ts";
import { median } from "./lib/median.ts";
import { cpuModel, treeRss } from "./lib/proc.ts";
import { benchDir, startCertgate, startOrigin, writePki, type Pki, type Running } from "./lib/servers.ts";
import type { LoadKind } from "./load.ts";

const { values: a } = parseArgs({
  options: {
    variants: { type: "string", default: "--heap-growing-percent=100;--memory-saver-mode" },
    loads: { type: "string", default: "full,h2,keepalive" },
    pairs: { type: "string", default: "6" },
    burst: { type: "string", default: "60" },
    duration: { type: "string", default: "4" },
  },
  strict: true,
});
const VARIANTS = a.variants.split(";").map((v) => v.trim()).filter(Boolean);
const LOADS = a.loads.split(",") as LoadKind[];
const PAIRS = Number(a.pairs);
const BURST_S = Number(a.burst);
const DURATION_MS = Number(a.duration) * 1000;
const multi = os.availableParallelism() > 1;
const [SERVER_CPU, LOAD_CPU] = multi ? ["1", "0"] : [null, null];
const log = (s: string) => process.stderr.write(`[v8flags] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const rssMb = (pid: number) => treeRss(pid) / 2 ** 20;

/** Keep-alive and full handshakes at once for BURST_S seconds; the highest RSS seen, and the operations done. */
async function burst(s: Running, pki: Pki): Promise<{ peakMb: number; ops: number }> {
  let peakMb = rssMb(s.pid);
  const sampler = setInterval(() => (peakMb = Math.max(peakMb, rssMb(s.pid))), 1000);
  const at = Date.now() + 1000;
  const run = (kind: LoadKind) => runLoadProcess({ kind, ...target(s.port, pki), concurrency: 8, streams: 8, rate: 0, measureAt: at, durationMs: BURST_S * 1000, maxRequests: 1e9, serverPid: 0 }, LOAD_CPU);
  try {
    const results = await Promise.all([run("keepalive"), run("full")]);
    return { peakMb: Math.max(peakMb, rssMb(s.pid)), ops: results.reduce((n, r) => n + r.ok, 0) };
  } finally {
    clearInterval(sampler);
  }
}

/** Server CPU per operation (µs) under one load for DURATION_MS. */
async function cpuPerOp(s: Running, pki: Pki, kind: LoadKind): Promise<number> {
  const r = await runLoadProcess({ kind, ...target(s.port, pki), concurrency: kind === "h2" ? 2 : 8, streams: 8, rate: 0, measureAt: Date.now() + 1600, durationMs: DURATION_MS, maxRequests: 1e9, serverPid: s.pid }, LOAD_CPU);
  if (r.failed) throw new Error(`${s.name}: ${r.failed} failed ${kind} requests (${r.firstError})`);
  return (r.serverCpuS! / r.ok) * 1e6;
}

const dir = benchDir("v8flags");
const pki = await writePki(dir);
const origin = await startOrigin(dir, LOAD_CPU);
const rows: string[] = [];
try {
  for (const variant of VARIANTS) {
    const base = await startCertgate(dir, pki, origin.port, SERVER_CPU, [], "certgate-default");
    const alt = await startCertgate(dir, pki, origin.port, SERVER_CPU, variant.split(/\s+/), "certgate-variant");
    try {
      log(`${variant}: ${BURST_S} s burst on each`);
      const b = await burst(base, pki);
      await sleep(1000);
      const v = await burst(alt, pki);
      const ratios: string[] = [];
      for (const kind of LOADS) {
        const r: number[] = [];
        for (let i = 0; i < PAIRS; i++) {
          const [first, second] = i % 2 ? [alt, base] : [base, alt];
          const x = await cpuPerOp(first, pki, kind);
          const y = await cpuPerOp(second, pki, kind);
          r.push(first === alt ? x / y : y / x);
        }
        log(`${variant}, ${kind}: pair ratios ${r.map((x) => x.toFixed(3)).join(" ")}`);
        ratios.push(`${median(r).toFixed(2)}×`);
      }
      rows.push(`| \`${variant}\` | ${v.peakMb.toFixed(0)} MiB (default ${b.peakMb.toFixed(0)}) | ${(v.ops / b.ops).toFixed(2)}× | ${ratios.join(" | ")} |`);
    } finally {
      await base.stop();
      await alt.stop();
    }
  }
} finally {
  await origin.stop();
}

console.log(`certgate with V8/Node flags against its defaults, ${cpuModel()}, ${os.availableParallelism()} CPUs, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 16)} UTC`);
console.log(`RSS: highest during ${BURST_S} s of keep-alive GETs and full handshakes flat out (8 + 8 in flight); operations done in that burst against the default's; CPU per operation: median of ${PAIRS} interleaved pairs' ratios, ${DURATION_MS / 1000} s each.\n`);
console.log(`| node flag | RSS under load | operations in the burst | ${LOADS.map((k) => `CPU per op, ${k}`).join(" | ")} |`);
console.log(`|---|---:|---:|${LOADS.map(() => "---:").join("|")}|`);
for (const r of rows) console.log(r);
