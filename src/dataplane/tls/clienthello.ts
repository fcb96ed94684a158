// Reads the SNI out of a TLS ClientHello before any TLS state exists, so the connection can
// be handed to the TLS server built for that hostname's policy (Node cannot vary
// CertificateRequest per SNI inside one server). Handles a ClientHello split across records.

export type HelloResult =
  // Need more bytes: nothing can change before the buffer holds `need` bytes, so the caller
  // parses again only then (a ClientHello dripped a byte at a time costs linear work).
  | { kind: "more"; need: number }
  | { kind: "hello"; servername: string | null }
  | { kind: "http" } // plaintext HTTP sent to the TLS port
  | { kind: "invalid"; reason: string };

const MAX_HELLO = 64 * 1024;
// Real clients fragment a ClientHello into a few records at most; each parse walks them all.
const MAX_RECORDS = 64;
const HTTP_METHODS = ["GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PRI"].map((m) => `${m} `);

/** Parses as much of `buf` as is there; call again once it holds the bytes "more" asks for. */
export function parseClientHello(buf: Buffer): HelloResult {
  if (buf.length === 0) return more(1);
  if (buf[0] !== 0x16) return plaintext(buf);
  // Reassemble handshake bytes from consecutive handshake records.
  const parts: Buffer[] = [];
  let got = 0;
  let need = -1;
  for (let off = 0; ; ) {
    if (parts.length === MAX_RECORDS) return invalid("ClientHello in too many records");
    if (off + 5 > buf.length) return more(off + 5);
    if (buf[off] !== 0x16) return invalid("ClientHello interrupted by another record type");
    if (buf[off + 1] !== 0x03) return invalid("unsupported record version");
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16_384 + 2048) return invalid("bad record length");
    if (off + 5 + len > buf.length) return more(off + 5 + len);
    parts.push(buf.subarray(off + 5, off + 5 + len));
    got += len;
    off += 5 + len;
    if (need < 0 && got >= 4) {
      const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      if (hs[0] !== 0x01) return invalid("first handshake message is not a ClientHello");
      need = 4 + hs.readUIntBE(1, 3);
      if (need > MAX_HELLO) return invalid("ClientHello too large");
    }
    if (need >= 0 && got >= need) {
      const hs = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
      return readSni(hs.subarray(4, need));
    }
  }
}

function invalid(reason: string): HelloResult {
  return { kind: "invalid", reason };
}

/** Past MAX_HELLO and its record headers no ClientHello can complete: refuse early. */
function more(need: number): HelloResult {
  return need > MAX_HELLO + 5 * MAX_RECORDS ? invalid("ClientHello too large") : { kind: "more", need };
}

/** Not a handshake record: plaintext HTTP if it starts with a method and a space (waiting for them if they are cut). */
function plaintext(buf: Buffer): HelloResult {
  const head = buf.toString("latin1", 0, 8);
  if (HTTP_METHODS.some((m) => head.startsWith(m))) return { kind: "http" };
  if (HTTP_METHODS.some((m) => m.startsWith(head))) return more(head.length + 1);
  return invalid("not a TLS handshake record");
}

function readSni(b: Buffer): HelloResult {
  let p = 2 + 32; // client_version, random
  if (p + 1 > b.length) return invalid("truncated ClientHello");
  p += 1 + b[p]!; // session_id
  if (p + 2 > b.length) return invalid("truncated ClientHello");
  p += 2 + b.readUInt16BE(p); // cipher_suites
  if (p + 1 > b.length) return invalid("truncated ClientHello");
  p += 1 + b[p]!; // compression_methods
  if (p === b.length) return { kind: "hello", servername: null }; // no extensions
  if (p + 2 > b.length) return invalid("truncated extensions");
  const end = p + 2 + b.readUInt16BE(p);
  if (end > b.length) return invalid("truncated extensions");
  for (p += 2; p + 4 <= end; ) {
    const type = b.readUInt16BE(p);
    const len = b.readUInt16BE(p + 2);
    p += 4;
    if (p + len > end) return invalid("truncated extension");
    if (type === 0) return parseServerName(b.subarray(p, p + len));
    p += len;
  }
  return { kind: "hello", servername: null };
}

function parseServerName(e: Buffer): HelloResult {
  if (e.length < 5) return invalid("bad server_name extension");
  const listEnd = Math.min(e.length, 2 + e.readUInt16BE(0));
  for (let p = 2; p + 3 <= listEnd; ) {
    const type = e[p]!;
    const len = e.readUInt16BE(p + 1);
    p += 3;
    if (p + len > listEnd) return invalid("bad server_name extension");
    if (type === 0) {
      const name = e.toString("latin1", p, p + len).toLowerCase();
      // RFC 6066: a host name, no trailing dot, no IP literals; reject anything else early.
      if (!/^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(name) || name.length > 253) return invalid("malformed server name");
      return { kind: "hello", servername: name.endsWith(".") ? name.slice(0, -1) : name };
    }
    p += len;
  }
  return { kind: "hello", servername: null };
}
