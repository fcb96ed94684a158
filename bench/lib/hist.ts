// A log-bucketed latency histogram (2% wide buckets from 1 µs): cheap to record, mergeable
// across load processes, and precise enough for p50/p99.
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);

export type Histogram = Record<string, number>; // bucket index -> count

export function record(h: Histogram, micros: number): void {
  const i = micros <= 1 ? 0 : Math.ceil(Math.log(micros) / LOG_GROWTH);
  h[i] = (h[i] ?? 0) + 1;
}

export function merge(into: Histogram, from: Histogram): Histogram {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  return into;
}

export function count(h: Histogram): number {
  let n = 0;
  for (const v of Object.values(h)) n += v;
  return n;
}

/** The q-quantile (0..1) in milliseconds: the upper edge of the bucket holding it. */
export function quantileMs(h: Histogram, q: number): number | null {
  const entries = Object.entries(h)
    .map(([k, v]) => [Number(k), v] as const)
    .sort((a, b) => a[0] - b[0]);
  const n = entries.reduce((a, [, v]) => a + v, 0);
  if (!n) return null;
  const rank = Math.max(1, Math.ceil(q * n));
  let seen = 0;
  for (const [i, v] of entries) {
    seen += v;
    if (seen >= rank) return GROWTH ** i / 1000;
  }
  return null;
}
