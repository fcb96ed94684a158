// Rules: the derived ones (Apinizer policies), then global ones, then each zone's, compiled
// once per zone. A zone's program is reused while the zone object and the global rules are
// the same.
import { compileRuleset, type RuleProgram } from "../../rules/index.ts";
import { toRuleSpec } from "../../model/derived.ts";
import type { Model, Rule } from "../../model/schema.ts";
import type { Fail } from "./memo.ts";

export interface CompiledRules {
  /** For names in no zone. */
  global: RuleProgram | null;
  /** By zone name. */
  zones: Map<string, RuleProgram>;
}

const zoneMemo = new WeakMap<object, { global: readonly Rule[]; program: RuleProgram }>();

export function compileRules(model: Model, derived: readonly Rule[], fail: Fail): CompiledRules {
  const global = derived.length ? [...derived, ...model.rules] : model.rules;
  const out: CompiledRules = { global: global.length ? compileList(global, "rules", fail, 0, derived.length) : null, zones: new Map() };
  model.zones.forEach((z, i) => {
    const hit = zoneMemo.get(z);
    const program = hit?.global === global ? hit.program : compileList([...global, ...z.rules], `zones[${i}].rules`, fail, global.length, derived.length);
    if (program) zoneMemo.set(z, { global, program });
    if (out.zones.has(z.name)) fail(`zones[${i}].name`, `duplicate zone "${z.name}"`);
    else if (program) out.zones.set(z.name, program);
  });
  return out;
}

/** `offset`: rules before the list at `path`; the first `derived` of them are derived rules. */
function compileList(rules: readonly Rule[], path: string, fail: Fail, offset = 0, derived = 0): RuleProgram | null {
  try {
    return compileRuleset(rules.map(toRuleSpec));
  } catch (e) {
    const err = e as { ruleId?: string; index?: number; message: string; cause?: unknown };
    // The index, not the id: with a duplicate id, the second rule is the one at fault.
    const idx = err.index ?? rules.findIndex((r) => r.id === err.ruleId);
    // Only an expression error is the expression's; anything else is the rule's.
    const at = err.cause ? ".expression" : "";
    const where = idx < 0 ? path : idx < derived ? `apinizer (rule ${err.ruleId})` : idx < offset ? `rules[${idx - derived}]${at}` : `${path}[${idx - offset}]${at}`;
    fail(where, err.message);
    return null;
  }
}
