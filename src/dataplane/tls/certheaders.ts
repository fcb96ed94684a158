// The three encodings a front (CDN, load balancer) forwards a client certificate in, decoded
// strictly: anything but the exact encoding is malformed, never guessed at.
//   Cf-Client-Cert-Der-Base64  Cloudflare: the leaf's DER in base64.
//   Client-Cert                RFC 9440 §2: the leaf's DER as a structured-field byte sequence
//                              `:base64:` (RFC 8941 §3.3.5); Client-Cert-Chain, a list of them,
//                              carries intermediates.
//   X-Amzn-Mtls-Clientcert     AWS ALB (mTLS passthrough): the chain the client presented, leaf
//                              first, as PEM, URL-encoded with `+`, `=` and `/` left as they are.
import { X509Certificate } from "node:crypto";
import type { FrontPolicy } from "../compile/hosts.ts";

/** A header value longer than this is refused unread; 16 KiB holds a leaf and a few intermediates. */
export const MAX_CERT_HEADER_BYTES = 16_384;
/** Certificates one header (or Client-Cert-Chain) may carry. */
export const MAX_CERTS = 8;

export type HeaderCerts =
  | { kind: "absent" }
  | { kind: "certs"; leaf: X509Certificate; intermediates: X509Certificate[] }
  | { kind: "malformed"; reason: "header_malformed" | "header_too_large" };

const ABSENT = { kind: "absent" } as const;
const MALFORMED = { kind: "malformed", reason: "header_malformed" } as const;
const TOO_LARGE = { kind: "malformed", reason: "header_too_large" } as const;

class Malformed extends Error {}

/** The one value of header `name` in raw [name, value, ...]; null when repeated (a second copy is never merged in). */
function single(raw: readonly string[], name: string): string | undefined | null {
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== name.length || raw[i]!.toLowerCase() !== name) continue;
    if (found !== undefined) return null;
    found = raw[i + 1]!;
  }
  return found;
}

/** Canonical padded base64 only: decoding must give back exactly these characters. */
function base64(s: string): Buffer {
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw new Malformed();
  const der = Buffer.from(s, "base64");
  if (der.toString("base64") !== s) throw new Malformed();
  return der;
}

/** One DER certificate, nothing after it. */
function certificate(der: Buffer): X509Certificate {
  let x: X509Certificate;
  try {
    x = new X509Certificate(der);
  } catch {
    throw new Malformed();
  }
  if (!x.raw.equals(der)) throw new Malformed(); // trailing bytes, or not DER
  return x;
}

/** RFC 8941 byte sequence: `:` base64 `:` with no parameters. */
function byteSequence(s: string): Buffer {
  if (s.length < 2 || s[0] !== ":" || s[s.length - 1] !== ":") throw new Malformed();
  return base64(s.slice(1, -1));
}

/** RFC 8941 list of byte sequences (Client-Cert-Chain): members separated by `,` and optional spaces or tabs. */
function byteSequenceList(s: string): Buffer[] {
  const members = s.split(/[ \t]*,[ \t]*/);
  if (members.length > MAX_CERTS - 1) throw new Malformed();
  return members.map(byteSequence);
}

/** URL-encoded PEM: unreserved characters, `+ = /`, and %XX escapes only; decoded, whole PEM blocks and line ends only. */
function urlEncodedPem(s: string): Buffer[] {
  if (!/^(?:[A-Za-z0-9\-_.~+=/]|%[0-9A-Fa-f]{2})+$/.test(s)) throw new Malformed();
  const text = decodeURIComponent(s); // escapes checked above: cannot throw on syntax, only on non-UTF-8
  const blocks = /^(?:-----BEGIN CERTIFICATE-----\r?\n((?:[A-Za-z0-9+/=]{1,76}\r?\n)+)-----END CERTIFICATE-----(?:\r?\n)*)+$/.test(text) ? text.match(/-----BEGIN CERTIFICATE-----\r?\n[\s\S]*?-----END CERTIFICATE-----/g)! : null;
  if (!blocks || blocks.length > MAX_CERTS) throw new Malformed();
  return blocks.map((b) => base64(b.slice(27, -25).replace(/\r?\n/g, "")));
}

/** The raw values a trusted front sent on this request for the host's header (and RFC 9440's chain): what results are cached by. */
export type HeaderValues = { kind: "absent" } | { kind: "malformed"; reason: "header_malformed" | "header_too_large" } | { kind: "values"; value: string; chain: string | undefined };

export function readHeaderValues(raw: readonly string[], header: FrontPolicy["header"]): HeaderValues {
  const value = single(raw, header);
  // Empty is absent: Cloudflare's cert_rfc9440 field is "" without a certificate, and a rule setting Client-Cert from it sends "".
  if (value === undefined || value === "") return ABSENT;
  if (value === null) return MALFORMED;
  const chain = header === "client-cert" ? single(raw, "client-cert-chain") : undefined;
  if (chain === null) return MALFORMED;
  if (value.length > MAX_CERT_HEADER_BYTES || (chain?.length ?? 0) > MAX_CERT_HEADER_BYTES) return TOO_LARGE;
  return { kind: "values", value, chain };
}

/** The certificates in a front's header values, decoded per the host's header. */
export function decodeFrontCerts(v: { value: string; chain: string | undefined }, header: FrontPolicy["header"]): HeaderCerts {
  try {
    let ders: Buffer[];
    if (header === "cf-client-cert-der-base64") ders = [base64(v.value)];
    else if (header === "x-amzn-mtls-clientcert") ders = urlEncodedPem(v.value);
    else ders = [byteSequence(v.value), ...(v.chain ? byteSequenceList(v.chain) : [])];
    const [leaf, ...intermediates] = ders.map(certificate);
    return { kind: "certs", leaf: leaf!, intermediates };
  } catch (e) {
    if (e instanceof Malformed || e instanceof URIError) return MALFORMED;
    throw e;
  }
}

/** readHeaderValues then decodeFrontCerts. */
export function readFrontCerts(raw: readonly string[], header: FrontPolicy["header"]): HeaderCerts {
  const v = readHeaderValues(raw, header);
  return v.kind === "values" ? decodeFrontCerts(v, header) : v;
}
