// Memory certgate retains, as opposed to memory it has not yet given back: RSS, V8 heap and
// external memory read right after a full garbage collection, every --step iterations of one
// kind of churn at a time. A soak's RSS also moves with V8's heap sizing and the allocator's
// free lists; after a full GC, what is left is what the process holds. Growth that survives
// it, per iteration, is a leak.
//
//   connections  mTLS connections, one GET each (Connection: close)
//   routes       a route written through the admin API, then 3 connections
//   flips        the `enforced` of a host's bundle toggled (a policy change: a new TLS server
//                and ticket keys for the host), then 3 connections to that host
//   crls         a new CRL uploaded (the last 100 revocations, one more each time), then 3 connections
//
// certgate runs as one process (`--workers 1`) with the inspector on a loopback port of its
// own (`--inspect=127.0.0.1:0`): the GC is asked for through it (HeapProfiler.collectGarbage,
// twice, as Chrome's button does), so certgate needs no GC endpoint.
//
// Usage: node bench/retained.bench.ts [--iterations 3000] [--step 1000] [--kinds connections,routes,flips,crls]
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startEcho } from "../src/demo/echo.ts";
import { createDevPki, type DevPki } from "../src/pki/devpki.ts";
import { issue } from "../src/pki/issue.ts";
import { FLIP_HOST, writeChurnConfig } from "./lib/churnconfig.ts";
import { signCrl } from "./lib/crl.ts";
import { benchDir, freePort, serveArgs, track, waitForPort } from "./lib/servers.ts";
import { cpuModel, treeRss } from "./lib/proc.ts";
import { leastSquaresSlope } from "./lib/slope.ts";

const KINDS = ["connections", "routes", "flips", "crls"] as const;
type Kind = (typeof KINDS)[number];
const { values: args } = parseArgs({ options: { iterations: { type: "string", default: "3000" }, step: { type: "string", default: "1000" }, kinds: { type: "string", default: KINDS.join(",") } } });
const ITERATIONS = Number(args.iterations);
const STEP = Number(args.step);
const kinds = args.kinds.split(",").map((k) => {
  if (!KINDS.includes(k as Kind)) throw new Error(`--kinds: unknown kind "${k}" (${KINDS.join(", ")})`);
  return k as Kind;
});
const log = (s: string) => process.stderr.write(`[retained] ${s}\n`);
const MiB = 2 ** 20;

interface Sample {
  iteration: number;
  rss: number;
  heapUsed: number;
  external: number;
}

/** certgate with its inspector on a port of its own; resolves with the inspector's WebSocket URL. */
function startCertgate(dir: string, config: string, port: number, admin: number, token: string): Promise<{ child: ChildProcess; inspector: string }> {
  const args = serveArgs({ port, admin, data: join(dir, "data"), config, workers: 1, nodeArgs: ["--inspect=127.0.0.1:0"] });
  const child = track(spawn(process.execPath, args, { env: { ...process.env, CERTGATE_ADMIN_TOKEN: token, CERTGATE_LOG_LEVEL: "warn" }, stdio: ["ignore", "ignore", "pipe"] }));
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (c: Buffer) => {
      err += c.toString();
      const url = /Debugger listening on (ws:\/\/\S+)/.exec(err)?.[1];
      if (url) resolve({ child, inspector: url });
    });
    child.once("exit", (code) => reject(new Error(`certgate exited (${code}): ${err.slice(-500)}`)));
  });
}

class Inspector {
  readonly #ws: WebSocket;
  #id = 0;
  private constructor(ws: WebSocket) {
    this.#ws = ws;
  }
  static async open(url: string): Promise<Inspector> {
    const ws = new WebSocket(url);
    await new Promise((resolve, reject) => {
      ws.addEventListener("open", resolve, { once: true });
      ws.addEventListener("error", () => reject(new Error(`inspector ${url}: cannot connect`)), { once: true });
    });
    return new Inspector(ws);
  }
  call(method: string): Promise<void> {
    const id = ++this.#id;
    return new Promise((resolve) => {
      const onMessage = (e: MessageEvent) => {
        if ((JSON.parse(String(e.data)) as { id?: number }).id !== id) return;
        this.#ws.removeEventListener("message", onMessage);
        resolve();
      };
      this.#ws.addEventListener("message", onMessage);
      this.#ws.send(JSON.stringify({ id, method }));
    });
  }
  close(): void {
    this.#ws.close();
  }
}

