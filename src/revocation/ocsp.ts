// OCSP for client certificates: ask the responder, verify the answer (signature by the
// issuer or a responder it delegated with id-kp-OCSPSigning, times, optional nonce), cache
// it until nextUpdate, and make concurrent look-ups for one certificate share one request.
import { randomBytes, type X509Certificate } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { LRUCache } from "lru-cache";
import type { OcspSource } from "./checker.ts";

export type OcspStatus = "good" | "revoked" | "unknown" | "error";
export interface OcspAnswer {
  status: OcspStatus;
  /** Why, for logs: "responder said revoked", "timeout", "bad signature", ... */
  detail: string;
}
export interface OcspOptions {
  timeoutMs: number;
  nonce: boolean;
}

const NONCE_OID = "1.3.6.1.5.5.7.48.1.2";
const SKEW_MS = 5 * 60_000;
const ERROR_TTL_MS = 5_000;
const NO_NEXT_UPDATE_TTL_MS = 5 * 60_000;

/** The cache key of one certificate's status at one responder: the same in every process of a group. */
export function ocspKey(leaf: X509Certificate, issuer: X509Certificate, url: string): string {
  return `${issuer.fingerprint256}|${leaf.serialNumber}|${url}`;
}

/**
 * ocspKey(), remembered per leaf: a connection's leaf is the same object on every request, and a
 * key built afresh is a new string whose hash the cache recomputes (~1 µs).
 */
export class OcspKeys {
  readonly #keys = new WeakMap<X509Certificate, { issuer: X509Certificate; url: string; key: string }>();

  of(leaf: X509Certificate, issuer: X509Certificate, url: string): string {
    const k = this.#keys.get(leaf);
    if (k?.issuer === issuer && k.url === url) return k.key;
    const key = ocspKey(leaf, issuer, url);
    this.#keys.set(leaf, { issuer, url, key });
    return key;
  }
}

/**
 * The answer caches' options (here and in a worker's mirror). `ttlResolution: 0` reads the clock
 * on each look-up: lru-cache's default (1 ms) arms a timer to forget a cached clock reading,
 * and with a new connection every millisecond or so that was a timer per handshake (~6 µs).
 */
export const OCSP_CACHE = { max: 50_000, ttlResolution: 0, ttlAutopurge: false } as const;

export interface OcspHooks {
  /** A responder was asked: the outcome (good, revoked, unknown, error). */
  answered?(status: OcspStatus): void;
  /** An answer went into the cache for `ttlMs` (a primary hands it to every worker). */
  cached?(key: string, answer: OcspAnswer, ttlMs: number): void;
}

export class OcspClient implements OcspSource {
  readonly #cache = new LRUCache<string, OcspAnswer>(OCSP_CACHE);
  readonly #inflight = new Map<string, Promise<OcspAnswer>>();
  readonly #keys = new OcspKeys();
  readonly #hooks: OcspHooks;

  constructor(hooks: OcspHooks = {}) {
    this.#hooks = hooks;
  }

