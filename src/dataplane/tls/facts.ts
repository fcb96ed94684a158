// Facts about a connection's client certificate, captured once when the connection becomes
// secure (never touch the TLS socket after close: Node can segfault) and derived lazily on
// first use, so a request whose rules and headers need none of them pays nothing.
import "reflect-metadata"; // @peculiar/x509 needs it loaded first
import { X509Certificate as PeculiarCert, SubjectKeyIdentifierExtension, AuthorityKeyIdentifierExtension, CRLDistributionPointsExtension } from "@peculiar/x509";
import { hash, type X509Certificate } from "node:crypto";
import type { ClientCertInput } from "../../rules/input.ts";
import { legacyDn, rfc2253 } from "../../pki/dn.ts";
import { MISSING, type ChainVerdict } from "./verify.ts";

const EMPTY_CHAIN: readonly X509Certificate[] = [];

/**
 * Fixed at the handshake; revocation is not among them: it is checked per request (a
 * certificate can be revoked while its connection is open) and joins them in RequestCert.
 */
export class ClientCertFacts implements Omit<ClientCertInput, "revoked"> {
  readonly presented: boolean;
  /** Chain verified by OpenSSL against the host's bundle (Cloudflare: stays true when revoked). */
  readonly verified: boolean;
  readonly verdict: ChainVerdict;
  readonly leaf: X509Certificate | undefined;
  /** CA certificates above the leaf that certgate knows (from the trust bundle), nearest first. */
  readonly chain: readonly X509Certificate[];
  #cache: Map<string, string> | undefined; // created on the first derived field
  #peculiar: PeculiarCert | undefined;
  #crlUrls: string[] | undefined;

  constructor(leaf: X509Certificate | undefined, verdict: ChainVerdict, chain: readonly X509Certificate[] = EMPTY_CHAIN) {
    this.leaf = leaf;
    this.presented = leaf !== undefined;
    this.verdict = verdict;
    this.verified = leaf !== undefined && verdict.ok;
    this.chain = chain;
  }

  #memo(key: string, f: (c: X509Certificate) => string): string {
    if (!this.leaf) return "";
    const cache = (this.#cache ??= new Map());
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = f(this.leaf)));
    return v;
  }
  #parsed(): PeculiarCert {
    return (this.#peculiar ??= new PeculiarCert(this.leaf!.raw));
  }

  get subjectDn(): string {
    return this.#memo("sdn", (c) => rfc2253(c.subject));
  }
  get issuerDn(): string {
    return this.#memo("idn", (c) => rfc2253(c.issuer));
  }
  get subjectDnRfc2253(): string {
    return this.subjectDn;
  }
  get issuerDnRfc2253(): string {
    return this.issuerDn;
  }
  get subjectDnLegacy(): string {
    return this.#memo("sdnl", (c) => legacyDn(c.subject));
  }
  get issuerDnLegacy(): string {
    return this.#memo("idnl", (c) => legacyDn(c.issuer));
  }
  get serial(): string {
    return this.#memo("serial", (c) => c.serialNumber.toUpperCase());
  }
  get fingerprintSha256(): string {
    return this.#memo("sha256", (c) => hash("sha256", c.raw, "hex"));
  }
  get fingerprintSha1(): string {
    return this.#memo("sha1", (c) => hash("sha1", c.raw, "hex"));
  }
  get ski(): string {
    return this.#memo("ski", () => hex(this.#parsed().getExtension(SubjectKeyIdentifierExtension)?.keyId));
  }
  get issuerSki(): string {
    return this.#memo("iski", () => hex(this.#parsed().getExtension(AuthorityKeyIdentifierExtension)?.keyId));
  }
  get notBefore(): string {
    return this.leaf?.validFrom ?? "";
  }
  get notAfter(): string {
    return this.leaf?.validTo ?? "";
  }
  /** RFC 9440 Client-Cert: the DER leaf as an sf-binary item. */
  get rfc9440(): string {
    return this.#memo("rfc9440", () => `:${this.derBase64}:`);
  }
  /** RFC 9440 Client-Cert-Chain: the CAs used for validation that certgate can see. */
  get chainRfc9440(): string {
    return this.#memo("chain9440", () => this.chain.map((c) => `:${c.raw.toString("base64")}:`).join(", "));
  }
  get derBase64(): string {
    return this.#memo("der64", (c) => c.raw.toString("base64"));
  }
  /** HTTP URLs of the certificate's CRL distribution points. */
  get crlUrls(): string[] {
    if (!this.leaf) return [];
    return (this.#crlUrls ??= (this.#parsed().getExtension(CRLDistributionPointsExtension)?.distributionPoints ?? [])
      .flatMap((dp) => dp.distributionPoint?.fullName ?? [])
      .map((n) => n.uniformResourceIdentifier)
      .filter((u): u is string => typeof u === "string" && /^https?:\/\//.test(u)));
  }
  get subjectAltName(): string {
    return this.leaf?.subjectAltName ?? "";
  }
  get pem(): string {
    return this.#memo("pem", (c) => c.toString());
  }
  /** Envoy's X-Forwarded-Client-Cert in its SANITIZE_SET form: Hash, Cert, Subject, URI and DNS elements. */
  get xfcc(): string {
    return this.#memo("xfcc", () => {
      const parts = [`Hash=${this.fingerprintSha256}`, `Cert="${encodeURIComponent(this.pem)}"`, `Subject="${this.subjectDn.replace(/["\\]/g, "\\$&")}"`];
      for (const [type, value] of sanEntries(this.subjectAltName)) if (type === "URI" || type === "DNS") parts.push(`${type}=${xfccValue(value)}`);
      return parts.join(";");
    });
  }
}

