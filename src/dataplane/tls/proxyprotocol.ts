// The PROXY protocol header (HAProxy's proxy-protocol.txt, v1 text and v2 binary) that a
// trusted load balancer puts before the ClientHello: it names the client the balancer accepted.
// Parsed before any TLS state exists, from bytes the peer controls: every length is bounded.
import net from "node:net";

/** What the header says about the connection; `source` is absent for LOCAL and UNKNOWN (the balancer's own connection). */
export interface ProxiedPeer {
  source?: { address: string; port: number };
  /** AWS PrivateLink: the VPC endpoint id from TLV 0xEA subtype 0x01 ("vpce-..."), else "". */
  awsVpceId: string;
}

export type ProxyResult =
  | { kind: "more"; need: number }
  | { kind: "header"; length: number; peer: ProxiedPeer }
  | { kind: "invalid"; reason: string };

// v1: "PROXY " ... "\r\n", at most 107 bytes in all (the spec's worst case).
const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const V1_MAX = 107;
// v2: a 12-byte signature, version/command, family/protocol, 2-byte length.
const V2_SIG = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/**
 * Address block and TLVs of a v2 header. The spec allows 65535; balancers send the addresses
 * plus a few TLVs (HAProxy's SSL and unique-id TLVs, AWS's endpoint id stay far below this).
 */
export const V2_MAX_PAYLOAD = 2048;
const PP2_TYPE_AWS = 0xea;
const PP2_SUBTYPE_AWS_VPCE_ID = 0x01;
const NO_TLVS: ProxiedPeer = Object.freeze({ awsVpceId: "" });

/** Whether `buf` starts (or may yet start, when short) with a PROXY header of either version. */
export function proxySignature(buf: Buffer): "yes" | "no" | "maybe" {
  for (const sig of [V1_PREFIX, V2_SIG]) {
    const n = Math.min(buf.length, sig.length);
    if (buf.subarray(0, n).equals(sig.subarray(0, n))) return n === sig.length ? "yes" : "maybe";
  }
  return "no";
}

/** Parses the header at the start of `buf`; call again once it holds the bytes "more" asks for. */
export function parseProxyHeader(buf: Buffer): ProxyResult {
  switch (proxySignature(buf)) {
    case "no":
      return invalid("no PROXY protocol header from a trusted peer");
    case "maybe":
      return { kind: "more", need: buf.length + 1 };
  }
  return buf[0] === 0x50 ? parseV1(buf) : parseV2(buf);
}

function invalid(reason: string): ProxyResult {
  return { kind: "invalid", reason };
}

function parseV1(buf: Buffer): ProxyResult {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) return buf.length >= V1_MAX ? invalid("PROXY v1 line too long") : { kind: "more", need: buf.length + 1 };
  if (buf[lf - 1] !== 0x0d) return invalid("PROXY v1 line does not end with CRLF");
  const end = lf - 1;
  if (end + 2 > V1_MAX) return invalid("PROXY v1 line too long");
  const parts = buf.toString("latin1", 0, end).split(" ");
  if (parts[1] === "UNKNOWN") return { kind: "header", length: end + 2, peer: NO_TLVS };
  if (parts.length !== 6) return invalid("PROXY v1 line is not PROXY TCP4|TCP6 SRC DST SPORT DPORT");
  const [, proto, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const family = proto === "TCP4" ? 4 : proto === "TCP6" ? 6 : 0;
  if (!family) return invalid(`PROXY v1 protocol "${proto.slice(0, 8)}" is not TCP4, TCP6 or UNKNOWN`);
  if (net.isIP(src) !== family || net.isIP(dst) !== family) return invalid(`PROXY v1 addresses are not ${proto} addresses`);
  const port = v1Port(sport);
  if (port < 0 || v1Port(dport) < 0) return invalid("PROXY v1 port is not 0-65535");
  return { kind: "header", length: end + 2, peer: { source: { address: family === 6 ? unmapped(src) : src, port }, awsVpceId: "" } };
}

/** Decimal, no sign, no leading zero (the spec's form); -1 when not a port. */
function v1Port(s: string): number {
  return /^(0|[1-9][0-9]{0,4})$/.test(s) && Number(s) <= 65535 ? Number(s) : -1;
}

function parseV2(buf: Buffer): ProxyResult {
  if (buf.length < 16) return { kind: "more", need: 16 };
  const verCmd = buf[12]!;
  const famProto = buf[13]!;
  const len = buf.readUInt16BE(14);
  if (verCmd >> 4 !== 2) return invalid("PROXY v2 version is not 2");
  const command = verCmd & 0x0f;
  if (command > 1) return invalid("PROXY v2 command is not LOCAL or PROXY");
  if (len > V2_MAX_PAYLOAD) return invalid(`PROXY v2 header above ${V2_MAX_PAYLOAD} bytes`);
  if (buf.length < 16 + len) return { kind: "more", need: 16 + len };
  const body = buf.subarray(16, 16 + len);
  const family = famProto >> 4;
  const proto = famProto & 0x0f;
  // Address block sizes per family: INET 12, INET6 36, UNIX 216; UNSPEC has none.
  const addrLen = [0, 12, 36, 216][family];
  if (addrLen === undefined) return invalid("PROXY v2 address family unknown");
  if (family !== 0 && proto !== 1) return invalid("PROXY v2 transport is not STREAM (TCP)");
  if (body.length < addrLen) return invalid("PROXY v2 address block truncated");
  const tlvs = readTlvs(body.subarray(addrLen));
  if (typeof tlvs === "string") return invalid(tlvs);
  const length = 16 + len;
  // LOCAL: the balancer's own connection (a health check); its addresses mean nothing.
  if (command === 0 || family === 0 || family === 3) return { kind: "header", length, peer: tlvs };
  const source =
    family === 1
      ? { address: Array.from(body.subarray(0, 4)).join("."), port: body.readUInt16BE(8) }
      : { address: ipv6Text(body.subarray(0, 16)), port: body.readUInt16BE(32) };
  return { kind: "header", length, peer: { ...tlvs, source } };
}

/** Walks the TLVs: each must fit exactly; only the AWS endpoint id is kept. */
function readTlvs(b: Buffer): ProxiedPeer | string {
  let awsVpceId = "";
  for (let p = 0; p < b.length; ) {
    if (p + 3 > b.length) return "PROXY v2 TLV truncated";
    const type = b[p]!;
    const len = b.readUInt16BE(p + 1);
    p += 3;
    if (p + len > b.length) return "PROXY v2 TLV longer than the header";
    if (type === PP2_TYPE_AWS && len >= 1 && b[p] === PP2_SUBTYPE_AWS_VPCE_ID) {
      const id = b.toString("latin1", p + 1, p + len);
      if (!/^[A-Za-z0-9-]{1,128}$/.test(id)) return "PROXY v2 AWS VPC endpoint id malformed";
      awsVpceId = id;
    }
    p += len;
  }
  return awsVpceId ? { awsVpceId } : NO_TLVS;
}

/** Canonical text; an IPv4-mapped address is an IPv4 client, shown as such as for direct connections. */
function ipv6Text(b: Buffer): string {
  if (b.readUInt32BE(0) === 0 && b.readUInt32BE(4) === 0 && b.readUInt32BE(8) === 0xffff) return Array.from(b.subarray(12)).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(b.readUInt16BE(i).toString(16));
  // Let the URL parser compress it into the canonical short form.
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

/** "::ffff:1.2.3.4" is an IPv4 client, as above. */
function unmapped(a: string): string {
  return a.toLowerCase().startsWith("::ffff:") && net.isIPv4(a.slice(7)) ? a.slice(7) : a;
}
