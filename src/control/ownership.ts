// Who owns what in the model, and the one check every admin write goes through.
//
// Every object has exactly one owner: a Cloudflare account (`account_id`) or, without one, the
// operator ("global"). Hosts, trust bundles and zones carry `account_id`; a managed client
// certificate belongs to the owner of its zone; everything else (certificates, routes, rules
// outside zones, TLS configurations, keys, Apinizer, limits...) is always global.
// A hostname belongs to exactly one owner: the zones and host entries whose names overlap it
// must all have the same owner (ownershipProblems, checked on every write and on the bootstrap
// seed). A name that only routes or Apinizer proxies use is the operator's.
// authorize() compares the stored model with the one a write would commit: a scoped token may
// change, create, remove or point at only its own account's objects and hostnames.
import type { Host, Model, Zone } from "../model/schema.ts";
import { MANAGED_BUNDLE_ID } from "../managedca/service.ts";
import type { Principal } from "./auth.ts";
import { ApiError } from "./apierrors.ts";
import { COLLECTIONS, keyField } from "./store.ts";
import { RECORD_OWNERS } from "../dialects/records.ts";

/** An account id, or null for the operator (global). */
export type Owner = string | null;

const ownerOf = (o: { account_id?: string }): Owner => o.account_id ?? null;

/** What a message calls an owner. */
const ownerName = (o: Owner): string => (o === null ? "global (operator)" : `account "${o}"`);

/** May this principal read an object of `owner`? Global tokens read everything. */
export function canRead(principal: Principal, owner: Owner): boolean {
  return principal.account_id === null || principal.account_id === owner;
}

/** The owner of a collection element: its account_id, a managed client certificate its zone's; other kinds are global. */
function elementOwner(kind: keyof Model, o: Record<string, unknown>, model: Model): Owner {
  if (kind === "hosts" || kind === "trust_bundles" || kind === "zones") return ownerOf(o as { account_id?: string });
  if (kind === "managed_client_certificates") {
    const z = model.zones.find((x) => x.id === o.zone_id);
    return z ? ownerOf(z) : null;
  }
  return null;
}

/** 403 unless the token may act on this Cloudflare account (global tokens act on any). */
export function requireAccount(principal: Principal, account: string | undefined): void {
  if (principal.account_id !== null && account !== principal.account_id) throw new ApiError("forbidden", `this token is limited to Cloudflare account ${principal.account_id}`);
}

// ---- names ---------------------------------------------------------------------------------

/** `name` is `zone` or below it (a wildcard `*.p` is below `zone` when `p` is). */
const within = (name: string, zone: string): boolean => name === zone || name.endsWith("." + zone);
const parent = (name: string): string => name.slice(name.indexOf(".") + 1);
const isWild = (name: string): boolean => name.startsWith("*.");

/** Some request hostname is covered by both a zone named `zone` and a host entry (or route) named `host`. */
function zoneOverlapsHost(zone: string, host: string): boolean {
  return within(host, zone) || (isWild(host) && parent(zone) === host.slice(2) && zone.includes("."));
}
/** Two zones overlap when one holds the other. */
const zonesOverlap = (a: string, b: string): boolean => within(a, b) || within(b, a);
/** Two host names overlap when equal, or one is `*.p` and the other a name directly below p. */
const hostsOverlap = (a: string, b: string): boolean =>
  a === b || (isWild(a) && !isWild(b) && parent(b) === a.slice(2)) || (isWild(b) && !isWild(a) && parent(a) === b.slice(2));

