// Runtime semantics shared by the compiler and the reference interpreter: string functions with
// Cloudflare's definitions (ASCII-only case mapping, byte lengths, percent-decoding).

const HAS_UPPER = /[A-Z]/;
const HAS_LOWER = /[a-z]/;
// eslint-disable-next-line no-control-regex
const NON_ASCII = /[^\x00-\x7f]/;

/** Cloudflare's lower(): only ASCII letters change. */
export function asciiLower(s: string): string {
  if (!HAS_UPPER.test(s)) return s;
  if (!NON_ASCII.test(s)) return s.toLowerCase();
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}

export function asciiUpper(s: string): string {
  if (!HAS_LOWER.test(s)) return s;
  if (!NON_ASCII.test(s)) return s.toUpperCase();
  return s.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

/** len() of a String counts UTF-8 bytes, as Cloudflare does. */
export function byteLength(s: string): number {
  return NON_ASCII.test(s) ? Buffer.byteLength(s, "utf8") : s.length;
}

const decoder = new TextDecoder("utf-8", { fatal: false });
const encoder = new TextEncoder();

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** One pass of percent-decoding; `+` is a space; invalid escapes stay as they are; bad UTF-8 becomes U+FFFD. */
function decodeOnce(s: string, unicode: boolean): string {
  if (s.indexOf("%") < 0 && s.indexOf("+") < 0) return s;
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 43) {
      out.push(32);
      continue;
    }
    if (c === 37) {
      if (unicode && (s[i + 1] === "u" || s[i + 1] === "U") && i + 5 < s.length) {
        const a = hex(s.charCodeAt(i + 2)), b = hex(s.charCodeAt(i + 3)), d = hex(s.charCodeAt(i + 4)), e = hex(s.charCodeAt(i + 5));
        if (a >= 0 && b >= 0 && d >= 0 && e >= 0) {
          for (const byte of encoder.encode(String.fromCharCode((a << 12) | (b << 8) | (d << 4) | e))) out.push(byte);
          i += 5;
          continue;
        }
      }
      const h = hex(s.charCodeAt(i + 1)), l = hex(s.charCodeAt(i + 2));
      if (h >= 0 && l >= 0) {
        out.push((h << 4) | l);
        i += 2;
        continue;
      }
    }
    if (c < 0x80) {
      out.push(c);
    } else {
      const cp = s.codePointAt(i)!;
      for (const byte of encoder.encode(String.fromCodePoint(cp))) out.push(byte);
      if (cp > 0xffff) i++;
    }
  }
  return decoder.decode(Uint8Array.from(out));
}

/** url_decode(s, options): options "r" decodes until nothing changes, "u" accepts %uXXXX. */
export function urlDecode(s: string, options = ""): string {
  const unicode = options.includes("u");
  let cur = decodeOnce(s, unicode);
  if (!options.includes("r")) return cur;
  // Each changing pass shortens the string or removes a "+", so this terminates.
  for (;;) {
    const next = decodeOnce(cur, unicode);
    if (next === cur) return cur;
    cur = next;
  }
}
