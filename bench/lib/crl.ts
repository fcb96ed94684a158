// A CRL signed by one of our CAs (ECDSA P-256), as PEM: what an operator uploads through
// PUT /v1/trust_bundles/{id}/revocation.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { SIGN, type Issued } from "../../src/pki/issue.ts";

const DAY = 86_400_000;

export async function signCrl(ca: Issued, serials: readonly string[], number: number): Promise<string> {
  const now = new Date();
  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName,
    thisUpdate: now,
    nextUpdate: new Date(now.getTime() + DAY),
    signingAlgorithm: SIGN,
    signingKey: ca.keys.privateKey,
    extensions: [await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey), new x509.Extension("2.5.29.20", false, crlNumber(number))],
    // A reason on every entry: the generator writes an empty, invalid extension list without one.
    entries: serials.map((s) => ({ serialNumber: s, revocationDate: now, reason: x509.X509CrlReason.keyCompromise })),
  });
  const b64 = Buffer.from(crl.rawData).toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n");
  return `-----BEGIN X509 CRL-----\n${b64}-----END X509 CRL-----\n`;
}

/** DER INTEGER for a small positive CRL number. */
function crlNumber(n: number): ArrayBuffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  if (parseInt(hex.slice(0, 2), 16) & 0x80) hex = `00${hex}`;
  return new Uint8Array([0x02, hex.length / 2, ...Buffer.from(hex, "hex")]).buffer;
}
