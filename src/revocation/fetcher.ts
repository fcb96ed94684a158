// CRLs fetched over HTTP: one entry per URL, kept until nextUpdate and refreshed in the
// background before it; the last good CRL stays when a refresh fails. Verification is per
// trust bundle (a URL is only believed for the CAs of the bundle that asked for it).
import type { X509Certificate } from "node:crypto";
import type { Logger } from "../observability/log.ts";
import { crlDers, crlNextUpdate, verifyCrl, type VerifiedCrl } from "./crl.ts";
import type { CrlSource } from "./checker.ts";

const MAX_CRL_BYTES = 32 << 20;
const DEFAULT_LIFETIME_MS = 3_600_000; // CRLs without nextUpdate: refresh hourly

export interface FetcherTiming {
  timeoutMs: number;
  /** Never refresh sooner than this, whatever nextUpdate says. */
  minRefreshMs: number;
  /** First retry after a failed fetch; doubles up to 15 minutes. */
  retryMs: number;
}
const TIMING: FetcherTiming = { timeoutMs: 5_000, minRefreshMs: 60_000, retryMs: 30_000 };

interface Entry {
  url: string;
  der?: Buffer;
  /** Why the last fetch failed; what lookup() answers while there is no CRL and no fetch under way. */
  error?: Error;
  fetchedAt?: number;
  nextUpdate?: number;
  inflight?: Promise<void>;
  timer?: NodeJS.Timeout;
  failures: number;
  /** Verified views of `der`, per set of trusted CAs (bundle). */
  verified: WeakMap<readonly X509Certificate[], VerifiedCrl | Error>;
  lastUsed: number;
}

export interface FetcherHooks {
  fetched(url: string, ok: boolean, ageSeconds: number | undefined): void;
  /** After each fetch: the CRL now in use (the last good one when this fetch failed), and why it failed. */
  updated?(url: string, der: Buffer | undefined, error: Error | undefined): void;
}

/** A CRL's verified view for one set of trusted CAs (a bundle), computed once per CRL copy. */
export function verifiedView(cache: WeakMap<readonly X509Certificate[], VerifiedCrl | Error>, der: Buffer, cas: readonly X509Certificate[]): VerifiedCrl | Error {
  let v = cache.get(cas);
  if (!v) {
    try {
      v = verifyCrl(der, cas);
    } catch (e) {
      v = e as Error;
    }
    cache.set(cas, v);
  }
  return v;
}

export class CrlFetcher implements CrlSource {
  readonly #entries = new Map<string, Entry>();
  readonly #log: Logger;
  readonly #hooks: FetcherHooks;
  readonly #t: FetcherTiming;

  constructor(log: Logger, hooks: FetcherHooks, timing: Partial<FetcherTiming> = {}) {
    this.#log = log;
    this.#hooks = hooks;
    this.#t = { ...TIMING, ...timing };
  }

  /**
   * The verified CRL at `url` for these CAs, or a promise settling when the first fetch
   * finishes (the caller decides whether to wait), or an Error if none is usable.
   */
  lookup(url: string, cas: readonly X509Certificate[]): VerifiedCrl | Promise<void> | Error {
    const entry = this.#entry(url);
    entry.lastUsed = Date.now();
    // No CRL: a first fetch is under way, or it failed (an Error built per request would cost ~10 µs).
    if (!entry.der) return entry.inflight ?? entry.error!;
    return verifiedView(entry.verified, entry.der, cas);
  }

  /** What is known of `url` now: the CRL in use and the last fetch's error (undefined: never asked for, or first fetch under way). */
  state(url: string): { der: Buffer | undefined; error: Error | undefined } | undefined {
    const e = this.#entries.get(url);
    return e && (e.der || e.error) ? { der: e.der, error: e.error } : undefined;
  }

  /** Starts fetching `url` now if it is not known yet. */
  prefetch(url: string): void {
    this.#entry(url);
  }

  ageSeconds(url: string): number | undefined {
    const e = this.#entries.get(url);
    return e?.fetchedAt ? (Date.now() - e.fetchedAt) / 1000 : undefined;
  }

  close(): void {
    for (const e of this.#entries.values()) clearTimeout(e.timer);
    this.#entries.clear();
  }

  #entry(url: string): Entry {
    let e = this.#entries.get(url);
    if (!e) {
      e = { url, failures: 0, verified: new WeakMap(), lastUsed: Date.now() };
      this.#entries.set(url, e);
      this.#start(e);
    }
    return e;
  }

  /**
   * Fetches in the background; `inflight` is set until the fetch settles. Cleared by a callback
   * (always asynchronous): a fetch can fail before its first await (undici refuses an ldap://
   * URL synchronously), and clearing it inside #fetch would then precede setting it.
   */
  #start(e: Entry): void {
    const p = this.#fetch(e).finally(() => {
      if (e.inflight === p) e.inflight = undefined;
    });
    e.inflight = p;
  }

  async #fetch(e: Entry): Promise<void> {
    try {
      const { request } = await import("undici"); // loaded where CRLs are fetched: a worker process never does
      const res = await request(e.url, { method: "GET", headersTimeout: this.#t.timeoutMs, bodyTimeout: this.#t.timeoutMs, maxRedirections: 0 } as Parameters<typeof request>[1]);
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`HTTP ${res.statusCode}`);
      }
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body) {
        size += (chunk as Buffer).length;
        if (size > MAX_CRL_BYTES) throw new Error("CRL larger than 32 MiB");
        chunks.push(chunk as Buffer);
      }
      const der = crlDers(Buffer.concat(chunks))[0]!;
      // Read nextUpdate before verification: it only schedules the next fetch.
      const next = crlNextUpdate(der);
      e.der = der;
      e.verified = new WeakMap();
      e.fetchedAt = Date.now();
      e.nextUpdate = next ?? Date.now() + DEFAULT_LIFETIME_MS;
      e.failures = 0;
      e.error = undefined;
      this.#hooks.fetched(e.url, true, 0);
      this.#hooks.updated?.(e.url, der, undefined);
      this.#schedule(e, Math.max(this.#t.minRefreshMs, (e.nextUpdate - Date.now()) * 0.8));
    } catch (err) {
      e.failures++;
      e.error = new Error(`CRL ${e.url} could not be fetched: ${(err as Error).message}`);
      this.#hooks.fetched(e.url, false, this.ageSeconds(e.url));
      this.#hooks.updated?.(e.url, e.der, e.error);
      this.#log.warn({ msg: "CRL fetch failed", url: e.url, err: (err as Error).message, keeping_last_good: Boolean(e.der) });
      this.#schedule(e, Math.min(this.#t.retryMs * 2 ** Math.min(e.failures - 1, 5), 15 * 60_000));
    }
  }

  #schedule(e: Entry, ms: number): void {
    clearTimeout(e.timer);
    e.timer = setTimeout(() => {
      // Stop refreshing CRLs nobody has asked for in a day.
      if (Date.now() - e.lastUsed > 86_400_000) return void this.#entries.delete(e.url);
      this.#start(e);
    }, ms).unref();
  }
}
