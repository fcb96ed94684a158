// certgate bench against nginx (a peer it did not write): one server requiring client
// certificates with session tickets on, one with resumption off. nginx answers a missing or
// untrusted certificate with HTTP 400 after the handshake (ssl_verify_client on), where
// certgate sends the alert certificate_required: the classes say which.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pki } from "../helpers/harness.ts";
import { pemFiles } from "../helpers/tools.ts";
import { runBench, type BenchOptions, type BenchResult } from "../../src/loadgen/coordinator.ts";
import { benchOptions } from "./options.ts";

const NGINX = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"].find((p) => existsSync(p));

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode})`);
    const ok = await new Promise<boolean>((r) => net.connect(port, "127.0.0.1").once("connect", function (this: net.Socket) { this.destroy(); r(true); }).once("error", () => r(false)));
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nginx did not listen on ${port}`);
}

let nginx: ChildProcess | undefined;
let f: Record<string, string>;
let tickets = 0; // port with session tickets (nginx's default)
let noResume = 0; // port with tickets and the session cache off
let tls12 = 0; // port with nginx 1.22's default protocols (TLS 1.3 left out)

beforeAll(async () => {
  if (!NGINX) throw new Error("nginx is not installed (.ci/run installs nginx-light)");
  const p = await pki();
  f = pemFiles({
    "server.pem": p.server.certPem,
    "server.key": p.server.keyPem,
    "client-ca.pem": p.ca.certPem,
    "server-ca.pem": p.serverCa.certPem,
    "client.pem": p.client.certPem,
    "client.key": p.client.keyPem,
    "untrusted.pem": p.untrusted.certPem,
    "untrusted.key": p.untrusted.keyPem,
  });
  tickets = await freePort();
  noResume = await freePort();
  tls12 = await freePort();
  const d = mkdtempSync(join(tmpdir(), "certgate-bench-nginx-"));
  const server = (port: number, extra: string, protocols = "ssl_protocols TLSv1.2 TLSv1.3; # nginx 1.22 leaves TLS 1.3 out by default") => `
  server {
    listen 127.0.0.1:${port} ssl;
    server_name localhost;
    ssl_certificate ${f["server.pem"]};
    ssl_certificate_key ${f["server.key"]};
    ssl_client_certificate ${f["client-ca.pem"]};
    ${protocols}
    ssl_verify_client on;
    ${extra}
    location / { default_type text/plain; return 200 "ok\\n"; }
  }`;
  writeFileSync(
    join(d, "nginx.conf"),
    `daemon off;
master_process on;
worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${d}/body; proxy_temp_path ${d}/proxy; fastcgi_temp_path ${d}/fastcgi; uwsgi_temp_path ${d}/uwsgi; scgi_temp_path ${d}/scgi;
${server(tickets, "")}
${server(noResume, "ssl_session_tickets off; ssl_session_cache off;")}
${server(tls12, "", "ssl_protocols TLSv1.2;")}
}
`,
  );
  nginx = spawn(NGINX, ["-p", d, "-c", join(d, "nginx.conf"), "-e", join(d, "error.log")], { stdio: "ignore" });
  await waitForPort(tickets, nginx);
  await waitForPort(noResume, nginx);
  await waitForPort(tls12, nginx);
});

afterAll(async () => {
  if (!nginx || nginx.exitCode !== null) return;
  const exited = new Promise((r) => nginx!.once("exit", r));
  nginx.kill("SIGTERM"); // the master stops its worker
  await exited;
});

function bench(port: number, o: Partial<BenchOptions>): Promise<BenchResult> {
  return runBench(benchOptions(`https://localhost:${port}/`, f, o));
}

describe("certgate bench against nginx", () => {
  it("a valid certificate: every attempt ok", async () => {
    const r = await bench(tickets, {});
    expect(r.ok).toBe(30);
    expect(r.failures).toEqual({});
    // Handshakes count when they complete in the window: one in flight when the 30th answer closed it may count.
    expect(r.latency.handshake.count).toBeGreaterThanOrEqual(30);
    expect(r.latency.ttfb.count).toBe(30);
  });

  it("no certificate: nginx completes the handshake and answers 400", async () => {
    const r = await bench(tickets, { certFile: undefined, keyFile: undefined });
    expect(r.failures).toEqual({ "http:400": 30 });
  });

  it("an untrusted certificate: 400 as well", async () => {
    const r = await bench(tickets, { certFile: f["untrusted.pem"], keyFile: f["untrusted.key"] });
    expect(r.failures).toEqual({ "http:400": 30 });
  });

  it("--tls 1.3 against a server without TLS 1.3: the alert protocol_version, by name", async () => {
    const r = await bench(tls12, { tls: "1.3", count: 10 });
    expect(r.failures).toEqual({ "tls_alert:protocol_version": 10 });
    expect((await bench(tls12, { tls: "1.2", count: 10 })).ok).toBe(10);
  });

  it("resumption on (tickets) and off (no tickets, no session cache)", async () => {
    for (const version of ["1.3", "1.2"] as const) {
      const on = await bench(tickets, { mode: "resumed", tls: version, concurrency: 1, count: 40 });
      expect(on.ok).toBe(40);
      expect(on.resumed).toBeGreaterThanOrEqual(38);
      const off = await bench(noResume, { mode: "resumed", tls: version, concurrency: 1, count: 20 });
      expect(off.ok).toBe(20);
      expect(off.resumed).toBe(0);
    }
  });

  it("keep-alive and the open loop", async () => {
    const ka = await bench(tickets, { mode: "keepalive", count: 200 });
    expect(ka.ok).toBe(200);
    expect(ka.connections).toBe(2);
    const paced = await bench(tickets, { rate: 40, count: 0, durationMs: 1_000 });
    // 40 due in the window; the last ones may still be in flight when it closes.
    expect(paced.ok + paced.failed).toBeGreaterThan(25);
    expect(paced.ok + paced.failed).toBeLessThanOrEqual(41);
    expect(paced.failed).toBe(0);
  });
});
