// Rulesets: an ordered list of rules compiled into one program. Evaluation walks the rules in
// order: a matching `log` rule is recorded and evaluation continues, `allow` and `block` stop.
// Rules whose expression requires a String field to equal one of a few literals (the common
// `http.host eq "…"` / `http.request.uri.path in {…}` shape) are indexed by that value, so a
// request only evaluates the rules that can match it, still in their original order.

import type { TExpr } from "./ast.ts";
import { Env, compileCondition, countFields, stringValues } from "./compile.ts";
import type { Cond } from "./compile.ts";
import { RuleSetError, RuleSyntaxError } from "./errors.ts";
import { parseExpression } from "./expression.ts";
import type { CheckOptions } from "./expression.ts";
import type { RequestInput } from "./input.ts";
import type { FieldDef } from "./scheme.ts";

export type RuleAction = "block" | "allow" | "log";

export interface BlockResponse {
  /** 400-499; default 403. */
  status: number;
  contentType?: string;
  body?: string;
}

export interface RuleSpec {
  id: string;
  expression: string;
  action: RuleAction;
  description?: string;
  /** Default true. Disabled rules are still checked, so a broken rule cannot be stored disabled. */
  enabled?: boolean;
  /** Block only. */
  response?: BlockResponse;
}

export interface DecisionResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export interface Decision {
  readonly action: "block" | "allow" | "pass";
  /** The rule that decided (absent for pass). */
  readonly rule?: RuleSpec;
  /** For block: what to answer. */
  readonly response?: DecisionResponse;
  /** Log rules that matched before the decision, in order. */
  readonly logged: readonly RuleSpec[];
}

export interface RuleProgram {
  evaluate(input: RequestInput): Decision;
  /** Number of enabled rules in the program. */
  readonly size: number;
  /** Fields any enabled rule reads, sorted. */
  readonly fields: readonly string[];
}

export interface RulesetOptions extends CheckOptions {
  /** The response of block rules without their own; default 403 text/plain "Forbidden". */
  readonly defaultResponse?: DecisionResponse;
}

