// The key-exchange group a server-side TLS connection negotiated. Node exposes it only to
// clients (getEphemeralKeyInfo() is null on a server socket), but OpenSSL records it in the
// SSL_SESSION as `kex_group` and i2d_SSL_SESSION writes it as field [19] (ssl/ssl_asn1.c, since
// OpenSSL 3.0); Node's getSession() returns exactly that encoding. So the group read here is
// OpenSSL's own record of this connection's choice, not a guess from the ClientHello.
// On resumption OpenSSL keeps the session's original record unless the connection did a new
// key exchange (TLS 1.3 psk_dhe_ke records the new group); a TLS 1.2 resumption has no key
// exchange at all, which `negotiatedGroup` reports as "none".

/**
 * IANA TLS Supported Groups codepoints OpenSSL 3.5 can negotiate, by the names OpenSSL and the
 * docs use. With "other" and "none", the only values the `group` label takes, whatever clients send.
 */
const NAMES = new Map<number, string>([
  [0x0017, "P-256"],
  [0x0018, "P-384"],
  [0x0019, "P-521"],
  [0x001d, "X25519"],
  [0x001e, "X448"],
  [0x0100, "ffdhe2048"],
  [0x0101, "ffdhe3072"],
  [0x0102, "ffdhe4096"],
  [0x0103, "ffdhe6144"],
  [0x0104, "ffdhe8192"],
  [0x0200, "MLKEM512"],
  [0x0201, "MLKEM768"],
  [0x0202, "MLKEM1024"],
  [0x11eb, "SecP256r1MLKEM768"],
  [0x11ec, "X25519MLKEM768"],
  [0x11ed, "SecP384r1MLKEM1024"],
]);

/**
 * The group's name; "none" when the connection made no key exchange (a TLS 1.2 resumption) or
 * the session says nothing; "other" for a codepoint outside the table.
 */
export function negotiatedGroup(session: Buffer | undefined, tlsVersion: string, resumed: boolean): string {
  if (!session || (resumed && tlsVersion !== "TLSv1.3")) return "none";
  const id = kexGroupOf(session);
  return id === undefined || id === 0 ? "none" : (NAMES.get(id) ?? "other");
}

/** Field [19] (an explicit INTEGER) of the SSL_SESSION SEQUENCE, or undefined. */
function kexGroupOf(der: Buffer): number | undefined {
  const seq = readTlv(der, 0);
  if (!seq || seq.tag !== 0x30) return undefined;
  for (let p = seq.start; p < seq.end; ) {
    const f = readTlv(der, p);
    if (!f || f.end > seq.end) return undefined;
    if (f.tag === 0xb3) {
      const int = readTlv(der, f.start);
      if (!int || int.tag !== 0x02 || int.end > f.end || int.end - int.start > 5) return undefined;
      let v = 0;
      for (let i = int.start; i < int.end; i++) v = v * 256 + der[i]!;
      return v;
    }
    p = f.end;
  }
  return undefined;
}

/** One DER element at `p`: its tag and where its contents start and end. */
function readTlv(b: Buffer, p: number): { tag: number; start: number; end: number } | undefined {
  if (p + 2 > b.length) return undefined;
  const tag = b[p]!;
  let len = b[p + 1]!;
  let start = p + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 3 || start + n > b.length) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  return start + len <= b.length ? { tag, start, end: start + len } : undefined;
}
