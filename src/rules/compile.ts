// The compiler: a checked tree becomes a tree of closures, specialised per operator and type,
// with constants folded, sets as hash sets, integer ranges as sorted intervals and CIDRs in a
// prefix table. Fields are read through an Env, which decides whether a field is read directly
// (used once in the program) or through a per-evaluation cache (used more than once).

import type { SetItem, TExpr, TRhs } from "./ast.ts";
import type { RequestInput } from "./input.ts";
import { IpPrefixSet, ipEquals, rangeToCidrs } from "./ip.ts";
import type { IpAddr } from "./ip.ts";
import type { FieldDef } from "./scheme.ts";
import { asciiLower, asciiUpper, byteLength, urlDecode } from "./values.ts";
import { parseWildcard, wildcardMatcher } from "./wildcard.ts";

export type Cond = (i: RequestInput) => boolean;
type ValFn = (i: RequestInput) => unknown;
/** A compiled node: either a constant (folded at compile time) or a function of the request. */
type Node<T> = { readonly c: true; readonly v: T } | { readonly c: false; readonly f: (i: RequestInput) => T };

const konst = <T>(v: T): Node<T> => ({ c: true, v });
const fn = <T>(f: (i: RequestInput) => T): Node<T> => ({ c: false, f });

/**
 * How compiled code reads fields. `begin()` must be called once per evaluation: it invalidates
 * the cache by bumping an epoch instead of clearing arrays, so an evaluation allocates nothing.
 */
export class Env {
  private readonly readers = new Map<string, ValFn>();
  private readonly counts: ReadonlyMap<string, number>;
  // Epoch 0 is never current, so fresh slots (mark 0) are never mistaken for cached values.
  private readonly state = { ep: 1 };
  private marks: number[] = [];
  private vals: unknown[] = [];

  constructor(fieldUseCounts: ReadonlyMap<string, number>) {
    this.counts = fieldUseCounts;
  }

  /** True when some field is cached, i.e. begin() must run before each evaluation. */
  get needsBegin(): boolean {
    return this.marks.length > 0;
  }

  begin(): void {
    if (++this.state.ep > 0x3fffffff) {
      this.state.ep = 1;
      this.marks.fill(0);
    }
  }

  /**
   * A function of a field (lower(), len()), cached per evaluation when the field is used more
   * than once: a ruleset of `http.host wildcard "…"` rules lower-cases the host once, not per rule.
   */
  derived(field: FieldDef, name: "lower" | "len", g: (v: string) => unknown): ValFn {
    const key = `${name}(${field.name})`;
    let r = this.readers.get(key);
    if (r) return r;
    const read = this.reader(field);
    r = this.cached((i) => {
      const v = read(i);
      return v === undefined ? undefined : g(v as string);
    }, (this.counts.get(field.name) ?? 0) > 1);
    this.readers.set(key, r);
    return r;
  }

  private cached(read: ValFn, multi: boolean): ValFn {
    if (!multi) return read;
    const k = this.marks.length;
    this.marks.push(0);
    this.vals.push(undefined);
    const marks = this.marks, vals = this.vals, st = this.state;
    return (i) => {
      if (marks[k] === st.ep) return vals[k];
      const v = read(i);
      vals[k] = v;
      marks[k] = st.ep;
      return v;
    };
  }

  reader(field: FieldDef): ValFn {
    let r = this.readers.get(field.name);
    if (r) return r;
    r = this.cached(field.read, (this.counts.get(field.name) ?? 0) > 1);
    this.readers.set(field.name, r);
    return r;
  }
}

/** Counts how often each field is named, so fields used once skip the cache. */
export function countFields(e: TExpr, into: Map<string, number>): Map<string, number> {
  switch (e.kind) {
    case "field":
      into.set(e.name, (into.get(e.name) ?? 0) + 1);
      break;
    case "not":
      countFields(e.expr, into);
      break;
    case "logical":
      for (const i of e.items) countFields(i, into);
      break;
    case "compare":
      countFields(e.lhs, into);
      break;
    case "index":
      countFields(e.base, into);
      break;
    case "call":
      for (const a of e.args) countFields(a, into);
      break;
    default:
      break;
  }
  return into;
}

