// Type checking: resolves each node's type, parses right-hand literals by the type of the
// left-hand side, compiles regexes, and refuses anything the compiler could not run.

import type { CompareOp, Expr, RawLiteral, RawRhs, SetItem, TExpr, TRhs, Value } from "./ast.ts";
import { RuleSyntaxError } from "./errors.ts";
import type { RuleErrorCode } from "./errors.ts";
import { parseCidr, parseIp } from "./ip.ts";
import type { IpAddr } from "./ip.ts";
import { stringValueOffset } from "./lexer.ts";
import { compileRegex } from "./regex.ts";
import { lookupField } from "./scheme.ts";
import { BOOL, INT, STRING, arrayOf, sameType, typeName } from "./types.ts";
import type { Type } from "./types.ts";
import { parseWildcard } from "./wildcard.ts";

export interface CheckOptions {
  /** Named lists for `in $name`; items are written as they would be inside `{…}`, strings unquoted. */
  readonly lists?: Readonly<Record<string, readonly string[]>>;
}

const ORDER_OPS: ReadonlySet<CompareOp> = new Set(["lt", "le", "gt", "ge"]);
const STRING_OPS: ReadonlySet<CompareOp> = new Set(["eq", "ne", "lt", "le", "gt", "ge", "contains", "matches", "wildcard", "strict wildcard", "in"]);
const OPS_BY_TYPE: Record<string, ReadonlySet<CompareOp>> = {
  Bool: new Set(["eq", "ne"]),
  Int: new Set(["eq", "ne", "lt", "le", "gt", "ge", "in"]),
  String: STRING_OPS,
  IP: new Set(["eq", "ne", "in"]),
};

/** Checks a parsed expression; the result is a condition (Bool). */
export function typecheck(e: Expr, src: string, options: CheckOptions = {}): TExpr {
  const c = new Checker(src, options);
  const t = c.check(e);
  c.requireCondition(t, "the expression");
  return t;
}

const INT_RE = /^-?\d+$/;

class Checker {
  private readonly src: string;
  private readonly options: CheckOptions;

  constructor(src: string, options: CheckOptions) {
    this.src = src;
    this.options = options;
  }

  private err(code: RuleErrorCode, msg: string, at: { pos: number; len: number }): RuleSyntaxError {
    return new RuleSyntaxError(code, msg, this.src, at.pos, at.len);
  }

  requireCondition(t: TExpr, what: string): void {
    if (t.type.k === "Bool" && !t.each) return;
    const hint =
      t.type.k === "Array" && t.type.elem.k === "Bool"
        ? "; wrap it in any(…) or all(…)"
        : t.each
          ? "; compare it and wrap it in any(…) or all(…)"
          : t.type.k === "Bool"
            ? ""
            : "; compare it with an operator such as eq";
    throw this.err("type_mismatch", `${what} must be a condition (Bool), but this is ${this.describeType(t)}${hint}`, t);
  }

  private describeType(t: TExpr): string {
    return t.each ? `each element of ${typeName(t.type)} (after [*])` : typeName(t.type);
  }

  check(e: Expr): TExpr {
    switch (e.kind) {
      case "bool":
        return { kind: "bool", value: e.value, type: BOOL, each: false, pos: e.pos, len: e.len };
      case "string":
        return { kind: "literal", value: e.value, type: STRING, each: false, pos: e.pos, len: e.len };
      case "int":
        return { kind: "literal", value: e.value, type: INT, each: false, pos: e.pos, len: e.len };
      case "not": {
        const inner = this.check(e.expr);
        this.requireCondition(inner, "the operand of not");
        return { kind: "not", expr: inner, type: BOOL, each: false, pos: e.pos, len: e.len };
      }
      case "logical": {
        const items = e.items.map((i) => {
          const t = this.check(i);
          this.requireCondition(t, `each operand of ${e.op}`);
          return t;
        });
        return { kind: "logical", op: e.op, items, type: BOOL, each: false, pos: e.pos, len: e.len };
      }
      case "field": {
        const field = lookupField(e.name);
        if (!field) throw this.err("unknown_field", `unknown field ${e.name}`, e);
        return { kind: "field", name: e.name, field, type: field.type, each: false, pos: e.pos, len: e.len };
      }
      case "index":
        return this.checkIndex(e);
      case "call":
        return this.checkCall(e);
      case "compare":
        return this.checkCompare(e);
    }
  }

