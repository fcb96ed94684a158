// The reference interpreter: walks the checked tree for every request, reads fields each time
// they are named, scans sets linearly and matches wildcards and CIDRs with independent, plain
// algorithms. It is the oracle for the compiler's property test and the benchmark baseline,
// so it favours obviousness over speed.

import type { SetItem, TExpr, TRhs } from "./ast.ts";
import type { RequestInput } from "./input.ts";
import type { IpAddr } from "./ip.ts";
import { asciiLower, asciiUpper, byteLength, urlDecode } from "./values.ts";

/** Evaluates a checked condition. */
export function interpret(e: TExpr, input: RequestInput): boolean {
  return evalNode(e, input) === true;
}

/** Missing values are `undefined`; a condition over a missing value is false. */
function evalNode(e: TExpr, input: RequestInput): unknown {
  switch (e.kind) {
    case "bool":
    case "literal":
      return e.value;
    case "not":
      return !(evalNode(e.expr, input) === true);
    case "logical": {
      if (e.op === "and") {
        for (const item of e.items) if (evalNode(item, input) !== true) return false;
        return true;
      }
      if (e.op === "or") {
        for (const item of e.items) if (evalNode(item, input) === true) return true;
        return false;
      }
      let r = false;
      for (const item of e.items) if (evalNode(item, input) === true) r = !r;
      return r;
    }
    case "field":
      return e.field.read(input);
    case "index": {
      const base = evalNode(e.base, input);
      if (base === undefined) return undefined;
      const get = (v: unknown): unknown => {
        if (e.key.kind === "star") return e.base.type.k === "Map" ? Object.keys(v as object).map((k) => (v as Record<string, unknown>)[k]) : v;
        if (e.key.kind === "key") return Object.hasOwn(v as object, e.key.value) ? (v as Record<string, unknown>)[e.key.value] : undefined;
        const arr = v as unknown[];
        return e.key.value < arr.length ? arr[e.key.value] : undefined;
      };
      if (!e.base.each) return get(base);
      return (base as unknown[]).map(get).filter((x) => x !== undefined);
    }
    case "call":
      return evalCall(e, input);
    case "compare": {
      const lhs = evalNode(e.lhs, input);
      if (lhs === undefined) return e.lhs.each ? undefined : false;
      if (e.lhs.each) return (lhs as unknown[]).map((v) => test(e.op, e.rhs, v));
      return test(e.op, e.rhs, lhs);
    }
  }
}

function evalCall(e: TExpr & { kind: "call" }, input: RequestInput): unknown {
  const args = e.args.map((a) => evalNode(a, input));
  if (e.name === "any" || e.name === "all") {
    const arr = args[0] as boolean[] | undefined;
    if (arr === undefined) return false;
    return e.name === "any" ? arr.includes(true) : !arr.includes(false);
  }
  if (args.some((a) => a === undefined)) return undefined;
  const each = e.args[0]!.each;
  const apply = (g: (v: never) => unknown): unknown => (each ? (args[0] as never[]).map((v) => g(v)) : g(args[0] as never));
  switch (e.name) {
    case "lower":
      return apply(asciiLower);
    case "upper":
      return apply(asciiUpper);
    case "len":
      return apply((v: string | unknown[]) => (typeof v === "string" ? byteLength(v) : v.length));
    case "url_decode":
      return apply((s: string) => urlDecode(s, (args[1] as string | undefined) ?? ""));
    case "starts_with":
      return apply((s: string) => s.slice(0, (args[1] as string).length) === args[1]);
    case "ends_with":
      return apply((s: string) => (args[1] as string).length <= s.length && s.slice(s.length - (args[1] as string).length) === args[1]);
    case "concat":
      if (typeof args[0] === "string") return args.join("");
      return ([] as unknown[]).concat(...(args as unknown[][]));
    default:
      throw new Error(`unknown function ${e.name}`);
  }
}

function test(op: string, rhs: TRhs, v: unknown): boolean {
  if (rhs.kind === "regex") return rhs.re.test(v as string);
  if (rhs.kind === "set" || rhs.kind === "list") return rhs.items.some((it) => itemMatches(it, v));
  const lit = rhs.value;
  if (typeof lit === "object") {
    const same = sameIp(v as IpAddr, lit);
    return op === "eq" ? same : !same;
  }
  switch (op) {
    case "eq":
      return v === lit;
    case "ne":
      return v !== lit;
    case "lt":
      return (v as number | string) < lit;
    case "le":
      return (v as number | string) <= lit;
    case "gt":
      return (v as number | string) > lit;
    case "ge":
      return (v as number | string) >= lit;
    case "contains":
      return (v as string).indexOf(lit as string) >= 0;
    case "wildcard":
      return globMatch(asciiLower(lit as string), asciiLower(v as string));
    case "strict wildcard":
      return globMatch(lit as string, v as string);
    default:
      throw new Error(`unknown operator ${op}`);
  }
}

function sameIp(a: IpAddr, b: IpAddr): boolean {
  return a.v === b.v && BigInt(a.n) === BigInt(b.n);
}

function itemMatches(it: SetItem, v: unknown): boolean {
  switch (it.kind) {
    case "string":
    case "int":
      return it.value === v;
    case "int_range":
      return (v as number) >= it.lo && (v as number) <= it.hi;
    case "ip":
      return sameIp(it.addr, v as IpAddr);
    case "cidr": {
      const a = v as IpAddr;
      if (a.v !== it.addr.v) return false;
      const width = BigInt(a.v === 4 ? 32 : 128);
      const shift = width - BigInt(it.bits);
      return BigInt(a.n) >> shift === BigInt(it.addr.n) >> shift;
    }
    case "ip_range": {
      const a = v as IpAddr;
      return a.v === it.lo.v && BigInt(a.n) >= BigInt(it.lo.n) && BigInt(a.n) <= BigInt(it.hi.n);
    }
  }
}

/**
 * Classic wildcard matching with backtracking to the last star (linear space, O(n·m) time),
 * reading escapes from the raw pattern; independent of the compiler's segment matcher.
 */
function globMatch(pattern: string, s: string): boolean {
  // Tokenise: each element is a literal character or the STAR marker.
  const STAR = null;
  const toks: (string | null)[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "\\") toks.push(pattern[++i]!);
    else toks.push(pattern[i] === "*" ? STAR : pattern[i]!);
  }
  let p = 0, k = 0, starP = -1, starK = 0;
  while (k < s.length) {
    if (p < toks.length && toks[p] !== STAR && toks[p] === s[k]) {
      p++;
      k++;
    } else if (p < toks.length && toks[p] === STAR) {
      starP = p++;
      starK = k;
    } else if (starP >= 0) {
      p = starP + 1;
      k = ++starK;
    } else return false;
  }
  while (p < toks.length && toks[p] === STAR) p++;
  return p === toks.length;
}
