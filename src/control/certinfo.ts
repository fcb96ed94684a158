// Certificate and key inspection for the admin API (parsing is pki/pem.ts's): what Fastly and Cloudflare read back about certificates and
// keys (issuer, serial, validity, fingerprints, key type), and clear 4xx errors on bad input.
import { createHash, createPrivateKey, createPublicKey, type X509Certificate, type KeyObject } from "node:crypto";
import { PemError, dnsNames, parseCaBundle, parseCertificates } from "../pki/pem.ts";
import { ApiError } from "./apierrors.ts";

export interface CertInfo {
  cert: X509Certificate;
  issued_to: string;
  issuer: string;
  serial_number: string;
  signature_algorithm: string;
  not_before: string;
  not_after: string;
  /** DNS SANs, lower-cased. */
  names: string[];
  fingerprint_sha256: string;
  /** SHA-1 of the public key (SPKI DER), hex. */
  public_key_sha1: string;
}

const cache = new Map<string, CertInfo>();

function cn(dn: string): string {
  const m = /(?:^|\n)CN=([^\n]*)/.exec(dn);
  return m ? m[1]! : dn.replace(/\n/g, ", ");
}

function spkiSha1(key: KeyObject): string {
  return createHash("sha1").update(key.export({ type: "spki", format: "der" })).digest("hex");
}

/** Leaf information of a PEM certificate (the first one); memoised by PEM. */
export function certInfo(pem: string, pointer = "cert_blob"): CertInfo {
  const hit = cache.get(pem);
  if (hit) return hit;
  const cert = pemOrThrow(() => parseCertificates(pem), pointer)[0]!;
  const names = dnsNames(cert);
  const info: CertInfo = {
    cert,
    issued_to: cn(cert.subject) || names[0] || "",
    issuer: cn(cert.issuer),
    serial_number: BigInt("0x" + cert.serialNumber).toString(10),
    signature_algorithm: (cert as X509Certificate & { signatureAlgorithm?: string }).signatureAlgorithm ?? "",
    not_before: new Date(cert.validFrom).toISOString(),
    not_after: new Date(cert.validTo).toISOString(),
    names,
    fingerprint_sha256: cert.fingerprint256,
    public_key_sha1: spkiSha1(cert.publicKey),
  };
  if (cache.size > 10_000) cache.clear();
  cache.set(pem, info);
  return info;
}

/** A CA bundle: every certificate parses and is a CA; returns them. */
export function caBundle(pem: unknown, pointer: string): X509Certificate[] {
  if (typeof pem !== "string" || !pem.trim()) throw new ApiError("invalid_certificate", "a PEM CA bundle is required", pointer);
  return pemOrThrow(() => parseCaBundle(pem), pointer);
}

function pemOrThrow<T>(parse: () => T, pointer: string): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof PemError) throw new ApiError("invalid_certificate", e.message, pointer);
    throw e;
  }
}

export interface KeyInfo {
  key: KeyObject;
  key_type: string;
  key_length: number;
  public_key_sha1: string;
}

const keyCache = new Map<string, KeyInfo>();

export function keyInfo(pem: unknown, pointer = "key"): KeyInfo {
  if (typeof pem !== "string" || !pem.trim()) throw new ApiError("invalid_key", "a PEM private key is required", pointer);
  const hit = keyCache.get(pem);
  if (hit) return hit;
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    throw new ApiError("invalid_key", "malformed private key (PEM PKCS#8, PKCS#1 or SEC1 expected; encrypted keys are not accepted)", pointer);
  }
  const d = key.asymmetricKeyDetails ?? {};
  const type = key.asymmetricKeyType ?? "unknown";
  const curveBits: Record<string, number> = { prime256v1: 256, secp384r1: 384, secp521r1: 521 };
  const info: KeyInfo = {
    key,
    key_type: type === "rsa" || type === "rsa-pss" ? "RSA" : type === "ec" ? "ECDSA" : type.toUpperCase(),
    key_length: d.modulusLength ?? (d.namedCurve ? (curveBits[d.namedCurve] ?? 0) : type === "ed25519" ? 256 : 0),
    public_key_sha1: spkiSha1(createPublicKey(key)),
  };
  if (keyCache.size > 10_000) keyCache.clear();
  keyCache.set(pem, info);
  return info;
}

/** Does a hostname pattern fall under a certificate's SAN names (exact, or one-label wildcard)? */
export function covers(names: string[], hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (names.includes(h)) return true;
  const dot = h.indexOf(".");
  return dot > 0 && !h.startsWith("*.") ? names.includes("*." + h.slice(dot + 1)) : false;
}
