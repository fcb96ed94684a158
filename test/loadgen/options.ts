// The options every certgate bench test starts from: a client certificate, the server CA, two
// in flight, 30 attempts, no warm-up; each test changes what it measures.
import type { BenchOptions } from "../../src/loadgen/coordinator.ts";

export function benchOptions(url: string, f: Record<string, string>, o: Partial<BenchOptions> = {}): BenchOptions {
  return {
    url,
    certFile: f["client.pem"],
    keyFile: f["client.key"],
    caFile: f["server-ca.pem"],
    insecure: false,
    mode: "full",
    concurrency: 2,
    streams: 10,
    durationMs: 0,
    count: 30,
    rate: 0,
    warmupMs: 0,
    workers: 1,
    timeoutMs: 5_000,
    ...o,
  };
}
