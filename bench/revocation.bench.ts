// Cost per handshake of each revocation mode, next to each other: none, a CRL (10,000 revoked
// serials, uploaded), OCSP (answers cached after the first). certgate runs as a child process;
// its CPU time comes from /proc/PID/stat; modes are interleaved in rounds and medians reported.
//   node bench/revocation.bench.ts [--quick]
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { spawn } from "node:child_process";
import { mkdtempSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { stringify } from "yaml";
import { createDevPki } from "../src/pki/devpki.ts";
import { issue, randomSerial } from "../src/pki/issue.ts";
import { startEcho } from "../src/demo/echo.ts";
import { OpensslCa } from "../test/helpers/opensslca.ts";
import { median } from "./lib/median.ts";
import { cpuSeconds } from "./lib/proc.ts";
import { freePort, serveArgs, waitForPort } from "./lib/servers.ts";

const quick = process.argv.includes("--quick");
const PER_ROUND = quick ? 150 : 600;
const ROUNDS = quick ? 3 : 5;
const MODES = ["none", "crl", "ocsp"] as const;

const dir = mkdtempSync(join(tmpdir(), "certgate-bench-rev-"));
const pki = await createDevPki({ serverNames: ["*.bench.test"] });
const client = await issue({ subject: "O=bench,CN=bench client" }, pki.ca);

// A CRL with 10,000 revoked serials (not the client's), signed by the client CA.
const crl = await x509.X509CrlGenerator.create({
  issuer: pki.ca.cert.subject,
  thisUpdate: new Date(),
  nextUpdate: new Date(Date.now() + 86_400_000),
  signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
  signingKey: pki.ca.keys.privateKey,
  entries: Array.from({ length: 10_000 }, () => ({ serialNumber: randomSerial(), revocationDate: new Date(), reason: x509.X509CrlReason.keyCompromise })),
});
const crlPem = `-----BEGIN X509 CRL-----\n${Buffer.from(crl.rawData).toString("base64").replace(/.{64}/g, "$&\n")}\n-----END X509 CRL-----\n`;

const ossl = new OpensslCa(pki.ca);
ossl.markValid(client.certPem);
const responder = await ossl.startOcsp();
const echo = await startEcho();

const bundle = (id: string, revocation?: object) => ({ id, ca: pki.ca.certPem, ...(revocation && { revocation }) });
const config = {
  certificates: [{ id: "srv", cert: pki.server.certPem, key: pki.server.keyPem }],
  trust_bundles: [bundle("none"), bundle("crl", { crl: { pem: crlPem } }), bundle("ocsp", { ocsp: { mode: "hard_fail", responder_url: responder.url } })],
  hosts: MODES.map((m) => ({ hostname: `${m}.bench.test`, mtls: { trust_bundle: m, mode: "enforced" } })),
  routes: MODES.map((m) => ({ id: m, hostname: `${m}.bench.test`, origin: echo.url })),
  default_certificate: "srv",
};
writeFileSync(join(dir, "certgate.yaml"), stringify(config));

const port = await freePort();
const log = join(dir, "certgate.log");
// One process (`--workers 1`): with workers the handshakes would be served, and their CPU spent, in
// processes other than this PID. Node flags as `npm start` gives them.
const child = spawn(process.execPath, serveArgs({ port, admin: 0, data: join(dir, "data"), config: join(dir, "certgate.yaml"), workers: 1 }), {
  env: { ...process.env, CERTGATE_LOG_LEVEL: "warn" }, // no access log: measure the proxy, not the logger
  stdio: ["ignore", "ignore", openSync(log, "w")],
});
process.once("exit", () => child.kill());
await waitForPort(port, child, "certgate", log);
const cpuMs = (pid: number) => cpuSeconds([pid]) * 1000;

function once(host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername: host, ca: pki.serverCa.certPem, cert: client.certPem, key: client.keyPem }, () => {
      s.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    });
    let head = "";
    s.on("data", (d) => (head ||= d.toString("latin1", 0, 12)));
    s.on("close", () => (head.startsWith("HTTP/1.1 200") ? resolve() : reject(new Error(`${host}: ${head || "no answer"}`))));
    s.on("error", reject);
  });
}

const results: Record<string, { cpuUs: number[]; wallUs: number[] }> = Object.fromEntries(MODES.map((m) => [m, { cpuUs: [], wallUs: [] }]));
for (const m of MODES) for (let i = 0; i < 20; i++) await once(`${m}.bench.test`); // warm-up: TLS servers built, OCSP cached
for (let r = 0; r < ROUNDS; r++) {
  for (const m of MODES) {
    const c0 = cpuMs(child.pid!);
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < PER_ROUND; i++) await once(`${m}.bench.test`);
    results[m]!.wallUs.push(Number(process.hrtime.bigint() - t0) / 1e3 / PER_ROUND);
    results[m]!.cpuUs.push(((cpuMs(child.pid!) - c0) * 1e3) / PER_ROUND);
  }
}
const base = median(results.none!.cpuUs);
console.log(`\n| mode | server CPU per handshake (µs) | vs none | wall per handshake+request (µs) |`);
console.log(`|---|---:|---:|---:|`);
for (const m of MODES) {
  const cpu = median(results[m]!.cpuUs);
  console.log(`| ${m} | ${cpu.toFixed(0)} | ${(cpu / base).toFixed(2)}x | ${median(results[m]!.wallUs).toFixed(0)} |`);
}
console.log(`\n${ROUNDS} rounds x ${PER_ROUND} new connections per mode (ECDSA P-256, TLS 1.3, one GET each), medians; node ${process.version}.`);
child.kill("SIGTERM");
responder.child.kill();
echo.server.close();
