// The scheme: the typed registry of fields a rule can name, and how each is read from a request.

import type { RequestInput } from "./input.ts";
import { parseIp } from "./ip.ts";
import type { IpAddr } from "./ip.ts";
import { BOOL, INT, IP, STRING, arrayOf, mapOf } from "./types.ts";
import type { Type } from "./types.ts";

export interface FieldDef {
  readonly name: string;
  readonly type: Type;
  /** Reads the value; `undefined` means the value is missing (e.g. an unparseable source address). */
  readonly read: (input: RequestInput) => unknown;
  /** One line for docs and `rules check`. */
  readonly doc: string;
}

const cert = "cf.tls_client_auth.";
/** certgate's own certificate fields, apart from Cloudflare's so that theirs keep Cloudflare's exact meaning. */
const own = "certgate.tls_client_auth.";

/**
 * ip.src: the source address is fixed per connection, so keep-alive requests bring the same text
 * again and again. A one-entry memo skips re-parsing it; the shared result is frozen.
 */
function srcIpReader(): (i: RequestInput) => IpAddr | undefined {
  let lastText: string | undefined;
  let last: IpAddr | undefined;
  return (i) => {
    const s = i.srcIp;
    if (s !== lastText) {
      const a = parseIp(s);
      last = a && Object.freeze(a);
      lastText = s;
    }
    return last;
  };
}

