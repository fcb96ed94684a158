// The compiler agrees with the reference interpreter on random well-typed expressions and
// random requests; printing is a fixed point of parsing; rulesets agree with a naive walk.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileExpression, compileRuleset, interpret, parseExpression, printExpr } from "../../src/rules/index.ts";
import type { RuleSpec } from "../../src/rules/index.ts";
import { expressionSource, requestInput } from "./gen.ts";

describe("compiler vs reference interpreter", () => {
  it("agree on every generated expression and input", () => {
    fc.assert(
      fc.property(expressionSource, fc.array(requestInput, { minLength: 1, maxLength: 8 }), (src, inputs) => {
        const compiled = compileExpression(src);
        const ast = parseExpression(src);
        for (const input of inputs) {
          expect(compiled.evaluate(input), `${src}\n${JSON.stringify(input)}`).toBe(interpret(ast, input));
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("print → parse → print is stable and keeps the meaning", () => {
    fc.assert(
      fc.property(expressionSource, fc.array(requestInput, { minLength: 1, maxLength: 4 }), (src, inputs) => {
        const first = compileExpression(src);
        const again = compileExpression(first.normalized);
        expect(again.normalized).toBe(first.normalized);
        expect(printExpr(parseExpression(again.normalized))).toBe(first.normalized);
        for (const input of inputs) expect(again.evaluate(input)).toBe(first.evaluate(input));
      }),
      { numRuns: 800 },
    );
  });

  it("generates non-trivial expressions (both outcomes occur)", () => {
    // Guards the generators: if every expression folded to a constant the properties above would be vacuous.
    const outcomes = new Set<boolean>();
    let constants = 0;
    fc.assert(
      fc.property(expressionSource, requestInput, (src, input) => {
        const c = compileExpression(src);
        if (c.constant !== undefined) constants++;
        outcomes.add(c.evaluate(input));
      }),
      { numRuns: 300 },
    );
    expect(outcomes).toEqual(new Set([true, false]));
    expect(constants).toBeLessThan(150);
  });
});

describe("rulesets vs a naive walk with the interpreter", () => {
  const keyed = fc.tuple(fc.constantFrom("app.example.com", "a", "b"), fc.constantFrom("/", "/a", "/admin")).map(([h, p]) => `http.host eq "${h}" and http.request.uri.path in {"${p}"}`);
  const rule = fc.record({
    // Keyed rules are indexed once there are enough of them; the others stay in the walk between them.
    expression: fc.oneof(expressionSource, keyed, keyed, keyed.chain((k) => expressionSource.map((e) => `${k} and (${e})`))),
    action: fc.constantFrom("block", "allow", "log") as fc.Arbitrary<RuleSpec["action"]>,
    enabled: fc.constantFrom(true, true, true, false),
  });
  it("decide the same", () => {
    fc.assert(
      fc.property(fc.array(rule, { minLength: 1, maxLength: 40 }), fc.array(requestInput, { minLength: 1, maxLength: 6 }), (specs, inputs) => {
        const rules: RuleSpec[] = specs.map((s, i) => ({ id: `r${i}`, ...s }));
        const program = compileRuleset(rules);
        const asts = rules.map((r) => parseExpression(r.expression));
        for (const input of inputs) {
          let want: { action: string; id?: string; logged: string[] } = { action: "pass", logged: [] };
          const logged: string[] = [];
          for (let i = 0; i < rules.length; i++) {
            const r = rules[i]!;
            if (r.enabled === false || !interpret(asts[i]!, input)) continue;
            if (r.action === "log") logged.push(r.id);
            else {
              want = { action: r.action, id: r.id, logged };
              break;
            }
          }
          if (want.action === "pass") want = { action: "pass", logged };
          const d = program.evaluate(input);
          const got = d.action === "pass" ? { action: d.action, logged: d.logged.map((r) => r.id) } : { action: d.action, id: d.rule?.id, logged: d.logged.map((r) => r.id) };
          expect(got).toEqual(want);
        }
      }),
      { numRuns: 400 },
    );
  });
});
