// Keeps V8's young generation touched, so that a serving process's RSS steps up when load makes
// V8 grow it, not at some random moment hours later.
//
// V8 commits each semi-space whole but a page becomes resident only when V8 allocates into it,
// and it scavenges from a task it posts when a semi-space is 80% full: the last fifth of both
// stays committed and untouched until a burst outruns that task, which in the soak came at any
// minute from 9 to 34, and RSS then stepped up by 5.7 MB (README, "Soak"). Turning the task off
// closes the gap but costs HTTP/2 5-9% CPU. Touching the pages instead, as the JVM's
// AlwaysPreTouch does: allocations in one synchronous loop outrun the task, so V8 scavenges
// each time the space is full and every page of both semi-spaces is written once. Only while
// the process allocates: an idle one keeps what V8 committed untouched. A young generation V8
// grows or renews (a page promoted whole is replaced by a fresh one) is touched again.
import { constants, PerformanceObserver, type NodeGCPerformanceDetail, type PerformanceEntry } from "node:perf_hooks";
import v8 from "node:v8";
import type { Logger } from "./observability/log.ts";

/** Below this, committed but untouched young-generation memory is not worth a pass (4 of V8's pages). */
const MIN_UNTOUCHED = 1 << 20;
/** Scavenges between two looks that mean load (a semi-space filled every 5 s at least): one may be a start-up straggler. */
const SCAVENGES_UNDER_LOAD = 2;
/** How often a serving process looks (one call to v8.getHeapSpaceStatistics, if V8 scavenged since). */
const CHECK_MS = 10_000;

function youngGeneration(): { committed: number; touched: number } {
  const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === "new_space");
  return s ? { committed: s.space_size, touched: s.physical_space_size } : { committed: 0, touched: 0 };
}

/**
 * Writes every committed page of the young generation, if enough of it is untouched: how many
 * bytes became resident, and what is committed and still untouched after the pass (V8 commits
 * the second semi-space at its first scavenge, so a pass can commit as well as touch).
 */
export function touchYoungGeneration(): { bytes: number; committed: number; untouched: number } | null {
  const before = youngGeneration();
  if (before.committed - before.touched < MIN_UNTOUCHED) return null;
  // Short-lived objects in a ring, so that they escape (the optimiser cannot drop them) and
  // nearly nothing survives a scavenge. About 1 MB a round. V8 swaps the semi-spaces at each
  // scavenge, so two semi-spaces' worth of allocation writes both: at most twice what was
  // committed before (one semi-space, if the second is not committed yet), and four times that
  // bounds the loop. Once all is touched, a few rounds more bring about the scavenge that
  // commits a second semi-space not committed yet.
  const ring: unknown[] = new Array(1024).fill(null);
  const rounds = 4 * Math.ceil(before.committed / (1 << 20));
  let now = before;
  for (let round = 0, whole = 0; round < rounds && whole < 3; round++) {
    for (let i = 0; i < 16_384; i++) ring[i & 1023] = { i, round, next: null, prev: null };
    now = youngGeneration();
    whole = now.touched < now.committed ? 0 : whole + 1;
  }
  return { bytes: Math.max(0, now.touched - before.touched), committed: now.committed, untouched: now.committed - now.touched };
}

/**
 * Every 10 s, touches the young generation if V8 has scavenged at least twice since the last
 * look (the process is under load, where V8 would touch those pages anyway) and enough of it is
 * untouched. An idle or nearly idle process keeps V8's reserve untouched. For the life of the
 * process: the timer is unref'd and the observer keeps nothing alive.
 */
export function keepYoungGenerationTouched(log: Logger): void {
  let scavenges = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as PerformanceEntry & { detail: NodeGCPerformanceDetail }).detail.kind === constants.NODE_PERFORMANCE_GC_MINOR) scavenges++;
  }).observe({ entryTypes: ["gc"] });
  setInterval(() => {
    const underLoad = scavenges >= SCAVENGES_UNDER_LOAD;
    scavenges = 0;
    if (!underLoad) return;
    const t = performance.now();
    const touched = touchYoungGeneration();
    if (touched) log.debug({ msg: "touched the young generation", ...touched, ms: Math.round(performance.now() - t) });
  }, CHECK_MS).unref();
}
