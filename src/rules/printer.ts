// The normalised form of an expression: English operators, minimal parentheses, canonical
// literals. Printing a checked expression and parsing it again yields the same tree.

import type { LogicalOp, SetItem, TExpr, TRhs, Value } from "./ast.ts";
import { formatIp } from "./ip.ts";
import type { IpAddr } from "./ip.ts";

const PREC: Record<LogicalOp, number> = { or: 1, xor: 2, and: 3 };
const NOT_PREC = 4;

export function printExpr(e: TExpr): string {
  return print(e, 0);
}

function prec(e: TExpr): number {
  if (e.kind === "logical") return PREC[e.op];
  if (e.kind === "not") return NOT_PREC;
  return 5;
}

function print(e: TExpr, parent: number): string {
  const s = printBare(e);
  // Equal precedence needs parentheses too: (a and b) and c would otherwise flatten, changing the tree.
  return prec(e) <= parent ? `(${s})` : s;
}

function printBare(e: TExpr): string {
  switch (e.kind) {
    case "bool":
      return String(e.value);
    case "not":
      return `not ${print(e.expr, NOT_PREC - 1)}`;
    case "logical":
      return e.items.map((i) => print(i, PREC[e.op])).join(` ${e.op} `);
    case "compare":
      return `${printValue(e.lhs)} ${e.op} ${printRhs(e.rhs)}`;
    default:
      return printValue(e);
  }
}

function printValue(e: TExpr): string {
  switch (e.kind) {
    case "field":
      return e.name;
    case "index":
      return `${printValue(e.base)}[${e.key.kind === "star" ? "*" : e.key.kind === "pos" ? e.key.value : quote(e.key.value)}]`;
    case "call":
      return `${e.name}(${e.args.map((a) => print(a, 0)).join(", ")})`;
    case "literal":
      return typeof e.value === "string" ? quote(e.value) : String(e.value);
    default:
      // A condition used as a value (only as a function argument) is parenthesised when complex.
      return print(e, 4);
  }
}

function printRhs(r: TRhs): string {
  switch (r.kind) {
    case "value":
      return printScalar(r.value);
    case "regex":
      return quote(r.source);
    case "set":
      return `{${r.items.map(printItem).join(" ")}}`;
    case "list":
      return `$${r.name}`;
  }
}

function printScalar(v: Value): string {
  if (typeof v === "string") return quote(v);
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return formatIp(v);
}

function printItem(i: SetItem): string {
  switch (i.kind) {
    case "string":
      return quote(i.value);
    case "int":
      return String(i.value);
    case "int_range":
      return `${i.lo}..${i.hi}`;
    case "ip":
      return formatIp(i.addr);
    case "cidr":
      return `${formatIp(i.addr)}/${i.bits}`;
    case "ip_range":
      return `${formatIp(i.lo)}..${formatIp(i.hi as IpAddr)}`;
  }
}

/**
 * A string literal. Backslash-heavy strings (regexes) print raw when possible, since r"\d+"
 * reads better than "\\d+"; control characters print as \xHH.
 */
function quote(s: string): string {
  // eslint-disable-next-line no-control-regex
  const hasControl = /[\x00-\x1f\x7f]/.test(s);
  if (s.includes("\\") && !hasControl && !s.includes('"')) return `r"${s}"`;
  let out = '"';
  for (const ch of s) {
    const c = ch.charCodeAt(0);
    if (ch === '"' || ch === "\\") out += "\\" + ch;
    else if (c < 0x20 || c === 0x7f) out += "\\x" + c.toString(16).padStart(2, "0");
    else out += ch;
  }
  return out + '"';
}
