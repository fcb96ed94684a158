// How close certgate is to what Node's own stack allows: certgate and nginx against the
// minimal Node servers of bench/floor-server.ts, same client, same origin, one run,
// interleaved, server CPU per request (see docs/benchmarks.md, "Floors").
//
// Usage: node bench/floor.ts [--load keepalive|full|resumed] [--reps 3] [--duration 2.5]
import { parseArgs } from "node:util";
import type { LoadResult, LoadSpec } from "./load.ts";
import { median } from "./lib/median.ts";
import { cpuCount } from "./lib/proc.ts";
import { runLoadProcess, target } from "./lib/loadproc.ts";
import { benchDir, startCertgate, startFloorServer, startNginx, startOrigin, which, writePki, type Running } from "./lib/servers.ts";

const VARIANTS = ["tls-direct", "https-direct", "tls-pipe", "https-undici", "https-llhttp", "tls-http1"] as const;
const { values: args } = parseArgs({
  options: { load: { type: "string", default: "keepalive" }, reps: { type: "string", default: "3" }, duration: { type: "string", default: "2.5" } },
});
const kind = args.load as LoadSpec["kind"];
const two = cpuCount() >= 2;
const [serverCpu, loadCpu] = two ? ["1", "0"] : [null, null];
const dir = benchDir("floor");

const pki = await writePki(dir);
const origin = await startOrigin(dir, loadCpu);

async function startServer(name: string, rep: number): Promise<Running> {
  if (name === "certgate") return startCertgate(dir, pki, origin.port, serverCpu, [], `certgate-${rep}`);
  if (name === "nginx") return startNginx(dir, pki, origin.port, serverCpu);
  return startFloorServer(dir, name, dir, origin.port, serverCpu, `${name}-${rep}`);
}

function load(server: Running): Promise<LoadResult> {
  return runLoadProcess(
    {
      kind,
      ...target(server.port, pki),
      concurrency: 8,
      rate: 0,
      measureAt: Date.now() + 1_000,
      durationMs: Number(args.duration) * 1000,
      maxRequests: 1e9,
      serverPid: server.pid,
    },
    loadCpu,
  );
}

const names = ["certgate", ...(which("nginx") ? ["nginx"] : []), ...VARIANTS];
const perOp = new Map<string, number[]>(names.map((n) => [n, []]));
for (let rep = 0; rep < Number(args.reps); rep++) {
  for (const name of names) {
    const server = await startServer(name, rep);
    const r = await load(server);
    await server.stop();
    if (r.failed || r.serverCpuS === null || !r.ok) throw new Error(`${name}: ${r.failed} failed (${r.firstError})`);
    perOp.get(name)!.push((r.serverCpuS / r.ok) * 1e6);
    console.error(`[floor] ${name} rep ${rep}: ${((r.serverCpuS / r.ok) * 1e6).toFixed(0)} µs per ${kind === "keepalive" ? "request" : "handshake"}`);
  }
}
await origin.stop();

const nginx = perOp.has("nginx") ? median(perOp.get("nginx")!) : null;
console.log(`\n${kind}: server CPU per operation, median of ${args.reps} interleaved runs\n`);
console.log(`| server | µs per op | ops per CPU-second | vs nginx |\n|---|---:|---:|---:|`);
for (const [name, xs] of perOp) {
  const m = median(xs);
  console.log(`| ${name} | ${m.toFixed(0)} | ${Math.round(1e6 / m).toLocaleString("en-US")} | ${nginx ? `${(nginx / m).toFixed(2)}×` : "–"} |`);
}
