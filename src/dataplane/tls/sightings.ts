// The inventory of client certificates this process has seen: a bounded LRU table keyed by
// the leaf's SHA-256 fingerprint. On the handshake path a certificate already in the table
// costs a lookup and a few counter updates; only its first sight copies a summary out of the
// certificate (strings Node already made for the rules, plus its SAN string).
//
// Every change also marks the entry dirty; drain() hands the changes out as deltas (counts
// since the last drain, never totals), so a worker's deltas can be merged into its primary's
// table, and a primary's into the store, without counting anything twice. An entry evicted
// before a drain takes its changes with it: under a flood of new certificates, the table and
// its pending changes stay within `max` entries.
import { LRUCache } from "lru-cache";
import type { ClientCertFacts } from "./facts.ts";

/** Hosts kept per certificate: the first ones it was presented on. */
export const MAX_HOSTNAMES = 8;
export const DEFAULT_SEEN_ENTRIES = 100_000;

/** What a certificate is, fixed at first sight. */
export interface SeenSummary {
  subject: string;
  issuer: string;
  serial: string;
  /** Node's subjectAltName string (`DNS:a, URI:spiffe://…`), split at query time. */
  san: string;
  /** not-after, epoch milliseconds. */
  notAfter: number;
}

export interface SeenEntry extends SeenSummary {
  /** SHA-256 of the DER, as Node's X509Certificate.fingerprint256 spells it (AB:CD:…). */
  fingerprint: string;
  /** `verified`, or the reason the last handshake failed verification (`expired`, `untrusted`, …). */
  result: string;
  /** The last revocation verdict of a request on it; null until one was checked. */
  revoked: boolean | null;
  firstSeen: number;
  lastSeen: number;
  hostnames: string[];
  connections: number;
}

/** A change to one entry: `connections` counts those since the previous delta. */
export type SeenDelta = SeenEntry;

interface Slot extends SeenEntry {
  /** Connections since the last drain. */
  pending: number;
}

export class Sightings {
  readonly max: number;
  readonly #lru: LRUCache<string, Slot>;
  /** Entries changed since the last drain: always in the table too (an evicted entry's changes go with it). */
  readonly #dirty = new Map<string, Slot>();
  /** Each open connection's entry, for its requests' revocation verdicts; gone with the connection. */
  readonly #byConn = new WeakMap<ClientCertFacts, Slot>();
  /** Issuer DNs repeat across thousands of entries: one string each. */
  readonly #issuers = new Map<string, string>();

  constructor(max = DEFAULT_SEEN_ENTRIES) {
    this.max = max;
    this.#lru = new LRUCache<string, Slot>({ max, dispose: (_v, key, reason) => reason === "evict" && this.#dirty.delete(key) });
  }

  get size(): number {
    return this.#lru.size;
  }

  /** A connection presented `facts`' leaf on `hostname` (the configured host it matched). The handshake path: keep it cheap. */
  record(facts: ClientCertFacts, hostname: string, now = Date.now()): void {
    const leaf = facts.leaf;
    if (!leaf) return;
    // OpenSSL's digest of the DER it holds: no copy of the DER into JavaScript (leaf.raw costs more).
    const fp = leaf.fingerprint256;
    const result = facts.verdict.ok ? "verified" : facts.verdict.reason;
    let e = this.#lru.get(fp);
    if (e) {
      e.lastSeen = now;
      e.connections++;
      e.pending++;
      e.result = result;
      if (hostname && e.hostnames.length < MAX_HOSTNAMES && !e.hostnames.includes(hostname)) e.hostnames.push(hostname);
    } else {
      const summary = { subject: facts.subjectDn, issuer: this.#issuer(facts.issuerDn), serial: facts.serial, san: leaf.subjectAltName ?? "", notAfter: leaf.validToDate.getTime() };
      e = { fingerprint: fp, ...summary, result, revoked: null, firstSeen: now, lastSeen: now, hostnames: hostname ? [hostname] : [], connections: 1, pending: 1 };
      this.#lru.set(fp, e);
    }
    this.#markDirty(e);
    this.#byConn.set(facts, e);
  }