/** Everything in `model` that claims a name overlapping `name` (a zone's name when `asZone`), with its owner. */
function claimsOn(model: Model, name: string, asZone: boolean): { what: string; owner: Owner }[] {
  const out: { what: string; owner: Owner }[] = [];
  for (const z of model.zones) if (asZone ? zonesOverlap(z.name, name) : zoneOverlapsHost(z.name, name)) out.push({ what: `zone "${z.name}"`, owner: ownerOf(z) });
  for (const h of model.hosts) if (asZone ? zoneOverlapsHost(name, h.hostname) : hostsOverlap(h.hostname, name)) out.push({ what: `hostname "${h.hostname}"`, owner: ownerOf(h) });
  // Names the operator routes (routes, Apinizer proxies) are the operator's unless a host entry or zone says otherwise.
  const operatorNames = [...model.routes.map((r) => r.hostname), ...model.dialects.apinizer.projects.flatMap((p) => p.api_proxies.map((x) => x.hostname))];
  for (const n of operatorNames) {
    if (!(asZone ? zoneOverlapsHost(name, n) : hostsOverlap(n, name))) continue;
    if (model.hosts.some((h) => hostsOverlap(h.hostname, n)) || model.zones.some((z) => zoneOverlapsHost(z.name, n))) continue;
    out.push({ what: `hostname "${n}"`, owner: null });
  }
  return out;
}

/** The owner a new host entry for `name` must have: that of the zones it is in (the invariants keep them one), else the operator. */
export function zoneOwnerOf(model: Model, name: string): Owner {
  const z = model.zones.find((x) => zoneOverlapsHost(x.name, name));
  return z ? ownerOf(z) : null;
}

// ---- the model's invariants ------------------------------------------------------------------

/**
 * A test, called in order for each element of the new array, of whether it is new or different
 * since `before` (the same object, or one equal to the element with its key, is unchanged).
 * Writes replace or append one element, so the common case costs one comparison per element
 * and no index of 10,000 objects.
 */
function changedSince<T extends object>(before: readonly T[], key: keyof T): (o: T, i: number) => boolean {
  let same: Set<T> | undefined;
  let byKey: Map<unknown, T> | undefined;
  let lookups = 0;
  return (o, i) => {
    const at = before[i];
    if (at === o) return false;
    const k = o[key];
    // Replaced in place: compare with the element it replaces.
    if (at && at[key] === k && !same) return JSON.stringify(at) !== JSON.stringify(o);
    // Elements moved (one was removed or the order changed): look the object up.
    if (at || same) {
      same ??= new Set(before);
      if (same.has(o)) return false;
    }
    const old = ++lookups > 8 ? (byKey ??= new Map(before.map((x) => [x[key], x]))).get(k) : before.find((x) => x[key] === k);
    return !old || JSON.stringify(old) !== JSON.stringify(o);
  };
}

/**
 * Overlapping zones and host entries of different owners, and hosts trusting another account's
 * bundle. With `prev`, only pairs with an element new since `prev` are looked at: a write to one
 * of 10,000 hosts checks that host, data stored before owners existed stays loadable, and
 * nothing a write leaves alone is re-judged.
 */
