// Recursive-descent parser. Precedence, loosest first: or (||), xor (^^), and (&&), not (!),
// then comparisons and parentheses. Size and depth are bounded before any work is done.

import type { CompareOp, Expr, IndexKey, LogicalOp, RawLiteral, RawRhs, Span } from "./ast.ts";
import { RuleSyntaxError } from "./errors.ts";
import { Lexer } from "./lexer.ts";
import type { Token } from "./lexer.ts";
import { lookupField, suggestField } from "./scheme.ts";
import { FUNCTIONS } from "./functions.ts";

/** Largest accepted expression, in UTF-8 bytes (Cloudflare's limit is 4 KB too). */
export const MAX_EXPRESSION_BYTES = 4096;
/** Deepest accepted nesting of parentheses, not, function calls and indexes. */
export const MAX_DEPTH = 64;

const LOGICAL: Record<string, LogicalOp> = { and: "and", "&&": "and", xor: "xor", "^^": "xor", or: "or", "||": "or" };
const COMPARE: Record<string, CompareOp> = {
  eq: "eq", "==": "eq", ne: "ne", "!=": "ne", lt: "lt", "<": "lt", le: "le", "<=": "le", gt: "gt", ">": "gt", ge: "ge", ">=": "ge",
  contains: "contains", matches: "matches", "~": "matches", wildcard: "wildcard", in: "in",
};

export function parse(src: string): Expr {
  checkSize(src);
  return new Parser(src).parseAll();
}

function checkSize(src: string): void {
  if (src.length <= MAX_EXPRESSION_BYTES / 3) return; // cannot exceed the limit even in 3-byte UTF-8
  let bytes = 0;
  for (let i = 0; i < src.length; i++) {
    const c = src.charCodeAt(i);
    bytes += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? 4 : c >= 0xdc00 && c < 0xe000 ? 0 : 3;
    if (bytes > MAX_EXPRESSION_BYTES) {
      throw new RuleSyntaxError("too_large", `expression is larger than ${MAX_EXPRESSION_BYTES} bytes; split it into several rules or use a list`, src, i, 1);
    }
  }
}

class Parser {
  private readonly src: string;
  private readonly lex: Lexer;
  private depth = 0;

  constructor(src: string) {
    this.src = src;
    this.lex = new Lexer(src);
  }

  parseAll(): Expr {
    const first = this.lex.peek();
    if (first.kind === "eof") throw this.err("empty", "empty expression", first);
    const e = this.parseOr();
    const t = this.lex.peek();
    if (t.kind !== "eof") {
      if (t.kind === "punct" && t.text === ")") throw this.err("unbalanced_parens", "this ) has no matching (", t);
      throw this.err("unexpected_token", `unexpected ${describe(t)}: expected and, or, xor or the end of the expression`, t);
    }
    return e;
  }

  private err(code: ConstructorParameters<typeof RuleSyntaxError>[0], msg: string, at: { pos: number; len: number }): RuleSyntaxError {
    return new RuleSyntaxError(code, msg, this.src, at.pos, at.len);
  }

  private enter(at: Token): void {
    if (++this.depth > MAX_DEPTH) throw this.err("too_deep", `expression is nested deeper than ${MAX_DEPTH} levels`, at);
  }

  private span(start: number): Span {
    return { pos: start, len: this.lex.lastEnd - start };
  }

  private parseLogical(op: LogicalOp, sub: () => Expr): Expr {
    const first = sub();
    const items = [first];
    for (;;) {
      const t = this.lex.peek();
      if ((t.kind === "ident" || t.kind === "punct") && LOGICAL[t.text] === op) {
        this.lex.next();
        items.push(sub());
      } else break;
    }
    if (items.length === 1) return first;
    return { kind: "logical", op, items, ...this.span(first.pos) };
  }

  private parseOr(): Expr {
    return this.parseLogical("or", () => this.parseXor());
  }

  private parseXor(): Expr {
    return this.parseLogical("xor", () => this.parseAnd());
  }

  private parseAnd(): Expr {
    return this.parseLogical("and", () => this.parseNot());
  }

