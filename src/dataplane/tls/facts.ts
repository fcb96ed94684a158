// Facts about a connection's client certificate, captured once when the connection becomes
// secure (never touch the TLS socket after close: Node can segfault) and derived lazily on
// first use, so a request whose rules and headers need none of them pays nothing.
import { hash, type X509Certificate } from "node:crypto";
import type { ClientCertInput } from "../../rules/input.ts";
import { legacyDn, rfc2253 } from "../../pki/dn.ts";
import { certExtensions, noExtensions, type CertExtensions } from "./certextensions.ts";
import { MISSING, type ChainVerdict } from "./verify.ts";

const EMPTY_CHAIN: readonly X509Certificate[] = [];

/**
 * certgate's forwarding limit for RFC 9440 values, Cloudflare's figures: above it the
 * Client-Cert (Client-Cert-Chain) header is not sent, cf.tls_client_auth.cert_rfc9440
 * (cert_chain_rfc9440) is empty and its *_too_large field is true.
 */
export const RFC9440_MAX_BYTES = 10 * 1024;
export const RFC9440_CHAIN_MAX_BYTES = 16 * 1024;

/** The access log's bounds on what a client's certificate can put in every line. */
export const LOG_SAN_MAX = 16;
const LOG_SAN_CHARS = 256;
const LOG_DN_CHARS = 1024;

/** The subjectAltName, parsed once per connection. Arrays are frozen: every request shares them. */
interface Sans {
  /** [type, value] as Node names the types: DNS, URI, email, IP Address (canonical), ... */
  entries: readonly (readonly [string, string])[];
  dns: readonly string[] | undefined;
  uri: readonly string[] | undefined;
  email: readonly string[] | undefined;
  ip: readonly string[] | undefined;
  spiffeId: string;
}

