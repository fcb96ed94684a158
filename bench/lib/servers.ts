// The servers under test and the shared origin: a fresh PKI, equivalent configurations for
// certgate, nginx and HAProxy, start (pinned with taskset), readiness, and stop by PID.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createDevPki } from "../../src/pki/devpki.ts";
import { servingNodeArgs } from "../../src/nodeargs.ts";
import { processTree } from "./proc.ts";
import { ORIGIN_BODY } from "./body.ts";

export { ORIGIN_BODY };

export const REPO = resolve(import.meta.dirname, "../..");
export const SERVERNAME = "localhost";

export interface Pki {
  dir: string;
  serverCert: string; // leaf + server CA (the chain every server sends)
  serverKey: string;
  serverBundle: string; // chain + key in one file (HAProxy's crt)
  serverCa: string; // what clients trust
  clientCa: string; // what servers trust for client certificates
  clientCert: string;
  clientKey: string;
}

export async function writePki(dir: string): Promise<Pki> {
  const pki = await createDevPki({ serverNames: [SERVERNAME] });
  const f = (name: string, body: string, mode = 0o644) => {
    const p = join(dir, name);
    writeFileSync(p, body, { mode });
    return p;
  };
  return {
    dir,
    serverCert: f("server.pem", pki.server.certPem),
    serverKey: f("server.key", pki.server.keyPem, 0o600),
    serverBundle: f("server-bundle.pem", pki.server.certPem + pki.server.keyPem, 0o600),
    serverCa: f("server-ca.pem", pki.serverCa.certPem),
    clientCa: f("client-ca.pem", pki.ca.certPem),
    clientCert: f("client.pem", pki.client.certPem),
    clientKey: f("client.key", pki.client.keyPem, 0o600),
  };
}

export interface Running {
  name: string;
  pid: number;
  port: number;
  version: string;
  log: string;
  child: ChildProcess;
  /** Offers h2 in ALPN and proxies HTTP/2 requests. */
  h2?: boolean;
  stop(): Promise<void>;
}

/** `taskset -c CPU cmd args` where there is a CPU to pin to; the PID stays the command's (exec). */
export function pinned(cpu: string | null, cmd: string, args: string[]): [string, string[]] {
  return cpu === null ? [cmd, args] : ["taskset", ["-c", cpu, cmd, ...args]];
}

