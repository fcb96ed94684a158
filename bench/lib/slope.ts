// Least-squares slope, for memory over time (the soak) or over iterations (the retained-memory bench).

/** The slope of y over x through `points`; null with fewer than 3 points or no spread in x. */
export function leastSquaresSlope(points: readonly (readonly [x: number, y: number])[]): number | null {
  const n = points.length;
  if (n < 3) return null;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
  return sxx === 0 ? null : points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
}
