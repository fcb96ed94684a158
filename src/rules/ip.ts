// IP addresses for ip.src: parsing, printing, CIDR ranges and the prefix table used by `in {…}`.
// IPv4 is a uint32 number, IPv6 a bigint; IPv4-mapped IPv6 (::ffff:a.b.c.d) counts as IPv4
// because dual-stack sockets report IPv4 clients that way.

export type IpAddr = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly n: bigint };
/** An inclusive address range of one family; CIDRs and `a..b` ranges both become this. */
export type IpRange = { readonly v: 4; readonly lo: number; readonly hi: number } | { readonly v: 6; readonly lo: bigint; readonly hi: bigint };

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function parseV4(s: string): number | undefined {
  const m = V4.exec(s);
  if (!m) return undefined;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i]!;
    // Leading zeros are ambiguous (octal in some parsers): refuse them.
    if (part.length > 1 && part[0] === "0") return undefined;
    const o = Number(part);
    if (o > 255) return undefined;
    n = n * 256 + o;
  }
  return n;
}

function parseV6(s: string): bigint | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  let tail: number | undefined;
  const lastColon = s.lastIndexOf(":");
  let head = s;
  if (s.indexOf(".", lastColon) >= 0) {
    // Embedded IPv4 tail: "::ffff:1.2.3.4", "64:ff9b::1.2.3.4".
    tail = parseV4(s.slice(lastColon + 1));
    if (tail === undefined) return undefined;
    head = s.slice(0, lastColon);
    if (head.endsWith(":")) head += ":";
  }
  const groupsWanted = tail === undefined ? 8 : 6;
  const dbl = head.indexOf("::");
  if (dbl >= 0 && head.indexOf("::", dbl + 1) >= 0) return undefined;
  const split = (p: string): string[] => (p === "" ? [] : p.split(":"));
  let groups: string[];
  if (dbl >= 0) {
    const left = split(head.slice(0, dbl));
    const right = split(head.slice(dbl + 2));
    const missing = groupsWanted - left.length - right.length;
    if (missing < 1) return undefined;
    groups = [...left, ...Array<string>(missing).fill("0"), ...right];
  } else {
    groups = head.split(":");
  }
  if (groups.length !== groupsWanted) return undefined;
  let n = 0n;
  for (const g of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    n = (n << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail !== undefined) n = (n << 32n) | BigInt(tail);
  return n;
}


/** Parses a literal or a socket address; undefined when it is not an address. */
export function parseIp(s: string): IpAddr | undefined {
  if (s.indexOf(":") < 0) {
    const n = parseV4(s);
    return n === undefined ? undefined : { v: 4, n };
  }
  const pct = s.indexOf("%"); // zone id, e.g. fe80::1%eth0
  const n = parseV6(pct >= 0 ? s.slice(0, pct) : s);
  if (n === undefined) return undefined;
  if (n >> 32n === 0xffffn) return { v: 4, n: Number(n & 0xffffffffn) };
  return { v: 6, n };
}

export function formatIp(a: IpAddr): string {
  if (a.v === 4) return [a.n >>> 24, (a.n >>> 16) & 255, (a.n >>> 8) & 255, a.n & 255].join(".");
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((a.n >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first one on ties.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(":");
  if (bestStart < 0) return hex(g);
  return `${hex(g.slice(0, bestStart))}::${hex(g.slice(bestStart + bestLen))}`;
}

export function ipEquals(a: IpAddr, b: IpAddr): boolean {
  return a.v === b.v && a.n === b.n;
}

/** "10.0.0.0/8" → range; undefined if malformed. Host bits are masked off. */
export function parseCidr(s: string): { addr: IpAddr; bits: number } | undefined {
  const slash = s.indexOf("/");
  if (slash < 0) return undefined;
  const addr = parseIp(s.slice(0, slash));
  const bitsText = s.slice(slash + 1);
  if (!addr || !/^\d{1,3}$/.test(bitsText)) return undefined;
  let bits = Number(bitsText);
  // An IPv4-mapped literal was turned into IPv4: its prefix loses the 96 mapped bits.
  if (addr.v === 4 && s.slice(0, slash).includes(":")) bits -= 96;
  if (bits < 0 || bits > (addr.v === 4 ? 32 : 128)) return undefined;
  return { addr: maskAddr(addr, bits), bits };
}

function maskAddr(a: IpAddr, bits: number): IpAddr {
  if (a.v === 4) return { v: 4, n: bits === 0 ? 0 : (a.n & ~(2 ** (32 - bits) - 1)) >>> 0 };
  const hostMask = (1n << BigInt(128 - bits)) - 1n;
  return { v: 6, n: a.n & ~hostMask & ((1n << 128n) - 1n) };
}

/** Splits an inclusive range into the minimal list of CIDR blocks (for the prefix table). */
export function rangeToCidrs(r: IpRange): { addr: IpAddr; bits: number }[] {
  const width = r.v === 4 ? 32 : 128;
  let lo = BigInt(r.lo);
  const hi = BigInt(r.hi);
  const out: { addr: IpAddr; bits: number }[] = [];
  while (lo <= hi) {
    // Largest block aligned at lo that does not pass hi.
    let size = 0;
    while (size < width && ((lo >> BigInt(size)) & 1n) === 0n && lo + (1n << BigInt(size + 1)) - 1n <= hi) size++;
    const addr: IpAddr = r.v === 4 ? { v: 4, n: Number(lo) } : { v: 6, n: lo };
    out.push({ addr, bits: width - size });
    lo += 1n << BigInt(size);
  }
  return out;
}

/**
 * The prefix table: per family, one hash set of network keys per distinct prefix length.
 * A lookup masks the address once per length present (at most 33 or 129, usually a handful).
 */
export class IpPrefixSet {
  private readonly v4: { shift: number; keys: Set<number> }[] = [];
  private readonly v6: { shift: bigint; keys: Set<bigint> }[] = [];

  add(addr: IpAddr, bits: number): void {
    if (addr.v === 4) {
      const shift = 32 - bits;
      let t = this.v4.find((e) => e.shift === shift);
      if (!t) this.v4.push((t = { shift, keys: new Set() }));
      t.keys.add(Math.floor(addr.n / 2 ** shift));
    } else {
      const shift = BigInt(128 - bits);
      let t = this.v6.find((e) => e.shift === shift);
      if (!t) this.v6.push((t = { shift, keys: new Set() }));
      t.keys.add(addr.n >> shift);
    }
    // Most specific first so the common exact-address case is the first probe.
    this.v4.sort((a, b) => a.shift - b.shift);
    this.v6.sort((a, b) => (a.shift < b.shift ? -1 : a.shift > b.shift ? 1 : 0));
  }

  has(a: IpAddr): boolean {
    if (a.v === 4) {
      for (const t of this.v4) if (t.keys.has(t.shift === 32 ? 0 : Math.floor(a.n / 2 ** t.shift))) return true;
      return false;
    }
    for (const t of this.v6) if (t.keys.has(a.n >> t.shift)) return true;
    return false;
  }
}