  private parseNot(): Expr {
    const t = this.lex.peek();
    if ((t.kind === "ident" && t.text === "not") || (t.kind === "punct" && t.text === "!")) {
      this.lex.next();
      this.enter(t);
      const expr = this.parseNot();
      this.depth--;
      return { kind: "not", expr, ...this.span(t.pos) };
    }
    return this.parseComparison();
  }

  private parseComparison(): Expr {
    const lhs = this.parsePrimary();
    const t = this.lex.peek();
    let op: CompareOp | undefined;
    if ((t.kind === "ident" || t.kind === "punct") && Object.hasOwn(COMPARE, t.text)) op = COMPARE[t.text];
    if (t.kind === "ident" && t.text === "strict") {
      this.lex.next();
      const w = this.lex.peek();
      if (!(w.kind === "ident" && w.text === "wildcard")) throw this.err("unexpected_token", `expected wildcard after strict, found ${describe(w)}`, w);
      op = "strict wildcard";
    }
    if (!op) return lhs;
    this.lex.next();
    const opSpan = { pos: t.pos, len: this.lex.lastEnd - t.pos };
    if (lhs.kind === "string" || lhs.kind === "int" || lhs.kind === "bool") {
      throw this.err("unexpected_token", "a comparison starts with a field or a function call, not a literal", lhs);
    }
    if (lhs.kind === "logical" || lhs.kind === "not" || lhs.kind === "compare") {
      throw this.err("unexpected_token", `${op} cannot apply to a parenthesised condition`, opSpan);
    }
    const rhs = this.parseRhs(op, opSpan);
    return { kind: "compare", lhs, op, opSpan, rhs, ...this.span(lhs.pos) };
  }

  private parseRhs(op: CompareOp, opSpan: Span): RawRhs {
    const t = this.lex.rhsToken();
    if (t.kind === "punct" && t.text === "{") {
      if (op !== "in") throw this.err("unexpected_token", `a set {…} goes with in, not ${op}`, t);
      this.enter(t);
      const items: RawLiteral[] = [];
      for (;;) {
        const it = this.lex.rhsToken();
        if (it.kind === "punct" && it.text === "}") break;
        if (it.kind === "punct" && it.text === ",") continue;
        if (it.kind === "eof") throw this.err("unbalanced_parens", "this { is never closed", t);
        items.push(this.rawLiteral(it, "in a set"));
      }
      this.depth--;
      const span = this.span(t.pos);
      if (items.length === 0) throw this.err("bad_literal", "empty set", span);
      return { kind: "set", items, ...span };
    }
    if (t.kind === "list") {
      if (op !== "in") throw this.err("unexpected_token", `a list $${t.text} goes with in, not ${op}`, t);
      return { kind: "list", name: t.text, pos: t.pos, len: t.len };
    }
    if (op === "in") throw this.err("unexpected_token", `expected a set {…} or a $list after in, found ${describe(t)}`, t.kind === "eof" ? opSpan : t);
    return this.rawLiteral(t, `after ${op}`);
  }

  private rawLiteral(t: Token, where: string): RawLiteral {
    if (t.kind === "string") return { kind: "string", value: t.text, pos: t.pos, len: t.len };
    if (t.kind === "word" || t.kind === "number") return { kind: "word", text: t.text, pos: t.pos, len: t.len };
    if (t.kind === "punct" && t.text === ")") throw this.err("unexpected_token", `expected a value ${where}, found )`, t);
    throw this.err("unexpected_token", `expected a value ${where}, found ${describe(t)}`, t);
  }

  private parsePrimary(): Expr {
    const t = this.lex.next();
    let e: Expr;
    if (t.kind === "punct" && t.text === "(") {
      this.enter(t);
      if (this.lex.peek().kind === "eof") throw this.err("unbalanced_parens", "this ( is never closed", t);
      const inner = this.parseOr();
      const close = this.lex.peek();
      if (close.kind === "eof") throw this.err("unbalanced_parens", "this ( is never closed", t);
      if (!(close.kind === "punct" && close.text === ")")) throw this.err("unexpected_token", `expected ) or an operator, found ${describe(close)}`, close);
      this.lex.next();
      this.depth--;
      // Keep the parenthesised span so errors point at the whole group.
      e = { ...inner, pos: t.pos, len: this.lex.lastEnd - t.pos } as Expr;
    } else if (t.kind === "punct" && t.text === ")") {
      throw this.err("unbalanced_parens", "this ) has no matching (", t);
    } else if (t.kind === "string") {
      e = { kind: "string", value: t.text, pos: t.pos, len: t.len };
    } else if (t.kind === "number") {
      e = { kind: "int", value: this.int(t), pos: t.pos, len: t.len };
    } else if (t.kind === "ident") {
      if (t.text === "true" || t.text === "false") return { kind: "bool", value: t.text === "true", pos: t.pos, len: t.len };
      const after = this.lex.peek();
      if (after.kind === "punct" && after.text === "(") e = this.parseCall(t);
      else e = this.fieldRef(t);
    } else if (t.kind === "eof") {
      throw this.err("unexpected_token", "unexpected end of expression: expected a field, a function or (", t);
    } else {
      throw this.err("unexpected_token", `unexpected ${describe(t)}: expected a field, a function or (`, t);
    }
    return this.parseIndexes(e);
  }

