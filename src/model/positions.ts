// What a write changed in a collection, found by position. A write replaces or appends a few
// elements and shares every other object with the model before it, so comparing references
// index by index finds the changes with one pointer comparison per element, where an index
// of 10,000 objects (a Set or Map, rebuilt per write) costs milliseconds.

/** Beyond this share of changed positions the caller's general path (match by identity or key) is the cheaper one. */
const MAX_SHARE = 0.25;

/**
 * The indexes where `next` holds another object than `prev` (replaced in place, or appended
 * after its end), or null when the two do not line up: a shorter `next` (a delete), or more
 * than a quarter of the positions changed (an insert or a reorder shifts everything after it).
 */
export function changedPositions<T>(prev: readonly T[], next: readonly T[]): number[] | null {
  if (next.length < prev.length) return null;
  const limit = Math.max(16, next.length * MAX_SHARE);
  const at: number[] = [];
  for (let i = 0; i < next.length; i++) {
    if (i < prev.length && next[i] === prev[i]) continue;
    if (at.push(i) > limit) return null;
  }
  return at;
}