/** What the access log says about a connection's certificate; built once per connection and verdict. */
export interface CertLog {
  readonly subject: string;
  readonly issuer: string;
  readonly serial: string;
  readonly sha256: string;
  readonly spiffe_id: string | undefined;
  /** At most LOG_SAN_MAX entries ("DNS:a.example", "URI:spiffe://...", "email:...", "IP:10.0.0.1"). */
  readonly san: readonly string[] | undefined;
  /** How many SAN entries the bound left out. */
  readonly san_omitted: number | undefined;
  readonly verified: boolean;
  readonly revoked: boolean;
}

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
  readonly #issuerOf: ((leaf: X509Certificate) => X509Certificate | undefined) | undefined;
  #cache: Map<string, string> | undefined; // created on the first derived field
  #extensions: CertExtensions | undefined;
  #crlUrls: string[] | undefined;
  #sans: Sans | undefined;
  #log: [CertLog?, CertLog?] | undefined; // [not revoked, revoked]

  /** `issuerOf`: the bundle CA that issued a verified leaf (cert_issuer_serial), asked only when a rule reads it. */
  constructor(leaf: X509Certificate | undefined, verdict: ChainVerdict, chain: readonly X509Certificate[] = EMPTY_CHAIN, issuerOf?: (leaf: X509Certificate) => X509Certificate | undefined) {
    this.leaf = leaf;
    this.presented = leaf !== undefined;
    this.verdict = verdict;
    this.verified = leaf !== undefined && verdict.ok;
    this.chain = chain;
    this.#issuerOf = issuerOf;
  }

  #memo(key: string, f: (c: X509Certificate) => string): string {
    if (!this.leaf) return "";
    const cache = (this.#cache ??= new Map());
    let v = cache.get(key);
    if (v === undefined) cache.set(key, (v = f(this.leaf)));
    return v;
  }
  #ext(): CertExtensions {
    return (this.#extensions ??= extensionsOf(this.leaf!));
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
    return this.#memo("ski", () => hex(this.#ext().ski));
  }
  get issuerSki(): string {
    return this.#memo("iski", () => hex(this.#ext().akid));
  }
  get notBefore(): string {
    return this.leaf?.validFrom ?? "";
  }
  get notAfter(): string {
    return this.leaf?.validTo ?? "";
  }
  /** RFC 9440 Client-Cert: the DER leaf as an sf-binary item; empty over the forwarding limit. */
  get rfc9440(): string {
    return this.rfc9440TooLarge ? "" : this.#memo("rfc9440", () => `:${this.derBase64}:`);
  }
  /** RFC 9440 Client-Cert-Chain: the CAs used for validation that certgate can see; empty over the limit. */
  get chainRfc9440(): string {
    return this.chainRfc9440TooLarge ? "" : this.#chain9440;
  }
  get #chain9440(): string {
    return this.#memo("chain9440", () => this.chain.map((c) => `:${c.raw.toString("base64")}:`).join(", "));
  }
  get rfc9440TooLarge(): boolean {
    // ":" + base64 + ":", all ASCII: the length is the size in bytes.
    return this.leaf !== undefined && 4 * Math.ceil(this.leaf.raw.length / 3) + 2 > RFC9440_MAX_BYTES;
  }
  get chainRfc9440TooLarge(): boolean {
    return this.chain.length > 0 && this.#chain9440.length > RFC9440_CHAIN_MAX_BYTES;
  }
  get issuerSerial(): string {
    return this.#memo("iserial", (c) => (this.verified && this.#issuerOf?.(c)?.serialNumber.toUpperCase()) || "");
  }
  get sanDns(): readonly string[] | undefined {
    return this.#san().dns;
  }
  get sanUri(): readonly string[] | undefined {
    return this.#san().uri;
  }
  get sanEmail(): readonly string[] | undefined {
    return this.#san().email;
  }
  get sanIp(): readonly string[] | undefined {
    return this.#san().ip;
  }
  get spiffeId(): string {
    return this.#san().spiffeId;
  }
  get notBeforeUnix(): number | undefined {
    return this.leaf && Math.floor(this.leaf.validFromDate.getTime() / 1000);
  }
  get notAfterUnix(): number | undefined {
    return this.leaf && Math.floor(this.leaf.validToDate.getTime() / 1000);
  }
  #san(): Sans {
    return (this.#sans ??= parseSans(this.subjectAltName));
  }
  /** The access log's certificate object, one per connection and revocation verdict (undefined without a certificate). */
  logFields(revoked: boolean): CertLog | undefined {
    if (!this.leaf) return undefined;
    const memo = (this.#log ??= []);
    const i = revoked ? 1 : 0;
    const have = memo[i];
    if (have) return have;
    const sans = this.#san();
    const san = sans.entries.slice(0, LOG_SAN_MAX).map(([t, v]) => clip(`${t === "IP Address" ? "IP" : t}:${v}`, LOG_SAN_CHARS));
    const omitted = sans.entries.length - san.length;
    return (memo[i] = Object.freeze({
      subject: clip(this.subjectDn, LOG_DN_CHARS),
      issuer: clip(this.issuerDn, LOG_DN_CHARS),
      serial: this.serial,
      sha256: this.fingerprintSha256,
      spiffe_id: sans.spiffeId ? clip(sans.spiffeId, LOG_SAN_CHARS) : undefined,
      san: san.length ? Object.freeze(san) : undefined,
      san_omitted: omitted > 0 ? omitted : undefined,
      verified: this.verified,
      revoked,
    }));
  }
  get derBase64(): string {
    return this.#memo("der64", (c) => c.raw.toString("base64"));
  }
  /** HTTP URLs of the certificate's CRL distribution points. */
  get crlUrls(): string[] {
    if (!this.leaf) return [];
    return (this.#crlUrls ??= this.#ext().crlUris.filter((u) => /^https?:\/\//.test(u)));
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
      for (const [type, value] of this.#san().entries) if (type === "URI" || type === "DNS") parts.push(`${type}=${xfccValue(value)}`);
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
  get rfc9440TooLarge(): boolean {
    return this.#f.rfc9440TooLarge;
  }
  get chainRfc9440TooLarge(): boolean {
    return this.#f.chainRfc9440TooLarge;
  }
  get issuerSerial(): string {
    return this.#f.issuerSerial;
  }
  get sanDns(): readonly string[] | undefined {
    return this.#f.sanDns;
  }
  get sanUri(): readonly string[] | undefined {
    return this.#f.sanUri;
  }
  get sanEmail(): readonly string[] | undefined {
    return this.#f.sanEmail;
  }
  get sanIp(): readonly string[] | undefined {
    return this.#f.sanIp;
  }
  get spiffeId(): string {
    return this.#f.spiffeId;
  }
  get notBeforeUnix(): number | undefined {
    return this.#f.notBeforeUnix;
  }
  get notAfterUnix(): number | undefined {
    return this.#f.notAfterUnix;
  }
}

const NO_SANS: Sans = Object.freeze({ entries: Object.freeze([]), dns: undefined, uri: undefined, email: undefined, ip: undefined, spiffeId: "" });

function parseSans(san: string): Sans {
  if (!san) return NO_SANS;
  const entries = sanEntries(san).map((e) => (e[0] === "IP Address" ? ([e[0], canonicalIp(e[1])] as const) : e));
  const of = (type: string) => {
    const xs = entries.filter(([t]) => t === type).map(([, v]) => v);
    return xs.length ? Object.freeze(xs) : undefined;
  };
  const uri = of("URI");
  // An X.509-SVID carries exactly one SPIFFE id; several make none of them the identity.
  const spiffe = uri?.filter((u) => /^spiffe:\/\//i.test(u)) ?? [];
  return Object.freeze({ entries: Object.freeze(entries), dns: of("DNS"), uri, email: of("email"), ip: of("IP Address"), spiffeId: spiffe.length === 1 ? spiffe[0]! : "" });
}

const OPENSSL_V6 = /^[0-9A-F]{1,4}(?::[0-9A-F]{1,4}){7}$/;

/**
 * OpenSSL prints an IPv6 SAN as eight upper-case groups without leading zeros
 * (2001:DB8:0:0:0:0:0:1): RFC 5952 form instead. IPv4 is dotted already; anything else
 * OpenSSL prints (an address of a bad length) stays as it is.
 */
function canonicalIp(s: string): string {
  if (!OPENSSL_V6.test(s)) return s;
  const g = s.toLowerCase().split(":");
  // IPv4-mapped: RFC 5952 §5 writes the last 32 bits dotted.
  if (g[5] === "ffff" && g.slice(0, 5).every((x) => x === "0")) {
    const [hi, lo] = [parseInt(g[6]!, 16), parseInt(g[7]!, 16)];
    return `::ffff:${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  // Compress the longest run of two or more zero groups, the first on ties.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && g[j] === "0") j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = Math.max(j, i + 1);
  }
  return best < 0 ? g.join(":") : `${g.slice(0, best).join(":")}::${g.slice(best + bestLen).join(":")}`;
}

function clip(s: string, max: number): string {
  return s.length > max ? `${s.slice(0, max)}…` : s;
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
export function sanEntries(san: string): (readonly [string, string])[] {
  const out: (readonly [string, string])[] = [];
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

/** A certificate OpenSSL parsed but whose extensions do not decode (possible on a fail-open host) has none to offer. */
function extensionsOf(leaf: X509Certificate): CertExtensions {
  try {
    return certExtensions(leaf.raw);
  } catch {
    return noExtensions();
  }
}

function hex(id: string | undefined): string {
  return id ? id.toUpperCase() : "";
}
