// A worker's view of its primary's revocation sources: the CRLs the primary downloaded and the
// OCSP answers it got, pushed to every worker as they arrive. A worker never fetches: it asks
// for what it lacks and waits for the push, so one URL costs one download per process group.
import type { X509Certificate } from "node:crypto";
import { LRUCache } from "lru-cache";
import type { VerifiedCrl } from "../revocation/crl.ts";
import type { CrlSource, OcspSource } from "../revocation/checker.ts";
import { verifiedView } from "../revocation/fetcher.ts";
import { OCSP_CACHE, OcspKeys, type OcspAnswer, type OcspOptions } from "../revocation/ocsp.ts";
import type { FromWorker } from "./protocol.ts";

type Send = (m: FromWorker) => void;

interface CrlEntry {
  der?: Buffer;
  error?: Error;
  verified: WeakMap<readonly X509Certificate[], VerifiedCrl | Error>;
  /** Settles at the first copy or error the primary pushes. */
  first?: { promise: Promise<void>; resolve: () => void };
}

export class CrlMirror implements CrlSource {
  readonly #entries = new Map<string, CrlEntry>();
  readonly #send: Send;

  constructor(send: Send) {
    this.#send = send;
  }

  lookup(url: string, cas: readonly X509Certificate[]): VerifiedCrl | Promise<void> | Error {
    const e = this.#entry(url);
    if (!e.der) return e.first?.promise ?? e.error!;
    return verifiedView(e.verified, e.der, cas);
  }

  prefetch(url: string): void {
    this.#entry(url);
  }

  /** The primary's copy of `url` changed (or its first fetch failed). */
  received(url: string, der: Buffer | null, error: string | null): void {
    const e = this.#entries.get(url) ?? { verified: new WeakMap() };
    this.#entries.set(url, e);
    if (der) {
      e.der = Buffer.from(der);
      e.verified = new WeakMap();
    }
    e.error = error ? new Error(error) : undefined;
    e.first?.resolve();
    e.first = undefined;
  }

  close(): void {
    for (const e of this.#entries.values()) e.first?.resolve();
    this.#entries.clear();
  }

  #entry(url: string): CrlEntry {
    let e = this.#entries.get(url);
    if (!e) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      this.#entries.set(url, (e = { verified: new WeakMap(), first: { promise, resolve } }));
      this.#send({ t: "crl_want", url });
    }
    return e;
  }
}

export class OcspMirror implements OcspSource {
  readonly #cache = new LRUCache<string, OcspAnswer>(OCSP_CACHE);
  readonly #waiting = new Map<string, { promise: Promise<OcspAnswer>; resolve: (a: OcspAnswer) => void; timer: NodeJS.Timeout }>();
  readonly #keys = new OcspKeys();
  readonly #send: Send;

  constructor(send: Send) {
    this.#send = send;
  }

  lookup(leaf: X509Certificate, issuer: X509Certificate, url: string, opts: OcspOptions): OcspAnswer | Promise<OcspAnswer> {
    const key = this.#keys.of(leaf, issuer, url);
    const hit = this.#cache.get(key);
    if (hit) return hit;
    const pending = this.#waiting.get(key);
    if (pending) return pending.promise;
    let resolve!: (a: OcspAnswer) => void;
    const promise = new Promise<OcspAnswer>((r) => (resolve = r));
    // The primary's own query times out after opts.timeoutMs; this only covers a primary that never answers.
    const timer = setTimeout(() => this.received(key, { status: "error", detail: "no answer from the primary process" }, 5_000), opts.timeoutMs + 2_000);
    this.#waiting.set(key, { promise, resolve, timer });
    this.#send({ t: "ocsp_ask", key, leaf: Buffer.from(leaf.raw), issuer: Buffer.from(issuer.raw), url, opts });
    return promise;
  }

  /** An answer the primary got (for any worker): cached here for as long as there. */
  received(key: string, answer: OcspAnswer, ttlMs: number): void {
    if (ttlMs > 0) this.#cache.set(key, answer, { ttl: ttlMs });
    const w = this.#waiting.get(key);
    if (!w) return;
    this.#waiting.delete(key);
    clearTimeout(w.timer);
    w.resolve(answer);
  }

}