  /** How long the cached answer for `key` stays valid, in ms (0 when there is none). */
  remainingTtl(key: string): number {
    return Math.max(0, this.#cache.getRemainingTTL(key));
  }

  /** A cached answer, or a promise of one; never rejects. */
  lookup(leaf: X509Certificate, issuer: X509Certificate, url: string, opts: OcspOptions): OcspAnswer | Promise<OcspAnswer> {
    const key = this.#keys.of(leaf, issuer, url);
    const hit = this.#cache.get(key);
    if (hit) return hit;
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#ask(leaf, issuer, url, opts).then(
        ({ answer, ttlMs }) => this.#keep(key, answer, Math.max(1_000, ttlMs)),
        (err: unknown) => this.#keep(key, { status: "error", detail: (err as Error).message }, ERROR_TTL_MS),
      );
      pending.finally(() => this.#inflight.delete(key)).catch(() => {});
      pending.then((a) => this.#hooks.answered?.(a.status)).catch(() => {});
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  #keep(key: string, answer: OcspAnswer, ttlMs: number): OcspAnswer {
    this.#cache.set(key, answer, { ttl: ttlMs });
    this.#hooks.cached?.(key, answer, ttlMs);
    return answer;
  }

  async #ask(leaf: X509Certificate, issuer: X509Certificate, url: string, opts: OcspOptions): Promise<{ answer: OcspAnswer; ttlMs: number }> {
    const cert = pkijs.Certificate.fromBER(new Uint8Array(leaf.raw));
    const issuerCert = pkijs.Certificate.fromBER(new Uint8Array(issuer.raw));
    const req = new pkijs.OCSPRequest();
    await req.createForCertificate(cert, { hashAlgorithm: "SHA-1", issuerCertificate: issuerCert });
    const nonce = opts.nonce ? randomBytes(16) : undefined;
    if (nonce) {
      req.tbsRequest.requestExtensions = [
        new pkijs.Extension({ extnID: NONCE_OID, extnValue: new asn1js.OctetString({ valueHex: nonce }).toBER(false) }),
      ];
    }
    const body = Buffer.from(req.toSchema(true).toBER(false));
    const { request } = await import("undici"); // loaded where responders are asked: a worker process never does
    const res = await request(url, {
      method: "POST",
      // Canonical case: OpenSSL's own responder (3.0) only recognises "Content-Length".
      headers: { "Content-Type": "application/ocsp-request", "Content-Length": String(body.length), Accept: "application/ocsp-response" },
      body,
      signal: AbortSignal.timeout(opts.timeoutMs),
    });
    const raw = Buffer.from(await res.body.arrayBuffer());
    if (res.statusCode !== 200) throw new Error(`responder answered HTTP ${res.statusCode}`);
    const ocsp = pkijs.OCSPResponse.fromBER(new Uint8Array(raw));
    const code = ocsp.responseStatus.valueBlock.valueDec;
    if (code !== 0 || !ocsp.responseBytes) throw new Error(`responder status ${code} (${["successful", "malformedRequest", "internalError", "tryLater", "", "sigRequired", "unauthorized"][code] ?? "?"})`);
    const basic = pkijs.BasicOCSPResponse.fromBER(ocsp.responseBytes.response.valueBlock.valueHexView);
    // pkijs checks the signature and that the signer is the issuer or its delegated responder.
    if (!(await basic.verify({ issuerCerts: [issuerCert], trustedCerts: [issuerCert] }))) throw new Error("response signature or responder authorisation invalid");
    if (nonce) {
      const ext = basic.tbsResponseData.responseExtensions?.find((e) => e.extnID === NONCE_OID);
      const got = ext ? Buffer.from(ext.extnValue.valueBlock.valueHexView) : undefined;
      // The nonce may come wrapped in an OCTET STRING (RFC 8954) or bare (older responders).
      if (!got || !(got.equals(nonce) || got.subarray(-16).equals(nonce))) throw new Error("response nonce does not match the request");
    }
    const single = basic.tbsResponseData.responses.find((r) =>
      Buffer.from(r.certID.serialNumber.valueBlock.valueHexView).equals(Buffer.from(cert.serialNumber.valueBlock.valueHexView)),
    );
    if (!single) throw new Error("response does not cover the certificate");
    const status = await basic.getCertificateStatus(cert, issuerCert);
    if (!status.isForCertificate) throw new Error("response is for another issuer");
    const now = Date.now();
    if (single.thisUpdate.getTime() > now + SKEW_MS) throw new Error("response thisUpdate is in the future");
    const next = single.nextUpdate?.getTime();
    if (next !== undefined && next < now - SKEW_MS) throw new Error("response is stale (nextUpdate passed)");
    const answer: OcspAnswer =
      status.status === 0
        ? { status: "good", detail: "responder said good" }
        : status.status === 1
          ? { status: "revoked", detail: "responder said revoked" }
          : { status: "unknown", detail: "responder does not know the certificate" };
    return { answer, ttlMs: next !== undefined ? next - now : NO_NEXT_UPDATE_TTL_MS };
  }
}

/** The OCSP responder URL from a certificate's Authority Information Access. */
export function ocspUrlOf(cert: X509Certificate): string | undefined {
  const m = /OCSP - URI:(\S+)/.exec(cert.infoAccess ?? "");
  return m?.[1];
}
