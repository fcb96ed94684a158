// certgate bench against an in-process certgate (enforced mTLS on localhost) and against
// small servers that misbehave on purpose: real sockets, a second or so of load each.
import net from "node:net";
import tls from "node:tls";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { runBench, type BenchOptions, type BenchResult } from "../../src/loadgen/coordinator.ts";
import { benchOptions } from "./options.ts";
import { issue } from "../../src/pki/issue.ts";

let proxy: Proxy;
let f: Record<string, string>;
const url = () => `https://localhost:${proxy.port}/bench`;

beforeAll(async () => {
  const p = await pki();
  f = pemFiles({
    "client.pem": p.client.certPem,
    "client.key": p.client.keyPem,
    "untrusted.pem": p.untrusted.certPem,
    "untrusted.key": p.untrusted.keyPem,
    "server-ca.pem": p.serverCa.certPem,
    "other-ca.pem": p.otherCa.certPem,
  });
  proxy = await startProxy((pk, origin) => baseModel(pk, origin, [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } }]));
});
afterAll(() => proxy.close());

function bench(o: Partial<BenchOptions>): Promise<BenchResult> {
  return runBench(benchOptions(url(), f, o));
}

describe("certgate bench against certgate", () => {
  it("a valid certificate: every attempt ok, latency split into connect, handshake and first byte", async () => {
    const r = await bench({});
    expect(r.attempts).toBe(30);
    expect(r.ok).toBe(30);
    expect(r.failures).toEqual({});
    // Handshakes count when they complete in the window: one in flight when the 30th answer closed it may count.
    expect(r.connections).toBeGreaterThanOrEqual(30);
    expect(r.resumed).toBe(0);
    for (const k of ["connect", "handshake", "ttfb", "total"] as const) {
      expect(r.latency[k].count).toBe(k === "ttfb" || k === "total" ? 30 : r.connections);
      expect(r.latency[k].p50).toBeGreaterThan(0);
      expect(r.latency[k].p999).toBeGreaterThanOrEqual(r.latency[k].p50!);
    }
    expect(r.reqPerS).toBeGreaterThan(0);
    expect(r.generator.cpuS).toBeGreaterThan(0);
  });

  it("no certificate: the TLS alert certificate_required, counted by name", async () => {
    const r = await bench({ certFile: undefined, keyFile: undefined, tls: "1.3" });
    expect(r.ok).toBe(0);
    expect(r.failures).toEqual({ "tls_alert:certificate_required": 30 });
  });

  it("an untrusted certificate: certgate completes the handshake and answers 403", async () => {
    const r = await bench({ certFile: f["untrusted.pem"], keyFile: f["untrusted.key"] });
    expect(r.ok).toBe(0);
    expect(r.failures).toEqual({ "http:403": 30 });
  });

  it("resumption on (--mode resumed) and off (--mode full), TLS 1.3 and 1.2", async () => {
    for (const version of ["1.3", "1.2"] as const) {
      const on = await bench({ mode: "resumed", tls: version, count: 40, concurrency: 1 });
      expect(on.ok).toBe(40);
      // The first connection has no session yet; after it every one offers the latest ticket.
      expect(on.resumed).toBeGreaterThanOrEqual(38);
      const off = await bench({ mode: "full", tls: version, count: 20 });
      expect(off.ok).toBe(20);
      expect(off.connections).toBeGreaterThanOrEqual(20);
      expect(off.resumed).toBe(0);
      expect(off.resumedShare).toBe(0);
    }
  });

  it("keep-alive: requests on a few connections, each connection's handshake counted once", async () => {
    const r = await bench({ mode: "keepalive", count: 200, concurrency: 2 });
    expect(r.ok).toBe(200);
    expect(r.connections).toBe(2);
    expect(r.latency.ttfb.count).toBe(200);
    expect(r.latency.handshake.count).toBe(2);
  });

  it("h2: streams in flight on a few HTTP/2 connections, each handshake counted once, the server's CPU per request", async () => {
    const r = await bench({ mode: "h2", count: 300, concurrency: 2, streams: 5, serverPid: process.pid });
    expect(r.ok).toBe(300);
    expect(r.failures).toEqual({});
    expect(r.connections).toBe(2);
    expect(r.latency.handshake.count).toBe(2);
    expect(r.latency.ttfb.count).toBe(300);
    expect(r.server!.unit).toBe("request");
    // Refusals are counted by status over HTTP/2 as over HTTP/1.1.
    const bad = await bench({ mode: "h2", count: 20, concurrency: 1, streams: 4, certFile: f["untrusted.pem"], keyFile: f["untrusted.key"] });
    expect(bad.ok, JSON.stringify(bad.failures)).toBe(0);
    expect(bad.failures, JSON.stringify(bad.failures)).toHaveProperty("http:403");
  });

  it("a server certificate this client does not trust is this client's refusal (verify:...), and --insecure accepts it", async () => {
    const r = await bench({ caFile: f["other-ca.pem"], count: 5 });
    expect(r.ok).toBe(0);
    // The server sends its chain up to its own root, which this client does not trust.
    expect(r.failures).toEqual({ "verify:SELF_SIGNED_CERT_IN_CHAIN": 5 });
    const k = await bench({ caFile: undefined, insecure: true, count: 5 });
    expect(k.ok).toBe(5);
  });

  it("--server-pid: the server's CPU per handshake over its process tree", async () => {
    // certgate runs in this process here.
    const r = await bench({ serverPid: process.pid, count: 40 });
    expect(r.server).not.toBeNull();
    expect(r.server!.cpuS).toBeGreaterThan(0);
    expect(r.server!.cpuPerOpUs).toBeGreaterThan(0);
    expect(r.server!.unit).toBe("handshake");
  });
});

