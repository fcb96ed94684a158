// Chain verification for a client certificate that arrived in a trusted front's header rather
// than in the handshake. It must reach the verdict OpenSSL reaches in the handshake for the
// same certificates, so it follows X509_verify_cert (OpenSSL 3, crypto/x509/x509_vfy.c) step by
// step: build the chain trusted-first (client-supplied intermediates as untrusted), check
// extensions (CA flags, the ssl_client purpose, path lengths), then signatures and validity
// from the top down. Node's verify callback lets every check run, so the error reported is
// the last one raised; this does the same. test/dataplane/chainverify.test.ts holds the parity.
import type { KeyObject, X509Certificate } from "node:crypto";
import { certExtensions } from "./certextensions.ts";

/** RFC 5280 KeyUsage bits. */
const KU = { digitalSignature: 1, keyAgreement: 16, keyCertSign: 32 } as const;
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const ANY_EKU = "2.5.29.37.0";
const NAME_CONSTRAINTS = "2.5.29.30";
/** Extensions OpenSSL understands (X509_supported_extension); any other critical one fails. */
const HANDLED = new Set([
  "2.16.840.1.113730.1.1", // Netscape cert type
  "2.5.29.15", // key usage
  "2.5.29.17", // subject alt name
  "2.5.29.19", // basic constraints
  "2.5.29.32", // certificate policies
  "2.5.29.37", // extended key usage
  "1.3.6.1.5.5.7.1.14", // proxy certificate info
  "1.3.6.1.5.5.7.1.24", // TLS feature
  "2.5.29.33", // policy mappings
  "2.5.29.36", // policy constraints
  "2.5.29.54", // inhibit any policy
  NAME_CONSTRAINTS,
]);
/** OpenSSL's default maximum chain depth. */
const MAX_CHAIN = 100;
/** The codes Node names (crypto_common.cc); it reports any other as UNSPECIFIED. */
const NODE_NAMED = new Set([
  "UNABLE_TO_GET_ISSUER_CERT", "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY", "CERT_SIGNATURE_FAILURE", "CERT_NOT_YET_VALID", "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "CERT_CHAIN_TOO_LONG", "INVALID_CA", "PATH_LENGTH_EXCEEDED", "INVALID_PURPOSE",
]);

/** What the checks read off a certificate beyond node:crypto's getters, parsed once per certificate object. */
interface Extensions {
  /** Key usage bits, undefined without the extension. */
  ku: number | undefined;
  ca: boolean;
  /** basicConstraints pathLenConstraint, undefined when absent. */
  pathLen: number | undefined;
  unhandledCritical: boolean;
  nameConstraints: boolean;
  selfIssued: boolean;
  ski: string | undefined;
  akid: string | undefined;
}
const parsed = new WeakMap<X509Certificate, Extensions>();

function extensionsOf(x: X509Certificate): Extensions {
  let e = parsed.get(x);
  if (e) return e;
  const selfIssued = x.subject === x.issuer;
  try {
    const c = certExtensions(x.raw);
    e = {
      ku: c.ku,
      ca: c.ca,
      pathLen: c.ca ? c.pathLen : undefined,
      unhandledCritical: c.all.some((ext) => ext.critical && !HANDLED.has(ext.oid)),
      nameConstraints: c.all.some((ext) => ext.oid === NAME_CONSTRAINTS),
      selfIssued,
      ski: c.ski,
      akid: c.akid,
    };
  } catch {
    // Extensions this reader cannot follow fail the chain, as an unhandled critical one does.
    e = { ku: 0, ca: false, pathLen: undefined, unhandledCritical: true, nameConstraints: false, selfIssued, ski: undefined, akid: undefined };
  }
  parsed.set(x, e);
  return e;
}

/**
 * ossl_x509_likely_issued, what chain building matches issuers with: names, key identifiers
 * when both are there, and an issuer key that decodes (check_sig_alg_match). Key usage is
 * checked later (node:crypto's checkIssued checks it at once, so it cannot stand in here).
 */
function likelyIssued(issuer: X509Certificate, x: X509Certificate): boolean {
  if (x.issuer !== issuer.subject) return false;
  const akid = extensionsOf(x).akid;
  const ski = extensionsOf(issuer).ski;
  return (!akid || !ski || akid === ski) && keyOf(issuer) !== null;
}

const keys = new WeakMap<X509Certificate, KeyObject | null>();
/**
 * A certificate's public key, or null when it does not decode. node:crypto parses the key
 * lazily and throws from the getter: a client-sent chain must get a verdict, never an exception.
 */
function keyOf(x: X509Certificate): KeyObject | null {
  let k = keys.get(x);
  if (k === undefined) {
    try {
      k = x.publicKey;
    } catch {
      k = null;
    }
    keys.set(x, k);
  }
  return k;
}
const selfSigned = (x: X509Certificate): boolean => likelyIssued(x, x);
/** xku_reject: an EKU extension without clientAuth (nor anyExtendedKeyUsage). */
const ekuRejects = (x: X509Certificate): boolean => {
  const eku = x.keyUsage; // node:crypto's name for the extended key usage OIDs
  return eku !== undefined && !eku.includes(CLIENT_AUTH) && !eku.includes(ANY_EKU);
};
const kuRejects = (e: Extensions, bits: number): boolean => e.ku !== undefined && (e.ku & bits) === 0;
/** check_ca: a v3 CA (basicConstraints CA:TRUE) whose key usage, if any, allows certificate signing. */
const isCa = (e: Extensions): boolean => e.ca && !kuRejects(e, KU.keyCertSign);

