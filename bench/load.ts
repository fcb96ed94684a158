// One load-generator process for the benchmarks (pinned by the harness to the load CPU): the
// same generator as `certgate bench` (src/loadgen), with the benchmarks' fixed client
// settings, over one window given in epoch time. Prints one JSON line (LoadResult).
//
//   full       a new TLS 1.3 connection per request, one GET each, no session offered
//   resumed    the same, offering the latest session ticket received from that server
//   keepalive  a few persistent connections, one GET after another on each
//   h2         a few HTTP/2 connections (ALPN h2), `streams` GETs in flight on each
//
// Closed loop (`concurrency` requests in flight) unless `rate` is set: then requests are
// due at a fixed rate (open loop) and latency counts from the due time.
//
// Usage: node bench/load.ts '<LoadSpec as JSON>'
import { runBench } from "../src/loadgen/coordinator.ts";
import type { Histogram } from "../src/loadgen/hist.ts";

export type LoadKind = "full" | "resumed" | "keepalive" | "h2";

export interface LoadSpec {
  kind: LoadKind;
  host: string; // 127.0.0.1
  port: number;
  servername: string;
  path: string;
  certFile: string;
  keyFile: string;
  /** Requests in flight (closed loop), or connections (keepalive, h2). */
  concurrency: number;
  /** h2: streams in flight on each connection. */
  streams?: number;
  /** Requests per second (open loop); 0 = closed loop. */
  rate: number;
  /** Epoch ms: load runs from spawn; the measured window is [measureAt, measureAt + durationMs). */
  measureAt: number;
  durationMs: number;
  /** Stop the window early after this many completed requests. */
  maxRequests: number;
  /** Root PID of the server to measure (0: do not measure). */
  serverPid: number;
}

export interface LoadResult {
  kind: LoadKind;
  windowS: number;
  ok: number; // responses below 400 completed in the window
  failed: number; // errors, resets and statuses ≥ 400 in the window
  firstError: string | null;
  dropped: number; // open loop: due requests not sent (queue full)
  resumed: number; // handshakes that resumed a session
  connections: number; // handshakes completed in the window
  hist: Histogram; // total latency, µs buckets
  serverCpuS: number | null;
  serverProcesses: number;
  clientCpuS: number;
  cpuBusy: Record<string, number>; // per CPU busy fraction over the window
}

const spec = JSON.parse(process.argv[2] ?? "") as LoadSpec;
const r = await runBench({
  url: `https://${spec.host}:${spec.port}${spec.path}`,
  servername: spec.servername,
  certFile: spec.certFile,
  keyFile: spec.keyFile,
  // The harness checks each server's identity once with full verification (sanity probe);
  // under load the client skips chain building to leave the load CPU for more handshakes.
  insecure: true,
  mode: spec.kind,
  // Open loop: new connections start as they fall due (up to 64 or 8× -c at once), as before
  // the generator moved to src/loadgen; keep-alive uses its `concurrency` connections.
  concurrency: spec.rate > 0 && spec.kind !== "keepalive" && spec.kind !== "h2" ? Math.max(64, spec.concurrency * 8) : spec.concurrency,
  streams: spec.streams ?? 1,
  rate: spec.rate,
  durationMs: spec.durationMs,
  count: spec.maxRequests,
  warmupMs: Math.max(0, spec.measureAt - Date.now()),
  // One protocol, key-exchange group and cipher suite for every server: P-256 ECDHE (what the
  // crypto-only limit counts; OpenSSL 3.5 would otherwise offer the X25519MLKEM768 hybrid
  // that only some peers accept) and AES-128-GCM.
  tls: "1.3",
  groups: "P-256",
  ciphers: "TLS_AES_128_GCM_SHA256",
  workers: 1,
  serverPid: spec.serverPid || undefined,
  timeoutMs: 10_000,
});
const out: LoadResult = {
  kind: spec.kind,
  windowS: r.windowS,
  ok: r.ok,
  failed: r.failed,
  firstError: r.failed ? (Object.keys(r.failures)[0] ?? null) : null,
  dropped: r.dropped,
  resumed: r.resumed,
  connections: r.connections,
  hist: r.hist.total,
  serverCpuS: r.server ? r.server.cpuS : null,
  serverProcesses: r.server?.processes ?? 0,
  clientCpuS: r.generator.cpuS,
  cpuBusy: r.cpuBusy,
};
process.stdout.write(JSON.stringify(out) + "\n", () => process.exit(0));
