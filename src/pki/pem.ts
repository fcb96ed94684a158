// Reading PEM certificates, one way for the whole of certgate: the snapshot compiler reports
// a PemError at a model path, the admin dialects turn it into their own 400.
import { X509Certificate } from "node:crypto";

export class PemError extends Error {}

function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Every certificate in `pem`, in order; at least one. */
export function parseCertificates(pem: string): X509Certificate[] {
  const pems = splitPem(pem);
  if (!pems.length) throw new PemError("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)");
  return pems.map((p, i) => {
    try {
      return new X509Certificate(p);
    } catch (e) {
      throw new PemError(`${pems.length > 1 ? `certificate ${i + 1}: ` : ""}malformed certificate: ${(e as Error).message}`);
    }
  });
}

/** A CA bundle: every certificate parses and is a CA. */
export function parseCaBundle(pem: string): X509Certificate[] {
  const cas = parseCertificates(pem);
  cas.forEach((c, i) => {
    if (!c.ca) throw new PemError(`certificate ${i + 1} (${c.subject.replace(/\n/g, ", ")}) is not a CA certificate`);
  });
  return cas;
}

/** The DNS names of a certificate's subjectAltName, lower-cased. */
export function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? "")
    .split(", ")
    .filter((s) => s.startsWith("DNS:"))
    .map((s) => s.slice(4).toLowerCase());
}