/** Compiles a condition; `constant` is set when it folded to true or false. */
export function compileCondition(e: TExpr, env: Env): { test: Cond; constant?: boolean } {
  const n = cond(e, env);
  if (n.c) return { test: n.v ? () => true : () => false, constant: n.v };
  return { test: n.f };
}

function cond(e: TExpr, env: Env): Node<boolean> {
  switch (e.kind) {
    case "bool":
      return konst(e.value);
    case "not": {
      // not <Bool field>: one closure instead of three (each closure call is megamorphic).
      if (e.expr.kind === "field") {
        const read = env.reader(e.expr.field);
        return fn((i) => read(i) !== true);
      }
      const inner = cond(e.expr, env);
      if (inner.c) return konst(!inner.v);
      const f = inner.f;
      return fn((i) => !f(i));
    }
    case "logical":
      return logical(e.op, e.items.map((x) => cond(x, env)));
    case "compare":
      if (e.lhs.each) throw new Error("internal: element-wise comparison used as a condition");
      return compare(e, env) as Node<boolean>;
    default: {
      if (e.kind === "field") {
        const read = env.reader(e.field);
        return fn((i) => read(i) === true);
      }
      const direct = e.kind === "call" ? affixCondition(e, env) : undefined;
      if (direct) return direct;
      // A Bool value (field, function, index): missing counts as false.
      const v = value(e, env);
      if (v.c) return konst(v.v === true);
      const f = v.f;
      return fn((i) => f(i) === true);
    }
  }
}

/** starts_with / ends_with with a literal affix, as a condition: fused into one closure. */
function affixCondition(e: TExpr & { kind: "call" }, env: Env): Node<boolean> | undefined {
  if ((e.name !== "starts_with" && e.name !== "ends_with") || e.args[0]!.each || e.args[1]!.kind !== "literal") return undefined;
  const a = value(e.args[0]!, env);
  const p = String(e.args[1]!.value);
  if (a.c) return konst(typeof a.v === "string" && (e.name === "starts_with" ? a.v.startsWith(p) : a.v.endsWith(p)));
  const f = a.f;
  return e.name === "starts_with"
    ? fn((i) => {
        const v = f(i);
        return v !== undefined && (v as string).startsWith(p);
      })
    : fn((i) => {
        const v = f(i);
        return v !== undefined && (v as string).endsWith(p);
      });
}

function logical(op: "and" | "or" | "xor", items: Node<boolean>[]): Node<boolean> {
  if (op === "xor") {
    let flip = false;
    const fs: Cond[] = [];
    for (const n of items) {
      if (n.c) flip = flip !== n.v;
      else fs.push(n.f);
    }
    if (fs.length === 0) return konst(flip);
    if (fs.length === 1) {
      const a = fs[0]!;
      return flip ? fn((i) => !a(i)) : fn(a);
    }
    return fn((i) => {
      let r = flip;
      for (let k = 0; k < fs.length; k++) r = r !== fs[k]!(i);
      return r;
    });
  }
  // and: a constant false decides, constant trues drop out; or: the dual.
  const decisive = op === "or";
  const fs: Cond[] = [];
  for (const n of items) {
    if (n.c) {
      if (n.v === decisive) return konst(decisive);
    } else fs.push(n.f);
  }
  if (fs.length === 0) return konst(!decisive);
  if (fs.length === 1) return fn(fs[0]!);
  if (op === "and") {
    if (fs.length === 2) {
      const [a, b] = fs as [Cond, Cond];
      return fn((i) => a(i) && b(i));
    }
    if (fs.length === 3) {
      const [a, b, c] = fs as [Cond, Cond, Cond];
      return fn((i) => a(i) && b(i) && c(i));
    }
    return fn((i) => {
      for (let k = 0; k < fs.length; k++) if (!fs[k]!(i)) return false;
      return true;
    });
  }
  if (fs.length === 2) {
    const [a, b] = fs as [Cond, Cond];
    return fn((i) => a(i) || b(i));
  }
  return fn((i) => {
    for (let k = 0; k < fs.length; k++) if (fs[k]!(i)) return true;
    return false;
  });
}

