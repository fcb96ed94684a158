// /proc readers for the benchmarks: the generic ones live with the load generator
// (src/loadgen/proc.ts); waiting for an idle-ish machine is the harness's own. Linux only.
import { readFileSync } from "node:fs";
import os from "node:os";
import { busyBetween, cpuTimes, processTree } from "../../src/loadgen/proc.ts";

export { busyBetween, cpuSeconds, cpuTimes, processTree, ticksPerSecond } from "../../src/loadgen/proc.ts";

export function loadavg(): number[] {
  return readFileSync("/proc/loadavg", "utf8").trim().split(/\s+/).slice(0, 3).map(Number);
}

/** The CPU model /proc/cpuinfo names (every result names its machine). */
export function cpuModel(): string {
  return /model name\s*:\s*(.+)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? os.arch();
}

/** Resident memory of a process and its descendants (bytes, VmRSS from /proc). */
export function treeRss(root: number): number {
  let kb = 0;
  for (const pid of processTree(root)) {
    try {
      kb += Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0);
    } catch {
      /* exited meanwhile */
    }
  }
  return kb * 1024;
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
