// Control-plane apply latency: from an admin write's response to the change being enforced on a
// new TLS connection, with 10,000 hostnames configured. Plain script:
//   node_modules/.bin/node bench/apply.bench.ts [--hosts 10000] [--writes 40] [--workers 1]
// Each write is a Fastly PATCH /tls/activations/{id} that attaches (enforced) or detaches the
// mutual authentication of one hostname; after the response, new connections without a client
// certificate are opened until the new policy is observed. Prints write latency (request →
// response, which includes the compile), enforce latency (response → observed) and total.
// With --workers N the data plane runs in N worker processes (this process is their primary)
// and a change counts as enforced once every worker has been seen enforcing it.
import https from "node:https";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { createDevPki } from "../src/pki/devpki.ts";
import { parseModel } from "../src/model/schema.ts";
import { Runtime } from "../src/dataplane/runtime.ts";
import { Snapshot } from "../src/dataplane/snapshot.ts";
import { createMetrics } from "../src/observability/metrics.ts";
import { createLogger } from "../src/observability/log.ts";
import { startEcho } from "../src/demo/echo.ts";
import { listenAdmin } from "../src/control/admin.ts";
import { loadStore, startControl } from "../src/control/setup.ts";
import { WorkerGroup } from "../src/workers/group.ts";
import { apinizerRules } from "../src/dialects/apinizer/rules.ts";

const { values } = parseArgs({ options: { hosts: { type: "string", default: "10000" }, writes: { type: "string", default: "40" }, workers: { type: "string", default: "1" } } });
const WORKERS = Number(values.workers);
process.env.CERTGATE_LOG_LEVEL ??= "silent"; // the workers inherit it
const HOSTS = Number(values.hosts);
const WRITES = Number(values.writes);
const TOKEN = "bench";

const pkiT0 = performance.now();
const p = await createDevPki({ serverNames: ["*.bench.test"] });
const echo = await startEcho();
const dir = mkdtempSync(join(tmpdir(), "certgate-apply-bench-"));
const seedT0 = performance.now();
const loaded = await loadStore(dir, () =>
  parseModel({
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: p.ca.certPem, enforced: true }],
    // Half the hosts with mTLS, half without: the compile does both kinds of work.
    hosts: Array.from({ length: HOSTS }, (_, i) => ({ hostname: `h${i}.bench.test`, certificate: "srv", ...(i % 2 ? { mtls: { trust_bundle: "clients" } } : {}) })),
    routes: [{ id: "all", hostname: "*.bench.test", origin: echo.url }],
    default_certificate: "srv",
  }),
  (m) => void new Snapshot(m, 1), // as the Runtime below compiles it (no derived rules)
);
const seedMs = performance.now() - seedT0;
const metrics = createMetrics();
const log = createLogger({ level: "silent" });
const group =
  WORKERS > 1
    ? new WorkerGroup(loaded.model, { workers: WORKERS, log, metrics, ticketSecret: Buffer.alloc(32, 1), environment: "production", derivedRules: apinizerRules, drainTimeoutMs: 1_000, debugWorkerId: true, onFatal: (why) => { throw new Error(why); } })
    : undefined;
const single = group ? undefined : new Runtime(loaded.model, { log, metrics, debugWorkerId: "0" });
const runtime = (group ?? single)!;
const { port } = group ? await group.start("127.0.0.1", 0) : await single!.listen("127.0.0.1", 0);
const { server } = startControl(runtime, metrics, loaded, TOKEN);
const admin = `http://127.0.0.1:${(await listenAdmin(server, "127.0.0.1", 0)).port}`;

const TARGET = "h42.bench.test"; // even: starts without mTLS