export const DEFAULT_BLOCK_RESPONSE: DecisionResponse = Object.freeze({ status: 403, contentType: "text/plain; charset=utf-8", body: "Forbidden\n" });
export const MAX_RESPONSE_BODY = 16 * 1024;
/** Rulesets smaller than this are walked without an index (it would not pay for itself). */
const INDEX_THRESHOLD = 8;
// eslint-disable-next-line no-control-regex
export const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(\s*;\s*[A-Za-z0-9!#$&^_.+-]+=("[^"\\\x00-\x1f\x7f]*"|[A-Za-z0-9!#$&^_.+-]+))*$/;
const ACTIONS: ReadonlySet<string> = new Set(["block", "allow", "log"]);
const EMPTY: readonly RuleSpec[] = Object.freeze([]);
const PASS: Decision = Object.freeze({ action: "pass", logged: EMPTY });

interface CompiledRule {
  readonly spec: RuleSpec;
  readonly test: Cond;
  /** The decision when no log rule matched before (shared, frozen); "pass" for a log rule. */
  readonly decision: Decision;
  /** Position among the enabled rules: index hits are merged in this order. */
  readonly pos: number;
}

export function compileRuleset(rules: readonly RuleSpec[], options: RulesetOptions = {}): RuleProgram {
  const seen = new Set<string>();
  const checked: { spec: RuleSpec; ast: TExpr }[] = [];
  rules.forEach((spec, index) => {
    validate(spec, index, seen);
    let ast: TExpr;
    try {
      ast = parseExpression(spec.expression, options);
    } catch (e) {
      if (e instanceof RuleSyntaxError) throw new RuleSetError(spec.id, index, e.message, e);
      throw e;
    }
    if (spec.enabled !== false) checked.push({ spec, ast });
  });

  // Choose index keys first: an index read counts as a use of its field.
  const counts = new Map<string, number>();
  for (const c of checked) countFields(c.ast, counts);
  const keys = checked.map((c) => indexKey(c.ast));
  const useAsKey = new Map<string, number>();
  for (const k of keys) for (const cand of k) useAsKey.set(cand.field.name, (useAsKey.get(cand.field.name) ?? 0) + 1);
  const chosen = keys.map((cands) =>
    cands.length === 0
      ? undefined
      : cands.reduce((best, c) => {
          const u = useAsKey.get(c.field.name)!, bu = useAsKey.get(best.field.name)!;
          return u > bu || (u === bu && c.values.length < best.values.length) ? c : best;
        }),
  );
  const indexed = chosen.filter((c) => c !== undefined).length >= INDEX_THRESHOLD;
  if (indexed) for (const c of chosen) if (c) counts.set(c.field.name, (counts.get(c.field.name) ?? 0) + 1);

  const env = new Env(counts);
  const compiled: CompiledRule[] = [];
  const defaultResponse = options.defaultResponse ?? DEFAULT_BLOCK_RESPONSE;
  for (const { spec, ast } of checked) {
    const { test } = compileCondition(ast, env);
    const response =
      spec.action === "block"
        ? Object.freeze({
            status: spec.response?.status ?? defaultResponse.status,
            contentType: spec.response?.contentType ?? (spec.response?.body !== undefined ? "text/plain; charset=utf-8" : defaultResponse.contentType),
            body: spec.response?.body ?? defaultResponse.body,
          })
        : undefined;
    const decision: Decision = Object.freeze({ action: spec.action === "log" ? "pass" : spec.action, rule: spec, response, logged: EMPTY });
    compiled.push({ spec, test, decision, pos: compiled.length });
  }
  const fields = [...counts.keys()].sort();
  const select = indexed ? indexSelector(chosen, compiled, env) : undefined;
  // After the index: its readers could add cache slots (in practice they reuse the rules' own).
  const cache = env.needsBegin;

  return {
    size: compiled.length,
    fields,
    evaluate(input) {
      if (cache) env.begin();
      const rules = select ? select(input) : compiled;
      let logged: RuleSpec[] | undefined;
      for (let k = 0; k < rules.length; k++) {
        const r = rules[k]!;
        if (!r.test(input)) continue;
        // A log rule's own decision is "pass": record it and go on.
        if (r.decision.action === "pass") (logged ??= []).push(r.spec);
        else return logged ? { action: r.decision.action, rule: r.spec, response: r.decision.response, logged } : r.decision;
      }
      return logged ? { action: "pass", logged } : PASS;
    },
  };
}

interface FieldIndex {
  readonly read: (i: RequestInput) => unknown;
  /** Value → the rules keyed on it, in rule order. */
  readonly map: Map<string, CompiledRule[]>;
  /** How many rules are keyed on this field. */
  rules: number;
}

/**
 * The rules a request must evaluate, in order: per key field, the rules keyed on the request's
 * value, plus the rules no index covers. Each rule is in `always` or under exactly one field, so
 * the lists a request selects are disjoint.
 */
function indexSelector(chosen: readonly (KeyCandidate | undefined)[], compiled: readonly CompiledRule[], env: Env): (input: RequestInput) => readonly CompiledRule[] {
  const byField = new Map<string, FieldIndex>();
  const always: CompiledRule[] = [];
  chosen.forEach((c, pos) => {
    const rule = compiled[pos]!;
    if (!c) {
      always.push(rule);
      return;
    }
    let idx = byField.get(c.field.name);
    if (!idx) byField.set(c.field.name, (idx = { read: env.reader(c.field), map: new Map(), rules: 0 }));
    idx.rules++;
    for (const v of new Set(c.values)) {
      const list = idx.map.get(v);
      if (list) list.push(rule);
      else idx.map.set(v, [rule]);
    }
  });
  // The index covering the most rules comes first (there is one: the ruleset is indexed), and its
  // lists are merged with `always` now: a request that hits only that index (the common
  // single-field ruleset) allocates nothing. Hits in further indexes are merged in per request.
  const indexes = [...byField.values()].sort((a, b) => b.rules - a.rules);
  const first = indexes[0]!, rest = indexes.slice(1);
  for (const [v, list] of first.map) first.map.set(v, mergeSorted(always, list));
  return (input) => {
    // Keys are strings: any other value (none expected from a String field) finds nothing.
    let order: readonly CompiledRule[] = first.map.get(first.read(input) as string) ?? always;
    for (let k = 0; k < rest.length; k++) {
      const idx = rest[k]!;
      const hits = idx.map.get(idx.read(input) as string);
      if (hits) order = order.length === 0 ? hits : mergeSorted(order, hits);
    }
    return order;
  };
}

function mergeSorted(a: readonly CompiledRule[], b: readonly CompiledRule[]): CompiledRule[] {
  const out: CompiledRule[] = [];
  let i = 0, j = 0;
  while (i < a.length && j < b.length) out.push(a[i]!.pos <= b[j]!.pos ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

interface KeyCandidate {
  readonly field: FieldDef;
  readonly values: readonly string[];
}

/**
 * Conjuncts that force a String field to one of a few literals: `f eq "x"` or `f in {"x" "y"}`.
 * Any of them is a necessary condition for the rule, so the rule can be skipped when the
 * request's value is not among them.
 */
function indexKey(e: TExpr): KeyCandidate[] {
  const conjuncts = e.kind === "logical" && e.op === "and" ? e.items : [e];
  const out: KeyCandidate[] = [];
  for (const c of conjuncts) {
    if (c.kind !== "compare" || c.lhs.kind !== "field" || c.lhs.type.k !== "String") continue;
    if (c.op === "eq" && c.rhs.kind === "value" && typeof c.rhs.value === "string") out.push({ field: c.lhs.field, values: [c.rhs.value] });
    else if (c.op === "in" && (c.rhs.kind === "set" || c.rhs.kind === "list") && c.rhs.items.length <= 64) {
      out.push({ field: c.lhs.field, values: stringValues(c.rhs.items) });
    }
  }
  return out;
}

function validate(spec: RuleSpec, index: number, seen: Set<string>): void {
  const id = typeof spec?.id === "string" ? spec.id : `#${index}`;
  const fail = (msg: string): never => {
    throw new RuleSetError(id, index, msg);
  };
  if (typeof spec !== "object" || spec === null) fail("a rule must be an object");
  if (typeof spec.id !== "string" || spec.id === "" || spec.id.length > 256) fail("id must be a non-empty string of at most 256 characters");
  if (seen.has(spec.id)) fail(`duplicate rule id ${JSON.stringify(spec.id)}`);
  seen.add(spec.id);
  if (typeof spec.expression !== "string") fail("expression must be a string");
  if (!ACTIONS.has(spec.action)) fail(`action must be block, allow or log, not ${JSON.stringify(spec.action)}`);
  if (spec.enabled !== undefined && typeof spec.enabled !== "boolean") fail("enabled must be true or false");
  if (spec.description !== undefined && typeof spec.description !== "string") fail("description must be a string");
  const r = spec.response;
  if (r === undefined) return;
  if (spec.action !== "block") fail(`only block rules take a response (this rule's action is ${spec.action})`);
  if (typeof r !== "object" || r === null) fail("response must be an object");
  if (!Number.isInteger(r.status) || r.status < 400 || r.status > 499) fail("response.status must be an integer from 400 to 499");
  if (r.contentType !== undefined && (typeof r.contentType !== "string" || r.contentType.length > 256 || !MEDIA_TYPE.test(r.contentType))) {
    fail(`response.contentType must be a media type such as "application/json" or "text/html; charset=utf-8"`);
  }
  if (r.body !== undefined && (typeof r.body !== "string" || Buffer.byteLength(r.body) > MAX_RESPONSE_BODY)) fail(`response.body must be a string of at most ${MAX_RESPONSE_BODY} bytes`);
}
