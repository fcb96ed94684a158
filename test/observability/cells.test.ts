// The hot path's counters and histograms must expose exactly what prom-client's own would,
// in the text format and through the workers' merge (getMetricsAsJSON, then aggregate).
import fc from "fast-check";
import { AggregatorRegistry, Counter, Histogram, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CellCounter, CellHistogram } from "../../src/observability/cells.ts";

const BUCKETS = [0.001, 0.01, 0.1, 1, 10];
const HOSTS = ["a.test", "*.b.test", "_default"];

function pair() {
  const ours = new Registry();
  const theirs = new Registry();
  const labelNames = ["host", "status"] as const;
  return {
    ours,
    theirs,
    counter: [new CellCounter({ name: "t_requests_total", help: "Requests.", labelNames, registers: [ours] }), new Counter({ name: "t_requests_total", help: "Requests.", labelNames, registers: [theirs] })] as const,
    histogram: [
      new CellHistogram({ name: "t_duration_seconds", help: "Durations.", labelNames, buckets: BUCKETS, registers: [ours] }),
      new Histogram({ name: "t_duration_seconds", help: "Durations.", labelNames, buckets: BUCKETS, registers: [theirs] }),
    ] as const,
  };
}

const observation = fc.record({ host: fc.constantFrom(...HOSTS), status: fc.constantFrom(200, 403, 502), value: fc.oneof(fc.constantFrom(0, ...BUCKETS), fc.double({ min: 0, max: 100, noNaN: true })) });

describe("cell metrics", () => {
  it("expose the same text as prom-client's Counter and Histogram for the same observations", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(observation, { maxLength: 60 }), async (obs) => {
        const p = pair();
        for (const o of obs) {
          p.counter[0].inc(o.host, o.status);
          p.counter[1].inc({ host: o.host, status: o.status });
          p.histogram[0].observe(o.value, o.host, o.status);
          p.histogram[1].observe({ host: o.host, status: o.status }, o.value);
        }
        // Series appear in first-use order in both.
        expect(await p.ours.metrics()).toBe(await p.theirs.metrics());
      }),
      { numRuns: 150 },
    );
  });

  it("merge across workers as prom-client's do (counters and histograms summed)", async () => {
    const workers = [pair(), pair()];
    workers.forEach((w, i) => {
      for (let n = 0; n <= i * 3; n++) {
        w.counter[0].inc("a.test", 200);
        w.counter[1].inc({ host: "a.test", status: 200 });
        w.histogram[0].observe(0.05 * n, "a.test", 200);
        w.histogram[1].observe({ host: "a.test", status: 200 }, 0.05 * n);
      }
    });
    const merged = async (r: (w: ReturnType<typeof pair>) => Registry) => AggregatorRegistry.aggregate(await Promise.all(workers.map((w) => r(w).getMetricsAsJSON()))).metrics();
    const ours = await merged((w) => w.ours);
    expect(ours).toBe(await merged((w) => w.theirs));
    expect(ours).toContain('t_requests_total{host="a.test",status="200"} 5');
    expect(ours).toContain('t_duration_seconds_count{host="a.test",status="200"} 5');
  });
});
