// A log-bucketed latency histogram (2% wide buckets from 1 µs): cheap to record, mergeable
// across load processes (plain JSON), and precise enough for p99.9.
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

/** The upper edge (ms) of the highest non-empty bucket, null when empty. */
export function maxMs(h: Histogram): number | null {
  let top = -Infinity;
  for (const [k, v] of Object.entries(h)) if (v > 0 && Number(k) > top) top = Number(k);
  return top === -Infinity ? null : GROWTH ** top / 1000;
}

/** Buckets as [lower ms, upper ms, count], ascending: for plotting. */
export function buckets(h: Histogram): [number, number, number][] {
  return Object.entries(h)
    .map(([k, v]) => [Number(k), v] as const)
    .sort((a, b) => a[0] - b[0])
    .map(([i, v]) => [i === 0 ? 0 : GROWTH ** (i - 1) / 1000, GROWTH ** i / 1000, v]);
}