// ---- values ----

function value(e: TExpr, env: Env): Node<unknown> {
  switch (e.kind) {
    case "literal":
    case "bool":
      return konst(e.value);
    case "field":
      return fn(env.reader(e.field));
    case "index":
      return index(e, env);
    case "call":
      return call(e, env);
    case "compare":
      return compare(e, env);
    default:
      return cond(e, env);
  }
}

function index(e: TExpr & { kind: "index" }, env: Env): Node<unknown> {
  const base = value(e.base, env);
  const key = e.key;
  let get: (v: unknown) => unknown;
  if (key.kind === "star") {
    // The array itself stands for its elements; a Map's elements are its values.
    get = e.base.type.k === "Map" ? (m) => Object.values(m as Record<string, unknown>) : (a) => a;
  } else if (key.kind === "key") {
    const k = key.value;
    get = (m) => (Object.hasOwn(m as object, k) ? (m as Record<string, unknown>)[k] : undefined);
  } else {
    const p = key.value;
    get = (a) => (a as unknown[])[p];
  }
  // Below an earlier [*], index every element and drop the missing ones.
  const apply = e.base.each
    ? (v: unknown) => {
        const out: unknown[] = [];
        for (const x of v as unknown[]) {
          const y = get(x);
          if (y !== undefined) out.push(y);
        }
        return out;
      }
    : get;
  return mapNode(base, (v) => (v === undefined ? undefined : apply(v)));
}

function mapNode(n: Node<unknown>, g: (v: unknown) => unknown): Node<unknown> {
  if (n.c) return konst(g(n.v));
  const f = n.f;
  return fn((i) => g(f(i)));
}

function call(e: TExpr & { kind: "call" }, env: Env): Node<unknown> {
  const args = e.args.map((a) => value(a, env));
  const each = e.args[0]?.each === true;
  // Unary string functions, mapped over elements after [*].
  const unary = (g: (s: never) => unknown): Node<unknown> => {
    const h = each ? (v: unknown) => (v as never[]).map(g) : (v: unknown) => g(v as never);
    return mapNode(args[0]!, (v) => (v === undefined ? undefined : h(v)));
  };
  switch (e.name) {
    case "lower":
      if (e.args[0]!.kind === "field") return fn(env.derived(e.args[0]!.field, "lower", asciiLower));
      return unary(asciiLower);
    case "upper":
      return unary(asciiUpper);
    case "len":
      if (e.args[0]!.kind === "field" && e.args[0]!.type.k === "String") return fn(env.derived(e.args[0]!.field, "len", byteLength));
      return unary((v: string | unknown[]) => (typeof v === "string" ? byteLength(v) : v.length));
    case "url_decode": {
      const opt = args[1];
      const options = opt && opt.c ? String(opt.v) : "";
      return unary((s: string) => urlDecode(s, options));
    }
    case "starts_with":
    case "ends_with": {
      const [a, b] = args as [Node<unknown>, Node<unknown>];
      const starts = e.name === "starts_with";
      const test = (s: string, p: string) => (starts ? s.startsWith(p) : s.endsWith(p));
      const one = (s: unknown, p: unknown): unknown => {
        if (s === undefined || p === undefined) return undefined;
        return each ? (s as string[]).map((x) => test(x, p as string)) : test(s as string, p as string);
      };
      if (a.c && b.c) return konst(one(a.v, b.v));
      if (b.c) {
        const fa = (a as { f: ValFn }).f, p = b.v;
        return fn((i) => one(fa(i), p));
      }
      const fa = a.c ? () => a.v : a.f, fb = b.f;
      return fn((i) => one(fa(i), fb(i)));
    }
    case "concat": {
      const join = (vs: unknown[]): unknown => {
        if (vs.some((v) => v === undefined)) return undefined;
        return typeof vs[0] === "string" ? vs.join("") : (vs as unknown[][]).flat(1);
      };
      if (args.every((a) => a.c)) return konst(join(args.map((a) => (a as { v: unknown }).v)));
      const fs = args.map((a) => (a.c ? () => a.v : a.f));
      return fn((i) => join(fs.map((f) => f(i))));
    }
    case "any":
      return mapNode(args[0]!, (v) => v !== undefined && (v as boolean[]).some((x) => x));
    case "all":
      // A missing array is not "all true": for a security rule, absent must not satisfy all().
      return mapNode(args[0]!, (v) => v !== undefined && (v as boolean[]).every((x) => x));
    default:
      throw new Error(`internal: no compiler for ${e.name}()`);
  }
}

