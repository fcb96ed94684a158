// /proc readers for the benchmarks: the generic ones live with the load generator
// (src/loadgen/proc.ts); waiting for an idle-ish machine is the harness's own. Linux only.
import { readFileSync } from "node:fs";
import { busyBetween, cpuTimes } from "../../src/loadgen/proc.ts";

export { busyBetween, cpuSeconds, cpuTimes, processTree, ticksPerSecond } from "../../src/loadgen/proc.ts";

export function loadavg(): number[] {
  return readFileSync("/proc/loadavg", "utf8").trim().split(/\s+/).slice(0, 3).map(Number);
}

export function cpuCount(): number {
  return [...cpuTimes().keys()].filter((k) => k !== "cpu").length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (at most maxMs) until the whole machine is below `threshold` busy over a 1 s window.
 * Returns the last busy fraction seen and how long it waited.
 */
export async function waitForIdle(threshold: number, maxMs: number): Promise<{ busy: number; waitedMs: number; idle: boolean }> {
  const t0 = Date.now();
  for (;;) {
    const a = cpuTimes();
    await sleep(1_000);
    const busy = busyBetween(a, cpuTimes()).cpu ?? 0;
    const waitedMs = Date.now() - t0;
    if (busy <= threshold) return { busy, waitedMs, idle: true };
    if (waitedMs >= maxMs) return { busy, waitedMs, idle: false };
  }
}
