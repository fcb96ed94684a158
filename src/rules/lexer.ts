// Tokens of the rules language. The parser drives the lexer: after an operator it asks for a
// right-hand literal (`rhsToken`), where bare words such as 10.0.0.0/8, 80..443 or ::1 are read
// whole and typed later, since their meaning depends on the field's type.

import { RuleSyntaxError } from "./errors.ts";

export type TokenKind =
  | "ident" // field, function, keyword or word operator: http.host, lower, and, eq, true
  | "number"
  | "string"
  | "word" // bare right-hand literal
  | "list" // $name
  | "punct"
  | "eof";

export interface Token {
  readonly kind: TokenKind;
  /** Identifier, punctuation, word or list name as written; the decoded value for strings. */
  readonly text: string;
  readonly pos: number;
  readonly len: number;
}

const IDENT_START = /[A-Za-z_]/;
const IDENT_PART = /[A-Za-z0-9_]/;
const WORD_CHAR = /[A-Za-z0-9_.:/+-]/;
const PUNCT2 = ["==", "!=", "<=", ">=", "&&", "||", "^^"];
const PUNCT1 = "()[]{},<>~!*";

export class Lexer {
  private readonly src: string;
  private pos = 0;
  private peeked: Token | undefined;

  constructor(src: string) {
    this.src = src;
  }

  /** Offset just after the last consumed token. */
  lastEnd = 0;

  peek(): Token {
    this.peeked ??= this.scan();
    return this.peeked;
  }

  next(): Token {
    const t = this.peek();
    this.peeked = undefined;
    this.lastEnd = t.pos + t.len;
    return t;
  }

  /** Reads a right-hand literal: a string, a `$list`, a `{`, or a bare word. */
  rhsToken(): Token {
    // Never called with a token peeked: the parser calls it right after consuming the operator
    // (next()) or a previous right-hand token, and scan() only while nothing is peeked.
    this.skipSpace();
    const start = this.pos;
    const c = this.src[start];
    if (c === undefined) return this.take({ kind: "eof", text: "", pos: start, len: 0 });
    if (c === '"' || (c === "r" && (this.src[start + 1] === '"' || this.src[start + 1] === "#"))) return this.take(this.scanString());
    if (c === "$") {
      let end = start + 1;
      while (end < this.src.length && IDENT_PART.test(this.src[end]!)) end++;
      if (end === start + 1) throw new RuleSyntaxError("bad_literal", "expected a list name after $", this.src, start, 1);
      this.pos = end;
      return this.take({ kind: "list", text: this.src.slice(start + 1, end), pos: start, len: end - start });
    }
    if (c === "{" || c === "}" || c === ",") {
      this.pos++;
      return this.take({ kind: "punct", text: c, pos: start, len: 1 });
    }
    let end = start;
    while (end < this.src.length && WORD_CHAR.test(this.src[end]!)) end++;
    if (end === start) return this.next(); // let the parser report what is there
    this.pos = end;
    return this.take({ kind: "word", text: this.src.slice(start, end), pos: start, len: end - start });
  }

  private take(t: Token): Token {
    this.lastEnd = t.pos + t.len;
    return t;
  }

  private skipSpace(): void {
    while (this.pos < this.src.length) {
      const c = this.src.charCodeAt(this.pos);
      if (c === 32 || c === 9 || c === 10 || c === 13) this.pos++;
      else break;
    }
  }

  private scan(): Token {
    this.skipSpace();
    const src = this.src;
    const start = this.pos;
    if (start >= src.length) return { kind: "eof", text: "", pos: start, len: 0 };
    const c = src[start]!;
    if (c === '"' || (c === "r" && (src[start + 1] === '"' || src[start + 1] === "#"))) return this.scanString();
    if (IDENT_START.test(c)) {
      let end = start + 1;
      for (;;) {
        while (end < src.length && IDENT_PART.test(src[end]!)) end++;
        // Dotted names: http.request.uri.path
        if (src[end] === "." && end + 1 < src.length && IDENT_START.test(src[end + 1]!)) end++;
        else break;
      }
      this.pos = end;
      return { kind: "ident", text: src.slice(start, end), pos: start, len: end - start };
    }
    if (c >= "0" && c <= "9") {
      let end = start + 1;
      while (end < src.length && src[end]! >= "0" && src[end]! <= "9") end++;
      this.pos = end;
      return { kind: "number", text: src.slice(start, end), pos: start, len: end - start };
    }
    for (const p of PUNCT2) {
      if (src.startsWith(p, start)) {
        this.pos += p.length;
        return { kind: "punct", text: p, pos: start, len: p.length };
      }
    }
    if (PUNCT1.includes(c)) {
      this.pos++;
      return { kind: "punct", text: c, pos: start, len: 1 };
    }
    if (c === "$") return this.rhsToken();
    const cp = src.codePointAt(start)!;
    throw new RuleSyntaxError("unexpected_token", `unexpected character ${JSON.stringify(String.fromCodePoint(cp))}`, src, start, cp > 0xffff ? 2 : 1);
  }

  /** "…" with \" \\ \xHH escapes, or raw r"…" / r#"…"# with none. */
  private scanString(): Token {
    const src = this.src;
    const start = this.pos;
    if (src[start] === "r") {
      let i = start + 1;
      let hashes = 0;
      while (src[i] === "#") {
        hashes++;
        i++;
      }
      if (src[i] !== '"') throw new RuleSyntaxError("bad_literal", 'a raw string starts with r" or r#"', src, start, i - start + 1);
      const close = '"' + "#".repeat(hashes);
      const end = src.indexOf(close, i + 1);
      if (end < 0) throw new RuleSyntaxError("bad_literal", "unterminated raw string", src, start, i - start + 1);
      this.pos = end + close.length;
      return { kind: "string", text: src.slice(i + 1, end), pos: start, len: this.pos - start };
    }
    let out = "";
    let i = start + 1;
    for (;;) {
      if (i >= src.length) throw new RuleSyntaxError("bad_literal", "unterminated string", src, start, 1);
      const ch = src[i]!;
      if (ch === '"') break;
      if (ch === "\\") {
        const n = src[i + 1];
        if (n === '"' || n === "\\") {
          out += n;
          i += 2;
        } else if (n === "x" && /^[0-9a-fA-F]{2}$/.test(src.slice(i + 2, i + 4))) {
          out += String.fromCharCode(parseInt(src.slice(i + 2, i + 4), 16));
          i += 4;
        } else {
          throw new RuleSyntaxError("bad_literal", 'unknown escape in string: use \\", \\\\ or \\xHH, or a raw string r"…" for regular expressions', src, i, 2);
        }
      } else {
        out += ch;
        i++;
      }
    }
    this.pos = i + 1;
    return { kind: "string", text: out, pos: start, len: this.pos - start };
  }
}

/** Maps an offset inside a string literal's decoded value back to the expression (for regex errors). */
export function stringValueOffset(src: string, literalPos: number, valueOffset: number): number {
  if (src[literalPos] === "r") {
    let i = literalPos + 1;
    while (src[i] === "#") i++;
    return i + 1 + valueOffset;
  }
  let i = literalPos + 1;
  for (let k = 0; k < valueOffset && i < src.length; k++) {
    if (src[i] === "\\") i += src[i + 1] === "x" ? 4 : 2;
    else i++;
  }
  return i;
}
