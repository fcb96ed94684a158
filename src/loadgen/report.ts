// `--report FILE.html`: one self-contained page (inline SVG drawn here, no script or font
// from anywhere) with throughput over time, the latency histograms and latency percentiles
// over time, then the summary as text. A few lines of inline script only measure the drawn
// plots into <body data-rendered> so a headless browser can check them.
import type { BenchResult } from "./coordinator.ts";
import { buckets, quantileMs, type Histogram } from "./hist.ts";
import { summaryText } from "./summary.ts";

interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

const W = 860;
const H = 300;
const M = { l: 64, r: 16, t: 34, b: 46 };
const esc = (s: string) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);

/** About `n` round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number, n = 6): number[] {
  if (!(hi > lo)) hi = lo + 1;
  const raw = (hi - lo) / n;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number) => (Math.abs(v) >= 1000 ? v.toLocaleString("en-US", { maximumFractionDigits: 0 }) : String(Number(v.toPrecision(4))));

function chart(id: string, title: string, xLabel: string, yLabel: string, series: Series[], xLog = false): string {
  const all = series.flatMap((s) => s.points);
  const fx = (x: number) => (xLog ? Math.log10(Math.max(x, 1e-3)) : x);
  const xs = all.map((p) => fx(p[0]));
  let x0 = xs.length ? Math.min(...xs) : 0;
  if (!xLog) x0 = Math.min(0, x0); // time axes start at the window's start
  let x1 = xs.length ? Math.max(...xs) : 1;
  if (xLog) {
    x0 = Math.floor(x0);
    x1 = Math.ceil(x1);
  }
  if (x1 <= x0) x1 = x0 + 1;
  const y1 = Math.max(1e-9, ...all.map((p) => p[1])) * 1.08;
  const px = (x: number) => M.l + ((fx(x) - x0) / (x1 - x0)) * (W - M.l - M.r);
  const py = (y: number) => H - M.b - (y / y1) * (H - M.t - M.b);
  const g: string[] = [];
  g.push(`<text x="${M.l}" y="20" class="title">${esc(title)}</text>`);
  for (const v of ticks(0, y1 / 1.08)) g.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${py(v)}" y2="${py(v)}" class="grid"/><text x="${M.l - 6}" y="${py(v) + 4}" text-anchor="end">${label(v)}</text>`);
  const xt = xLog ? Array.from({ length: x1 - x0 + 1 }, (_, i) => 10 ** (x0 + i)) : ticks(x0, x1);
  for (const v of xt) g.push(`<line x1="${px(v)}" x2="${px(v)}" y1="${H - M.b}" y2="${H - M.b + 5}" class="axis"/><text x="${px(v)}" y="${H - M.b + 18}" text-anchor="middle">${label(v)}</text>`);
  g.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" class="axis"/><line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" class="axis"/>`);
  g.push(`<text x="${(M.l + W - M.r) / 2}" y="${H - 8}" text-anchor="middle">${esc(xLabel)}</text>`);
  g.push(`<text transform="translate(14 ${(M.t + H - M.b) / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    if (s.points.length) {
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join("");
      g.push(`<path class="data" d="${d}" stroke="${s.color}"/>`);
      if (s.points.length === 1) g.push(`<circle class="data" cx="${px(s.points[0]![0])}" cy="${py(s.points[0]![1])}" r="3" fill="${s.color}"/>`);
    }
    const lx = W - M.r - 150;
    const ly = M.t + 4 + i * 16;
    g.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="3"/><text x="${lx + 24}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  return `<svg id="${id}" class="plot" xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(title)}">${g.join("")}</svg>`;
}

/** A log-bucketed histogram regrouped into `perDecade` bins per power of ten: share of samples (%) per bin, at the bin's centre. */
function histogramPoints(h: Histogram, perDecade = 20): [number, number][] {
  const bins = new Map<number, number>();
  let n = 0;
  for (const [lo, hi, c] of buckets(h)) {
    const mid = Math.max(1e-3, (lo + hi) / 2);
    const b = Math.floor(Math.log10(mid) * perDecade);
    bins.set(b, (bins.get(b) ?? 0) + c);
    n += c;
  }
  if (!n) return [];
  const keys = [...bins.keys()].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (let b = keys[0]! - 1; b <= keys.at(-1)! + 1; b++) out.push([10 ** ((b + 0.5) / perDecade), (100 * (bins.get(b) ?? 0)) / n]);
  return out;
}