  private checkIndex(e: Expr & { kind: "index" }): TExpr {
    const base = this.check(e.base);
    const span = { pos: e.pos, len: e.len };
    const t = base.type;
    if (t.k !== "Array" && t.k !== "Map") throw this.err("type_mismatch", `${this.describeType(base)} cannot be indexed; only Array and Map values can`, span);
    if (e.key.kind === "star") {
      if (base.each) throw this.err("type_mismatch", "only one [*] is allowed on a value", span);
      return { kind: "index", base, key: e.key, type: t.elem, each: true, pos: e.pos, len: e.len };
    }
    if (t.k === "Map" && e.key.kind !== "key") throw this.err("type_mismatch", `a Map is indexed by a quoted key, e.g. ["x-forwarded-for"]`, span);
    if (t.k === "Array" && e.key.kind !== "pos") throw this.err("type_mismatch", "an Array is indexed by a position, e.g. [0], or [*] for every element", span);
    // Header names are case-insensitive and the map holds them lower-cased: ["X-A"] means ["x-a"].
    const key = e.key.kind === "key" ? { kind: "key" as const, value: e.key.value.toLowerCase() } : e.key;
    return { kind: "index", base, key, type: t.elem, each: base.each, pos: e.pos, len: e.len };
  }

  private checkCall(e: Expr & { kind: "call" }): TExpr {
    const args = e.args.map((a) => this.check(a));
    const span = { pos: e.pos, len: e.len };
    const arity = (min: number, max: number) => {
      if (args.length < min || args.length > max) {
        const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} or ${max}`;
        throw this.err("type_mismatch", `${e.name}() takes ${want} argument${min === 1 && max === 1 ? "" : "s"}, got ${args.length}`, span);
      }
    };
    const want = (a: TExpr, type: Type, allowEach: boolean, n: number) => {
      if (!sameType(a.type, type) || (a.each && !allowEach)) {
        throw this.err("type_mismatch", `argument ${n} of ${e.name}() must be ${typeName(type)}, but this is ${this.describeType(a)}`, a);
      }
    };
    const ret = (type: Type, each: boolean): TExpr => ({
      kind: "call",
      name: e.name,
      args,
      // A function over [*] maps over the elements and yields an Array.
      type: each ? arrayOf(type) : type,
      each: false,
      pos: e.pos,
      len: e.len,
    });
    switch (e.name) {
      case "lower":
      case "upper":
        arity(1, 1);
        want(args[0]!, STRING, true, 1);
        return ret(STRING, args[0]!.each);
      case "len": {
        arity(1, 1);
        const a = args[0]!;
        if (!(a.type.k === "String" || a.type.k === "Array") || (a.each && a.type.k !== "String")) {
          throw this.err("type_mismatch", `len() takes a String or an Array, but this is ${this.describeType(a)}`, a);
        }
        return ret(INT, a.each);
      }
      case "starts_with":
      case "ends_with":
        arity(2, 2);
        want(args[0]!, STRING, true, 1);
        want(args[1]!, STRING, false, 2);
        return ret(BOOL, args[0]!.each);
      case "url_decode": {
        arity(1, 2);
        want(args[0]!, STRING, true, 1);
        const opt = args[1];
        if (opt && !(opt.kind === "literal" && typeof opt.value === "string" && /^[ru]*$/.test(opt.value))) {
          throw this.err("bad_literal", 'the options of url_decode() are a string literal made of r (recursive) and u (%uXXXX), e.g. "r"', opt);
        }
        return ret(STRING, args[0]!.each);
      }
      case "concat": {
        arity(1, Infinity);
        const first = args[0]!;
        if (!(first.type.k === "String" || first.type.k === "Array")) throw this.err("type_mismatch", `concat() joins Strings or Arrays, but this is ${this.describeType(first)}`, first);
        args.forEach((a, i) => want(a, first.type, false, i + 1));
        return ret(first.type, false);
      }
      case "any":
      case "all": {
        arity(1, 1);
        const a = args[0]!;
        if (!(a.type.k === "Array" && a.type.elem.k === "Bool") || a.each) {
          throw this.err("type_mismatch", `${e.name}() takes an Array<Bool> such as ${e.name}(http.request.headers.names[*] eq "x"), but this is ${this.describeType(a)}`, a);
        }
        return ret(BOOL, false);
      }
      default:
        throw this.err("unknown_function", `unknown function ${e.name}()`, span);
    }
  }

  private checkCompare(e: Expr & { kind: "compare" }): TExpr {
    const lhs = this.check(e.lhs);
    const t = lhs.type;
    const ops = OPS_BY_TYPE[t.k];
    const result = (rhs: TRhs): TExpr => ({ kind: "compare", lhs, op: e.op, rhs, type: lhs.each ? arrayOf(BOOL) : BOOL, each: false, pos: e.pos, len: e.len });
    if (!ops) {
      const hint = t.k === "Map" ? ' index it first, e.g. ["name"][0]' : " index it ([0]) or use [*] inside any(…)";
      throw this.err("type_mismatch", `${e.op} cannot compare ${this.describeType(lhs)};${hint}`, e.opSpan);
    }
    if (!ops.has(e.op)) throw this.err("type_mismatch", `${e.op} does not apply to ${typeName(t)} (${typeName(t)} supports ${[...ops].join(", ")})`, e.opSpan);
    const rhs = e.rhs;
    if (e.op === "in") {
      if (rhs.kind === "set") return result({ kind: "set", items: rhs.items.map((i) => this.setItem(i, t)), pos: rhs.pos, len: rhs.len });
      if (rhs.kind === "list") return result(this.list(rhs, t));
      throw this.err("unexpected_token", "expected a set {…} or a $list after in", rhs);
    }
    if (rhs.kind === "set" || rhs.kind === "list") throw this.err("type_mismatch", `${e.op} takes a single value, not a set`, rhs);
    if (e.op === "matches") {
      const pattern = this.stringLiteral(rhs, t, e.op);
      const r = compileRegex(pattern);
      if (!r.ok) {
        const start = stringValueOffset(this.src, rhs.pos, r.offset);
        const end = stringValueOffset(this.src, rhs.pos, r.offset + r.length);
        throw this.err("bad_regex", r.message, { pos: start, len: end - start });
      }
      return result({ kind: "regex", source: pattern, re: r.re, pos: rhs.pos, len: rhs.len });
    }
    if (e.op === "wildcard" || e.op === "strict wildcard") {
      const pattern = this.stringLiteral(rhs, t, e.op);
      const w = parseWildcard(pattern);
      if ("error" in w) {
        const at = stringValueOffset(this.src, rhs.pos, w.offset);
        throw this.err("bad_literal", w.error, { pos: at, len: stringValueOffset(this.src, rhs.pos, w.offset + 2) - at });
      }
      return result({ kind: "value", value: pattern, pos: rhs.pos, len: rhs.len });
    }
    if (ORDER_OPS.has(e.op) && t.k !== "Int" && t.k !== "String") throw this.err("type_mismatch", `${e.op} does not apply to ${typeName(t)}`, e.opSpan);
    return result({ kind: "value", value: this.scalar(rhs, t, e.op), pos: rhs.pos, len: rhs.len });
  }

  private stringLiteral(rhs: RawLiteral, t: Type, op: string): string {
    if (rhs.kind !== "string") throw this.err("type_mismatch", `${op} takes a quoted string, found ${rhs.text}`, rhs);
    if (t.k !== "String") throw this.err("type_mismatch", `${op} applies to String, not ${typeName(t)}`, rhs);
    return rhs.value;
  }

  private scalar(rhs: RawLiteral, t: Type, op: string): Value {
    switch (t.k) {
      case "String":
        if (rhs.kind !== "string") throw this.err("type_mismatch", `expected a quoted String after ${op}, found ${rhs.text}`, rhs);
        return rhs.value;
      case "Bool":
        if (rhs.kind === "word" && (rhs.text === "true" || rhs.text === "false")) return rhs.text === "true";
        throw this.err("type_mismatch", `a Bool compares only with true or false; found ${rhs.kind === "string" ? "a string" : rhs.text} (a Bool field can also stand alone: field, not field)`, rhs);
      case "Int": {
        const w = this.word(rhs, t);
        if (!INT_RE.test(w) || !Number.isSafeInteger(Number(w))) throw this.err("bad_literal", `${w} is not an integer`, rhs);
        return Number(w);
      }
      case "IP": {
        const w = this.word(rhs, t);
        const a = parseIp(w);
        if (!a) throw this.err("bad_literal", `${w} is not an IP address${w.includes("/") ? " (CIDRs go in a set: in {10.0.0.0/8})" : ""}`, rhs);
        return a;
      }
      default:
        throw this.err("type_mismatch", `cannot compare ${typeName(t)}`, rhs);
    }
  }

  private word(rhs: RawLiteral, t: Type): string {
    if (rhs.kind !== "word") throw this.err("type_mismatch", `expected ${t.k === "Int" ? "an Int" : "an IP address"}, found a quoted string`, rhs);
    return rhs.text;
  }

  private setItem(rhs: RawLiteral, t: Type): SetItem {
    const item = this.parseSetItem(rhs.kind === "word" ? rhs.text : rhs.value, rhs.kind === "string", t);
    // A quoted item for an Int/IP field or a bare one for a String is a type error; a malformed number or address is a bad literal.
    if (typeof item === "string") throw this.err((t.k === "String") !== (rhs.kind === "string") ? "type_mismatch" : "bad_literal", item, rhs);
    return item;
  }

  /** One element of a set or list; a string result is the error message. */
  private parseSetItem(text: string, quoted: boolean, t: Type): SetItem | string {
    switch (t.k) {
      case "String":
        return quoted ? { kind: "string", value: text } : `expected a quoted String in the set, found ${text}`;
      case "Int": {
        if (quoted) return "expected an Int or a range (80..443) in the set, found a quoted string";
        const range = /^(-?\d+)\.\.(-?\d+)$/.exec(text);
        if (range) {
          const lo = Number(range[1]), hi = Number(range[2]);
          if (!Number.isSafeInteger(lo) || !Number.isSafeInteger(hi) || lo > hi) return `${text} is not a valid range (low..high)`;
          return { kind: "int_range", lo, hi };
        }
        if (!INT_RE.test(text) || !Number.isSafeInteger(Number(text))) return `${text} is not an integer`;
        return { kind: "int", value: Number(text) };
      }
      case "IP": {
        if (quoted) return "expected an IP address, CIDR or range in the set, found a quoted string";
        if (text.includes("/")) {
          const c = parseCidr(text);
          return c ? { kind: "cidr", addr: c.addr, bits: c.bits } : `${text} is not a CIDR`;
        }
        const dots = text.indexOf("..");
        if (dots >= 0) {
          const lo = parseIp(text.slice(0, dots)), hi = parseIp(text.slice(dots + 2));
          if (!lo || !hi || lo.v !== hi.v || ipLess(hi, lo)) return `${text} is not a valid address range (low..high, one family)`;
          return { kind: "ip_range", lo, hi };
        }
        const a = parseIp(text);
        return a ? { kind: "ip", addr: a } : `${text} is not an IP address`;
      }
      default:
        return `a Bool cannot be used with in`;
    }
  }

  private list(rhs: RawRhs & { kind: "list" }, t: Type): TRhs {
    const lists = this.options.lists;
    const items = lists && Object.hasOwn(lists, rhs.name) ? lists[rhs.name] : undefined;
    if (!items) throw this.err("unknown_list", `unknown list $${rhs.name}`, rhs);
    const parsed = items.map((text) => {
      const it = this.parseSetItem(text, t.k === "String", t);
      if (typeof it === "string") throw this.err("bad_literal", `list $${rhs.name}: ${it}`, rhs);
      return it;
    });
    return { kind: "list", name: rhs.name, items: parsed, pos: rhs.pos, len: rhs.len };
  }
}

function ipLess(a: IpAddr, b: IpAddr): boolean {
  return a.n < b.n;
}

