// What the client certificate inventory costs per full handshake, two ways in one run:
//  1. end to end: two certgate processes (--workers 1), one with the inventory off
//     (--client-cert-inventory 0), one with it on (the default 100,000), get new mTLS connections
//     (TLS 1.3, ECDSA P-256, no resumption, one GET each) in interleaved rounds; server CPU per
//     handshake from /proc/PID/stat, medians, and the ratio on/off. Once with one certificate
//     (every sighting a hit), once with a new certificate per connection (every one a first sight).
//  2. the recording alone, in this process: Sightings.record() on a hit and on a first sight
//     (with eviction), against the end-to-end CPU per handshake of the "off" server. On a busy
//     machine (1) is noisy by a few percent either way; (2) is the precise figure.
//   node bench/seen.bench.ts [--quick]
import { spawn, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { createDevPki } from "../src/pki/devpki.ts";
import { issue, type Issued } from "../src/pki/issue.ts";
import { startEcho } from "../src/demo/echo.ts";
import { ClientCertFacts } from "../src/dataplane/tls/facts.ts";
import { Sightings } from "../src/dataplane/tls/sightings.ts";
import { VERIFIED } from "../src/dataplane/tls/verify.ts";
import { median } from "./lib/median.ts";
import { cpuModel, cpuSeconds } from "./lib/proc.ts";
import { freePort, serveArgs, waitForPort } from "./lib/servers.ts";

const quick = process.argv.includes("--quick");
const PER_ROUND = quick ? 300 : 1000;
const ROUNDS = quick ? 3 : 7;
const FRESH_PER_ROUND = quick ? 150 : 400;

const dir = mkdtempSync(join(tmpdir(), "certgate-bench-seen-"));
const pki = await createDevPki({ serverNames: ["*.bench.test"] });
const client = await issue({ subject: "O=bench,CN=bench client", dnsNames: ["client.bench.test"], uris: ["spiffe://bench.test/client"] }, pki.ca);
console.error(`issuing ${ROUNDS * FRESH_PER_ROUND} client certificates for the first-sight case...`);
const fresh: Issued[] = [];
for (let i = 0; i < ROUNDS * FRESH_PER_ROUND; i++) fresh.push(await issue({ subject: `O=bench,CN=bench client ${i}`, dnsNames: [`c${i}.bench.test`] }, pki.ca));
const echo = await startEcho();

writeFileSync(
  join(dir, "certgate.json"),
  JSON.stringify({
    certificates: [{ id: "srv", cert: pki.server.certPem, key: pki.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: pki.ca.certPem }],
    hosts: [{ hostname: "a.bench.test", mtls: { trust_bundle: "clients", mode: "enforced" } }],
    routes: [{ id: "a", hostname: "a.bench.test", origin: echo.url }],
    default_certificate: "srv",
  }),
);

async function server(name: string, inventory: number): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const log = join(dir, `${name}.log`);
  // Node flags as `npm start` gives them (certgate's OpenSSL configuration: one session ticket per handshake).
  const args = [...serveArgs({ port, admin: 0, data: join(dir, name), config: join(dir, "certgate.json"), workers: 1 }), "--client-cert-inventory", String(inventory)];
  const child = spawn(process.execPath, args, {
    env: { ...process.env, CERTGATE_LOG_LEVEL: "warn" }, // no access log: measure the proxy, not the logger
    stdio: ["ignore", "ignore", openSync(log, "w")],
  });
  process.once("exit", () => child.kill());
  await waitForPort(port, child, name, log, 120_000); // a busy machine starts slowly
  return { port, child };
}

function once(port: number, cert: Issued): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: "a.bench.test", ca: pki.serverCa.certPem, cert: cert.certPem, key: cert.keyPem }, () => {
      s.write(`GET / HTTP/1.1\r\nHost: a.bench.test\r\nConnection: close\r\n\r\n`);
    });
    let head = "";
    s.on("data", (d) => (head ||= d.toString("latin1", 0, 12)));
    s.on("close", () => (head.startsWith("HTTP/1.1 200") ? resolve() : reject(new Error(head || "no answer"))));
    s.on("error", reject);
  });
}

