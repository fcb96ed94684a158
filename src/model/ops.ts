// Model operations: what every dialect does to the model, written once. Pure functions of the
// model (no I/O); the write path validates, authorizes and commits what they return.
import type { Host, Model, MtlsMode, TrustBundle } from "./schema.ts";

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
  const drop = Object.keys(rec).filter((k) => !pass(k));
  if (!drop.length) return rec;
  const out = { ...rec };
  for (const k of drop) delete out[k];
  return out;
}

/** A host entry of `owner` (an account id, or null: the operator's) with nothing set: no certificate pinned, mTLS off, nothing forwarded. */
const blankHost = (hostname: string, at: string, owner: string | null = null): Host => ({
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

/** The host entry for `hostname`: the existing one (and its index), else a blank one of `owner` (index -1). */
export function hostEntry(model: Model, hostname: string, owner: string | null, at: string): { i: number; host: Host } {
  const i = model.hosts.findIndex((h) => h.hostname === hostname);
  return { i, host: i >= 0 ? model.hosts[i]! : blankHost(hostname, at, owner) };
}

/** The hosts with `host` in place of entry `i` (appended when i < 0). */
export const putHost = (hosts: readonly Host[], i: number, host: Host): Host[] => (i >= 0 ? replaceAt(hosts, i, host) : [...hosts, host]);

/** A host set to verify with `bundle` (its `enforced` decides), or, with null, with mTLS off: an explicit change of that one host. */
export const setHostBundle = (h: Host, bundle: string | null, at: string): Host => ({ ...h, mtls: bundle ? { trust_bundle: bundle } : {}, updated_at: at });

export interface Association {
  bundle: string;
  names: readonly string[];
  /** Owner of host entries created for names that have none (an account id, or null: the operator's). */
  owner: string | null;
  at: string;
  /** Also detach the bundle from the hosts of `scope` that are not in `names` (a PUT of the whole set). */
  replace: boolean;
  /** Which hosts a replace may detach (default: all); others keep the bundle. */
  scope?: (h: Host) => boolean;
  /** The mode hosts that get the bundle are given (default: none, the bundle's `enforced` decides). */
  mode?: MtlsMode;
  /** Called for every name before anything is said about it (the write path's ownership check, so a 403 comes first). */
  claim?: (name: string) => void;
  /** The dialect's error for a name another bundle holds. */
  refuse: (message: string) => Error;
}

/**
 * "Point these hostnames at this bundle", the one operation every dialect uses: the hosts after
 * pointing `names` at `bundle`. A name held by another bundle is refused (naming that bundle):
 * it is never moved silently, nor its explicit `mtls.mode` dropped. A host that already uses the
 * bundle keeps its entry (and mode) as it is; a host without mTLS gets the bundle and follows its
 * `enforced` (or `mode`); a name without a host entry gets a new one of `owner`.
 */
export function associate(model: Model, a: Association): Host[] {
  let hosts = model.hosts;
  const index = new Map(hosts.map((h, i) => [h.hostname, i]));
  if (a.claim) for (const n of a.names) a.claim(n);
  for (const n of a.names) {
    const i = index.get(n);
    const h = i === undefined ? undefined : hosts[i];
    if (h?.mtls.trust_bundle === a.bundle) continue;
    if (h?.mtls.trust_bundle) throw a.refuse(`hostname "${n}" is already associated with certificate "${h.mtls.trust_bundle}"; remove it from that one first`);
    const mtls = { ...(a.mode ? { mode: a.mode } : {}), trust_bundle: a.bundle };
    if (h) hosts = replaceAt(hosts, i!, { ...h, mtls, updated_at: a.at });
    else {
      index.set(n, hosts.length);
      hosts = [...hosts, { ...blankHost(n, a.at, a.owner), mtls }];
    }
  }
  if (!a.replace) return hosts;
  const keep = new Set(a.names);
  return hosts.map((h) => (h.mtls.trust_bundle === a.bundle && !keep.has(h.hostname) && (a.scope?.(h) ?? true) ? setHostBundle(h, null, a.at) : h));
}

/** A new trust bundle (fail closed, depth 4 unless given), stamped `at`, added to the model. */
export function addBundle(model: Model, fields: Pick<TrustBundle, "id" | "ca"> & Partial<TrustBundle>, at: string): { model: Model; bundle: TrustBundle } {
  const bundle: TrustBundle = { verify_depth: 4, enforced: true, ...fields, created_at: at, updated_at: at };
  return { model: { ...model, trust_bundles: [...model.trust_bundles, bundle] }, bundle };
}

/** The model without bundle `i`; refused (the dialect's error, given the hosts using it) while any host verifies with it. */
export function removeBundle(model: Model, i: number, refuse: (users: Host[]) => Error): Model {
  const id = model.trust_bundles[i]!.id;
  const users = model.hosts.filter((h) => h.mtls.trust_bundle === id);
  if (users.length) throw refuse(users);
  return { ...model, trust_bundles: removeAt(model.trust_bundles, i) };
}
