// The X.509 v3 extensions chain verification and a client certificate's facts read (key usage,
// basic constraints, key identifiers, CRL distribution points, criticality), straight from the
// DER a node:crypto X509Certificate already parsed. A full ASN.1 parse (@peculiar/x509) costs
// milliseconds per certificate, and loading it costs each worker process about 9 MB; a front's
// every new client certificate goes through here, so this walks only the bytes it needs.

export interface CertExtensions {
  /** Key usage bits (bit 0, digitalSignature, is 1; as @peculiar/x509's KeyUsageFlags); undefined without the extension. */
  ku: number | undefined;
  /** basicConstraints cA. */
  ca: boolean;
  /** basicConstraints pathLenConstraint, undefined when absent. */
  pathLen: number | undefined;
  /** Subject and authority key identifiers, lower-case hex. */
  ski: string | undefined;
  akid: string | undefined;
  /** The URIs of the CRL distribution points' full names, in order (any scheme). */
  crlUris: string[];
  /** Every extension's OID and criticality. */
  all: { oid: string; critical: boolean }[];
}

class DerError extends Error {}

interface Tlv {
  tag: number;
  /** First content byte and one past the last. */
  start: number;
  end: number;
}

function tlv(b: Uint8Array, p: number, limit: number): Tlv {
  if (p + 2 > limit) throw new DerError("truncated");
  const tag = b[p]!;
  let len = b[p + 1]!;
  let start = p + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 3 || start + n > limit) throw new DerError("bad length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  if (start + len > limit) throw new DerError("truncated");
  return { tag, start, end: start + len };
}

/** The children of a constructed TLV. */
function children(b: Uint8Array, t: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let p = t.start; p < t.end; ) {
    const c = tlv(b, p, t.end);
    out.push(c);
    p = c.end;
  }
  return out;
}

function oid(b: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06 || t.end === t.start) throw new DerError("not an OID");
  const first = b[t.start]!;
  const parts = [Math.min(2, Math.floor(first / 40)), first - 40 * Math.min(2, Math.floor(first / 40))];
  let v = 0;
  for (let p = t.start + 1; p < t.end; p++) {
    v = v * 128 + (b[p]! & 0x7f);
    if (!(b[p]! & 0x80)) {
      parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}

const hex = (b: Uint8Array, t: Tlv): string => Buffer.from(b.buffer, b.byteOffset + t.start, t.end - t.start).toString("hex");

/**
 * CRLDistributionPoints: SEQUENCE OF DistributionPoint { distributionPoint [0] { fullName [0]
 * GeneralNames } ... }, each GeneralName's uniformResourceIdentifier being [6] IA5String.
 */
function crlUris(b: Uint8Array, list: Tlv): string[] {
  const out: string[] = [];
  for (const dp of children(b, list)) {
    if (dp.tag !== 0x30) throw new DerError("bad distribution point");
    const name = children(b, dp).find((c) => c.tag === 0xa0);
    const full = name && children(b, name).find((c) => c.tag === 0xa0);
    for (const g of full ? children(b, full) : []) if (g.tag === 0x86) out.push(Buffer.from(b.buffer, b.byteOffset + g.start, g.end - g.start).toString("latin1"));
  }
  return out;
}

/** A certificate without extensions. */
export function noExtensions(): CertExtensions {
  return { ku: undefined, ca: false, pathLen: undefined, ski: undefined, akid: undefined, crlUris: [], all: [] };
}

/** The extensions of a DER certificate; throws on bytes that are not one. */
export function certExtensions(der: Uint8Array): CertExtensions {
  const out = noExtensions();
  const cert = tlv(der, 0, der.length);
  const tbs = children(der, cert)[0];
  if (!tbs || tbs.tag !== 0x30) throw new DerError("no TBSCertificate");
  const wrapper = children(der, tbs).find((t) => t.tag === 0xa3); // [3] extensions
  if (!wrapper) return out;
  const list = children(der, wrapper)[0];
  if (!list) return out;
  for (const ext of children(der, list)) {
    const [id, second, third] = children(der, ext);
    const critical = second?.tag === 0x01 && der[second.start] !== 0;
    const value = second?.tag === 0x04 ? second : third;
    if (!id || !value || value.tag !== 0x04) throw new DerError("bad extension");
    const name = oid(der, id);
    out.all.push({ oid: name, critical });
    const inner = tlv(der, value.start, value.end);
    if (name === "2.5.29.15" && inner.tag === 0x03) {
      let ku = 0;
      for (let bit = 0; bit < 9; bit++) {
        const byte = inner.start + 1 + (bit >> 3);
        if (byte < inner.end && der[byte]! & (0x80 >> (bit & 7))) ku |= 1 << bit;
      }
      out.ku = ku;
    } else if (name === "2.5.29.19" && inner.tag === 0x30) {
      for (const c of children(der, inner)) {
        if (c.tag === 0x01) out.ca = der[c.start] !== 0;
        else if (c.tag === 0x02 && c.end - c.start <= 4) out.pathLen = Number.parseInt(hex(der, c), 16);
      }
    } else if (name === "2.5.29.14" && inner.tag === 0x04) out.ski = hex(der, inner);
    else if (name === "2.5.29.35" && inner.tag === 0x30) {
      const keyId = children(der, inner).find((c) => c.tag === 0x80);
      if (keyId) out.akid = hex(der, keyId);
    } else if (name === "2.5.29.31" && inner.tag === 0x30) out.crlUris = crlUris(der, inner);
  }
  return out;
}
