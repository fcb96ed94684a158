// The contract between the data plane and the rules engine: what a rule can see of a request.
// The proxy may implement any property as a lazy getter; compiled programs read each field at
// most once per evaluation, and only when a rule needs it.

export interface ClientCertInput {
  presented: boolean;
  /** True for a certificate that chains to the host's CA, even if it has been revoked (Cloudflare semantics). */
  verified: boolean;
  revoked: boolean;
  /** RFC 2253 form, e.g. "CN=Test CA,O=Example,C=US". */
  issuerDn: string;
  subjectDn: string;
  issuerDnRfc2253: string;
  subjectDnRfc2253: string;
  /** Legacy OpenSSL form, e.g. "/C=US/O=Example/CN=Test CA". */
  issuerDnLegacy: string;
  subjectDnLegacy: string;
  /** Uppercase hex, no colons. */
  serial: string;
  /** Lowercase hex, no colons. */
  fingerprintSha256: string;
  fingerprintSha1: string;
  /** Uppercase hex. */
  ski: string;
  issuerSki: string;
  /** "Mar 21 13:35:00 2022 GMT". */
  notBefore: string;
  notAfter: string;
  /** RFC 9440 sf-binary items: ":base64:" and ":a:, :b:"; empty when over the forwarding limit. */
  rfc9440: string;
  chainRfc9440: string;
  /** The encoded certificate / chain is over the forwarding limit (10 KiB / 16 KiB, Cloudflare's). */
  rfc9440TooLarge: boolean;
  chainRfc9440TooLarge: boolean;
  /** Serial of the direct issuer, uppercase hex; empty when the issuer is not known. */
  issuerSerial: string;
  /** certgate's own: SANs by type (undefined, i.e. missing, when there are none), SPIFFE id, validity in Unix seconds. */
  sanDns: readonly string[] | undefined;
  sanUri: readonly string[] | undefined;
  sanEmail: readonly string[] | undefined;
  /** IPv4 dotted, IPv6 in RFC 5952 form. */
  sanIp: readonly string[] | undefined;
  /** The one spiffe:// URI SAN; empty when there is none or more than one. */
  spiffeId: string;
  notBeforeUnix: number | undefined;
  notAfterUnix: number | undefined;
}

export interface RequestInput {
  /** Lower-cased, no port. */
  host: string;
  method: string;
  /** path + "?" + query, as normalised by the proxy. */
  uri: string;
  path: string;
  /** Without the "?". */
  query: string;
  userAgent: string;
  /** Lower-cased names to all values (Node's req.headersDistinct). */
  headers: Record<string, string[]>;
  /** "127.0.0.1" or "::1"; IPv4-mapped IPv6 ("::ffff:1.2.3.4") is treated as IPv4. */
  srcIp: string;
  ssl: boolean;
  tlsVersion: string;
  /** All-empty strings and false when no certificate was presented. */
  cert: ClientCertInput;
}

/** A certificate input for requests without a client certificate. */
export const NO_CERT: Readonly<ClientCertInput> = Object.freeze({
  presented: false,
  verified: false,
  revoked: false,
  issuerDn: "",
  subjectDn: "",
  issuerDnRfc2253: "",
  subjectDnRfc2253: "",
  issuerDnLegacy: "",
  subjectDnLegacy: "",
  serial: "",
  fingerprintSha256: "",
  fingerprintSha1: "",
  ski: "",
  issuerSki: "",
  notBefore: "",
  notAfter: "",
  rfc9440: "",
  chainRfc9440: "",
  rfc9440TooLarge: false,
  chainRfc9440TooLarge: false,
  issuerSerial: "",
  sanDns: undefined,
  sanUri: undefined,
  sanEmail: undefined,
  sanIp: undefined,
  spiffeId: "",
  notBeforeUnix: undefined,
  notAfterUnix: undefined,
});