export function ownershipProblems(model: Model, prev?: Model): { path: string; message: string }[] {
  if (prev && prev.hosts === model.hosts && prev.zones === model.zones && prev.trust_bundles === model.trust_bundles) return [];
  const problems = new Map<string, { path: string; message: string }>();
  const add = (path: string, message: string) => problems.set(path + message, { path, message });
  const differ = (what: string, a: Owner, b: Owner) => `${what}: ${ownerName(a)} and ${ownerName(b)} cannot share a hostname`;
  const newHost = changedSince(prev?.hosts ?? [], "hostname");
  const newZone = changedSince(prev?.zones ?? [], "id");
  const newBundle = changedSince(prev?.trust_bundles ?? [], "id");
  const changedZones = model.zones.filter(newZone);
  for (const z of changedZones) {
    for (const y of model.zones)
      if (y !== z && ownerOf(y) !== ownerOf(z) && zonesOverlap(z.name, y.name))
        add(`zones[${model.zones.indexOf(z)}].name`, differ(`zones "${z.name}" and "${y.name}" overlap`, ownerOf(z), ownerOf(y)));
    model.hosts.forEach((h, i) => {
      if (ownerOf(h) !== ownerOf(z) && zoneOverlapsHost(z.name, h.hostname)) add(`hosts[${i}].account_id`, differ(`hostname "${h.hostname}" is in zone "${z.name}"`, ownerOf(h), ownerOf(z)));
    });
  }

  const zonesByName = new Map(model.zones.map((z) => [z.name, z]));
  const wildcards = new Map(model.hosts.filter((h) => h.hostname.startsWith("*.")).map((h) => [h.hostname, h]));
  const bundles = new Map(model.trust_bundles.map((b) => [b.id, b]));
  const changedBundles = new Set(model.trust_bundles.filter(newBundle).map((b) => b.id));
  for (let i = 0; i < model.hosts.length; i++) {
    const h = model.hosts[i]!;
    const fresh = newHost(h, i);
    if (!fresh && (changedBundles.size === 0 || !changedBundles.has(h.mtls.trust_bundle ?? ""))) continue;
    const owner = ownerOf(h);
    const b = h.mtls.trust_bundle === undefined ? undefined : bundles.get(h.mtls.trust_bundle);
    // A host may trust its owner's bundles and the operator's; never another account's (that account could change what the host trusts).
    if (b?.account_id !== undefined && b.account_id !== owner)
      add(`hosts[${i}].mtls.trust_bundle`, `hostname "${h.hostname}" (${ownerName(owner)}) cannot trust bundle "${b.id}" of ${ownerName(b.account_id)}`);
    if (!fresh) continue;
    // The zones holding it: its parents' names (and, for *.p, the zones one label below p).
    const overlapping: Zone[] = [];
    for (let n = isWild(h.hostname) ? h.hostname.slice(2) : h.hostname; ; n = parent(n)) {
      const z = zonesByName.get(n);
      if (z) overlapping.push(z);
      if (!n.includes(".")) break;
    }
    if (isWild(h.hostname)) overlapping.push(...model.zones.filter((z) => z.name.includes(".") && parent(z.name) === h.hostname.slice(2)));
    for (const z of overlapping)
      if (ownerOf(z) !== owner) add(`hosts[${i}].account_id`, differ(`hostname "${h.hostname}" is in zone "${z.name}"`, owner, ownerOf(z)));
    // *.p and the names directly below p.
    const others = isWild(h.hostname) ? model.hosts.filter((x) => !isWild(x.hostname) && parent(x.hostname) === h.hostname.slice(2)) : [wildcards.get("*." + parent(h.hostname))];
    for (const x of others)
      if (x && x !== h && ownerOf(x) !== owner) add(`hosts[${i}].account_id`, differ(`hostnames "${h.hostname}" and "${x.hostname}" overlap`, owner, ownerOf(x)));
  }
  return [...problems.values()];
}

// ---- authorization of a write ----------------------------------------------------------------

const forbidden = (message: string): ApiError => new ApiError("forbidden", message);

/**
 * 403 unless `principal` may claim `name` (a zone's name when `asZone`) in `model`: an account
 * token only names that no other owner holds. Operations that name hostnames call it before
 * saying anything about them (a 400 about a foreign host would tell what it is).
 */
export function claimable(principal: Principal, model: Model, name: string, asZone = false): void {
  const acc = principal.account_id;
  if (acc === null) return;
  const foreign = claimsOn(model, name, asZone).find((c) => c.owner !== acc);
  if (foreign) throw forbidden(`this token is limited to Cloudflare account ${acc}: ${asZone ? "zone" : "hostname"} "${name}" overlaps ${foreign.what}, which is not this account's`);
}

/** The references a collection element makes to other objects: [kind, id]. */
function refsOf(kind: keyof Model, o: Record<string, unknown>): [keyof Model, string][] {
  if (kind === "hosts") {
    const h = o as Host;
    return [
      ...(h.mtls.trust_bundle ? [["trust_bundles", h.mtls.trust_bundle] as [keyof Model, string]] : []),
      ...(h.certificate ? [["certificates", h.certificate] as [keyof Model, string]] : []),
    ];
  }
  if (kind === "managed_client_certificates") return [["zones", String(o.zone_id)]];
  return [];
}

/** The shared managed-CA bundle: any account's hosts may trust it; only the node creates it. */
const isManagedCa = (kind: keyof Model, o: Record<string, unknown> | undefined): boolean => kind === "trust_bundles" && o?.id === MANAGED_BUNDLE_ID && o.managed_ca === true;