/** What rules see of one request's certificate: the connection's facts and this request's revocation status. */
export class RequestCert implements ClientCertInput {
  readonly #f: ClientCertFacts;
  readonly revoked: boolean;
  constructor(facts: ClientCertFacts, revoked: boolean) {
    this.#f = facts;
    this.revoked = revoked;
  }
  get presented(): boolean {
    return this.#f.presented;
  }
  get verified(): boolean {
    return this.#f.verified;
  }
  get issuerDn(): string {
    return this.#f.issuerDn;
  }
  get subjectDn(): string {
    return this.#f.subjectDn;
  }
  get issuerDnRfc2253(): string {
    return this.#f.issuerDnRfc2253;
  }
  get subjectDnRfc2253(): string {
    return this.#f.subjectDnRfc2253;
  }
  get issuerDnLegacy(): string {
    return this.#f.issuerDnLegacy;
  }
  get subjectDnLegacy(): string {
    return this.#f.subjectDnLegacy;
  }
  get serial(): string {
    return this.#f.serial;
  }
  get fingerprintSha256(): string {
    return this.#f.fingerprintSha256;
  }
  get fingerprintSha1(): string {
    return this.#f.fingerprintSha1;
  }
  get ski(): string {
    return this.#f.ski;
  }
  get issuerSki(): string {
    return this.#f.issuerSki;
  }
  get notBefore(): string {
    return this.#f.notBefore;
  }
  get notAfter(): string {
    return this.#f.notAfter;
  }
  get rfc9440(): string {
    return this.#f.rfc9440;
  }
  get chainRfc9440(): string {
    return this.#f.chainRfc9440;
  }
}

/**
 * Envoy's XFCC value rule: a value holding `,` `;` `=` or `"` is double-quoted with `"`
 * escaped, so a SAN cannot add elements or fields. `\` is escaped too, so a value ending in
 * one cannot escape the closing quote.
 */
function xfccValue(v: string): string {
  return /[,;="\\]/.test(v) ? `"${v.replace(/["\\]/g, "\\$&")}"` : v;
}

/**
 * Node's subjectAltName string as [type, value] pairs: entries are joined by ", " and a value
 * Node finds unsafe (a comma, quote, backslash or control character) is a JSON string.
 */
export function sanEntries(san: string): [string, string][] {
  const out: [string, string][] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(":", i);
    if (colon < 0) break;
    const type = san.slice(i, colon);
    let value: string;
    let next: number;
    if (san[colon + 1] === '"') {
      // The JSON string ends at the first quote not escaped by a backslash.
      let j = colon + 2;
      while (j < san.length && san[j] !== '"') j += san[j] === "\\" ? 2 : 1;
      try {
        value = JSON.parse(san.slice(colon + 1, j + 1)) as string;
      } catch {
        break; // not Node's format: nothing after this point is trusted
      }
      next = j + 1;
    } else {
      const end = san.indexOf(", ", colon);
      next = end < 0 ? san.length : end;
      value = san.slice(colon + 1, next);
    }
    out.push([type, value]);
    i = next + 2; // past ", "
  }
  return out;
}

export const NO_CLIENT_CERT = new ClientCertFacts(undefined, MISSING);

function hex(id: string | undefined): string {
  return id ? id.toUpperCase() : "";
}