  private int(t: Token): number {
    const v = Number(t.text);
    if (!Number.isSafeInteger(v)) throw this.err("bad_literal", `integer ${t.text} is out of range`, t);
    return v;
  }

  private fieldRef(t: Token): Expr {
    if (lookupField(t.text)) return { kind: "field", name: t.text, pos: t.pos, len: t.len };
    if (Object.hasOwn(COMPARE, t.text) || Object.hasOwn(LOGICAL, t.text) || t.text === "not" || t.text === "strict") {
      throw this.err("unexpected_token", `unexpected operator ${t.text}: expected a field, a function or (`, t);
    }
    const hint = suggestField(t.text);
    throw this.err("unknown_field", `unknown field ${t.text}${hint ? ` (did you mean ${hint}?)` : ""}`, t);
  }

  private parseCall(name: Token): Expr {
    if (!Object.hasOwn(FUNCTIONS, name.text)) throw this.err("unknown_function", `unknown function ${name.text}()`, name);
    const open = this.lex.next();
    this.enter(open);
    const args: Expr[] = [];
    if (!(this.lex.peek().kind === "punct" && this.lex.peek().text === ")")) {
      for (;;) {
        if (this.lex.peek().kind === "eof") throw this.err("unbalanced_parens", "this ( is never closed", open);
        args.push(this.parseOr());
        const sep = this.lex.peek();
        if (sep.kind === "punct" && sep.text === ",") {
          this.lex.next();
          continue;
        }
        if (sep.kind === "punct" && sep.text === ")") break;
        if (sep.kind === "eof") throw this.err("unbalanced_parens", "this ( is never closed", open);
        throw this.err("unexpected_token", `expected , or ) in the arguments of ${name.text}(), found ${describe(sep)}`, sep);
      }
    }
    this.lex.next();
    this.depth--;
    return { kind: "call", name: name.text, args, ...this.span(name.pos) };
  }

  private parseIndexes(base: Expr): Expr {
    let e = base;
    let levels = 0;
    for (;;) {
      const open = this.lex.peek();
      if (!(open.kind === "punct" && open.text === "[")) break;
      this.lex.next();
      this.enter(open);
      levels++;
      const k = this.lex.next();
      let key: IndexKey;
      if (k.kind === "string") key = { kind: "key", value: k.text };
      else if (k.kind === "number") key = { kind: "pos", value: this.int(k) };
      else if (k.kind === "punct" && k.text === "*") key = { kind: "star" };
      else if (k.kind === "eof") throw this.err("unbalanced_parens", "this [ is never closed", open);
      else throw this.err("unexpected_token", `expected a "key", a position or * inside […], found ${describe(k)}`, k);
      const close = this.lex.next();
      if (close.kind === "eof") throw this.err("unbalanced_parens", "this [ is never closed", open);
      if (!(close.kind === "punct" && close.text === "]")) throw this.err("unexpected_token", `expected ], found ${describe(close)}`, close);
      e = { kind: "index", base: e, key, ...this.span(base.pos) };
    }
    this.depth -= levels;
    return e;
  }
}

function describe(t: Token): string {
  switch (t.kind) {
    case "eof":
      return "end of expression";
    case "string":
      return "a string";
    case "number":
      return `number ${t.text}`;
    case "word":
      return `${t.text}`;
    case "list":
      return `$${t.text}`;
    default:
      return JSON.stringify(t.text);
  }
}
