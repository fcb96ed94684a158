// What a primary sends its workers after a write: the model's difference from the last one
// it sent. A collection whose elements were replaced or appended in place travels as those
// elements and their positions (the worker's previous array is the primary's: both are the
// delta's base version); any other changed collection as its key order plus the elements that
// are new objects. Either way the worker rebuilds the rest from its own previous model, so
// unchanged elements keep their identity there and the compile's memo
// (dataplane/compile/memo.ts) skips them, as it does in the primary. Anything else travels
// whole when it is a new object.
import type { Model } from "../model/schema.ts";
import { changedPositions } from "../model/positions.ts";

type Element = Record<string, unknown>;

export interface ModelDelta {
  /** Per changed collection: its new length and the elements at the positions that changed, or every element's key in order and the elements that changed. */
  collections: Record<string, { length: number; at: number[]; changed: Element[] } | { keys: string[]; changed: Element[] }>;
  /** Every other top-level field that changed, whole. */
  fields: Record<string, unknown>;
}

// Two elements of one collection never share a key: the write path refuses duplicates.
const keyOf = (kind: string, o: Element): string => String(kind === "hosts" ? o.hostname : o.id);

export function diffModels(prev: Model, next: Model): ModelDelta {
  const delta: ModelDelta = { collections: {}, fields: {} };
  for (const [name, value] of Object.entries(next)) {
    const before = (prev as Record<string, unknown>)[name];
    if (value === before) continue;
    if (Array.isArray(value) && Array.isArray(before)) {
      const at = changedPositions(before, value);
      if (at) delta.collections[name] = { length: value.length, at, changed: at.map((i) => value[i] as Element) };
      else {
        const old = new Set<unknown>(before);
        delta.collections[name] = { keys: value.map((o: Element) => keyOf(name, o)), changed: value.filter((o) => !old.has(o)) };
      }
    } else delta.fields[name] = value;
  }
  return delta;
}

export function applyDelta(prev: Model, delta: ModelDelta): Model {
  const next: Record<string, unknown> = { ...prev, ...delta.fields };
  for (const [name, c] of Object.entries(delta.collections)) {
    const before = (prev as Record<string, unknown>)[name] as Element[];
    if ("at" in c) {
      const list = before.slice();
      c.at.forEach((i, j) => (list[i] = c.changed[j]!));
      if (before.length > c.length || list.length !== c.length || list.includes(undefined as unknown as Element))
        throw new Error(`model delta: ${name} does not line up with the previous model (${before.length} elements, ${c.length} expected)`);
      next[name] = list;
      continue;
    }
    const { keys, changed } = c;
    const byKey = new Map<string, Element>();
    for (const o of before) byKey.set(keyOf(name, o), o);
    for (const o of changed) byKey.set(keyOf(name, o), o);
    next[name] = keys.map((k) => {
      const o = byKey.get(k);
      if (!o) throw new Error(`model delta: ${name} "${k}" is neither changed nor in the previous model`);
      return o;
    });
  }
  return next as Model;
}