export function which(cmd: string): string | null {
  for (const dir of [...(process.env.PATH ?? "").split(":"), "/usr/sbin", "/usr/local/sbin", "/sbin"]) {
    const p = join(dir, cmd);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => res(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function waitForPort(port: number, child: ChildProcess, name: string, log: string, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${name} exited during startup (${child.exitCode ?? child.signalCode}); log ${log}:\n${tail(log)}`);
    const ok = await new Promise<boolean>((res) => {
      const s = net.connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), res(true)));
      s.once("error", () => res(false));
    });
    if (ok) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`${name} did not listen on ${port} within ${timeoutMs} ms; log ${log}:\n${tail(log)}`);
    await sleep(100);
  }
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Sends `signal` to the process (by PID), waits, then SIGKILLs it and any descendant left. */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  const pid = child.pid;
  if (pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  const tree = processTree(pid);
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  try {
    process.kill(pid, signal);
  } catch {
    return;
  }
  const t = sleep(graceMs).then(() => "timeout" as const);
  if ((await Promise.race([exited.then(() => "exited" as const), t])) === "timeout") {
    for (const p of tree) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    await exited;
  }
  // Workers (nginx) exit with their master; make sure none is left behind.
  for (const p of tree.slice(1)) {
    try {
      process.kill(p, 0);
      process.kill(p, "SIGKILL");
    } catch {
      /* gone, as expected */
    }
  }
}

/** Every server process started and not yet exited, so an interrupted run can stop them all. */
export const spawned = new Set<ChildProcess>();

/** Counts `child` among the processes killLeftovers() stops, until it exits. */
export function track(child: ChildProcess): ChildProcess {
  spawned.add(child);
  child.once("exit", () => spawned.delete(child));
  return child;
}

/**
 * A benchmark script's temporary directory (certificates, configurations, logs): removed when
 * the script exits, with every server still running, on Ctrl-C and SIGTERM too.
 */
export function benchDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `certgate-${name}-`));
  process.on("exit", () => {
    killLeftovers();
    rmSync(dir, { recursive: true, force: true });
  });
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => process.exit(130));
  return dir;
}

/** SIGKILLs (by PID) whatever is still running of what start() spawned, descendants included. */
export function killLeftovers(): void {
  for (const child of spawned) {
    if (child.pid === undefined) continue;
    for (const pid of processTree(child.pid).reverse()) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
  }
}

function start(name: string, cpu: string | null, cmd: string, args: string[], log: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const [c, a] = pinned(cpu, cmd, args);
  const out = createWriteStream(log);
  const child = track(spawn(c, a, { env, stdio: ["ignore", "pipe", "pipe"] }));
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  child.on("error", (e) => out.write(`\n[bench] ${name}: ${e.message}\n`));
  return child;
}

// ---------------------------------------------------------------- origin

/** nginx serving the fixed body when nginx exists (cheapest, least noise), else a Node http server. */
export async function startOrigin(dir: string, cpu: string | null): Promise<Running> {
  const port = await freePort();
  const nginx = which("nginx");
  const log = join(dir, "origin.log");
  if (nginx) {
    const http = `  keepalive_timeout 60s;
  server {
    listen 127.0.0.1:${port} backlog=1024;
    location / { default_type text/plain; return 200 ${JSON.stringify(ORIGIN_BODY)}; }
  }
`;
    return { ...(await runNginx("origin (nginx)", nginx, join(dir, "origin-nginx"), http, port, cpu, log)), name: "origin" };
  }
  const child = start("origin (node)", cpu, process.execPath, [join(REPO, "bench/origin.ts"), String(port)], log);
  await waitForPort(port, child, "origin (node)", log);
  return { name: "origin", pid: child.pid!, port, version: `node ${process.version}`, log, child, stop: () => stopChild(child, "SIGTERM", 5_000) };
}

// ---------------------------------------------------------------- certgate

/** A benchmark script of this repository (bench/floor-server.ts) as a pinned server process listening on `port`. */
export async function startScript(dir: string, name: string, script: string, args: string[], port: number, cpu: string | null, nodeArgs: string[] = []): Promise<Running> {
  const log = join(dir, `${name}.log`);
  const child = start(name, cpu, process.execPath, [...nodeArgs, join(REPO, script), ...args], log);
  await waitForPort(port, child, name, log);
  return { name, pid: child.pid!, port, version: `${name} (node ${process.versions.node})`, log, child, stop: () => stopChild(child, "SIGTERM", 5_000) };
}

/** One of bench/floor-server.ts's minimal Node servers (`variant`) on a free port, with the certificates in `pkiDir`. */
export async function startFloorServer(dir: string, variant: string, pkiDir: string, originPort: number, cpu: string | null, name = variant): Promise<Running> {
  const port = await freePort();
  return startScript(dir, name, "bench/floor-server.ts", [variant, String(port), String(originPort), pkiDir], port, cpu);
}

/** certgate with `workers` data-plane processes (1: one process, as before workers existed). */
/**
 * Node's arguments for `certgate serve` as `npm start` runs it (certgate's OpenSSL
 * configuration), on loopback ports, with its data directory and bootstrap file.
 */
export function serveArgs(o: { port: number; admin: number; data: string; config: string; workers: number | string; nodeArgs?: readonly string[] }): string[] {
  return [...servingNodeArgs(o.nodeArgs ?? []), ...(o.nodeArgs ?? []), join(REPO, "src/cli.js"), "serve", "--listen", `127.0.0.1:${o.port}`, "--admin", `127.0.0.1:${o.admin}`, "--public", "127.0.0.1:0", "--data", o.data, "--config", o.config, "--workers", String(o.workers)];
}

export async function startCertgate(dir: string, pki: Pki, originPort: number, cpu: string | null, nodeArgs: string[] = [], tag = "certgate", workers = 1, keepAliveS = 5): Promise<Running> {
  const d = join(dir, tag);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const port = await freePort();
  const admin = await freePort();
  const config = join(d, "certgate.yaml");
  writeFileSync(
    config,
    `# Generated by bench/run.ts: one enforced mTLS host proxying to the shared origin.
certificates:
  - { id: srv, cert_file: ${pki.serverCert}, key_file: ${pki.serverKey} }
trust_bundles:
  - { id: clients, ca_file: ${pki.clientCa}, verify_depth: 4 }
hosts:
  - hostname: ${SERVERNAME}
    mtls: { trust_bundle: clients, mode: enforced }
routes:
  - { id: origin, hostname: ${SERVERNAME}, path_prefix: /, origin: "http://127.0.0.1:${originPort}" }
default_certificate: srv
limits: { keep_alive_timeout_ms: ${keepAliveS * 1000} }
`,
  );
  const log = join(d, "certgate.log");
  // Started as `npm start` starts it: with certgate's OpenSSL configuration (one session ticket per full handshake).
  const args = serveArgs({ port, admin, data: join(d, "data"), config, workers, nodeArgs });
  // Access logs off, as for nginx (access_log off) and HAProxy (no log): see docs/benchmarks.md.
  const env = { ...process.env, CERTGATE_LOG_LEVEL: process.env.CERTGATE_BENCH_LOG_LEVEL ?? "warn" };
  const child = start(tag, cpu, process.execPath, args, log, env);
  await waitForPort(port, child, tag, log, 30_000);
  return {
    name: workers === 1 ? "certgate" : `certgate-${workers}w`,
    pid: child.pid!,
    port,
    version: `certgate (node ${process.versions.node}, OpenSSL ${process.versions.openssl})`,
    log,
    child,
    h2: true,
    // SIGINT: certgate shuts down cleanly, and Node writes a --cpu-prof profile on exit.
    stop: () => stopChild(child, "SIGINT", 15_000),
  };
}

// ---------------------------------------------------------------- nginx

function nginxVersion(bin: string): string {
  const out = spawnSync(bin, ["-V"], { encoding: "utf8" }).stderr ?? "";
  const v = /nginx version: (\S+)/.exec(out)?.[1] ?? "nginx";
  const ssl = /built with (OpenSSL [\d.]+\w*)/.exec(out)?.[1];
  const run = /running with (OpenSSL [\d.]+\w*)/.exec(out)?.[1];
  return `${v}${ssl ? ` (${run ?? ssl})` : ""}`;
}

/** nginx (`workers` worker processes, no access log) with `http` as the body of its http block, in directory `d`. */
async function runNginx(name: string, bin: string, d: string, http: string, port: number, cpu: string | null, log: string, workers = 1): Promise<Running> {
  mkdirSync(d, { recursive: true });
  writeFileSync(
    join(d, "nginx.conf"),
    `# Generated by bench/lib/servers.ts.
daemon off;
master_process on;
worker_processes ${workers};
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
worker_rlimit_nofile 20000;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fastcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi;
  keepalive_requests 100000000;
${http}}
`,
  );
  const child = start(name, cpu, bin, ["-p", d, "-c", join(d, "nginx.conf"), "-e", join(d, "error.log")], log);
  await waitForPort(port, child, name, log);
  return { name, pid: child.pid!, port, version: nginxVersion(bin), log, child, stop: () => stopChild(child, "SIGTERM", 5_000) };
}

/** The equivalent of the certgate configuration. */
export async function startNginx(dir: string, pki: Pki, originPort: number, cpu: string | null, workers = 1, keepAliveS = 5): Promise<Running> {
  const bin = which("nginx");
  if (!bin) throw new Error("nginx not installed");
  const d = join(dir, workers === 1 ? "nginx" : `nginx-${workers}w`);
  const port = await freePort();
  const http = `  keepalive_timeout ${keepAliveS}s;
  upstream origin {
    server 127.0.0.1:${originPort};
    keepalive 64;
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:${port} ssl http2 backlog=1024;
    server_name ${SERVERNAME};
    ssl_certificate ${pki.serverCert};
    ssl_certificate_key ${pki.serverKey};
    ssl_protocols TLSv1.3;
    ssl_client_certificate ${pki.clientCa};
    ssl_verify_client on;
    ssl_verify_depth 4;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto https;
      proxy_set_header X-Forwarded-Host $host;
    }
  }
`;
  return { ...(await runNginx(workers === 1 ? "nginx" : `nginx-${workers}w`, bin, d, http, port, cpu, join(d, "nginx.log"), workers)), h2: true };
}

// ---------------------------------------------------------------- HAProxy

function haproxyVersion(bin: string): string {
  const out = spawnSync(bin, ["-vv"], { encoding: "utf8" }).stdout ?? "";
  const v = /version (\S+)/.exec(out)?.[1] ?? "";
  const ssl = /Running on (OpenSSL [\d.]+\w*)/.exec(out)?.[1];
  return `haproxy ${v}${ssl ? ` (${ssl})` : ""}`;
}

export async function startHaproxy(dir: string, pki: Pki, originPort: number, cpu: string | null): Promise<Running> {
  const bin = which("haproxy");
  if (!bin) throw new Error("haproxy not installed");
  const d = join(dir, "haproxy");
  mkdirSync(d, { recursive: true });
  const port = await freePort();
  const cfg = join(d, "haproxy.cfg");
  writeFileSync(
    cfg,
    `# Generated by bench/run.ts: the equivalent of the certgate configuration.
global
  nbthread 1
  maxconn 4000
  pidfile ${d}/haproxy.pid

defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 30s
  timeout http-keep-alive 5s
  timeout http-request 60s
  option forwardfor
  # Reuse idle origin connections for any client, as nginx's upstream keepalive and
  # certgate's origin pool do (the default "safe" opens one per client connection's first request).
  http-reuse always

frontend tls
  bind 127.0.0.1:${port} ssl crt ${pki.serverBundle} ca-file ${pki.clientCa} verify required ssl-min-ver TLSv1.3 alpn h2,http/1.1
  http-request set-header X-Forwarded-Proto https
  http-request set-header X-Forwarded-Host %[req.hdr(host)]
  default_backend origin

backend origin
  server o1 127.0.0.1:${originPort} maxconn 1000
`,
  );
  const check = spawnSync(bin, ["-c", "-f", cfg], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`haproxy rejected its configuration:\n${check.stdout}${check.stderr}`);
  const log = join(d, "haproxy.log");
  const child = start("haproxy", cpu, bin, ["-db", "-f", cfg], log);
  await waitForPort(port, child, "haproxy", log);
  return { name: "haproxy", pid: child.pid!, port, version: haproxyVersion(bin), log, child, h2: true, stop: () => stopChild(child, "SIGTERM", 5_000) };
}

// ---------------------------------------------------------------- bare Node

/**
 * Node's own servers with the same certificates and mTLS settings answering each GET
 * themselves (node:http2's secure server, HTTP/1.1 allowed: node:http's code on HTTP/1.1
 * connections): what Node's TLS and HTTP stacks cost with nothing of certgate's on top.
 */
export async function startBareNode(dir: string, pki: Pki, originPort: number, cpu: string | null): Promise<Running> {
  const s = await startFloorServer(dir, "node-direct", pki.dir, originPort, cpu);
  return { ...s, name: "node", h2: true, version: `node:http2 + node:http answering itself (node ${process.versions.node}, OpenSSL ${process.versions.openssl})` };
}

// ---------------------------------------------------------------- bare OpenSSL

/**
 * bench/openssl-server.c, built here with the system's gcc and libssl-dev: what OpenSSL alone
 * keeps per connection, with or without SSL_MODE_RELEASE_BUFFERS (nginx's setting).
 */
export async function startOpensslServer(dir: string, pki: Pki, releaseBuffers: boolean, cpu: string | null): Promise<Running> {
  const name = releaseBuffers ? "openssl-release" : "openssl";
  const bin = join(dir, "openssl-server");
  if (!existsSync(bin)) {
    const cc = spawnSync("gcc", ["-O2", "-o", bin, join(REPO, "bench/openssl-server.c"), "-lssl", "-lcrypto"], { encoding: "utf8" });
    if (cc.status !== 0) throw new Error(`building bench/openssl-server.c needs gcc and libssl-dev (apt-get install gcc libssl-dev): ${cc.error?.message ?? cc.stderr.trim()}`);
  }
  const port = await freePort();
  const log = join(dir, `${name}.log`);
  const child = start(name, cpu, bin, [String(port), pki.serverCert, pki.serverKey, pki.clientCa, releaseBuffers ? "1" : "0"], log);
  await waitForPort(port, child, name, log);
  const version = spawnSync("openssl", ["version"], { encoding: "utf8" }).stdout?.trim() ?? "OpenSSL";
  return { name, pid: child.pid!, port, version: `${version}, SSL_MODE_RELEASE_BUFFERS ${releaseBuffers ? "on" : "off"}`, log, child, stop: () => stopChild(child, "SIGTERM", 5_000) };
}

// ---------------------------------------------------------------- Caddy

function caddyVersion(bin: string): string {
  const out = spawnSync(bin, ["version"], { encoding: "utf8" }).stdout ?? "";
  return `caddy ${out.trim().split(/\s+/)[0] ?? ""} (Go crypto/tls)`;
}

/** Caddy from Debian, one OS thread for Go code (GOMAXPROCS=1, as the other servers get one CPU). */
export async function startCaddy(dir: string, pki: Pki, originPort: number, cpu: string | null): Promise<Running> {
  const bin = which("caddy");
  if (!bin) throw new Error("caddy not installed");
  const d = join(dir, "caddy");
  mkdirSync(d, { recursive: true });
  const port = await freePort();
  const cfg = join(d, "Caddyfile");
  writeFileSync(
    cfg,
    `# Generated by bench/lib/servers.ts: the equivalent of the certgate configuration.
{
  admin off
  auto_https off
  servers {
    protocols h1 h2
  }
}
https://${SERVERNAME}:${port} {
  bind 127.0.0.1
  tls ${pki.serverCert} ${pki.serverKey} {
    protocols tls1.3
    client_auth {
      mode require_and_verify
      trusted_ca_cert_file ${pki.clientCa}
    }
  }
  reverse_proxy 127.0.0.1:${originPort}
}
`,
  );
  const log = join(d, "caddy.log");
  // Caddy keeps state under XDG_DATA_HOME / XDG_CONFIG_HOME: keep it in the run's directory.
  const env = { ...process.env, GOMAXPROCS: "1", HOME: d, XDG_DATA_HOME: join(d, "data"), XDG_CONFIG_HOME: join(d, "config") };
  const child = start("caddy", cpu, bin, ["run", "--config", cfg, "--adapter", "caddyfile"], log, env);
  await waitForPort(port, child, "caddy", log);
  return { name: "caddy", pid: child.pid!, port, version: caddyVersion(bin), log, child, h2: true, stop: () => stopChild(child, "SIGTERM", 5_000) };
}

// ---------------------------------------------------------------- install

const PACKAGES = { nginx: "nginx-light", haproxy: "haproxy", caddy: "caddy" } as const;
export type Peer = keyof typeof PACKAGES;

/** Installs the peers (nginx-light, haproxy, caddy) from Debian when missing (root only); returns what is usable. */
export function ensurePeers(allowInstall: boolean, log: (s: string) => void): Record<Peer, boolean> {
  const have = () => ({ nginx: which("nginx") !== null, haproxy: which("haproxy") !== null, caddy: which("caddy") !== null });
  const absent = (h: Record<Peer, boolean>) => (Object.keys(PACKAGES) as Peer[]).filter((p) => !h[p]).map((p) => PACKAGES[p]);
  let h = have();
  const missing = absent(h);
  if (!missing.length) return h;
  if (!allowInstall) {
    log(`peers missing (${missing.join(", ")}) and --no-install given: skipping them`);
    return h;
  }
  if (process.getuid?.() !== 0 || !which("apt-get")) {
    log(`peers missing (${missing.join(", ")}); cannot install them (needs root and apt-get): skipping them`);
    return h;
  }
  log(`installing ${missing.join(" ")} (apt-get) ...`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  let r = spawnSync("apt-get", ["install", "-y", "-q", ...missing], { encoding: "utf8", env, timeout: 300_000 });
  if (r.status !== 0) {
    spawnSync("apt-get", ["update", "-q"], { encoding: "utf8", env, timeout: 300_000 });
    r = spawnSync("apt-get", ["install", "-y", "-q", ...missing], { encoding: "utf8", env, timeout: 300_000 });
  }
  h = have();
  if (absent(h).length) log(`could not install ${absent(h).join(", ")}: skipping (${(r.stderr ?? "").trim().split("\n").slice(-1)[0] ?? ""})`);
  return h;
}
