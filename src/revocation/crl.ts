// CRL parsing (pkijs) and signature verification (node:crypto, synchronous and fast) against
// the CAs of a trust bundle. The result is what the hot path needs: a set of revoked serials.
import { verify as verifySignature, type X509Certificate } from "node:crypto";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";

export interface VerifiedCrl {
  /** Subject of the CA that signed it, in Node's format (matches a leaf's `issuer`). */
  issuer: string;
  thisUpdate: Date;
  nextUpdate: Date | undefined;
  /** Serials as upper-case hex without leading zeros. */
  revoked: Set<string>;
  crlNumber: string | undefined;
}

export class CrlError extends Error {}

/**
 * asn1js stops at 10,000 nodes by default, about 1,600 CRL entries; real CRLs hold far more.
 * Every node takes at least 2 bytes, so half the size bounds the count (sizes are capped).
 */
function berLimits(der: Buffer): asn1js.FromBerOptions {
  return { maxNodes: Math.ceil(der.length / 2) + 16 };
}

/** Upper-case hex without leading zeros: the one serial format used for lookups. */
export function serialKey(hex: string): string {
  return hex.replace(/[:\s]/g, "").toUpperCase().replace(/^0+(?=.)/, "");
}

const HASH_OF: Record<string, string> = {
  "1.2.840.10045.4.3.2": "sha256", // ecdsa-with-SHA256
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "1.2.840.113549.1.1.11": "sha256", // sha256WithRSAEncryption
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.113549.1.1.5": "sha1",
  "1.3.101.112": "", // Ed25519: no separate hash
};

/** Splits PEM (X509 CRL or CRL headers) or accepts DER; returns DER blobs. */
export function crlDers(input: string | Buffer): Buffer[] {
  const text = typeof input === "string" ? input : input.toString("latin1");
  const pems = text.match(/-----BEGIN (X509 )?CRL-----[\s\S]+?-----END (X509 )?CRL-----/g);
  if (pems) return pems.map((p) => Buffer.from(p.replace(/-----[^-]+-----|\s/g, ""), "base64"));
  if (typeof input !== "string" && input[0] === 0x30) return [input];
  throw new CrlError("no CRL found (PEM 'BEGIN X509 CRL' or DER expected)");
}

/** Parses one DER CRL and verifies it was signed by one of `cas`; throws CrlError otherwise. */
export function verifyCrl(der: Buffer, cas: readonly X509Certificate[], now = new Date()): VerifiedCrl {
  let crl: pkijs.CertificateRevocationList;
  try {
    const asn = asn1js.fromBER(new Uint8Array(der), berLimits(der));
    if (asn.offset === -1) throw new Error(asn.result.error);
    crl = new pkijs.CertificateRevocationList({ schema: asn.result });
  } catch (e) {
    throw new CrlError(`malformed CRL: ${(e as Error).message}`);
  }
  const issuerDer = Buffer.from(crl.issuer.toSchema().toBER(false));
  const hash = HASH_OF[crl.signatureAlgorithm.algorithmId];
  if (hash === undefined) throw new CrlError(`unsupported CRL signature algorithm ${crl.signatureAlgorithm.algorithmId}`);
  const signature = Buffer.from(crl.signatureValue.valueBlock.valueHexView);
  const tbs = Buffer.from(crl.tbsView);
  const signer = cas.find((ca) => subjectDer(ca).equals(issuerDer) && verifySignature(hash || null, tbs, ca.publicKey, signature));
  if (!signer) throw new CrlError("the CRL is not signed by any CA of the trust bundle");
  for (const ext of crl.crlExtensions?.extensions ?? []) {
    // Delta and indirect CRLs would change what absence from this list means.
    if (ext.extnID === "2.5.29.27") throw new CrlError("delta CRLs are not supported");
    if (ext.critical && ext.extnID !== "2.5.29.28" && ext.extnID !== "2.5.29.20") throw new CrlError(`unsupported critical CRL extension ${ext.extnID}`);
  }
  const thisUpdate = crl.thisUpdate.value;
  if (thisUpdate.getTime() > now.getTime() + 5 * 60_000) throw new CrlError("the CRL's thisUpdate is in the future");
  const revoked = new Set<string>();
  for (const entry of crl.revokedCertificates ?? []) {
    const reasonRemove = entry.crlEntryExtensions?.extensions.some((e) => e.extnID === "2.5.29.21" && (e.parsedValue as { valueBlock?: { valueDec?: number } })?.valueBlock?.valueDec === 8);
    if (!reasonRemove) revoked.add(serialKey(Buffer.from(entry.userCertificate.valueBlock.valueHexView).toString("hex")));
  }
  const numberExt = crl.crlExtensions?.extensions.find((e) => e.extnID === "2.5.29.20");
  const crlNumber = numberExt ? Buffer.from((numberExt.parsedValue as asn1js.Integer).valueBlock.valueHexView).toString("hex") : undefined;
  return { issuer: signer.subject, thisUpdate, nextUpdate: crl.nextUpdate?.value, revoked, crlNumber };
}

const subjectDers = new WeakMap<X509Certificate, Buffer>();
/** The DER of a certificate's subject Name, to compare with a CRL's issuer byte for byte. */
function subjectDer(ca: X509Certificate): Buffer {
  let der = subjectDers.get(ca);
  if (!der) {
    const cert = new pkijs.Certificate({ schema: asn1js.fromBER(new Uint8Array(ca.raw)).result });
    der = Buffer.from(cert.subject.toSchema().toBER(false));
    subjectDers.set(ca, der);
  }
  return der;
}

/** nextUpdate of a CRL, unverified: only for scheduling refreshes. */
export function crlNextUpdate(der: Buffer): number | undefined {
  try {
    const crl = new pkijs.CertificateRevocationList({ schema: asn1js.fromBER(new Uint8Array(der), berLimits(der)).result });
    return crl.nextUpdate?.value.getTime();
  } catch {
    return undefined;
  }
}
