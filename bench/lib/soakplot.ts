// The soak's memory plot: RSS, V8 heap (total and used) and external memory of certgate over
// time, as a self-contained SVG (no script, no external resources), the warm-up shaded.
interface Point {
  t: number;
  rssMb: number | null;
  heapTotalMb: number | null;
  heapUsedMb: number | null;
  externalMb: number | null;
}

const SERIES: [keyof Omit<Point, "t">, string, string][] = [
  ["rssMb", "RSS", "#d62728"],
  ["heapTotalMb", "V8 heap total", "#1f77b4"],
  ["heapUsedMb", "V8 heap used", "#2ca02c"],
  ["externalMb", "external", "#9467bd"],
];

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

export function memoryPlot(samples: readonly Point[], warmupS: number, title: string): string {
  const W = 760;
  const H = 340;
  const L = 56;
  const R = 150;
  const T = 36;
  const B = 40;
  const maxT = Math.max(60, ...samples.map((s) => s.t));
  const values = samples.flatMap((s) => SERIES.map(([k]) => s[k])).filter((v): v is number => v !== null);
  const maxY = niceCeil(Math.max(10, ...values) * 1.1);
  const minutes = maxT >= 600;
  const x = (t: number) => Math.round((L + (t / maxT) * (W - L - R)) * 10) / 10;
  const y = (v: number) => Math.round((T + (1 - v / maxY) * (H - T - B)) * 10) / 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${L}" y="20" font-size="13">${esc(title)}</text>`,
    `<rect x="${x(0)}" y="${T}" width="${Math.round(x(Math.min(warmupS, maxT)) - x(0))}" height="${H - T - B}" fill="#eee"/>`,
    `<text x="${x(0) + 4}" y="${T + 12}" fill="#777">warm-up</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (maxY / 5) * i;
    out.push(`<line x1="${L}" x2="${W - R}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${L - 6}" y="${y(v) + 4}" text-anchor="end">${v}</text>`);
  }
  for (let i = 0; i <= 6; i++) {
    const t = (maxT / 6) * i;
    out.push(`<text x="${x(t)}" y="${H - B + 16}" text-anchor="middle">${minutes ? (t / 60).toFixed(0) : t.toFixed(0)}</text>`);
  }
  out.push(
    `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle">${minutes ? "minutes" : "seconds"}</text>`,
    `<text x="14" y="${(T + H - B) / 2}" transform="rotate(-90 14 ${(T + H - B) / 2})" text-anchor="middle">MB</text>`,
    `<line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#555"/><line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#555"/>`,
  );
  SERIES.forEach(([k, label, colour], i) => {
    const pts = samples.filter((s) => s[k] !== null).map((s) => `${x(s.t)},${y(s[k]!)}`);
    if (pts.length) out.push(`<polyline fill="none" stroke="${colour}" stroke-width="1.6" points="${pts.join(" ")}"/>`);
    out.push(`<line x1="${W - R + 12}" x2="${W - R + 32}" y1="${T + 10 + i * 18}" y2="${T + 10 + i * 18}" stroke="${colour}" stroke-width="2"/>`, `<text x="${W - R + 38}" y="${T + 14 + i * 18}">${label}</text>`);
  });
  out.push("</svg>\n");
  return out.join("\n");
}

function niceCeil(v: number): number {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}