  /** A request's revocation verdict on its connection's certificate (found without hashing it again); a change only when it differs. */
  revoked(facts: ClientCertFacts, revoked: boolean): void {
    const e = this.#byConn.get(facts);
    if (!e || e.revoked === revoked) return;
    e.revoked = revoked;
    // An entry evicted since its connection began is gone from the inventory: nothing to flush.
    if (this.#lru.peek(e.fingerprint) === e) this.#markDirty(e);
  }

  /** Adds deltas from elsewhere (a worker's): min first seen, max last seen, summed counts, union of hostnames. */
  merge(deltas: readonly SeenDelta[]): void {
    for (const d of deltas) {
      const e = this.#lru.get(d.fingerprint);
      if (!e) {
        const slot: Slot = { ...d, hostnames: d.hostnames.slice(0, MAX_HOSTNAMES), issuer: this.#issuer(d.issuer), pending: d.connections };
        this.#lru.set(d.fingerprint, slot);
        this.#markDirty(slot);
        continue;
      }
      combine(e, d);
      e.connections += d.connections;
      e.pending += d.connections;
      this.#markDirty(e);
    }
  }

  /**
   * Totals from the store (at start, or as a flush left them): they replace what the table knows,
   * plus whatever arrived since the delta they include was drained. Nothing is marked dirty.
   * `insert: false` (after a flush) leaves out certificates evicted meanwhile.
   */
  load(totals: readonly SeenEntry[], insert = true): void {
    for (const t of totals) {
      const e = this.#lru.peek(t.fingerprint);
      if (!e) {
        if (!insert) continue;
        this.#lru.set(t.fingerprint, { ...t, issuer: this.#issuer(t.issuer), pending: 0 });
        continue;
      }
      const pending = e.pending;
      combine(e, t);
      e.connections = t.connections + pending;
    }
  }

  /** Deltas drained but not delivered (the store was down): their counts wait for the next drain again. */
  requeue(deltas: readonly SeenDelta[]): void {
    for (const d of deltas) {
      const e = this.#lru.peek(d.fingerprint);
      if (!e) continue; // evicted meanwhile: a bounded table forgets
      e.pending += d.connections;
      this.#markDirty(e);
    }
  }

  /** Everything changed since the last drain, as deltas; the table forgets what it handed out. */
  drain(): SeenDelta[] {
    const out: SeenDelta[] = [];
    for (const e of this.#dirty.values()) {
      const { pending, ...entry } = e;
      out.push({ ...entry, hostnames: [...entry.hostnames], connections: pending });
      e.pending = 0;
    }
    this.#dirty.clear();
    return out;
  }

  /** Every entry, most recently seen first. */
  entries(): SeenEntry[] {
    return Array.from(this.#lru.values(), strip);
  }

  #markDirty(e: Slot): void {
    this.#dirty.set(e.fingerprint, e);
  }

  #issuer(dn: string): string {
    const known = this.#issuers.get(dn);
    if (known !== undefined) return known;
    if (this.#issuers.size >= 10_000) this.#issuers.clear();
    this.#issuers.set(dn, dn);
    return dn;
  }
}

/** `total` with `delta` added: its connections summed, and the rest as merge() does. */
export function addDelta(total: SeenEntry | undefined, delta: SeenDelta): SeenEntry {
  if (!total) return { ...delta, hostnames: delta.hostnames.slice(0, MAX_HOSTNAMES) };
  const e = { ...total, hostnames: [...total.hostnames] };
  combine(e, delta);
  e.connections += delta.connections;
  return e;
}

/** Folds `d` into `e` (not the count): the newer sighting's verdicts, the widest time span, hostnames united. */
function combine(e: SeenEntry, d: SeenEntry): void {
  if (d.lastSeen >= e.lastSeen) {
    e.result = d.result;
    if (d.revoked !== null) e.revoked = d.revoked;
  }
  e.firstSeen = Math.min(e.firstSeen, d.firstSeen);
  e.lastSeen = Math.max(e.lastSeen, d.lastSeen);
  for (const h of d.hostnames) if (e.hostnames.length < MAX_HOSTNAMES && !e.hostnames.includes(h)) e.hostnames.push(h);
}

function strip(e: Slot): SeenEntry {
  const { pending: _p, ...entry } = e;
  return entry;
}
