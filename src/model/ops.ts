// Model operations: what every dialect does to the model, written once. Pure functions of the
// model (no I/O); the write path validates, authorizes and commits what they return.
import type { Host, Model } from "./schema.ts";

/** Immutable update helpers. */
export function replaceAt<T>(arr: readonly T[], i: number, v: T): T[] {
  const out = arr.slice();
  out[i] = v;
  return out;
}
export function removeAt<T>(arr: readonly T[], i: number): T[] {
  return arr.slice(0, i).concat(arr.slice(i + 1));
}

/** The entries of `rec` whose key passes; `rec` itself when all do. */
export function keep<T>(rec: Record<string, T>, pass: (key: string) => boolean): Record<string, T> {
  const keys = Object.keys(rec);
  if (keys.every(pass)) return rec;
  return Object.fromEntries(keys.filter(pass).map((k) => [k, rec[k]!]));
}

/** A host entry of `owner` (an account id, or null: the operator's) with nothing set: no certificate pinned, mTLS off, nothing forwarded. */
export const blankHost = (hostname: string, at: string, owner: string | null = null): Host => ({
  hostname,
  ...(owner !== null ? { account_id: owner } : {}),
  mtls: {},
  forward_client_cert: { rfc9440: false, cloudflare: false, xfcc: false },
  created_at: at,
  updated_at: at,
});

/** The model with one dialect's records replaced. */
export function withDialect<K extends keyof Model["dialects"]>(model: Model, name: K, records: Model["dialects"][K]): Model {
  return records === model.dialects[name] ? model : { ...model, dialects: { ...model.dialects, [name]: records } };
}
