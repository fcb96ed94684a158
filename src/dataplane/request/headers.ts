// The request headers an origin receives: hop-by-hop headers removed, every header a client
// could use to impersonate certgate's own assertions removed, then certgate's own added.
import type { ClientCertFacts } from "../tls/facts.ts";
import type { HostPolicy } from "../snapshot.ts";

/** Raw headers as Node and llhttp give them: [name, value, name, value, ...]. */
export type HeaderList = string[];

/**
 * A set of lower-case names, looked up without hashing: a header name from llhttp is a fresh
 * string on every request, which a Set hashes each time (about 1% of a keep-alive request's
 * CPU for the two lookups of every header).
 */
function nameSet(names: readonly string[]): (name: string) => boolean {
  const byLength: string[][] = [];
  for (const n of names) (byLength[n.length] ??= []).push(n);
  return (name) => {
    const candidates = byLength[name.length];
    if (candidates) for (const c of candidates) if (c === name) return true;
    return false;
  };
}

// HTTP2-Settings belongs to an h2c upgrade (RFC 7540 §3.2.1), which is never forwarded.
const HOP_BY_HOP = ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "http2-settings", "proxy-authorization", "proxy-authenticate"];
/** Never trusted from a client, whether forwarding is on or off. */
const CERTGATE_ASSERTED = [
  "host", // re-added: exactly the one certgate decided on
  "content-length", // the origin client frames the body itself
  "client-cert",
  "client-cert-chain",
  "cf-client-cert-der-base64",
  "cf-client-cert-sha256",
  "x-forwarded-client-cert",
  "x-amzn-mtls-clientcert", // AWS ALB's, read from a trusted front (upstream_client_cert), else spoofed
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-real-ip",
  "expect", // 100-continue is answered to the client already
];
const hopByHop = nameSet(HOP_BY_HOP);
const notForwarded = nameSet([...HOP_BY_HOP, ...CERTGATE_ASSERTED]);

/** Names listed in any Connection header are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionTokens(raw: HeaderList): Set<string> | null {
  let tokens: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 10 || raw[i]!.toLowerCase() !== "connection") continue;
    for (const t of raw[i + 1]!.toLowerCase().split(",")) {
      const name = t.trim();
      if (name && name !== "keep-alive" && name !== "close") (tokens ??= new Set()).add(name);
    }
  }
  return tokens;
}

export interface ForwardContext {
  /** The one Host header certgate decided on, as the client sent it (port included). */
  hostHeader: string;
  policy: HostPolicy;
  facts: ClientCertFacts;
  /** This request's revocation verdict: a revoked certificate is never asserted. */
  revoked: boolean;
  remoteAddress: string;
  trustForwardedFor: boolean;
}

/**
 * `upgrade`: the allowed protocols to ask the origin for (Connection: upgrade is added).
 * `h2Origin`: the origin speaks HTTP/2, where `te: trailers` is the one TE allowed and gRPC
 * needs it (it tells the origin that the client reads trailers).
 */
export function upstreamHeaders(raw: HeaderList, ctx: ForwardContext, upgrade?: string, h2Origin = false): HeaderList {
  const extra = connectionTokens(raw);
  const out: HeaderList = ["host", ctx.hostHeader];
  let incomingXff: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === "x-forwarded-for") incomingXff = incomingXff ? `${incomingXff}, ${value}` : value;
    if (h2Origin && name === "te" && value.toLowerCase().split(",").some((t) => t.trim() === "trailers") && !extra?.has("te")) out.push("te", "trailers");
    if (notForwarded(name) || extra?.has(name)) continue;
    out.push(raw[i]!, value);
  }
  if (upgrade) out.push("connection", "upgrade", "upgrade", upgrade);
  out.push(
    "x-forwarded-for",
    ctx.trustForwardedFor && incomingXff ? `${incomingXff}, ${ctx.remoteAddress}` : ctx.remoteAddress,
    "x-forwarded-proto",
    "https",
    "x-forwarded-host",
    ctx.hostHeader,
  );
  addClientCertHeaders(out, ctx.policy, ctx.facts, ctx.revoked);
  return out;
}

/** Only a verified, unrevoked certificate is ever asserted to the origin. */
function addClientCertHeaders(out: HeaderList, policy: HostPolicy, facts: ClientCertFacts, revoked: boolean): void {
  const f = policy.forwarding;
  if (policy.mode === "off" || !facts.verified || revoked || !(f.rfc9440 || f.cloudflare || f.xfcc)) return;
  if (f.rfc9440) {
    // Empty over the forwarding limit (RFC9440_MAX_BYTES): no header rather than a truncated one.
    const leaf = facts.rfc9440;
    if (leaf) out.push("client-cert", leaf);
    const chain = facts.chainRfc9440;
    if (chain) out.push("client-cert-chain", chain);
  }
  if (f.cloudflare) out.push("cf-client-cert-der-base64", facts.derBase64, "cf-client-cert-sha256", facts.fingerprintSha256);
  if (f.xfcc) out.push("x-forwarded-client-cert", facts.xfcc);
}

/** Response headers an origin sends that must not cross the proxy (framing is the client side's own). */
export function downstreamHeaders(raw: HeaderList): HeaderList {
  const extra = connectionTokens(raw);
  const out: HeaderList = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (hopByHop(name) || extra?.has(name)) continue;
    out.push(raw[i]!, raw[i + 1]!);
  }
  return out;
}
