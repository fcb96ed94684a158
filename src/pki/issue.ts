// Issuing X.509 certificates (ECDSA P-256) with @peculiar/x509: the dev PKI, test fixtures,
// and later the managed CA. Chain verification at runtime is OpenSSL's job, not this file's.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

type CryptoKeyPair = webcrypto.CryptoKeyPair;
type CryptoKey = webcrypto.CryptoKey;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

/** The key algorithm of every key issue() creates, and the signature algorithm it signs with. */
export const EC = { name: "ECDSA", namedCurve: "P-256" } as const;
export const SIGN = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY = 86_400_000;

export interface Issued {
  cert: x509.X509Certificate;
  keys: CryptoKeyPair;
  certPem: string;
  keyPem: string;
}

export interface IssueOptions {
  subject: string; // RFC 4514 string, e.g. "CN=client,O=certgate dev"
  ca?: boolean;
  pathLength?: number;
  dnsNames?: string[];
  ipAddresses?: string[];
  /** URI SANs (SPIFFE ids and the like). */
  uris?: string[];
  emails?: string[];
  /** Extended key usages; [] means the extension is absent. */
  eku?: ("serverAuth" | "clientAuth" | "ocspSigning")[];
  notBefore?: Date;
  notAfter?: Date;
  days?: number;
  serialNumber?: string;
  crlUrls?: string[];
  ocspUrls?: string[];
}

const EKU_OIDS = { serverAuth: x509.ExtendedKeyUsage.serverAuth, clientAuth: x509.ExtendedKeyUsage.clientAuth, ocspSigning: x509.ExtendedKeyUsage.ocspSigning };

export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive INTEGER
  bytes[0] = bytes[0] === 0 ? 1 : bytes[0];
  return Buffer.from(bytes).toString("hex");
}

async function exportKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return `-----BEGIN PRIVATE KEY-----\n${der.toString("base64").replace(/.{64}/g, "$&\n").replace(/\n?$/, "\n")}-----END PRIVATE KEY-----\n`;
}

function generateKeys(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

/** Issues a certificate signed by `issuer`, or self-signed when `issuer` is absent. */
export async function issue(opts: IssueOptions, issuer?: Issued, keys?: CryptoKeyPair): Promise<Issued> {
  keys ??= await generateKeys();
  const notBefore = opts.notBefore ?? new Date(Date.now() - 60_000);
  const notAfter = opts.notAfter ?? new Date(notBefore.getTime() + (opts.days ?? 365) * DAY);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(opts.ca ?? false, opts.pathLength, true),
    new x509.KeyUsagesExtension(
      opts.ca
        ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature
        : x509.KeyUsageFlags.digitalSignature,
      true,
    ),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
  ];
  if (issuer) extensions.push(await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey));
  const eku = opts.eku ?? (opts.ca ? [] : ["clientAuth"]);
  if (eku.length) extensions.push(new x509.ExtendedKeyUsageExtension(eku.map((e) => EKU_OIDS[e])));
  const san = [
    ...(opts.dnsNames ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(opts.ipAddresses ?? []).map((value) => ({ type: "ip" as const, value })),
    ...(opts.uris ?? []).map((value) => ({ type: "url" as const, value })),
    ...(opts.emails ?? []).map((value) => ({ type: "email" as const, value })),
  ];
  if (san.length) extensions.push(new x509.SubjectAlternativeNameExtension(san));
  if (opts.crlUrls?.length) extensions.push(new x509.CRLDistributionPointsExtension(opts.crlUrls));
  if (opts.ocspUrls?.length) extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: opts.ocspUrls }));

  const common = {
    serialNumber: opts.serialNumber ?? randomSerial(),
    notBefore,
    notAfter,
    extensions,
    signingAlgorithm: SIGN,
  };
  const cert = issuer
    ? await x509.X509CertificateGenerator.create({
        ...common,
        subject: opts.subject,
        issuer: issuer.cert.subject,
        publicKey: keys.publicKey,
        signingKey: issuer.keys.privateKey,
      })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: opts.subject, keys });
  return { cert, keys, certPem: cert.toString("pem") + "\n", keyPem: await exportKeyPem(keys.privateKey) };
}
