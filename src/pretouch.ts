// Keeps V8's young generation touched, so that a serving process's RSS steps up when load makes
// V8 grow it, not at some random moment hours later.
//
// V8 commits each semi-space whole but a page becomes resident only when V8 allocates into it,
// and it scavenges from a task it posts when a semi-space is 80% full: the last fifth of both
// stays committed and untouched until a burst outruns that task, which in the soak came at any
// minute from 9 to 34, and RSS then stepped up by 5.7 MB (README, "Soak"). Turning the task off
// closes the gap but costs HTTP/2 5-9% CPU. Touching the pages instead, as the JVM's
// AlwaysPreTouch does: allocations in one synchronous loop outrun the task, so V8 scavenges
// each time the space is full and every page of both semi-spaces is written once. A process
// that stays idle keeps its small young generation; one whose young generation V8 grows or
// renews (a page promoted whole is replaced by a fresh one) is touched again at the next check.
import v8 from "node:v8";
import type { Logger } from "./observability/log.ts";

/** Below this, committed but untouched young-generation memory is not worth a pass (4 of V8's pages). */
const MIN_UNTOUCHED = 1 << 20;
/** How often a serving process looks (one call to v8.getHeapSpaceStatistics). */
const CHECK_MS = 10_000;

function youngGeneration(): { committed: number; touched: number } {
  const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === "new_space");
  return s ? { committed: s.space_size, touched: s.physical_space_size } : { committed: 0, touched: 0 };
}

/** Writes every committed page of the young generation; returns how many bytes became resident. */
export function touchYoungGeneration(): number {
  const before = youngGeneration();
  if (before.committed - before.touched < MIN_UNTOUCHED) return 0;
  // Short-lived objects in a ring, so that they escape (the optimiser cannot drop them) and
  // nearly nothing survives a scavenge. About 1 MB a round; V8 swaps the semi-spaces at each
  // scavenge, so both are written within twice their size. Bounded at three times for safety.
  const ring: unknown[] = new Array(1024).fill(null);
  let now = before;
  for (let round = 0; round < (3 * before.committed) / (1 << 20) && now.touched < now.committed; round++) {
    for (let i = 0; i < 16_384; i++) ring[i & 1023] = { i, round, next: null, prev: null };
    now = youngGeneration();
  }
  return Math.max(0, now.touched - before.touched);
}

/** Touches the young generation now and after each check that finds it grown or renewed; returns the stop. */
export function keepYoungGenerationTouched(log: Logger): () => void {
  const pass = (): void => {
    const t = performance.now();
    const bytes = touchYoungGeneration();
    if (bytes > 0) log.debug({ msg: "touched the young generation", bytes, ms: Math.round(performance.now() - t) });
  };
  pass();
  const timer = setInterval(pass, CHECK_MS).unref();
  return () => clearInterval(timer);
}
