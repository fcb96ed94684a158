// Fleet propagation: two certgate nodes (each a primary with its workers) on one PostgreSQL;
// time from a write answered on node A to node B enforcing it, and from a revocation uploaded
// on A to B refusing the certificate. Plain script:
//   node_modules/.bin/node bench/fleet.bench.ts [--writes 40] [--workers 2]
// Uses $CERTGATE_TEST_PG_URL, else starts a throw-away cluster from Debian's binaries.
import { cpus } from "node:os";
import { parseArgs } from "node:util";
import { startEcho } from "../src/demo/echo.ts";
import { issue } from "../src/pki/issue.ts";
import { pki } from "../test/helpers/harness.ts";
import { OpensslCa } from "../test/helpers/opensslca.ts";
import { createDatabase, startCluster } from "../test/helpers/postgres.setup.ts";
import { get, startGroup } from "../test/workers/group.ts";

const { values } = parseArgs({ options: { writes: { type: "string", default: "40" }, workers: { type: "string", default: "2" } } });
const WRITES = Number(values.writes);
process.env.CERTGATE_LOG_LEVEL ??= "warn";

const cluster = process.env.CERTGATE_TEST_PG_URL ? undefined : await startCluster();
const base = process.env.CERTGATE_TEST_PG_URL ?? cluster?.url;
if (!base) throw new Error("no PostgreSQL: set CERTGATE_TEST_PG_URL or install postgresql");
const url = new URL(await createDatabase(base, "cg_bench"));

const p = await pki();
const echo = await startEcho();
const build = () => ({
  certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
  trust_bundles: [{ id: "clients", ca: p.ca.certPem }],
  hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" as const } }],
  routes: [{ id: "main", hostname: "localhost", origin: echo.url }],
  default_certificate: "srv",
});
const args = ["--store", url.toString(), "--workers", values.workers!];
const a = await startGroup(build, args);
const b = await startGroup(build, args);

/** Polls node B with new connections until `seen` holds; ms from `t0`. */
async function until(t0: number, seen: () => Promise<boolean>): Promise<number> {
  for (;;) {
    if (await seen()) return performance.now() - t0;
    if (performance.now() - t0 > 10_000) throw new Error("not seen on node B within 10 s");
  }
}

const write: number[] = [];
const propagate: number[] = [];
for (let i = 0; i < WRITES; i++) {
  const path = `/w${i}`;
  const t0 = performance.now();
  // A route to a closed port: node B answers 502 on it once it has the route, 200 (echo) before.
  const r = await a.api("PUT", `/v1/routes/w${i}`, { hostname: "localhost", path_prefix: path, origin: "http://127.0.0.1:9" });
  if (r.status !== 201) throw new Error(`write ${i}: ${r.status}`);
  const t1 = performance.now();
  write.push(t1 - t0);
  propagate.push(await until(t0, async () => (await get(b.port, { cert: p.client, path })).status === 502));
}

const ca = new OpensslCa(p.ca);
const revoke: number[] = [];
for (let i = 0; i < 5; i++) {
  const victim = await issue({ subject: `O=certgate dev,CN=fleet bench ${i}` }, p.ca);
  await ca.revoke(victim.certPem);
  const crl = await ca.gencrl();
  const t0 = performance.now();
  if ((await a.api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: crl } })).status !== 200) throw new Error("revocation upload failed");
  revoke.push(await until(t0, async () => (await get(b.port, { cert: victim })).status === 403));
}

const pct = (xs: number[], q: number) => [...xs].sort((x, y) => x - y)[Math.min(xs.length - 1, Math.ceil(q * xs.length) - 1)]!;
const row = (label: string, xs: number[]) => `| ${label} | ${pct(xs, 0.5).toFixed(1)} | ${pct(xs, 0.9).toFixed(1)} | ${pct(xs, 0.99).toFixed(1)} | ${Math.max(...xs).toFixed(1)} |`;
console.log(`certgate fleet propagation: 2 nodes × ${values.workers} workers, one PostgreSQL, ${WRITES} writes, ${cpus()[0]?.model ?? "unknown CPU"}, node ${process.version}\n`);
console.log("| ms | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|");
console.log(row("write answered on A", write));
console.log(row("write on A → enforced on B", propagate));
console.log(row("CRL uploaded on A → refused on B (5)", revoke));

await Promise.all([a.stop(), b.stop()]);
echo.server.close();
cluster?.remove();
