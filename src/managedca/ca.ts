// certgate's own CA for client certificates (Cloudflare's "managed CA"): created on first
// use, its key kept in the data directory with mode 0600 and never returned by any API.
// It issues from CSRs, names certgate's CRL and OCSP URLs in what it issues, and signs both.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import * as asn1js from "asn1js";
import * as pkijs from "pkijs";
import { createHash, webcrypto } from "node:crypto";
import { FileKeystore, type CaKeystore, type CaPair } from "./keystore.ts";
import { EC, SIGN, issue, randomSerial } from "../pki/issue.ts";
import { serialKey } from "../revocation/crl.ts";

type CryptoKey = webcrypto.CryptoKey;
const DAY = 86_400_000;

export class CsrError extends Error {}

export interface IssuedClientCert {
  certificate: string;
  serial: string; // upper-case hex, no leading zeros
  commonName: string;
  subject: { country?: string; state?: string; location?: string; organization?: string; organizationalUnit?: string };
  issuedOn: Date;
  expiresOn: Date;
  fingerprintSha256: string;
  ski: string;
  signature: string;
}

/** What the OCSP responder and the CRL need to know about one issued certificate. */
export interface SerialStatus {
  status: "good" | "revoked" | "unknown";
  revokedAt?: Date;
}

export class ManagedCa {
  readonly cert: x509.X509Certificate;
  readonly certPem: string;
  readonly #key: CryptoKey;
  readonly #pkijsCert: pkijs.Certificate;
  #crl: { key: string; der: Buffer; number: bigint; thisUpdate: number } | undefined;
  /** This CA's own CertID hashes per hash algorithm: the same for every OCSP request. */
  readonly #certIds = new Map<string, Promise<pkijs.CertID>>();

  private constructor(cert: x509.X509Certificate, key: CryptoKey) {
    this.cert = cert;
    this.certPem = cert.toString("pem") + "\n";
    this.#key = key;
    this.#pkijsCert = pkijs.Certificate.fromBER(new Uint8Array(cert.rawData));
  }

  /** Loads the CA from its keystore (a directory: the data directory's managed-ca/), creating it on first use. */
  static async open(where: string | CaKeystore): Promise<ManagedCa> {
    const keystore = typeof where === "string" ? new FileKeystore(where) : where;
    let pair = await keystore.load();
    if (!pair) {
      const ca = await issue({ subject: "O=certgate,OU=managed client CA,CN=certgate managed client CA", ca: true, pathLength: 0, days: 3650 });
      pair = await keystore.create({ certPem: ca.certPem, keyPem: ca.keyPem });
    }
    return ManagedCa.from(pair);
  }

  /** The CA in the keystore, or undefined while none was created (nothing is created). */
  static async existing(keystore: CaKeystore): Promise<ManagedCa | undefined> {
    const pair = await keystore.load();
    return pair && ManagedCa.from(pair);
  }

  static async from(pair: CaPair): Promise<ManagedCa> {
    const cert = new x509.X509Certificate(pair.certPem);
    const der = x509.PemConverter.decodeFirst(pair.keyPem);
    const key = await webcrypto.subtle.importKey("pkcs8", der, EC, false, ["sign"]);
    return new ManagedCa(cert, key);
  }

