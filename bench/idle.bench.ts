// Memory per idle keep-alive mTLS connection, certgate against nginx (issue 20: certgate's
// RSS for 10,000 idle connections at most 2× nginx's). Each server starts fresh (one worker),
// the client opens N connections (full mTLS handshake, one proxied GET each, then idle), and
// the server's RSS (its whole process tree) is read before, with the connections idle, and
// after they close.
//
// Servers: certgate; node (node:http2 + node:http answering itself); node-tls (a bare node:tls
// server with the same mTLS answering each read with a fixed response: what Node's TLS stack
// alone keeps per connection); nginx; openssl and openssl-release (bench/openssl-server.c, the
// same in C on the system's OpenSSL, without and with SSL_MODE_RELEASE_BUFFERS: what OpenSSL
// alone keeps per connection, and what nginx's setting of that mode saves; needs gcc and
// libssl-dev).
//
// Usage: node bench/idle.bench.ts [--connections 10000] [--servers certgate,node,node-tls,nginx,openssl,openssl-release] [--parallel 64]
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { parseArgs } from "node:util";
import { ResponseReader } from "../src/loadgen/http1.ts";
import { cpuModel, treeRss } from "./lib/proc.ts";
import { benchDir, SERVERNAME, startBareNode, startCertgate, startFloorServer, startNginx, startOpensslServer, startOrigin, writePki, type Pki, type Running } from "./lib/servers.ts";

const { values: args } = parseArgs({
  options: { connections: { type: "string", default: "10000" }, servers: { type: "string", default: "certgate,nginx" }, parallel: { type: "string", default: "64" } },
});
const N = Number(args.connections);
const PARALLEL = Number(args.parallel);
const IDLE_S = 600; // every server keeps idle connections open this long: longer than the run
process.env.BENCH_KEEPALIVE_MS = String(IDLE_S * 1000); // the bare node:https baseline (bench/floor-server.ts)
const log = (s: string) => process.stderr.write(`[idle] ${s}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One connection: handshake, one GET answered 200, then left open and idle. */
function openOne(port: number, pki: { cert: Buffer; key: Buffer; ca: Buffer }): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: SERVERNAME, cert: pki.cert, key: pki.key, ca: pki.ca, minVersion: "TLSv1.3", ecdhCurve: "P-256" });
    const reader = new ResponseReader();
    s.once("error", reject);
    s.once("secureConnect", () => s.write(`GET /idle HTTP/1.1\r\nhost: ${SERVERNAME}\r\n\r\n`));
    s.on("data", (c: Buffer) => {
      if (!reader.feed(c)) return;
      if (reader.status !== 200) reject(new Error(`status ${reader.status}`));
      else resolve(s);
    });
  });
}

async function measure(server: Running, pki: Pki): Promise<Record<string, number>> {
  const creds = { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey), ca: readFileSync(pki.serverCa) };
  // Warm the server up (code paths compiled, pools created) before the baseline.
  for (const s of await Promise.all(Array.from({ length: 50 }, () => openOne(server.port, creds)))) s.destroy();
  await sleep(1_000);
  const before = treeRss(server.pid);
  const open: tls.TLSSocket[] = [];
  let next = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: PARALLEL }, async () => {
      while (next < N) {
        next++;
        open.push(await openOne(server.port, creds));
      }
    }),
  );
  log(`${server.name}: ${open.length} connections open in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  await sleep(3_000); // let the server settle (GC, freed handshake buffers)
  const idle = treeRss(server.pid);
  const alive = open.filter((s) => !s.destroyed).length;
  for (const s of open) s.destroy();
  await sleep(3_000);
  const after = treeRss(server.pid);
  return { before, idle, after, alive, perConn: (idle - before) / N };
}

/** How each server starts: `dir` for its files, the PKI, the origin's port. */
const STARTERS: Record<string, (dir: string, pki: Pki, originPort: number) => Promise<Running>> = {
  certgate: (dir, pki, originPort) => startCertgate(dir, pki, originPort, null, [], "certgate", 1, IDLE_S),
  node: (dir, pki, originPort) => startBareNode(dir, pki, originPort, null),
  "node-tls": (dir, pki, originPort) => startFloorServer(dir, "tls-direct", pki.dir, originPort, null, "node-tls"),
  nginx: (dir, pki, originPort) => startNginx(dir, pki, originPort, null, 1, IDLE_S),
  openssl: (dir, pki) => startOpensslServer(dir, pki, false, null),
  "openssl-release": (dir, pki) => startOpensslServer(dir, pki, true, null),
};
const names = args.servers.split(",");
const unknown = names.filter((n) => !Object.hasOwn(STARTERS, n));
if (unknown.length) throw new Error(`--servers: unknown ${unknown.join(", ")} (known: ${Object.keys(STARTERS).join(", ")})`);

const dir = benchDir("idle");
const pki = await writePki(dir);
const origin = await startOrigin(dir, null);
const results: Record<string, Record<string, number>> = {};
const versions: string[] = [];
for (const name of names) {
  const server = await STARTERS[name]!(dir, pki, origin.port);
  try {
    results[name] = await measure(server, pki);
    versions.push(`${name}: ${server.version}`);
  } finally {
    await server.stop();
  }
}
await origin.stop();

const MiB = (b: number) => (b / 2 ** 20).toFixed(1);
const cpu = cpuModel();
console.log(`Idle keep-alive mTLS connections: ${N} (one GET each, then idle), ${cpu}, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 16)} UTC\n`);
console.log(`Servers: ${versions.join("; ")}.\n`);
const ng = results.nginx;
console.log(`| server | RSS before, MiB | RSS with the connections idle, MiB | KiB per connection | RSS after they close, MiB | still open |${ng ? " idle RSS vs nginx |" : ""}`);
console.log(`|---|---:|---:|---:|---:|---:|${ng ? "---:|" : ""}`);
for (const [name, r] of Object.entries(results))
  console.log(`| ${name} | ${MiB(r.before!)} | ${MiB(r.idle!)} | ${(r.perConn! / 1024).toFixed(1)} | ${MiB(r.after!)} | ${r.alive} |${ng ? ` ${(r.idle! / ng.idle!).toFixed(2)}× |` : ""}`);
const cg = results.certgate;
if (cg && ng) console.log(`\ncertgate / nginx: ${(cg.idle! / ng.idle!).toFixed(2)}× RSS with the connections idle, ${(cg.perConn! / ng.perConn!).toFixed(2)}× per connection.`);
const os0 = results.openssl;
const os1 = results["openssl-release"];
if (os0 && os1) console.log(`OpenSSL alone: ${(os0.perConn! / 1024).toFixed(1)} KiB per connection, ${(os1.perConn! / 1024).toFixed(1)} KiB with SSL_MODE_RELEASE_BUFFERS.`);
const bare = results["node-tls"];
if (bare && os0) console.log(`Node's TLS stack (node-tls) above OpenSSL's own share: ${((bare.perConn! - os0.perConn!) / 1024).toFixed(1)} KiB per connection.`);