async function run(kind: Kind, pki: DevPki): Promise<Sample[]> {
  const dir = join(root, kind);
  mkdirSync(dir);
  const echo = await startEcho();
  const port = await freePort();
  const admin = await freePort();
  const token = randomBytes(16).toString("hex");
  const config = writeChurnConfig(dir, pki, echo.url);
  const { child, inspector: url } = await startCertgate(dir, config, port, admin, token);
  let inspector: Inspector | undefined;
  try {
    await waitForPort(port, child, "certgate", "", 30_000);
    await waitForPort(admin, child, "certgate admin", "", 30_000);
    inspector = await Inspector.open(url);
    const api = async (method: string, path: string, body: unknown, type = "application/json") => {
      const r = await fetch(`http://127.0.0.1:${admin}${path}`, { method, headers: { authorization: `Bearer ${token}`, "content-type": type }, body: JSON.stringify(body) });
      const text = await r.text();
      if (!r.ok) throw new Error(`admin ${method} ${path}: ${r.status} ${text.slice(0, 200)}`);
    };
    const get = (host: string) =>
      new Promise<void>((resolve, reject) => {
        const req = https.get({ host: "127.0.0.1", port, servername: host, headers: { host }, path: "/retained", agent: false, ca: pki.serverCa.certPem, cert: pki.client.certPem, key: pki.client.keyPem }, (res) => {
          res.resume();
          res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`${host}: status ${res.statusCode}`))));
        });
        req.on("error", reject);
      });
    const sample = async (iteration: number): Promise<Sample> => {
      await inspector!.call("HeapProfiler.collectGarbage");
      await inspector!.call("HeapProfiler.collectGarbage");
      const m = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
      const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, "m").exec(m)?.[1]);
      const rss = treeRss(child.pid!);
      return { iteration, rss, heapUsed: metric("nodejs_heap_size_used_bytes"), external: metric("nodejs_external_memory_bytes") };
    };
    const serials: string[] = [];
    const samples: Sample[] = [];
    for (let i = 0; i <= ITERATIONS; i++) {
      if (i % STEP === 0) {
        samples.push(await sample(i));
        log(`${kind} ${i}: RSS ${(samples.at(-1)!.rss / MiB).toFixed(1)} MiB`);
      }
      if (i === ITERATIONS) break;
      let host = "localhost";
      if (kind === "routes") await api("PUT", `/v1/routes/r${i % 32}`, { hostname: "localhost", path_prefix: `/r/${i % 32}/`, origin: echo.url });
      else if (kind === "flips") {
        await api("PATCH", "/tls/mutual_authentications/flip", { data: { type: "mutual_authentication", id: "flip", attributes: { enforced: i % 2 === 1 } } }, "application/vnd.api+json");
        host = FLIP_HOST;
      } else if (kind === "crls") {
        // A CRL of the last 100 revocations: a CA's list stays about as long as it grows, as entries expire.
        serials.push((await issue({ subject: `O=certgate bench,CN=revoked ${i}` }, pki.ca)).cert.serialNumber);
        await api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: await signCrl(pki.ca, serials.slice(-100), i + 1) } });
      }
      for (let k = 0; k < (kind === "connections" ? 1 : 3); k++) await get(host);
    }
    return samples;
  } finally {
    inspector?.close();
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
    echo.server.closeAllConnections();
    echo.server.close();
  }
}

const root = benchDir("retained");
const pki = await createDevPki({ serverNames: ["localhost", FLIP_HOST] });
const results = new Map<Kind, Sample[]>();
for (const kind of kinds) results.set(kind, await run(kind, pki));

/** Least-squares slope of y over the samples after the first (warm-up), per 1,000 iterations. */
const slope = (samples: Sample[], y: (s: Sample) => number): number => (leastSquaresSlope(samples.slice(1).map((s) => [s.iteration / 1000, y(s)] as const)) ?? 0);

const cpu = cpuModel();
console.log(`Memory retained after a full GC, every ${STEP} of ${ITERATIONS} iterations (MiB; slope after the first step, KiB per 1,000 iterations), ${cpu}, Node ${process.versions.node}, ${new Date().toISOString().slice(0, 16)} UTC\n`);
console.log("| churn | RSS after each step | RSS slope | V8 heap used | heap slope | external slope |");
console.log("|---|---|---:|---|---:|---:|");
for (const [kind, s] of results) {
  const list = (y: (x: Sample) => number) => s.map((x) => (y(x) / MiB).toFixed(1)).join(" → ");
  const kib = (v: number) => `${v >= 0 ? "+" : ""}${(v / 1024).toFixed(0)}`;
  console.log(`| ${kind} | ${list((x) => x.rss)} | ${kib(slope(s, (x) => x.rss))} | ${list((x) => x.heapUsed)} | ${kib(slope(s, (x) => x.heapUsed))} | ${kib(slope(s, (x) => x.external))} |`);
}
