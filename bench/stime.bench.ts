// Client efficiency: full mTLS handshakes per client CPU-second, `certgate bench` against
// `openssl s_time -new` with the same certificates, against the same nginx (one worker,
// pinned to the server CPU; both clients pinned to the load CPU), interleaved rounds,
// medians. The target: certgate bench ≥ 1.5× s_time. A bare node:tls loop
// (bench/lib/bareloop.ts: no timing, parsing or verification) shows what Node itself allows.
//
// Both clients do the same work per handshake: TLS 1.3, X25519 key exchange (s_time cannot
// choose a group; nginx 1.22 picks X25519 from both), ECDSA P-256 certificates both ways,
// the server's chain verified against the server CA, one GET and its response.
// s_time's CPU is its own user + system time (bash `times` for its children), certgate
// bench's the generator's over its measured window (`generator.cpuS` in --json).
//
// Usage: node bench/stime.bench.ts [--rounds 3] [--seconds 5]
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { median } from "./lib/median.ts";
import { cpuCount, cpuModel } from "./lib/proc.ts";
import { benchDir, pinned, REPO, startNginx, startOrigin, writePki } from "./lib/servers.ts";
import type { BenchResult } from "../src/loadgen/coordinator.ts";

const { values: args } = parseArgs({ options: { rounds: { type: "string", default: "3" }, seconds: { type: "string", default: "5" } } });
const rounds = Number(args.rounds);
const seconds = Number(args.seconds);
const two = cpuCount() >= 2;
const [serverCpu, loadCpu] = two ? ["1", "0"] : [null, null];
const dir = benchDir("stime");
const log = (s: string) => process.stderr.write(`[stime] ${s}\n`);

function exec(cmd: string, a: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((res) => {
    const [c, ca] = pinned(loadCpu, cmd, a);
    const child = spawn(c, ca, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("exit", (code) => res({ code, out, err }));
  });
}

const pki = await writePki(dir);
const origin = await startOrigin(dir, loadCpu);
const nginx = await startNginx(dir, pki, origin.port, serverCpu);
log(`nginx ${nginx.version} on ${nginx.port}${two ? ", pinned to CPU 1; clients on CPU 0" : ""}`);

interface Run {
  handshakes: number;
  cpuS: number;
  perCpuS: number;
  perS: number;
}

async function stime(): Promise<Run> {
  // `times` prints the shell's, then its children's, user and system time.
  const script = `openssl s_time -connect 127.0.0.1:${nginx.port} -new -tls1_3 -time ${seconds} -cert ${pki.clientCert} -key ${pki.clientKey} -CAfile ${pki.serverCa} -www /bench; times`;
  const r = await exec("bash", ["-c", script]);
  const m = /(\d+) connections in ([\d.]+) real seconds/.exec(r.out);
  const t = r.out.trim().split("\n").at(-1)!.match(/(\d+)m([\d.]+)s/g)!;
  const secs = (s: string) => Number(/(\d+)m/.exec(s)![1]) * 60 + Number(/m([\d.]+)s/.exec(s)![1]);
  if (!m || t.length < 2) throw new Error(`s_time: ${r.out}\n${r.err}`);
  const cpuS = secs(t[0]!) + secs(t[1]!);
  const handshakes = Number(m[1]);
  return { handshakes, cpuS, perCpuS: handshakes / cpuS, perS: handshakes / Number(m[2]) };
}

async function certgateBench(c: number): Promise<Run> {
  const json = join(dir, `bench-${c}.json`);
  const r = await exec(process.execPath, [join(REPO, "src/cli.js"), "bench", `https://localhost:${nginx.port}/bench`, "--cert", pki.clientCert, "--key", pki.clientKey, "--cacert", pki.serverCa, "--tls", "1.3", "--groups", "X25519", "-c", String(c), "-d", `${seconds}s`, "--warmup", "0.5s", "--json", json]);
  if (r.code !== 0) throw new Error(`certgate bench: ${r.err}`);
  const j = JSON.parse(readFileSync(json, "utf8")) as BenchResult;
  if (j.failed) throw new Error(`certgate bench: ${j.failed} failed (${JSON.stringify(j.failures)})`);
  return { handshakes: j.connections, cpuS: j.generator.cpuS, perCpuS: j.connections / j.generator.cpuS, perS: j.connPerS };
}

async function bare(): Promise<Run> {
  const r = await exec(process.execPath, [join(REPO, "bench/lib/bareloop.ts"), String(nginx.port), pki.clientCert, pki.clientKey, String(seconds)]);
  const j = JSON.parse(r.out) as { handshakes: number; cpuS: number; seconds: number };
  return { handshakes: j.handshakes, cpuS: j.cpuS, perCpuS: j.handshakes / j.cpuS, perS: j.handshakes / j.seconds };
}

const runs: Record<string, Run[]> = { "openssl s_time -new": [], "certgate bench -c 1": [], "certgate bench -c 8": [], "bare node:tls loop, 8 in flight": [] };
for (let i = 0; i < rounds; i++) {
  for (const [name, f] of [
    ["openssl s_time -new", stime],
    ["certgate bench -c 1", () => certgateBench(1)],
    ["certgate bench -c 8", () => certgateBench(8)],
    ["bare node:tls loop, 8 in flight", bare],
  ] as const) {
    const r = await f();
    runs[name]!.push(r);
    log(`round ${i + 1} ${name}: ${r.handshakes} handshakes, ${r.cpuS.toFixed(2)} client CPU-s = ${r.perCpuS.toFixed(0)}/CPU-s, ${r.perS.toFixed(0)}/s`);
  }
}
await nginx.stop();
await origin.stop();

const base = median(runs["openssl s_time -new"]!.map((r) => r.perCpuS));
console.log(`\nFull mTLS handshakes per client CPU-second against nginx, ${rounds} interleaved rounds of ${seconds} s, medians (${cpuModel()}, ${cpuCount()} CPUs; Node ${process.versions.node} / OpenSSL ${process.versions.openssl}; ${nginx.version}):\n`);
console.log("| client | handshakes per client CPU-second | handshakes/s | vs s_time |\n|---|---:|---:|---:|");
for (const [name, rs] of Object.entries(runs)) {
  const m = median(rs.map((r) => r.perCpuS));
  console.log(`| ${name} | ${Math.round(m).toLocaleString("en-US")} | ${Math.round(median(rs.map((r) => r.perS))).toLocaleString("en-US")} | ${(m / base).toFixed(2)}× |`);
}
