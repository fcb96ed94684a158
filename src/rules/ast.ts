// Syntax trees. The parser produces `Expr` (untyped; literals on the right of an operator are
// kept as raw words because their meaning depends on the field's type). The type checker turns
// it into `TExpr`, which the printer, the compiler and the reference interpreter consume.

import type { IpAddr } from "./ip.ts";
import type { FieldDef } from "./scheme.ts";
import type { Type } from "./types.ts";
import type { RE2JS } from "re2js";

export interface Span {
  /** 0-based offset of the node's first character. */
  readonly pos: number;
  readonly len: number;
}

export type LogicalOp = "and" | "xor" | "or";
export type CompareOp = "eq" | "ne" | "lt" | "le" | "gt" | "ge" | "contains" | "matches" | "wildcard" | "strict wildcard" | "in";
export type IndexKey = { readonly kind: "key"; readonly value: string } | { readonly kind: "pos"; readonly value: number } | { readonly kind: "star" };

// ---- parse tree ----

/** A right-hand literal as written: a quoted string, or a bare word (number, range, IP, CIDR, true/false). */
export type RawLiteral = ({ readonly kind: "string"; readonly value: string } | { readonly kind: "word"; readonly text: string }) & Span;

export type RawRhs = RawLiteral | ({ readonly kind: "set"; readonly items: readonly RawLiteral[] } & Span) | ({ readonly kind: "list"; readonly name: string } & Span);

export type Expr = (
  | { readonly kind: "bool"; readonly value: boolean }
  | { readonly kind: "not"; readonly expr: Expr }
  | { readonly kind: "logical"; readonly op: LogicalOp; readonly items: readonly Expr[] }
  | { readonly kind: "compare"; readonly lhs: Expr; readonly op: CompareOp; readonly opSpan: Span; readonly rhs: RawRhs }
  | { readonly kind: "field"; readonly name: string }
  | { readonly kind: "index"; readonly base: Expr; readonly key: IndexKey }
  | { readonly kind: "call"; readonly name: string; readonly args: readonly Expr[] }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "int"; readonly value: number }
) &
  Span;

// ---- typed tree ----

export type SetItem =
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "int"; readonly value: number }
  | { readonly kind: "int_range"; readonly lo: number; readonly hi: number }
  | { readonly kind: "ip"; readonly addr: IpAddr }
  | { readonly kind: "cidr"; readonly addr: IpAddr; readonly bits: number }
  | { readonly kind: "ip_range"; readonly lo: IpAddr; readonly hi: IpAddr };

export type Value = string | number | boolean | IpAddr;

export type TRhs = (
  | { readonly kind: "value"; readonly value: Value }
  | { readonly kind: "regex"; readonly source: string; readonly re: RE2JS }
  | { readonly kind: "set"; readonly items: readonly SetItem[] }
  | { readonly kind: "list"; readonly name: string; readonly items: readonly SetItem[] }
) &
  Span;

interface Typed extends Span {
  readonly type: Type;
  /**
   * True below a `[*]`: the node evaluates to one value per element. A comparison or a
   * function applied to it yields an Array (one result per element), for any()/all().
   */
  readonly each: boolean;
}

export type TExpr =
  | (Typed & { readonly kind: "bool"; readonly value: boolean })
  | (Typed & { readonly kind: "not"; readonly expr: TExpr })
  | (Typed & { readonly kind: "logical"; readonly op: LogicalOp; readonly items: readonly TExpr[] })
  | (Typed & { readonly kind: "compare"; readonly lhs: TExpr; readonly op: CompareOp; readonly rhs: TRhs })
  | (Typed & { readonly kind: "field"; readonly name: string; readonly field: FieldDef })
  | (Typed & { readonly kind: "index"; readonly base: TExpr; readonly key: IndexKey })
  | (Typed & { readonly kind: "call"; readonly name: string; readonly args: readonly TExpr[] })
  | (Typed & { readonly kind: "literal"; readonly value: string | number });
