// `certgate bench`: options → coordinator → progress on a terminal, the result on stdout,
// --json and --report files. Loaded only by that subcommand.
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runBench, type BenchOptions } from "./coordinator.ts";
import { reportHtml } from "./report.ts";
import { progressLine, summaryText } from "./summary.ts";

export const BENCH_USAGE = `  certgate bench URL --cert FILE --key FILE [--cacert FILE | --insecure] [--servername NAME]
                [--mode full|resumed|keepalive|h2] [-c N] [--streams S] [-d DURATION | -n COUNT] [--rate R]
                [--warmup DURATION] [--tls 1.2|1.3] [--workers N] [--server-pid PID]
                [--timeout DURATION] [--groups LIST] [--ciphers LIST] [--json FILE] [--report FILE.html]
      Load an https:// endpoint with a client certificate and measure it: handshakes and
      requests per second; TCP connect, TLS handshake and first-byte latency (p50-p99.9);
      failures by class (TLS alert by name, refused, timeout, HTTP status); resumed share;
      the generator's CPU (and whether it was the bottleneck); with --server-pid, the
      server's CPU per handshake over its process tree (same machine, Linux).
      --mode full: a new connection per GET (default); resumed: offering the last session
      ticket; keepalive: -c connections, GET after GET; h2: -c HTTP/2 connections (ALPN h2),
      --streams GETs in flight on each (default 10). -c: in flight (default 8).
      -d: measured window (default 10s) after --warmup (default 1s; 0 with -n); -n: attempts.
      --rate: open loop, R requests per second, latency from each one's due time.
      --workers: generator processes (default 1). Progress on a terminal (stderr).`;

/** "30s", "500ms", "2m", or plain seconds. */
function duration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new Error(`${what}: expected a duration such as 10s, 500ms or 1m, got "${s}"`);
  return Math.round(Number(m[1]) * { ms: 1, s: 1000, m: 60_000 }[m[2] ?? "s"]!);
}

function positive(s: string | undefined, what: string, min = 1): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s);
  if (!Number.isFinite(n) || n < min) throw new Error(`${what}: expected a number ≥ ${min}, got "${s}"`);
  return n;
}

export function parseBenchArgs(argv: string[]): BenchOptions & { json?: string; report?: string } {
  const { values: v, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      cert: { type: "string" },
      key: { type: "string" },
      cacert: { type: "string" },
      insecure: { type: "boolean", short: "k", default: false },
      servername: { type: "string" },
      mode: { type: "string", default: "full" },
      concurrency: { type: "string", short: "c", default: "8" },
      streams: { type: "string", default: "10" },
      duration: { type: "string", short: "d" },
      count: { type: "string", short: "n" },
      rate: { type: "string" },
      warmup: { type: "string" },
      tls: { type: "string" },
      workers: { type: "string", default: "1" },
      "server-pid": { type: "string" },
      timeout: { type: "string", default: "10s" },
      groups: { type: "string" },
      ciphers: { type: "string" },
      json: { type: "string" },
      report: { type: "string" },
    },
  });
  if (positionals.length !== 1) throw new Error(`expected one URL, got ${positionals.length}\nusage:\n${BENCH_USAGE}`);
  if (v.mode !== "full" && v.mode !== "resumed" && v.mode !== "keepalive" && v.mode !== "h2") throw new Error(`--mode: full, resumed, keepalive or h2, got "${v.mode}"`);
  if (v.tls !== undefined && v.tls !== "1.2" && v.tls !== "1.3") throw new Error(`--tls: 1.2 or 1.3, got "${v.tls}"`);
  if (v.duration && v.count) throw new Error("-d and -n exclude each other");
  if (v.insecure && v.cacert) throw new Error("--cacert and --insecure exclude each other");
  if (!!v.cert !== !!v.key) throw new Error("--cert and --key go together");
  const count = positive(v.count, "-n") ?? 0;
  return {
    url: positionals[0]!,
    certFile: v.cert,
    keyFile: v.key,
    caFile: v.cacert,
    insecure: v.insecure,
    servername: v.servername,
    mode: v.mode,
    concurrency: positive(v.concurrency, "-c")!,
    streams: positive(v.streams, "--streams")!,
    durationMs: count ? 0 : duration(v.duration ?? "10s", "-d"),
    count,
    rate: positive(v.rate, "--rate", 0.001) ?? 0,
    warmupMs: duration(v.warmup ?? (count ? "0" : "1s"), "--warmup"),
    tls: v.tls,
    workers: positive(v.workers, "--workers")!,
    serverPid: positive(v["server-pid"], "--server-pid"),
    timeoutMs: duration(v.timeout, "--timeout"),
    groups: v.groups,
    ciphers: v.ciphers,
    json: v.json,
    report: v.report,
  };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const o = parseBenchArgs(argv);
  const tty = process.stderr.isTTY;
  const abort = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    if (++interrupts > 1) process.exit(130);
    abort.abort(); // ends the window now: the result so far is printed
  };
  process.on("SIGINT", onSigint);
  // Rates over the last second, from the samples of the last second (four a second).
  const samples: { t: number; ok: number; conns: number }[] = [];
  const result = await runBench(o, {
    signal: abort.signal,
    onTick: tty
      ? (t) => {
          const at = performance.now();
          samples.push({ t: at, ok: t.ok, conns: t.conns });
          while (samples.length > 1 && at - samples[0]!.t > 1000) samples.shift();
          process.stderr.write(`\r\x1b[K${progressLine(t, samples[0]!)}`);
        }
      : undefined,
  });
  process.off("SIGINT", onSigint);
  if (tty) process.stderr.write("\r\x1b[K");
  process.stdout.write(summaryText(result));
  if (o.json) writeFileSync(o.json, JSON.stringify(result, null, 2) + "\n");
  if (o.report) writeFileSync(o.report, reportHtml(result));
  return 0;
}
