// Per-request revocation status of a verified client certificate. CRLs cost a hash lookup;
// OCSP answers come from a shared cache, so only the first request for a certificate (per
// nextUpdate) waits. Checked on every request, so a revocation published while a keep-alive
// connection is open applies to that connection's next request.
import type { X509Certificate } from "node:crypto";
import { serialKey } from "./crl.ts";
import type { RevocationPolicy } from "./policy.ts";
import type { VerifiedCrl } from "./crl.ts";
import { ocspUrlOf, type OcspAnswer, type OcspOptions } from "./ocsp.ts";

/**
 * Where CRLs come from: CrlFetcher downloads them; a worker process mirrors the primary's
 * (src/workers/), so every URL is fetched once per process group.
 */
export interface CrlSource {
  /** The verified CRL at `url` for these CAs, a promise settling when a first copy arrives, or an Error if none is usable. */
  lookup(url: string, cas: readonly X509Certificate[]): VerifiedCrl | Promise<void> | Error;
  /** Starts getting `url` now if it is not known yet. */
  prefetch(url: string): void;
  close(): void;
}

/** Where OCSP answers come from: OcspClient asks responders; a worker asks the primary's. */
export interface OcspSource {
  /** A cached answer, or a promise of one; never rejects. */
  lookup(leaf: X509Certificate, issuer: X509Certificate, url: string, opts: OcspOptions): OcspAnswer | Promise<OcspAnswer>;
}

/** What a check needs of a trust bundle (the data plane's compiled bundle has it). */
export interface RevocationBundle {
  revocation: RevocationPolicy | null;
  /** The bundle's CAs: the only keys a fetched CRL may be signed with. */
  cas: readonly X509Certificate[];
  /** The bundle CA that issued `leaf`, for OCSP. */
  issuerOf(leaf: X509Certificate): X509Certificate | undefined;
}

/** What a check needs of a verified client certificate (the data plane's ClientCertFacts has it). */
export interface RevocationSubject {
  readonly leaf: X509Certificate | undefined;
  /** HTTP URLs of its CRL distribution points (read only when the policy fetches them). */
  readonly crlUrls: string[];
}

export interface RevocationVerdict {
  revoked: boolean;
  source: "none" | "crl" | "ocsp" | "managed";
  detail: string;
}

const GOOD: RevocationVerdict = { revoked: false, source: "none", detail: "" };

/** What every check reads off a leaf, derived once per certificate (a connection's leaf is the same object on every request). */
interface LeafKeys {
  serial: string;
  ocspUrl: string | undefined;
}

export class RevocationChecker {
  readonly #fetcher: CrlSource;
  readonly #ocsp: OcspSource;
  readonly #keys = new WeakMap<X509Certificate, LeafKeys>();

  constructor(fetcher: CrlSource, ocsp: OcspSource) {
    this.#fetcher = fetcher;
    this.#ocsp = ocsp;
  }

  /**
   * The status of a verified certificate under the bundle's current policy, checked anew on
   * every request. Null when the bundle checks no revocation (nothing is revoked) or there is
   * no certificate; a promise, which never rejects, only when a first CRL fetch or OCSP answer
   * is awaited. CRLs first (hash lookups); OCSP only when they do not already say revoked.
   */
  check(cert: RevocationSubject, bundle: RevocationBundle): RevocationVerdict | Promise<RevocationVerdict> | null {
    const policy = bundle.revocation;
    const leaf = cert.leaf;
    if (!policy || !leaf) return null;
    const fromCrl = this.#crl(policy, bundle, leaf, cert, false);
    if (fromCrl instanceof Promise) return fromCrl.then((v) => (v.revoked ? v : this.#fromOcsp(policy, bundle, leaf)));
    return fromCrl.revoked ? fromCrl : this.#fromOcsp(policy, bundle, leaf);
  }

  #fromOcsp(policy: RevocationPolicy, bundle: RevocationBundle, leaf: X509Certificate): RevocationVerdict | Promise<RevocationVerdict> {
    const ocsp = policy.ocsp;
    if (!ocsp) return GOOD;
    const answer = this.#ocspAnswer(ocsp, bundle, leaf);
    return answer instanceof Promise ? answer.then((a) => judge(a, ocsp.mode)) : judge(answer, ocsp.mode);
  }

  #keysOf(leaf: X509Certificate): LeafKeys {
    let k = this.#keys.get(leaf);
    if (!k) this.#keys.set(leaf, (k = { serial: serialKey(leaf.serialNumber), ocspUrl: ocspUrlOf(leaf) }));
    return k;
  }

  #ocspAnswer(ocsp: NonNullable<RevocationPolicy["ocsp"]>, bundle: RevocationBundle, leaf: X509Certificate): OcspAnswer | Promise<OcspAnswer> {
    const issuer = bundle.issuerOf(leaf);
    if (!issuer) return { status: "error", detail: "the issuer is not in the trust bundle (client-supplied intermediate)" };
    const url = ocsp.responderUrl ?? this.#keysOf(leaf).ocspUrl;
    if (!url) return { status: "error", detail: "no OCSP responder configured or named in the certificate" };
    return this.#ocsp.lookup(leaf, issuer, url, ocsp);
  }

  #crl(policy: RevocationPolicy, bundle: RevocationBundle, leaf: X509Certificate, cert: RevocationSubject, waited: boolean): RevocationVerdict | Promise<RevocationVerdict> {
    const serial = this.#keysOf(leaf).serial;
    if (policy.managedRevoked?.has(serial)) return { revoked: true, source: "managed", detail: "revoked by the managed CA" };
    let covered = false;
    for (const crl of policy.uploaded.get(leaf.issuer) ?? []) {
      covered = true;
      if (crl.revoked.has(serial)) return { revoked: true, source: "crl", detail: "listed in an uploaded CRL" };
    }
    if (!policy.crl) return GOOD;
    const pending: Promise<void>[] = [];
    for (const urls of policy.crl.fetchDistributionPoints ? [policy.crl.urls, cert.crlUrls] : [policy.crl.urls])
      for (const url of urls) {
        const r = this.#fetcher.lookup(url, bundle.cas);
        if (r instanceof Promise) pending.push(r);
        else if (!(r instanceof Error) && r.issuer === leaf.issuer) {
          covered = true;
          if (r.revoked.has(serial)) return { revoked: true, source: "crl", detail: `listed in the CRL at ${url}` };
        }
      }
    if (!covered && pending.length && !waited) return Promise.all(pending).then(() => this.#crl(policy, bundle, leaf, cert, true));
    if (!covered && policy.crl.whenMissing === "revoked") return { revoked: true, source: "crl", detail: "no usable CRL covers the issuer" };
    return GOOD;
  }
}

function judge(a: OcspAnswer, mode: "soft_fail" | "hard_fail"): RevocationVerdict {
  if (a.status === "revoked") return { revoked: true, source: "ocsp", detail: a.detail };
  if (a.status === "good" || mode === "soft_fail") return GOOD;
  // hard_fail: no proof of good standing counts as revoked.
  return { revoked: true, source: "ocsp", detail: `hard-fail: ${a.detail}` };
}