const servers = { off: await server("off", 0), on: await server("on", 100_000) };

/** Server CPU µs per handshake, per round, for each server; the order alternates between rounds. */
async function measure(certFor: (round: number, i: number) => Issued, perRound: number): Promise<Record<"off" | "on", number[]>> {
  const out = { off: [] as number[], on: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const name of r % 2 ? (["on", "off"] as const) : (["off", "on"] as const)) {
      const { port, child } = servers[name];
      const c0 = cpuSeconds([child.pid!]);
      for (let i = 0; i < perRound; i++) await once(port, certFor(r, i));
      out[name].push(((cpuSeconds([child.pid!]) - c0) * 1e6) / perRound);
    }
  }
  return out;
}

for (const name of ["off", "on"] as const) for (let i = 0; i < 50; i++) await once(servers[name].port, client); // warm-up
const same = await measure(() => client, PER_ROUND);
const firsts = await measure((r, i) => fresh[r * FRESH_PER_ROUND + i]!, FRESH_PER_ROUND);

// The recording alone: record() timed over batches of 100 connections' facts, each a new
// X509Certificate as a handshake makes it (made between the timed batches: few live at once,
// as on a server). CPU time of this process: other processes on a busy machine do not count.
const N = 20_000;
const BATCH = 100;
function recordCost(ders: Buffer[], table: Sightings): number {
  let us = 0;
  for (let i = 0; i < N; i += BATCH) {
    const batch = Array.from({ length: BATCH }, (_, k) => new ClientCertFacts(new X509Certificate(ders[(i + k) % ders.length]!), VERIFIED));
    const c0 = process.cpuUsage();
    for (const facts of batch) table.record(facts, "a.bench.test");
    const c = process.cpuUsage(c0);
    us += c.user + c.system;
  }
  return us / N;
}
const oneDer = [new X509Certificate(client.certPem).raw];
const manyDers = fresh.map((c) => new X509Certificate(c.certPem).raw);
const micro = (ders: Buffer[], max: number) => {
  const runs: number[] = [];
  for (let k = 0; k < 9; k++) runs.push(recordCost(ders, new Sightings(max)));
  return median(runs);
};
const hitUs = micro(oneDer, 100_000);
// Twice as many certificates as entries: every record is a first sight that evicts another.
const missUs = micro(manyDers, Math.floor(manyDers.length / 2));

const row = (what: string, m: Record<"off" | "on", number[]>) => {
  const off = median(m.off);
  const on = median(m.on);
  return `| ${what} | ${off.toFixed(0)} | ${on.toFixed(0)} | ${(on / off).toFixed(3)} |`;
};
const offUs = median(same.off);
console.log(`\n| connections | inventory off: server CPU per handshake (µs) | inventory on (µs) | on / off |`);
console.log(`|---|---:|---:|---:|`);
console.log(row(`one certificate (${ROUNDS} × ${PER_ROUND})`, same));
console.log(row(`a new certificate each (${ROUNDS} × ${FRESH_PER_ROUND})`, firsts));
console.log(`\n| recording alone (Sightings.record) | µs per handshake | share of a handshake's server CPU (${offUs.toFixed(0)} µs) |`);
console.log(`|---|---:|---:|`);
console.log(`| hit (certificate known) | ${hitUs.toFixed(2)} | ${((hitUs / offUs) * 100).toFixed(2)}% |`);
console.log(`| first sight, evicting another | ${missUs.toFixed(2)} | ${((missUs / offUs) * 100).toFixed(2)}% |`);
console.log(`\n${cpuModel()}, node ${process.version}; medians of interleaved rounds (end to end) and of 9 × 20,000 records (CPU time).`);
for (const s of Object.values(servers)) s.child.kill("SIGTERM");
echo.server.close();