const COLORS = { conns: "#1f77b4", ok: "#2ca02c", failed: "#d62728", connect: "#9467bd", handshake: "#1f77b4", ttfb: "#ff7f0e", total: "#2ca02c", p50: "#2ca02c", p90: "#ff7f0e", p99: "#d62728" };

export function reportHtml(r: BenchResult): string {
  // Rates per second from each step; the last step may be shorter than the others.
  const step = r.stepMs / 1000;
  const secs = r.series
    .map((s, i) => {
      const len = Math.min(step, r.windowS - i * step);
      return { ...s, x: i * step + len / 2, per: len > step / 10 ? 1 / len : 0 };
    })
    .filter((s) => s.per > 0);
  const throughput = chart("throughput", "Throughput over time", "seconds into the measured window", "per second", [
    { name: "handshakes/s", color: COLORS.conns, points: secs.map((s) => [s.x, s.conns * s.per]) },
    { name: "responses ok/s", color: COLORS.ok, points: secs.map((s) => [s.x, s.ok * s.per]) },
    { name: "failed/s", color: COLORS.failed, points: secs.map((s) => [s.x, s.failed * s.per]) },
  ]);
  const histogram = chart(
    "histogram",
    "Latency histogram",
    "milliseconds (log scale)",
    "% of samples",
    (["connect", "handshake", "ttfb", "total"] as const).map((k) => ({ name: { connect: "TCP connect", handshake: "TLS handshake", ttfb: "first byte", total: "total" }[k], color: COLORS[k], points: histogramPoints(r.hist[k]) })),
    true,
  );
  const pct = (q: number) => secs.filter((s) => s.ok).map((s) => [s.x, quantileMs(s.total, q)!] as [number, number]);
  const percentiles = chart("percentiles", "Total latency percentiles over time (ok requests)", "seconds into the measured window", "milliseconds", [
    { name: "p50", color: COLORS.p50, points: pct(0.5) },
    { name: "p90", color: COLORS.p90, points: pct(0.9) },
    { name: "p99", color: COLORS.p99, points: pct(0.99) },
  ]);
  const title = `certgate bench ${r.url} (${r.options.mode}, ${r.startedAt.slice(0, 19).replace("T", " ")} UTC)`;
  const json = JSON.stringify({ ...r, hist: undefined, series: undefined }).replace(/</g, "\\u003c");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 960px; }
h1 { font-size: 18px; }
svg.plot { display: block; margin: 18px 0; background: #fff; border: 1px solid #ddd; }
svg text { font: 12px sans-serif; fill: #333; }
svg text.title { font-size: 14px; font-weight: 600; }
svg .grid { stroke: #eee; } svg .axis { stroke: #888; }
svg path.data { fill: none; stroke-width: 2; }
pre { background: #f6f6f6; padding: 12px; overflow-x: auto; font-size: 12px; }
.warn { color: #a40; }
</style></head>
<body>
<h1>${esc(title)}</h1>
${r.warnings.map((w) => `<p class="warn">warning: ${esc(w)}</p>`).join("\n")}
${throughput}
${histogram}
${percentiles}
<pre>${esc(summaryText(r))}</pre>
<script type="application/json" id="result">${json}</script>
<script>
// Measure what was drawn, for headless checks: every plot's size and its data paths' lengths.
document.body.dataset.rendered = JSON.stringify([...document.querySelectorAll("svg.plot")].map((s) => {
  const b = s.getBoundingClientRect();
  return { id: s.id, width: b.width, height: b.height, paths: [...s.querySelectorAll(".data")].map((p) => { const q = p.getBBox(); return Math.round(q.width + q.height); }) };
}));
</script>
</body></html>
`;
}