// ---- comparisons ----

function compare(e: TExpr & { kind: "compare" }, env: Env): Node<unknown> {
  if (e.op === "wildcard" && e.lhs.kind === "field" && e.rhs.kind === "value") {
    // Case-insensitive wildcard on a field: match the (cached) lower-cased value.
    const m = wildcardFor(asciiLower(e.rhs.value as string));
    const lowered = env.derived(e.lhs.field, "lower", asciiLower);
    return fn((i) => {
      const v = lowered(i);
      return v !== undefined && m(v as string);
    });
  }
  const lhs = value(e.lhs, env);
  const r = e.rhs;
  if (!e.lhs.each && !lhs.c) {
    // `eq literal` and String `in {…}` test the read value against the literals directly, in one
    // closure (a missing value, undefined, is never among them, so it stays false by itself).
    const lits =
      e.op === "eq" && r.kind === "value" && typeof r.value !== "object"
        ? [r.value]
        : e.op === "in" && e.lhs.type.k === "String" && (r.kind === "set" || r.kind === "list")
          ? stringValues(r.items)
          : undefined;
    if (lits) {
      const f = lhs.f;
      if (lits.length === 1) {
        const lit = lits[0];
        return fn((i) => f(i) === lit);
      }
      const set = new Set<unknown>(lits);
      return fn((i) => set.has(f(i)));
    }
  }
  const pred = predicate(e.op, e.lhs.type.k, r);
  if (e.lhs.each) {
    return mapNode(lhs, (v) => (v === undefined ? undefined : (v as unknown[]).map(pred)));
  }
  if (lhs.c) return konst(lhs.v !== undefined && pred(lhs.v));
  const f = lhs.f;
  return fn((i) => {
    const v = f(i);
    return v !== undefined && pred(v);
  });
}

/** The values of a String set's items (the type checker made them all strings). */
export function stringValues(items: readonly SetItem[]): string[] {
  return items.map((it) => (it as { value: string }).value);
}

/** The test applied to a present left-hand value. */
function predicate(op: string, type: string, r: TRhs): (v: unknown) => boolean {
  if (r.kind === "regex") {
    const re = r.re;
    const prefix = anchoredPrefix(r.source);
    if (prefix) return (v) => (v as string).startsWith(prefix) && re.test(v as string);
    return (v) => re.test(v as string);
  }
  if (r.kind === "set" || r.kind === "list") return membership(type, r.items);
  const lit = r.value;
  if (type === "IP") {
    const a = lit as IpAddr;
    return op === "eq" ? (v) => ipEquals(v as IpAddr, a) : (v) => !ipEquals(v as IpAddr, a);
  }
  switch (op) {
    case "eq":
      return (v) => v === lit;
    case "ne":
      return (v) => v !== lit;
    case "lt":
      return (v) => (v as number) < (lit as number);
    case "le":
      return (v) => (v as number) <= (lit as number);
    case "gt":
      return (v) => (v as number) > (lit as number);
    case "ge":
      return (v) => (v as number) >= (lit as number);
    case "contains": {
      const s = lit as string;
      return (v) => (v as string).includes(s);
    }
    case "wildcard":
    case "strict wildcard": {
      const insensitive = op === "wildcard";
      const m = wildcardFor(insensitive ? asciiLower(lit as string) : (lit as string));
      return insensitive ? (v) => m(asciiLower(v as string)) : (v) => m(v as string);
    }
    default:
      throw new Error(`internal: no compiler for ${op}`);
  }
}

