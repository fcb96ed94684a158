// The request headers an origin receives: hop-by-hop headers removed, every header a client
// could use to impersonate certgate's own assertions removed, then certgate's own added.
import type { IncomingMessage } from "node:http";
import type { ClientCertFacts } from "./facts.ts";
import type { HostPolicy } from "./snapshot.ts";

export type HeaderMap = Record<string, string | string[]>;

const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "proxy-authorization", "proxy-authenticate"]);
/** Never trusted from a client, whether forwarding is on or off. */
const CERTGATE_ASSERTED = new Set([
  "client-cert",
  "client-cert-chain",
  "cf-client-cert-der-base64",
  "cf-client-cert-sha256",
  "x-forwarded-client-cert",
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-proto",
  "x-forwarded-host",
  "x-real-ip",
  "expect", // Node has answered 100-continue already
]);

export function isHopByHop(name: string): boolean {
  return HOP_BY_HOP.has(name);
}

/** Names listed in the Connection header are hop-by-hop too (RFC 9110 §7.6.1). */
function connectionTokens(req: IncomingMessage): Set<string> | null {
  const c = req.headers.connection;
  if (!c || c === "keep-alive" || c === "close") return null;
  return new Set(c.toLowerCase().split(",").map((s) => s.trim()));
}

export interface ForwardContext {
  host: string;
  policy: HostPolicy;
  facts: ClientCertFacts;
  remoteAddress: string;
  trustForwardedFor: boolean;
}

export function upstreamHeaders(req: IncomingMessage, ctx: ForwardContext, keepUpgrade = false): HeaderMap {
  const out: HeaderMap = {};
  const extra = connectionTokens(req);
  const raw = req.rawHeaders;
  let incomingXff: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === "x-forwarded-for") incomingXff = incomingXff ? `${incomingXff}, ${value}` : value;
    if (HOP_BY_HOP.has(name) || CERTGATE_ASSERTED.has(name) || extra?.has(name)) continue;
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  if (keepUpgrade && req.headers.upgrade) out.upgrade = req.headers.upgrade;
  out["x-forwarded-for"] = ctx.trustForwardedFor && incomingXff ? `${incomingXff}, ${ctx.remoteAddress}` : ctx.remoteAddress;
  out["x-forwarded-proto"] = "https";
  out["x-forwarded-host"] = req.headers.host ?? ctx.host;
  addClientCertHeaders(out, ctx.policy, ctx.facts);
  return out;
}

/** Only a verified, unrevoked certificate is ever asserted to the origin. */
function addClientCertHeaders(out: HeaderMap, policy: HostPolicy, facts: ClientCertFacts): void {
  const f = policy.forwarding;
  if (policy.mode === "off" || !facts.verified || facts.revoked || !(f.rfc9440 || f.cloudflare || f.xfcc)) return;
  if (f.rfc9440) {
    out["client-cert"] = facts.rfc9440;
    const chain = facts.chainRfc9440;
    if (chain) out["client-cert-chain"] = chain;
  }
  if (f.cloudflare) {
    out["cf-client-cert-der-base64"] = facts.derBase64;
    out["cf-client-cert-sha256"] = facts.fingerprintSha256;
  }
  if (f.xfcc) out["x-forwarded-client-cert"] = xfcc(facts);
}

/** Envoy's SANITIZE_SET format: Hash, Cert, Subject, URI and DNS elements. */
function xfcc(facts: ClientCertFacts): string {
  const parts = [`Hash=${facts.fingerprintSha256}`, `Cert="${encodeURIComponent(facts.pem)}"`, `Subject="${facts.subjectDn.replace(/["\\]/g, "\\$&")}"`];
  for (const san of facts.subjectAltName.split(", ")) {
    if (san.startsWith("URI:")) parts.push(`URI=${san.slice(4)}`);
    else if (san.startsWith("DNS:")) parts.push(`DNS=${san.slice(4)}`);
  }
  return parts.join(";");
}

/** Response headers an origin sends that must not cross the proxy. */
export function downstreamHeaders(headers: Record<string, string | string[] | undefined>): HeaderMap {
  const out: HeaderMap = {};
  const conn = headers.connection;
  const extra = typeof conn === "string" ? new Set(conn.toLowerCase().split(",").map((s) => s.trim())) : null;
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || HOP_BY_HOP.has(name) || extra?.has(name)) continue;
    out[name] = v;
  }
  return out;
}