const defs: FieldDef[] = [
  { name: `${cert}cert_presented`, type: BOOL, read: (i) => i.cert.presented, doc: "a client certificate was presented" },
  { name: `${cert}cert_verified`, type: BOOL, read: (i) => i.cert.verified, doc: "the certificate chains to the host's CA (stays true when revoked)" },
  { name: `${cert}cert_revoked`, type: BOOL, read: (i) => i.cert.revoked, doc: "the certificate is revoked (CRL or OCSP)" },
  { name: `${cert}cert_issuer_dn`, type: STRING, read: (i) => i.cert.issuerDn, doc: 'issuer DN, RFC 2253 ("CN=Test CA,O=Example,C=US")' },
  { name: `${cert}cert_subject_dn`, type: STRING, read: (i) => i.cert.subjectDn, doc: "subject DN, RFC 2253" },
  { name: `${cert}cert_issuer_dn_rfc2253`, type: STRING, read: (i) => i.cert.issuerDnRfc2253, doc: "issuer DN, RFC 2253" },
  { name: `${cert}cert_subject_dn_rfc2253`, type: STRING, read: (i) => i.cert.subjectDnRfc2253, doc: "subject DN, RFC 2253" },
  { name: `${cert}cert_issuer_dn_legacy`, type: STRING, read: (i) => i.cert.issuerDnLegacy, doc: 'issuer DN, legacy OpenSSL form ("/C=US/O=Example/CN=Test CA")' },
  { name: `${cert}cert_subject_dn_legacy`, type: STRING, read: (i) => i.cert.subjectDnLegacy, doc: "subject DN, legacy OpenSSL form" },
  { name: `${cert}cert_serial`, type: STRING, read: (i) => i.cert.serial, doc: "serial number, uppercase hex without colons" },
  { name: `${cert}cert_fingerprint_sha256`, type: STRING, read: (i) => i.cert.fingerprintSha256, doc: "SHA-256 of the DER certificate, lowercase hex" },
  { name: `${cert}cert_fingerprint_sha1`, type: STRING, read: (i) => i.cert.fingerprintSha1, doc: "SHA-1 of the DER certificate, lowercase hex" },
  { name: `${cert}cert_ski`, type: STRING, read: (i) => i.cert.ski, doc: "subject key identifier, uppercase hex" },
  { name: `${cert}cert_issuer_ski`, type: STRING, read: (i) => i.cert.issuerSki, doc: "issuer's subject key identifier, uppercase hex" },
  { name: `${cert}cert_not_before`, type: STRING, read: (i) => i.cert.notBefore, doc: 'validity start ("Mar 21 13:35:00 2022 GMT")' },
  { name: `${cert}cert_not_after`, type: STRING, read: (i) => i.cert.notAfter, doc: 'validity end ("Mar 21 13:35:00 2022 GMT")' },
  { name: `${cert}cert_rfc9440`, type: STRING, read: (i) => i.cert.rfc9440, doc: "the certificate as an RFC 9440 sf-binary item (\":base64:\")" },
  { name: `${cert}cert_chain_rfc9440`, type: STRING, read: (i) => i.cert.chainRfc9440, doc: "the chain as an RFC 9440 list (\":a:, :b:\")" },
  { name: `${cert}cert_rfc9440_too_large`, type: BOOL, read: (i) => i.cert.rfc9440TooLarge, doc: "cert_rfc9440 is over 10 KiB: the field is empty and Client-Cert not forwarded" },
  { name: `${cert}cert_chain_rfc9440_too_large`, type: BOOL, read: (i) => i.cert.chainRfc9440TooLarge, doc: "cert_chain_rfc9440 is over 16 KiB: the field is empty and Client-Cert-Chain not forwarded" },
  { name: `${cert}cert_issuer_serial`, type: STRING, read: (i) => i.cert.issuerSerial, doc: "serial number of the direct issuer, uppercase hex (empty unless the issuer is a bundle CA)" },
  { name: `${own}san.dns`, type: arrayOf(STRING), read: (i) => i.cert.sanDns, doc: "DNS names in the subjectAltName (missing when none)" },
  { name: `${own}san.uri`, type: arrayOf(STRING), read: (i) => i.cert.sanUri, doc: "URIs in the subjectAltName (missing when none)" },
  { name: `${own}san.email`, type: arrayOf(STRING), read: (i) => i.cert.sanEmail, doc: "email addresses in the subjectAltName (missing when none)" },
  { name: `${own}san.ip`, type: arrayOf(STRING), read: (i) => i.cert.sanIp, doc: 'IP addresses in the subjectAltName ("10.0.0.1", "2001:db8::1"; missing when none)' },
  { name: `${own}spiffe_id`, type: STRING, read: (i) => i.cert.spiffeId, doc: "the one spiffe:// URI SAN; empty when none or several" },
  { name: `${own}not_before`, type: INT, read: (i) => i.cert.notBeforeUnix, doc: "validity start, Unix seconds (missing without a certificate)" },
  { name: `${own}not_after`, type: INT, read: (i) => i.cert.notAfterUnix, doc: "validity end, Unix seconds (missing without a certificate)" },
  { name: "http.host", type: STRING, read: (i) => i.host, doc: "Host, lower-cased, without port" },
  { name: "http.request.method", type: STRING, read: (i) => i.method, doc: 'method ("GET")' },
  { name: "http.request.uri", type: STRING, read: (i) => i.uri, doc: 'path and query ("/a/b?x=1")' },
  { name: "http.request.uri.path", type: STRING, read: (i) => i.path, doc: 'path ("/a/b")' },
  { name: "http.request.uri.query", type: STRING, read: (i) => i.query, doc: 'query without "?" ("x=1")' },
  { name: "http.user_agent", type: STRING, read: (i) => i.userAgent, doc: "User-Agent header" },
  { name: "http.request.headers", type: mapOf(arrayOf(STRING)), read: (i) => i.headers, doc: "lower-cased header name to all its values" },
  { name: "http.request.headers.names", type: arrayOf(STRING), read: (i) => Object.keys(i.headers), doc: "header names, lower-cased" },
  { name: "http.request.headers.values", type: arrayOf(STRING), read: (i) => Object.values(i.headers).flat(), doc: "all header values" },
  { name: "ip.src", type: IP, read: srcIpReader(), doc: "client IP address" },
  { name: "ssl", type: BOOL, read: (i) => i.ssl, doc: "the request came over TLS" },
  { name: "cf.tls_version", type: STRING, read: (i) => i.tlsVersion, doc: 'TLS version ("TLSv1.3"), empty without TLS' },
];

export const FIELDS: ReadonlyMap<string, FieldDef> = new Map(defs.map((d) => [d.name, d]));

export function lookupField(name: string): FieldDef | undefined {
  return FIELDS.get(name);
}

/** The known field closest to a misspelt name, for "did you mean" hints. */
export function suggestField(name: string): string | undefined {
  let best: string | undefined;
  let bestDist = Math.max(3, Math.floor(name.length / 4));
  for (const f of FIELDS.keys()) {
    const d = editDistance(name, f, bestDist);
    if (d < bestDist || (d === bestDist && best === undefined && d <= 3)) {
      best = f;
      bestDist = d;
    }
  }
  // Also catch a missing "cf.tls_client_auth." or "certgate.tls_client_auth." prefix.
  if (!best && FIELDS.has(cert + name)) best = cert + name;
  if (!best && FIELDS.has(own + name)) best = own + name;
  // certgate's fields under Cloudflare's prefix (cf.tls_client_auth.san.dns).
  if (!best && name.startsWith(cert) && FIELDS.has(own + name.slice(cert.length))) best = own + name.slice(cert.length);
  return best;
}

function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
