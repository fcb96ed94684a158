// What the compile steps share: how a step reports a problem (the model path at fault and
// why; the snapshot throws them all as one ModelError), and the memo of compiled parts.

export type Fail = (path: string, message: string) => void;

/** A file-backed field whose contents nobody read (a model that did not come through the control plane's file source). */
export const UNREAD = "the file was not read: file-backed contents reach the data plane through the control plane";

/**
 * Compiled parts, by the (immutable) model object they came from: the control plane shares
 * unchanged objects between models, so a write to one host does not re-parse every PEM.
 * Failures are not cached: they must be reported again.
 */
export function memo<K extends object, V>(cache: WeakMap<K, V>, key: K, build: () => V | undefined): V | undefined {
  const hit = cache.get(key);
  if (hit) return hit;
  const v = build();
  if (v !== undefined) cache.set(key, v);
  return v;
}