describe("certgate bench against failing servers", () => {
  it("--mode h2 against a server that does not offer h2 in ALPN: protocol:no_h2", async () => {
    const p = await pki();
    const s = tls.createServer({ cert: p.server.certPem, key: p.server.keyPem }, (c) => c.destroy());
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    try {
      const r = await bench({ url: `https://127.0.0.1:${(s.address() as net.AddressInfo).port}/`, insecure: true, caFile: undefined, mode: "h2", concurrency: 1, streams: 1, count: 3 });
      expect(r.ok).toBe(0);
      expect(r.failures).toEqual({ "protocol:no_h2": 3 });
    } finally {
      s.close();
    }
  });

  it("a closed port: connect:ECONNREFUSED", async () => {
    const s = net.createServer();
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    const port = (s.address() as net.AddressInfo).port;
    await new Promise((r) => s.close(r));
    const r = await bench({ url: `https://127.0.0.1:${port}/`, insecure: true, caFile: undefined, count: 10 });
    expect(r.failures).toEqual({ "connect:ECONNREFUSED": 10 });
  });

  it("a server that accepts and never answers: timeout:handshake", async () => {
    const held: net.Socket[] = [];
    const s = net.createServer((c) => held.push(c));
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    try {
      const r = await bench({ url: `https://127.0.0.1:${(s.address() as net.AddressInfo).port}/`, insecure: true, caFile: undefined, count: 2, timeoutMs: 300 });
      expect(r.failures).toEqual({ "timeout:handshake": 2 });
    } finally {
      held.forEach((c) => c.destroy());
      s.close();
    }
  });

  it("verifies every certificate the server presents: a server presenting an untrusted one on two connections of three fails over it, never answers over it", async () => {
    // After the first verified connection the generator skips Node's per-connection check for
    // the certificate it verified; any other certificate must still be refused.
    const p = await pki();
    const other = await issue({ subject: "CN=localhost", dnsNames: ["localhost"], eku: ["serverAuth"] }, p.otherCa);
    const contexts = [tls.createSecureContext({ cert: p.server.certPem, key: p.server.keyPem }), tls.createSecureContext({ cert: other.certPem + p.otherCa.certPem, key: other.keyPem })];
    let n = 0;
    const s = tls.createServer({ SNICallback: (_name, cb) => cb(null, contexts[n++ % 3 === 0 ? 0 : 1]!) }, (c) => {
      c.once("data", () => c.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"));
      c.on("error", () => {});
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    try {
      const r = await bench({ url: `https://localhost:${(s.address() as net.AddressInfo).port}/`, certFile: undefined, keyFile: undefined, concurrency: 1, count: 40 });
      expect(r.ok).toBeGreaterThan(5);
      expect(r.failed).toBeGreaterThan(5);
      expect(Object.keys(r.failures)).toEqual(["verify:SELF_SIGNED_CERT_IN_CHAIN"]);
      // One connection at a time: a fast connection meeting the untrusted certificate is retried
      // with verification, which meets it again and fails; answers came only over the trusted one.
      expect(r.ok).toBeLessThanOrEqual(Math.ceil(n / 3));
    } finally {
      s.close();
    }
  });

  it("open loop counts latency from the due time: a server slower than the offered rate shows its queue", async () => {
    // One connection at a time, 100 ms per answer (10/s), offered 20/s for 1.5 s: request k is
    // due at 50k ms and answered near 100(k+1) ms, so latencies grow ~50 ms per request.
    const p = await pki();
    const s = tls.createServer({ cert: p.server.certPem, key: p.server.keyPem }, (c) => {
      c.once("data", () => setTimeout(() => c.end("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"), 100));
      c.on("error", () => {});
    });
    await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
    try {
      const base = { url: `https://localhost:${(s.address() as net.AddressInfo).port}/`, certFile: undefined, keyFile: undefined, concurrency: 1, count: 0, durationMs: 1_500 };
      const open = await bench({ ...base, rate: 20 });
      expect(open.ok).toBeGreaterThan(3);
      // A closed loop would report ~100 ms for every request.
      expect(open.latency.total.max!).toBeGreaterThan(400);
      expect(open.latency.total.p50!).toBeGreaterThan(200);
    } finally {
      s.close();
    }
  });
});

describe("the certgate bench command", () => {
  const CLI = resolve("src/cli.js");
  function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((res) => {
      const child = spawn(process.execPath, [CLI, "bench", ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("exit", (code) => res({ code, stdout, stderr }));
    });
  }

  it("prints only the result when not on a terminal, writes --json, and merges --workers 2", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-bench-"));
    const json = join(dir, "r.json");
    const r = await cli([url(), "--cert", f["client.pem"]!, "--key", f["client.key"]!, "--cacert", f["server-ca.pem"]!, "-c", "2", "-n", "20", "--workers", "2", "--json", json]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout).not.toContain("\r");
    expect(r.stdout).not.toContain("\u001b[");
    expect(r.stdout).toMatch(/^certgate bench https:\/\/localhost:\d+\/bench/);
    expect(r.stdout).toMatch(/requests ok\s+20/);
    const j = JSON.parse(readFileSync(json, "utf8")) as BenchResult;
    expect(j.generator.processes).toBe(2);
    expect(j.attempts).toBe(20);
    expect(j.ok).toBe(20);
    expect(j.latency.handshake.count).toBeGreaterThanOrEqual(20);
    expect(Object.values(j.hist.total).reduce((a, b) => a + b, 0)).toBe(20);
  });

  it("on a terminal, redraws a progress line on stderr, then prints the result", async () => {
    // util-linux `script` gives the command a pseudo-terminal.
    const cmd = [process.execPath, CLI, "bench", url(), "--cert", f["client.pem"], "--key", f["client.key"], "--cacert", f["server-ca.pem"], "-c", "2", "-d", "1.5s", "--warmup", "0.3s"].map((a) => `'${a}'`).join(" ");
    const r = await run("script", ["-qec", cmd, "/dev/null"], "", 30_000);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("\r\u001b[K");
    expect(r.stdout).toMatch(/\d+\.\d s {2}[\d,]+ handshakes\/s {2}[\d,]+ req\/s {2}ok [\d,]+ {2}errors 0/);
    expect(r.stdout).toMatch(/requests ok\s+[\d,]+/);
  });

  it("SIGINT ends the window early and prints what was measured", async () => {
    const child = spawn(process.execPath, [CLI, "bench", url(), "--cert", f["client.pem"]!, "--key", f["client.key"]!, "--cacert", f["server-ca.pem"]!, "-c", "2", "-d", "60s", "--warmup", "0"], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    // Signal once it is loading (its handler is set by then): a connection to the proxy's port
    // being opened or open (SYN_SENT, ESTABLISHED; earlier tests' closed ones linger in TIME_WAIT).
    const hex = `:${proxy.port.toString(16).toUpperCase().padStart(4, "0")}`;
    const loading = () =>
      readFileSync("/proc/net/tcp", "utf8")
        .split("\n")
        .map((l) => l.trim().split(/\s+/))
        .some((c) => c[2]?.endsWith(hex) && (c[3] === "01" || c[3] === "02"));
    for (let i = 0; i < 400 && !loading(); i++) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    child.kill("SIGINT");
    const code = await new Promise((r) => child.on("exit", r));
    expect(code).toBe(0);
    const window = Number(/mode full, 2 in flight, ([\d.]+) s/.exec(stdout)?.[1]);
    expect(window).toBeGreaterThan(0);
    expect(window).toBeLessThan(60);
  });

  it("refuses bad usage with a message", async () => {
    const r = await cli(["http://localhost:1/", "-n", "1"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("https://");
    const both = await cli([url(), "-n", "1", "-d", "1s"]);
    expect(both.stderr).toContain("-d and -n exclude each other");
  });
});
