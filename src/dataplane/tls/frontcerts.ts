// Client certificates forwarded by a trusted front, verified per request as the handshake
// verifies a presented one (chainverify.ts mirrors OpenSSL's verdict, hostVerdict adds
// certgate's own checks), giving the same ClientCertFacts. A front multiplexes many clients
// on one connection, so facts belong to the request, not the connection.
import { createHash, type X509Certificate } from "node:crypto";
import type { FrontPolicy, HostPolicy } from "../compile/hosts.ts";
import { ClientCertFacts, NO_CLIENT_CERT } from "./facts.ts";
import { decodeFrontCerts, readHeaderValues } from "./certheaders.ts";
import { verifyChainCode } from "./chainverify.ts";
import { classify, hostVerdict, type ChainVerdict } from "./verify.ts";

/** Distinct (bundle, header value) results kept; each holds a few parsed certificates. */
export const FRONT_CACHE_ENTRIES = 1024;

interface Checked {
  /** The decoded leaf (its object is reused, so per-leaf memos such as revocation keys carry across requests); none if malformed. */
  leaf: X509Certificate | undefined;
  /** The OpenSSL code for the chain, or the malformed reason; valid from `from` until before `until` (no certificate's validity starts or ends between). */
  code: string;
  from: number;
  until: number;
  /** The facts per host policy (the host's own checks depend on it, not on time): one object for every request with these headers. */
  facts?: WeakMap<HostPolicy, ClientCertFacts>;
}

export class FrontCerts {
  // Insertion order is recency: a hit is moved to the end, the oldest is evicted.
  readonly #cache = new Map<string, Checked>();

  /** The certificate facts of one request that came through a trusted front, for the host's policy. */
  facts(rawHeaders: readonly string[], policy: HostPolicy, now = Date.now()): ClientCertFacts {
    const bundle = policy.bundle!;
    const header = policy.front!.header;
    const values = readHeaderValues(rawHeaders, header);
    if (values.kind === "absent") return NO_CLIENT_CERT;
    if (values.kind === "malformed") return malformed(values.reason);
    // Keyed by the header bytes: a hit decodes nothing.
    const k = createHash("sha256").update(`${bundle.digest}\0${header}\0${values.value}\0${values.chain ?? ""}`).digest("base64");
    let checked = this.#cache.get(k);
    if (checked) this.#cache.delete(k);
    if (!checked || now < checked.from || now >= checked.until) {
      checked = check(values, header, bundle.cas, now);
      if (this.#cache.size >= FRONT_CACHE_ENTRIES) this.#cache.delete(this.#cache.keys().next().value!);
    }
    this.#cache.set(k, checked);
    const leaf = checked.leaf;
    if (!leaf) return malformed(checked.code as "header_malformed");
    let facts = checked.facts?.get(policy);
    if (!facts) {
      const verdict: ChainVerdict = checked.code === "OK" ? hostVerdict(leaf, policy) : classify(checked.code);
      facts = new ClientCertFacts(leaf, verdict, verdict.ok ? bundle.chainOf.get(leaf.issuer) : undefined, verdict.ok ? bundle.issuerOf : undefined);
      (checked.facts ??= new WeakMap()).set(policy, facts);
    }
    return facts;
  }
}

const malformed = (reason: "header_malformed" | "header_too_large"): ClientCertFacts => new ClientCertFacts(undefined, { ok: false, failure: "untrusted", reason });

function check(values: { value: string; chain: string | undefined }, header: FrontPolicy["header"], cas: readonly X509Certificate[], now: number): Checked {
  const certs = decodeFrontCerts(values, header);
  if (certs.kind !== "certs") return { leaf: undefined, code: "header_malformed", from: -Infinity, until: Infinity };
  return { leaf: certs.leaf, code: verifyChainCode(certs.leaf, certs.intermediates, cas, now), ...validityWindow([certs.leaf, ...certs.intermediates, ...cas], now) };
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