/**
 * The OpenSSL verification code ("OK", or e.g. "CERT_HAS_EXPIRED", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY")
 * for `leaf` with client-supplied `untrusted` intermediates against the trusted `cas`, at `now`.
 * Name constraints are not evaluated: a chain carrying them fails closed.
 */
export function verifyChainCode(leaf: X509Certificate, untrusted: readonly X509Certificate[], cas: readonly X509Certificate[], now: number): string {
  let err = "OK";
  // build_chain, trusted first: at each step the trust store is searched before the untrusted pool.
  const chain = [leaf];
  let numUntrusted = 1;
  const pool = [...untrusted];
  for (let cur = leaf; chain.length < MAX_CHAIN && !selfSigned(cur); ) {
    const trusted = cas.find((c) => likelyIssued(c, cur));
    if (trusted) {
      chain.push((cur = trusted));
      continue;
    }
    if (numUntrusted < chain.length) break; // above a trusted certificate only trusted ones follow
    const i = pool.findIndex((c) => likelyIssued(c, cur));
    if (i < 0) break;
    chain.push((cur = pool.splice(i, 1)[0]!));
    numUntrusted++;
  }
  const top = chain[chain.length - 1]!;
  const topSelfSigned = selfSigned(top);
  // Without X509_V_FLAG_PARTIAL_CHAIN (Node sets none) only a self-signed trusted root anchors a chain.
  if (numUntrusted === chain.length || !topSelfSigned) {
    if (topSelfSigned) err = chain.length === 1 ? "DEPTH_ZERO_SELF_SIGNED_CERT" : "SELF_SIGNED_CERT_IN_CHAIN";
    else err = numUntrusted < chain.length ? "UNABLE_TO_GET_ISSUER_CERT" : "UNABLE_TO_GET_ISSUER_CERT_LOCALLY";
  }

  // check_extensions, purpose ssl_client (what a TLS server sets for its clients).
  let plen = 0;
  chain.forEach((x, i) => {
    const e = extensionsOf(x);
    if (e.unhandledCritical) err = "UNHANDLED_CRITICAL_EXTENSION";
    if (i > 0 && !isCa(e)) err = "INVALID_CA";
    const purposeOk = i === 0 ? !ekuRejects(x) && !kuRejects(e, KU.digitalSignature | KU.keyAgreement) : !ekuRejects(x) && isCa(e);
    if (!purposeOk) err = "INVALID_PURPOSE";
    if (i > 1 && e.pathLen !== undefined && plen > e.pathLen) err = "PATH_LENGTH_EXCEEDED";
    if (i > 0 && !e.selfIssued) plen++;
    if (i > 0 && e.nameConstraints) err = "NAME_CONSTRAINTS_NOT_EVALUATED";
  });

  // internal_verify: from the top down, each signature by its issuer's key, then each validity period.
  const at = Math.floor(now / 1000) * 1000; // OpenSSL compares whole seconds
  const checkTime = (x: X509Certificate) => {
    if (x.validFromDate.getTime() > at) err = "CERT_NOT_YET_VALID";
    if (x.validToDate.getTime() < at) err = "CERT_HAS_EXPIRED";
  };
  let n = chain.length - 1;
  if (!topSelfSigned) {
    if (n === 0) {
      err = "UNABLE_TO_VERIFY_LEAF_SIGNATURE";
      checkTime(leaf);
      return nodeName(err);
    }
    n--; // the top itself is neither signature- nor time-checked
  }
  for (; n >= 0; n--) {
    const xs = chain[n]!;
    const xi = chain[n + 1];
    if (xi) {
      // RFC 5280 6.1.4 (n): an issuer's key usage must allow certificate signing.
      if (kuRejects(extensionsOf(xi), KU.keyCertSign)) err = "KEYUSAGE_NO_CERTSIGN";
      // Chain building took only issuers whose key decodes (likelyIssued).
      const key = keyOf(xi);
      if (!key || !signedBy(xs, key)) err = "CERT_SIGNATURE_FAILURE";
    }
    checkTime(xs);
  }
  return nodeName(err);
}

/** X509_verify: false, never an exception, for a signature the key cannot check. */
function signedBy(x: X509Certificate, key: KeyObject): boolean {
  try {
    return x.verify(key);
  } catch {
    return false;
  }
}

/** The code as Node's authorizationError names it; certgate's own (name constraints) kept. */
function nodeName(code: string): string {
  return code === "OK" || code === "NAME_CONSTRAINTS_NOT_EVALUATED" || NODE_NAMED.has(code) ? code : "UNSPECIFIED";
}