function wildcardFor(pattern: string): (v: string) => boolean {
  const p = parseWildcard(pattern);
  if ("error" in p) throw new Error("internal: wildcard pattern was not checked");
  return wildcardMatcher(p.segments);
}

function membership(type: string, items: readonly SetItem[]): (v: unknown) => boolean {
  if (type === "String") {
    const set = new Set(stringValues(items));
    return (v) => set.has(v as string);
  }
  if (type === "Int") {
    const singles = new Set<number>();
    const ranges: [number, number][] = [];
    for (const it of items) {
      if (it.kind === "int") singles.add(it.value);
      else if (it.kind === "int_range") ranges.push([it.lo, it.hi]);
    }
    const { lo, hi } = mergeRanges(ranges);
    if (lo.length === 0) return (v) => singles.has(v as number);
    return (v) => singles.has(v as number) || inRanges(lo, hi, v as number);
  }
  // IP: every address, CIDR and range becomes prefixes in one table.
  const table = new IpPrefixSet();
  for (const it of items) {
    if (it.kind === "ip") table.add(it.addr, it.addr.v === 4 ? 32 : 128);
    else if (it.kind === "cidr") table.add(it.addr, it.bits);
    else if (it.kind === "ip_range") {
      const r = it.lo.v === 4 ? { v: 4 as const, lo: it.lo.n, hi: (it.hi as IpAddr & { v: 4 }).n } : { v: 6 as const, lo: it.lo.n, hi: (it.hi as IpAddr & { v: 6 }).n };
      for (const c of rangeToCidrs(r)) table.add(c.addr, c.bits);
    }
  }
  return (v) => table.has(v as IpAddr);
}

function mergeRanges(ranges: [number, number][]): { lo: number[]; hi: number[] } {
  ranges.sort((a, b) => a[0] - b[0]);
  const lo: number[] = [], hi: number[] = [];
  for (const [a, b] of ranges) {
    if (lo.length > 0 && a <= hi[hi.length - 1]! + 1) hi[hi.length - 1] = Math.max(hi[hi.length - 1]!, b);
    else {
      lo.push(a);
      hi.push(b);
    }
  }
  return { lo, hi };
}

/** Binary search over sorted, disjoint intervals. */
function inRanges(lo: number[], hi: number[], v: number): boolean {
  let a = 0, b = lo.length - 1;
  while (a <= b) {
    const m = (a + b) >> 1;
    if (v < lo[m]!) b = m - 1;
    else if (v > hi[m]!) a = m + 1;
    else return true;
  }
  return false;
}

/**
 * The literal text every match of `^literal…` must start with, as a cheap pre-check before
 * running the regex (most path rules look like "^/api/"). Conservative: no alternation, plain
 * characters only, and a literal followed by a quantifier is left out.
 */
function anchoredPrefix(pattern: string): string {
  if (!pattern.startsWith("^") || pattern.includes("|")) return "";
  let end = 1;
  while (end < pattern.length && /[A-Za-z0-9/_\-=&%:;,@]/.test(pattern[end]!)) end++;
  const next = pattern[end];
  if (next === "*" || next === "?" || next === "{" || next === "+") end--;
  return end > 1 ? pattern.slice(1, end) : "";
}