async function adminCall(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await fetch(admin + path, { method, headers: { "fastly-key": TOKEN, "content-type": "application/vnd.api+json" }, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: r.status, json: await r.json() };
}

/**
 * One request on a new connection with an untrusted client certificate: 200 while the host has
 * no mTLS, 403 once it is enforced; either answer names the worker that gave it.
 */
function probe(): Promise<{ ok: boolean; worker: string | undefined }> {
  return new Promise((resolve) => {
    const req = https.get({ host: "127.0.0.1", port, servername: TARGET, path: "/", ca: p.serverCa.certPem, cert: p.untrusted.certPem, key: p.untrusted.keyPem, agent: false, headers: { host: TARGET } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ ok: res.statusCode === 200, worker: res.headers["certgate-worker"] as string | undefined }));
    });
    req.on("error", () => resolve({ ok: false, worker: undefined }));
  });
}
const passes = async () => (await probe()).ok;

const act = await adminCall("GET", `/tls/activations?filter[tls_domain.id]=${TARGET}`);
const activation = act.json.data[0].id as string;
if (!(await passes())) throw new Error("the target host should start without mTLS");

const write: number[] = [];
const enforce: number[] = [];
const total: number[] = [];
let probes = 0;
for (let i = 0; i < WRITES; i++) {
  const attach = i % 2 === 0;
  const t0 = performance.now();
  const r = await adminCall("PATCH", `/tls/activations/${activation}`, {
    data: { type: "tls_activation", id: activation, relationships: { mutual_authentication: { data: attach ? { type: "mutual_authentication", id: "clients" } : null } } },
  });
  const t1 = performance.now();
  if (r.status !== 200) throw new Error(`write failed: ${r.status} ${JSON.stringify(r.json)}`);
  // Enforced once every worker has been seen enforcing it.
  const seen = new Set<string>();
  for (;;) {
    probes++;
    const r = await probe();
    if (r.ok === !attach) {
      seen.add(r.worker ?? "?");
      if (seen.size >= WORKERS) break;
    } else if (seen.size) throw new Error(`worker ${r.worker} still enforces the old policy after the write was answered`);
    if (performance.now() - t1 > 10_000) throw new Error("the change was not enforced within 10 s");
  }
  const t2 = performance.now();
  write.push(t1 - t0);
  enforce.push(t2 - t1);
  total.push(t2 - t0);
}

const pct = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
};
const row = (name: string, xs: number[]) =>
  `| ${name.padEnd(28)} | ${pct(xs, 0.5).toFixed(1).padStart(7)} | ${pct(xs, 0.9).toFixed(1).padStart(7)} | ${pct(xs, 0.99).toFixed(1).padStart(7)} | ${Math.max(...xs).toFixed(1).padStart(7)} |`;

// What a write's compile costs: from the snapshot in force (as a write compiles: only the changed
// host), and from nothing (as at start-up: every host).
const inForce = runtime.snapshot;
const oneHost = { ...inForce.model, hosts: inForce.model.hosts.map((h, i) => (i === 42 ? { ...h } : h)) };
const incremental: number[] = [];
const full: number[] = [];
for (let i = 0; i < 10; i++) {
  let t = performance.now();
  new Snapshot(oneHost, 0, undefined, inForce);
  incremental.push(performance.now() - t);
  t = performance.now();
  new Snapshot(inForce.model, 0);
  full.push(performance.now() - t);
}

const cpu = (await import("node:os")).cpus()[0]?.model ?? "unknown CPU";
console.log(`certgate apply latency: ${HOSTS} hostnames (${HOSTS / 2} with mTLS), ${WRITES} writes, ${WORKERS} worker${WORKERS > 1 ? "s" : " (one process)"}, node ${process.version}, ${cpu}`);
console.log(`(dev PKI ${(seedT0 - pkiT0).toFixed(0)} ms, seeding the store ${seedMs.toFixed(0)} ms, ${probes} probe connections)\n`);
console.log("| ms                           |     p50 |     p90 |     p99 |     max |");
console.log("|------------------------------|--------:|--------:|--------:|--------:|");
console.log(row("write (request → response)", write));
console.log(row("enforce (response → seen)", enforce));
console.log(row("total (request → seen)", total));
console.log(row("compile, one host changed", incremental));
console.log(row("compile from nothing", full));

server.close();
await (group ? group.stop() : single!.close());
echo.server.closeAllConnections();
echo.server.close();
await loaded.store.close();
rmSync(dir, { recursive: true, force: true });
