// Client certificates forwarded by a trusted front, verified per request as the handshake
// verifies a presented one (chainverify.ts mirrors OpenSSL's verdict, hostVerdict adds
// certgate's own checks), giving the same ClientCertFacts. A front multiplexes many clients
// on one connection, so facts belong to the request, not the connection.
import { createHash, type X509Certificate } from "node:crypto";
import type { HostPolicy } from "../compile/hosts.ts";
import { ClientCertFacts, NO_CLIENT_CERT } from "./facts.ts";
import { readFrontCerts } from "./certheaders.ts";
import { verifyChainCode } from "./chainverify.ts";
import { classify, hostVerdict, type ChainVerdict } from "./verify.ts";

/** Distinct (bundle, header value) results kept; each holds a few parsed certificates. */
export const FRONT_CACHE_ENTRIES = 1024;

interface Checked {
  leaf: X509Certificate;
  /** The OpenSSL code for the chain, valid from `from` until before `until` (no certificate's validity starts or ends between). */
  code: string;
  from: number;
  until: number;
}

export class FrontCerts {
  // Insertion order is recency: a hit is moved to the end, the oldest is evicted.
  readonly #cache = new Map<string, Checked>();

  /** The certificate facts of one request that came through a trusted front, for the host's policy. */
  facts(rawHeaders: readonly string[], policy: HostPolicy, now = Date.now()): ClientCertFacts {
    const bundle = policy.bundle!;
    const header = policy.front!.header;
    const read = readFrontCerts(rawHeaders, header);
    if (read.kind === "absent") return NO_CLIENT_CERT;
    if (read.kind === "malformed") return new ClientCertFacts(undefined, { ok: false, failure: "untrusted", reason: read.reason });
    const key = createHash("sha256").update(bundle.digest).update(read.leaf.raw);
    for (const c of read.intermediates) key.update(c.raw);
    const k = key.digest("base64");
    let checked = this.#cache.get(k);
    if (checked && now >= checked.from && now < checked.until) {
      this.#cache.delete(k);
    } else {
      const certs = [read.leaf, ...read.intermediates, ...bundle.cas];
      checked = { leaf: checked?.leaf ?? read.leaf, code: verifyChainCode(read.leaf, read.intermediates, bundle.cas, now), ...validityWindow(certs, now) };
      if (this.#cache.size >= FRONT_CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
    }
    this.#cache.set(k, checked);
    // The cached leaf object is reused so per-leaf memos (revocation keys, OCSP answers) carry across requests.
    const leaf = checked.leaf;
    const verdict: ChainVerdict = checked.code === "OK" ? hostVerdict(leaf, policy) : classify(checked.code);
    return new ClientCertFacts(leaf, verdict, verdict.ok ? bundle.chainOf.get(leaf.issuer) : undefined);
  }
}

/** The span around `now` in which no certificate's notBefore or notAfter (in whole seconds, as OpenSSL compares) is crossed. */
function validityWindow(certs: readonly X509Certificate[], now: number): { from: number; until: number } {
  let from = -Infinity;
  let until = Infinity;
  for (const c of certs)
    for (const edge of [c.validFromDate.getTime(), c.validToDate.getTime() + 1000]) {
      if (edge <= now) from = Math.max(from, edge);
      else until = Math.min(until, edge);
    }
  return { from, until };
}
