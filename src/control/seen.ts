// The client certificate inventory as the control plane serves and keeps it: the table of the
// process that owns the store (one process's own, or a primary's, into which its workers'
// sightings are merged), reloaded from the store at start, flushed to it every interval and at
// shutdown, and queried by GET /v1/client_certificates/seen.
import type { Logger } from "../observability/log.ts";
import { sanEntries } from "../dataplane/tls/facts.ts";
import type { SeenEntry, Sightings } from "../dataplane/tls/sightings.ts";
import type { Store } from "./store.ts";

export interface SeenQuery {
  /** A configured hostname (a wildcard host's `*.example.com`) the certificate was presented on, exactly. */
  host?: string;
  /** Part of the issuer DN, case-insensitive. */
  issuer?: string;
  /** Certificates whose not-after is before now + this (expired ones included). */
  expiringWithinMs?: number;
  page: number;
  perPage: number;
}

export class SeenInventory {
  readonly table: Sightings;
  readonly #store: Store;
  readonly #log: Logger;
  /** Merges the workers' sightings into `table` (a primary), before a query and a flush. */
  readonly #collect: () => Promise<void>;
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> = Promise.resolve();

  constructor(table: Sightings, store: Store, log: Logger, collect: () => Promise<void> = () => Promise.resolve()) {
    this.table = table;
    this.#store = store;
    this.#log = log;
    this.#collect = collect;
  }

  /**
   * Flushes every `intervalMs` from now on, and loads the stored inventory: the returned promise
   * settles once loaded (a store that is down leaves it empty). Serving need not wait for it:
   * sightings recorded meanwhile are added to the loaded totals, and a flush before it only adds.
   */
  start(intervalMs: number): Promise<void> {
    this.#timer = setInterval(() => void this.flush(), intervalMs);
    this.#timer.unref();
    return this.#store.loadSeen(this.table.max).then(
      (totals) => this.table.load(totals),
      (e: unknown) => this.#log.warn({ msg: "could not load the client certificate inventory from the store: starting empty", err: (e as Error).message }),
    );
  }

  /** Collects the workers' sightings and adds what changed to the store; one flush at a time. */
  flush(): Promise<void> {
    return (this.#flushing = this.#flushing.then(async () => {
      await this.#collect();
      const deltas = this.table.drain();
      if (!deltas.length) return;
      try {
        this.table.load(await this.#store.flushSeen(deltas, this.table.max), false);
      } catch (e) {
        this.table.requeue(deltas);
        this.#log.warn({ msg: "could not flush the client certificate inventory to the store: retrying at the next interval", entries: deltas.length, err: (e as Error).message });
      }
    }));
  }

  /** Stops the interval and flushes what is left (graceful shutdown). */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.flush();
  }

  /** One page of entries matching `q`, most recently seen first; the workers' latest sightings included. */
  async query(q: SeenQuery, now = Date.now()): Promise<{ entries: SeenEntry[]; total: number }> {
    await this.#collect();
    const issuer = q.issuer?.toLowerCase();
    const before = q.expiringWithinMs === undefined ? undefined : now + q.expiringWithinMs;
    const all = this.table.entries().filter((e) => (q.host === undefined || e.hostnames.includes(q.host)) && (issuer === undefined || e.issuer.toLowerCase().includes(issuer)) && (before === undefined || e.notAfter <= before));
    // The table's order is recency of use (a merge or a load touches too): sort by last seen.
    all.sort((a, b) => b.lastSeen - a.lastSeen || (a.fingerprint < b.fingerprint ? -1 : 1));
    return { entries: all.slice((q.page - 1) * q.perPage, q.page * q.perPage), total: all.length };
  }
}

/** An entry as the native API shows it. */
export function seenView(e: SeenEntry): Record<string, unknown> {
  return {
    fingerprint_sha256: e.fingerprint.replaceAll(":", "").toLowerCase(),
    subject: e.subject,
    issuer: e.issuer,
    serial: e.serial,
    sans: sanEntries(e.san).map(([type, value]) => ({ type, value })),
    not_after: new Date(e.notAfter).toISOString(),
    verification: e.result,
    revoked: e.revoked,
    first_seen: new Date(e.firstSeen).toISOString(),
    last_seen: new Date(e.lastSeen).toISOString(),
    hostnames: e.hostnames,
    connections: e.connections,
  };
}
