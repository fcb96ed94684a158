// A trust bundle's revocation settings, compiled with the bundle: uploaded CRLs parsed and
// verified against the bundle's CAs once, so a request's check is hash lookups.
import type { X509Certificate } from "node:crypto";
import type { TrustBundle } from "../model/schema.ts";
import { CrlError, crlDers, verifyCrl, type VerifiedCrl } from "./crl.ts";

export interface RevocationPolicy {
  /** Uploaded CRLs, verified at compile time, by issuer subject. */
  uploaded: Map<string, VerifiedCrl[]>;
  /** Serials the managed CA has revoked, when this bundle trusts it. */
  managedRevoked?: Set<string>;
  crl?: { urls: string[]; fetchDistributionPoints: boolean; whenMissing: "ignore" | "revoked" };
  ocsp?: { mode: "soft_fail" | "hard_fail"; responderUrl?: string; timeoutMs: number; nonce: boolean };
}

/** null: no revocation checks; undefined: an error was reported (`field` relative to the bundle). */
export function compileRevocationPolicy(
  r: TrustBundle["revocation"],
  cas: readonly X509Certificate[],
  fail: (message: string, field: string) => void,
): RevocationPolicy | null | undefined {
  if (!r || (!r.crl && (!r.ocsp || r.ocsp.mode === "off"))) return null;
  const uploaded = new Map<string, VerifiedCrl[]>();
  if (r.crl?.pem) {
    try {
      for (const der of crlDers(r.crl.pem)) {
        const crl = verifyCrl(der, cas);
        uploaded.set(crl.issuer, [...(uploaded.get(crl.issuer) ?? []), crl]);
      }
    } catch (e) {
      if (!(e instanceof CrlError)) throw e;
      return void fail(e.message, "revocation.crl.pem");
    }
  }
  return {
    uploaded,
    crl: r.crl && { urls: r.crl.urls, fetchDistributionPoints: r.crl.fetch_distribution_points, whenMissing: r.crl.when_missing },
    ocsp:
      r.ocsp && r.ocsp.mode !== "off"
        ? { mode: r.ocsp.mode, responderUrl: r.ocsp.responder_url, timeoutMs: r.ocsp.timeout_ms, nonce: r.ocsp.nonce }
        : undefined,
  };
}