  /** Issues a client certificate for a PEM CSR, signed only if the CSR's own signature verifies. */
  async issue(csrPem: string, validityDays: number, urls: { crl: string; ocsp: string }): Promise<IssuedClientCert> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem.trim());
    } catch (e) {
      throw new CsrError(`malformed CSR: ${(e as Error).message}`);
    }
    if (!(await csr.verify())) throw new CsrError("the CSR's signature does not verify");
    // Whole seconds, as the certificate stores them, so the dates the API reports are the certificate's.
    const notBefore = new Date(Math.floor((Date.now() - 60_000) / 1000) * 1000);
    const notAfter = new Date(notBefore.getTime() + validityDays * DAY);
    const serialHex = randomSerial();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serialHex,
      subject: csr.subjectName,
      issuer: this.cert.subjectName,
      publicKey: csr.publicKey,
      signingKey: this.#key,
      notBefore,
      notAfter,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.SubjectKeyIdentifierExtension.create(csr.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.cert.publicKey),
        new x509.CRLDistributionPointsExtension([urls.crl]),
        new x509.AuthorityInfoAccessExtension({ ocsp: [urls.ocsp] }),
      ],
    });
    const names = csr.subjectName.toJSON();
    const field = (oid: string, short: string) => names.flatMap((rdn) => rdn[short] ?? rdn[oid] ?? [])[0];
    return {
      certificate: cert.toString("pem") + "\n",
      serial: serialKey(serialHex),
      commonName: field("2.5.4.3", "CN") ?? "",
      subject: {
        country: field("2.5.4.6", "C"),
        state: field("2.5.4.8", "ST"),
        location: field("2.5.4.7", "L"),
        organization: field("2.5.4.10", "O"),
        organizationalUnit: field("2.5.4.11", "OU"),
      },
      issuedOn: notBefore,
      expiresOn: notAfter,
      fingerprintSha256: createHash("sha256").update(Buffer.from(cert.rawData)).digest("hex"),
      ski: (cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId ?? "").toUpperCase(),
      signature: "ECDSAWithSHA256",
    };
  }

  /** The current CRL (DER), re-signed only when the revoked set changes or nears nextUpdate. */
  async crl(revoked: readonly { serial: string; revokedAt: Date }[]): Promise<Buffer> {
    const key = revoked.map((r) => `${r.serial}@${r.revokedAt.getTime()}`).sort().join(",");
    const fresh = this.#crl && this.#crl.key === key && Date.now() - this.#crl.thisUpdate < 6 * 3_600_000;
    if (fresh) return this.#crl!.der;
    const number = (this.#crl?.number ?? BigInt(Math.floor(Date.now() / 1000))) + 1n;
    const now = new Date();
    const crl = await x509.X509CrlGenerator.create({
      issuer: this.cert.subjectName,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + DAY),
      signingAlgorithm: SIGN,
      signingKey: this.#key,
      extensions: [await x509.AuthorityKeyIdentifierExtension.create(this.cert.publicKey), crlNumber(number)],
      // A reason on every entry: the generator writes an empty, invalid extension list without one.
      entries: revoked.map((r) => ({ serialNumber: r.serial.length % 2 ? `0${r.serial}` : r.serial, revocationDate: r.revokedAt, reason: x509.X509CrlReason.cessationOfOperation })),
    });
    this.#crl = { key, der: Buffer.from(crl.rawData), number, thisUpdate: now.getTime() };
    return this.#crl.der;
  }

  #certId(hashAlgorithm: string): Promise<pkijs.CertID> {
    let id = this.#certIds.get(hashAlgorithm);
    if (!id) {
      const c = new pkijs.CertID();
      this.#certIds.set(hashAlgorithm, (id = c.createForCertificate(this.#pkijsCert, { hashAlgorithm, issuerCertificate: this.#pkijsCert }).then(() => c)));
    }
    return id;
  }

  /** Answers a DER OCSP request for certificates this CA issued; signed by the CA itself. */
  async ocsp(requestDer: Buffer, statusOf: (serial: string) => SerialStatus): Promise<Buffer> {
    let req: pkijs.OCSPRequest;
    try {
      req = pkijs.OCSPRequest.fromBER(new Uint8Array(requestDer));
    } catch {
      return ocspError(1); // malformedRequest
    }
    const basic = new pkijs.BasicOCSPResponse();
    basic.tbsResponseData.responderID = this.#pkijsCert.subject;
    basic.tbsResponseData.producedAt = new Date();
    const now = new Date();
    for (const r of req.tbsRequest.requestList) {
      const id = r.reqCert;
      const ours = await this.#certId(hashName(id.hashAlgorithm.algorithmId));
      const sameIssuer =
        Buffer.from(ours.issuerNameHash.valueBlock.valueHexView).equals(Buffer.from(id.issuerNameHash.valueBlock.valueHexView)) &&
        Buffer.from(ours.issuerKeyHash.valueBlock.valueHexView).equals(Buffer.from(id.issuerKeyHash.valueBlock.valueHexView));
      const s: SerialStatus = sameIssuer ? statusOf(serialKey(Buffer.from(id.serialNumber.valueBlock.valueHexView).toString("hex"))) : { status: "unknown" };
      basic.tbsResponseData.responses.push(
        new pkijs.SingleResponse({ certID: id, certStatus: certStatus(s), thisUpdate: now, nextUpdate: new Date(now.getTime() + 3_600_000) }),
      );
    }
    const nonce = req.tbsRequest.requestExtensions?.find((e) => e.extnID === "1.3.6.1.5.5.7.48.1.2");
    if (nonce) basic.tbsResponseData.responseExtensions = [nonce];
    await basic.sign(this.#key as unknown as Parameters<pkijs.BasicOCSPResponse["sign"]>[0], "SHA-256");
    return Buffer.from(
      new pkijs.OCSPResponse({
        responseStatus: new asn1js.Enumerated({ value: 0 }),
        responseBytes: new pkijs.ResponseBytes({
          responseType: "1.3.6.1.5.5.7.48.1.1",
          response: new asn1js.OctetString({ valueHex: basic.toSchema().toBER(false) }),
        }),
      })
        .toSchema()
        .toBER(false),
    );
  }
}

function certStatus(s: SerialStatus): asn1js.BaseBlock {
  if (s.status === "good") return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 0 } });
  if (s.status === "revoked")
    return new asn1js.Constructed({ idBlock: { tagClass: 3, tagNumber: 1 }, value: [new asn1js.GeneralizedTime({ valueDate: s.revokedAt ?? new Date() })] });
  return new asn1js.Primitive({ idBlock: { tagClass: 3, tagNumber: 2 } });
}

function ocspError(code: number): Buffer {
  return Buffer.from(new pkijs.OCSPResponse({ responseStatus: new asn1js.Enumerated({ value: code }) }).toSchema().toBER(false));
}

function hashName(oid: string): string {
  return { "1.3.14.3.2.26": "SHA-1", "2.16.840.1.101.3.4.2.1": "SHA-256", "2.16.840.1.101.3.4.2.2": "SHA-384", "2.16.840.1.101.3.4.2.3": "SHA-512" }[oid] ?? "SHA-1";
}

function crlNumber(n: bigint): x509.Extension {
  const hex = n.toString(16);
  const value = new asn1js.Integer({ valueHex: Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex") }).toBER(false);
  return new x509.Extension("2.5.29.20", false, value);
}