/** Records are compared by value: a write's validation may hand back equal copies of unchanged ones. */
const same = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/** 403 unless an account token changes only records of its own account's objects. */
function authorizeRecords(scope: string, acc: string, prev: Model, next: Model): void {
  if (prev.dialects === next.dialects) return;
  for (const name of Object.keys(next.dialects) as (keyof Model["dialects"])[]) {
    const before = prev.dialects[name] as Record<string, unknown>;
    const after = next.dialects[name] as Record<string, unknown>;
    if (before === after) continue;
    for (const field of new Set([...Object.keys(before), ...Object.keys(after)])) {
      if (same(before[field], after[field])) continue;
      const kind = RECORD_OWNERS[name]?.[field];
      if (!kind) throw forbidden(`${scope}: dialects.${name}.${field} is global configuration`);
      const b = (before[field] ?? {}) as Record<string, unknown>;
      const a = (after[field] ?? {}) as Record<string, unknown>;
      for (const key of new Set([...Object.keys(b), ...Object.keys(a)])) {
        if (same(b[key], a[key])) continue;
        const owner = [next, prev].map((m) => (m[kind] as unknown as Record<string, unknown>[]).find((o) => String(o[keyField(kind)]) === key)).find((o) => o !== undefined);
        if (!owner || elementOwner(kind, owner, next) !== acc) throw forbidden(`${scope}: ${kind === "hosts" ? "hostname" : "zone"} "${key}" is not this account's`);
      }
    }
  }
}

/**
 * The one authorization check of every write, whatever the dialect: 403 unless `principal` may
 * turn `prev` into `next`. Global tokens may do anything; read-only tokens nothing; an account
 * token only changes its account's objects, points them only at its own objects (or the shared
 * managed CA), and claims only hostnames no other owner holds.
 */
export function authorize(principal: Principal, prev: Model, next: Model): void {
  if (prev === next) return;
  if (principal.read_only) throw forbidden("this token is read-only");
  const acc = principal.account_id;
  if (acc === null) return;
  const scope = `this token is limited to Cloudflare account ${acc}`;
  for (const k of Object.keys(next) as (keyof Model)[])
    if (k === "dialects") authorizeRecords(scope, acc, prev, next);
    else if (!(COLLECTIONS as string[]).includes(k) && next[k] !== prev[k]) throw forbidden(`${scope}: ${k} is global configuration`);
  for (const kind of COLLECTIONS) {
    if (prev[kind] === next[kind]) continue;
    const field = keyField(kind);
    const before = new Map((prev[kind] as unknown as Record<string, unknown>[]).map((o) => [String(o[field]), o]));
    const seen = new Set<string>();
    for (const o of next[kind] as unknown as Record<string, unknown>[]) {
      const key = String(o[field]);
      seen.add(key);
      const old = before.get(key);
      if (old === o) continue;
      const what = `${kind} "${key}"`;
      if (old && elementOwner(kind, old, prev) !== acc) throw forbidden(`${scope}: ${what} is not this account's`);
      if (!old && isManagedCa(kind, o)) continue; // created on first use of the managed CA
      if (elementOwner(kind, o, next) !== acc) throw forbidden(`${scope}: ${what} would not be this account's`);
      const oldRefs = new Set((old ? refsOf(kind, old) : []).map((r) => r.join("/")));
      for (const [rk, id] of refsOf(kind, o)) {
        if (oldRefs.has(`${rk}/${id}`)) continue;
        const target = (next[rk] as unknown as Record<string, unknown>[]).find((x) => String(x[keyField(rk)]) === id);
        if (target && (isManagedCa(rk, target) || elementOwner(rk, target, next) === acc)) continue;
        throw forbidden(`${scope}: ${rk} "${id}" is not this account's`);
      }
      // A new host entry or zone claims names: nobody else may hold any of them.
      const name = kind === "hosts" ? key : kind === "zones" && (!old || old.name !== o.name) ? String(o.name) : undefined;
      if (name === undefined || (kind === "hosts" && old)) continue;
      claimable(principal, prev, name, kind === "zones");
    }
    for (const [key, old] of before) if (!seen.has(key) && elementOwner(kind, old, prev) !== acc) throw forbidden(`${scope}: ${kind} "${key}" is not this account's`);
  }
}
