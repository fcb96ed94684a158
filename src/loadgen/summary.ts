// The result as text (what `certgate bench` prints) and the live progress line.
import type { BenchResult, Percentiles, Tick } from "./coordinator.ts";
import { describeClass } from "./failures.ts";

const int = (x: number) => Math.round(x).toLocaleString("en-US");
const num = (x: number | null, d = 1) => (x === null || !Number.isFinite(x) ? "–" : x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }));
/** Milliseconds with three significant-ish digits. */
const ms = (x: number | null) => (x === null ? "–" : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

export function summaryText(r: BenchResult): string {
  const o = r.options;
  const L: string[] = [];
  const window = o.count ? `${int(o.count)} attempts in ${r.windowS.toFixed(1)} s` : `${r.windowS.toFixed(1)} s`;
  L.push(
    `certgate bench ${r.url} (${r.address}${r.servername ? `, SNI ${r.servername}` : ", no SNI"})`,
    `  mode ${o.mode}, ${o.rate ? `open loop at ${int(o.rate)}/s, at most ${o.concurrency} in flight` : o.mode === "h2" ? `${o.concurrency} connections × ${o.streams} streams` : `${o.concurrency} ${o.mode === "keepalive" ? "connections" : "in flight"}`}, ${window}` +
      `${o.warmupMs ? ` after ${(o.warmupMs / 1000).toFixed(1)} s warm-up` : ""}, TLS ${o.tls ?? "1.2-1.3"}, ${r.generator.processes} generator process${r.generator.processes > 1 ? "es" : ""}`,
    "",
  );
  L.push(`  handshakes   ${int(r.connections).padStart(9)}  ${num(r.connPerS).padStart(9)}/s   resumed ${r.resumedShare === null ? "–" : `${(r.resumedShare * 100).toFixed(1)}%`}`);
  L.push(`  requests ok  ${int(r.ok).padStart(9)}  ${num(r.reqPerS).padStart(9)}/s`);
  L.push(`  failed       ${int(r.failed).padStart(9)}${r.attempts ? `  ${((100 * r.failed) / r.attempts).toFixed(1)}% of attempts` : ""}${r.dropped ? `; ${int(r.dropped)} due requests not sent` : ""}`);
  L.push("");
  const row = (name: string, p: Percentiles) => `  ${name.padEnd(15)}${[p.p50, p.p90, p.p99, p.p999, p.max].map((x) => ms(x).padStart(9)).join("")}${int(p.count).padStart(11)}`;
  L.push(`  latency, ms        p50      p90      p99    p99.9      max    samples`);
  L.push(row("TCP connect", r.latency.connect), row("TLS handshake", r.latency.handshake), row("first byte", r.latency.ttfb), row("total", r.latency.total));
  if (o.rate) L.push("  (open loop: connect and total count from each request's due time)");
  const failures = Object.entries(r.failures);
  if (failures.length) {
    L.push("", "  failures");
    for (const [cls, n] of failures) L.push(`    ${describeClass(cls).padEnd(44)}${int(n).padStart(9)}`);
    if (failures.some(([cls]) => cls.startsWith("tls_alert:")) && r.connections)
      L.push("    (in TLS 1.3 the client's side of the handshake completes before the server has judged its", "    certificate: handshakes the server then refused with an alert count as handshakes above)");
  }
  L.push("");
  const g = r.generator;
  L.push(`  generator    ${num(g.cpuS, 2)} CPU-s, ${g.utilisation.map((u) => num(u, 2)).join(" + ")} of a core${g.processes > 1 ? " each" : ""}${r.connections && g.cpuS ? `; ${int(r.connections / g.cpuS)} handshakes per client CPU-second` : ""}`);
  if (r.server) {
    const s = r.server;
    L.push(
      `  server       pid ${s.pid} (${s.processes} process${s.processes > 1 ? "es" : ""}): ${num(s.cpuS, 2)} CPU-s, ${num(s.cores, 2)} cores; ` +
        (s.cpuPerOpUs === null ? `no ${s.unit}s` : `${int(s.cpuPerOpUs)} µs per ${s.unit} = ${int(s.opsPerCpuS ?? 0)} ${s.unit}s per server CPU-second`),
    );
  }
  if (r.cpuBusy.cpu !== undefined) L.push(`  machine      CPUs ${(r.cpuBusy.cpu * 100).toFixed(0)}% busy over the window`);
  for (const w of r.warnings) L.push(`  warning: ${w}`);
  return L.join("\n") + "\n";
}

/** One line, rewritten in place on a terminal; rates against `prev`, a sample about a second old. */
export function progressLine(t: Tick, prev: { t: number; ok: number; conns: number }): string {
  if (t.phase === "warmup") return `warming up ... ${Math.max(0, -t.elapsedS).toFixed(1)} s to go`;
  const dt = Math.max(1e-3, (performance.now() - prev.t) / 1000);
  const rps = (t.ok - prev.ok) / dt;
  const cps = (t.conns - prev.conns) / dt;
  return `${t.elapsedS.toFixed(1)} s  ${int(cps)} handshakes/s  ${int(rps)} req/s  ok ${int(t.ok)}  errors ${int(t.failed)}${t.phase === "drain" ? "  (finishing)" : ""}`;
}
