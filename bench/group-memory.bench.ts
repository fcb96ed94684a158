// What a worker group costs in memory against one process (issue 14: idle, N workers cost no
// more than N × one process + 20 MB). Each configuration starts fresh, serves a few mTLS
// connections (code compiled, pools made), then idles; then, for every process of its tree:
//
//   RSS   resident memory, as ps and process_resident_memory_bytes show it. Node's code pages
//         are mapped by every process and counted in each one's RSS, so RSS sums overstate.
//   PSS   each shared page divided among the processes that map it (smaps_rollup), as
//         certgate_proportional_memory_bytes shows it. Any other process mapping the same
//         files (this script, the origin: both Node) takes a share too, so a sum is a little low.
//   pages the distinct physical pages of the whole tree (/proc/PID/pagemap, root only): what
//         the group costs the machine, each page once.
//
// Usage: node bench/group-memory.bench.ts [--workers N] [--settle 10s]
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import https from "node:https";
import os from "node:os";
import { parseArgs } from "node:util";
import { cpuModel, processTree } from "./lib/proc.ts";
import { benchDir, SERVERNAME, startCertgate, startOrigin, writePki, type Pki, type Running } from "./lib/servers.ts";

const { values: args } = parseArgs({ options: { workers: { type: "string" }, settle: { type: "string", default: "10" } } });
const N = Number(args.workers ?? Math.max(2, os.availableParallelism()));
const SETTLE_MS = Number.parseFloat(args.settle) * 1000;
const log = (s: string) => process.stderr.write(`[group-memory] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface ProcMemory {
  pid: number;
  rss: number;
  pss: number;
  /** Pages no other process maps (Private_Clean + Private_Dirty). */
  uss: number;
}

function smapsRollup(pid: number): ProcMemory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(text)?.[1] ?? 0) * 1024;
  return { pid, rss: kb("Rss"), pss: kb("Pss"), uss: kb("Private_Clean") + kb("Private_Dirty") };
}

const PAGE = 4096;
const PRESENT = 1n << 63n;
const PFN_MASK = (1n << 55n) - 1n;

/** Distinct physical pages resident in any process of `pids`, in bytes; undefined without the right to read frame numbers. */
function distinctPages(pids: number[]): number | undefined {
  const frames = new Set<bigint>();
  for (const pid of pids) {
    const fd = openSync(`/proc/${pid}/pagemap`, "r");
    try {
      for (const line of readFileSync(`/proc/${pid}/maps`, "utf8").split("\n")) {
        const m = /^([0-9a-f]+)-([0-9a-f]+)/.exec(line);
        if (!m) continue;
        const start = Number.parseInt(m[1]!, 16) / PAGE;
        const pages = Number.parseInt(m[2]!, 16) / PAGE - start;
        if (start > Number.MAX_SAFE_INTEGER / 8) continue; // [vsyscall]: not readable
        // V8 reserves gigabytes it never touches: read the page map in 2 MiB windows.
        const buf = Buffer.alloc(512 * 8);
        for (let done = 0; done < pages; done += 512) {
          const n = Math.min(512, pages - done);
          const got = readSync(fd, buf, 0, n * 8, (start + done) * 8);
          for (let i = 0; i + 8 <= got; i += 8) {
            const e = buf.readBigUInt64LE(i);
            if (!(e & PRESENT)) continue;
            const pfn = e & PFN_MASK;
            if (pfn === 0n) return undefined; // frame numbers hidden: not root (CAP_SYS_ADMIN)
            frames.add(pfn);
          }
        }
      }
    } finally {
      closeSync(fd);
    }
  }
  return frames.size * PAGE;
}

/** One mTLS GET on a new connection. */
function get(port: number, creds: { ca: Buffer; cert: Buffer; key: Buffer }): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = https.get({ host: "127.0.0.1", port, servername: SERVERNAME, path: "/warm", headers: { host: SERVERNAME }, agent: false, ...creds }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`status ${res.statusCode}`))));
    });
    req.on("error", reject);
  });
}

interface GroupMemory {
  procs: ProcMemory[];
  rss: number;
  pss: number;
  uss: number;
  pages: number | undefined;
}

async function measure(server: Running, pki: Pki): Promise<GroupMemory> {
  // Enough connections that the kernel hands each worker some.
  const creds = { ca: readFileSync(pki.serverCa), cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) };
  for (let i = 0; i < 10 * N; i++) await get(server.port, creds);
  await sleep(SETTLE_MS);
  const pids = processTree(server.pid);
  const procs = pids.map(smapsRollup);
  const sum = (k: "rss" | "pss" | "uss") => procs.reduce((a, p) => a + p[k], 0);
  return { procs, rss: sum("rss"), pss: sum("pss"), uss: sum("uss"), pages: distinctPages(pids) };
}

const dir = benchDir("group-memory");
const pki = await writePki(dir);
const origin = await startOrigin(dir, null);
const results = new Map<number, GroupMemory>();
for (const workers of [1, N]) {
  const server = await startCertgate(dir, pki, origin.port, null, [], `certgate-${workers}w`, workers);
  try {
    results.set(workers, await measure(server, pki));
    log(`${workers} worker(s): ${results.get(workers)!.procs.length} processes measured`);
  } finally {
    await server.stop();
  }
}
await origin.stop();

const MB = (b: number | undefined) => (b === undefined ? "–" : (b / 1e6).toFixed(1));
const cpu = cpuModel();
const one = results.get(1)!;
const group = results.get(N)!;
console.log(`Idle memory, one process against primary + ${N} workers (MB = 10^6 bytes), ${cpu}, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 16)} UTC\n`);
console.log("| | processes | RSS (each) | RSS, sum | PSS, sum | private (USS), sum | distinct pages |");
console.log("|---|---:|---|---:|---:|---:|---:|");
for (const [name, r] of [["one process (`--workers 1`)", one], [`primary + ${N} workers`, group]] as const)
  console.log(`| ${name} | ${r.procs.length} | ${r.procs.map((p) => MB(p.rss)).join(" + ")} | ${MB(r.rss)} | ${MB(r.pss)} | ${MB(r.uss)} | ${MB(r.pages)} |`);
const budget = (x: number | undefined) => (x === undefined ? undefined : N * x + 20e6);
console.log(`| budget: ${N} × one process + 20 MB | | | ${MB(budget(one.rss))} | ${MB(budget(one.pss))} | ${MB(budget(one.uss))} | ${MB(budget(one.pages))} |`);
const ratio = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? "–" : `${(a / b).toFixed(2)}×`);
console.log(`| group / budget | | | ${ratio(group.rss, budget(one.rss))} | ${ratio(group.pss, budget(one.pss))} | ${ratio(group.uss, budget(one.uss))} | ${ratio(group.pages, budget(one.pages))} |`);
