// What a client certificate's verification outcome means for the request: one class per
// failure an operator acts on differently (and that the client is told), plus the precise
// OpenSSL reason for logs and metrics.
import type { X509Certificate } from "node:crypto";
import type { HostPolicy } from "../compile/hosts.ts";
import { serialKey } from "../../revocation/crl.ts";

export type FailureClass = "missing" | "untrusted" | "expired" | "not_yet_valid" | "revoked";

export interface ChainVerdict {
  ok: boolean;
  failure?: FailureClass;
  /** Lower-cased OpenSSL code or certgate's own reason, e.g. "cert_has_expired", "chain_too_long". */
  reason: string;
}

export const VERIFIED: ChainVerdict = { ok: true, reason: "ok" };
export const MISSING: ChainVerdict = { ok: false, failure: "missing", reason: "no_certificate" };

export function classify(opensslCode: string): ChainVerdict {
  switch (opensslCode) {
    case "CERT_HAS_EXPIRED":
      return { ok: false, failure: "expired", reason: "cert_has_expired" };
    case "CERT_NOT_YET_VALID":
      return { ok: false, failure: "not_yet_valid", reason: "cert_not_yet_valid" };
    case "CERT_REVOKED":
      return { ok: false, failure: "revoked", reason: "cert_revoked" };
    default:
      return { ok: false, failure: "untrusted", reason: opensslCode.toLowerCase() };
  }
}

/** The one message a refused client sees per class; details stay in logs (as ghostunnel does). */
export const FAILURE_MESSAGES: Record<FailureClass, string> = {
  missing: "A client certificate is required for this host.",
  untrusted: "The client certificate is not trusted for this host.",
  expired: "The client certificate has expired.",
  not_yet_valid: "The client certificate is not yet valid.",
  revoked: "The client certificate has been revoked.",
};

/**
 * certgate's checks after a chain OpenSSL (or chainverify.ts) accepted: the bundle's
 * verify_depth, which Node does not apply (a leaf issued below the bundle's CAs has at least
 * 2 above it), and on a managed-CA host, that the certificate was issued to this host's owner.
 */
export function hostVerdict(leaf: X509Certificate, policy: HostPolicy): ChainVerdict {
  const bundle = policy.bundle!;
  if ((bundle.depthOf.get(leaf.issuer) ?? 2) > bundle.verifyDepth) return { ok: false, failure: "untrusted", reason: "chain_too_long" };
  if (policy.managedIssuedTo && !policy.managedIssuedTo.has(serialKey(leaf.serialNumber))) return { ok: false, failure: "untrusted", reason: "issued_to_another_owner" };
  return VERIFIED;
}
