// Regexes run on RE2 (re2js): patterns that backtrack exponentially elsewhere stay linear here.
// These tests assert correct answers on inputs that would hang a backtracking engine.

import { describe, expect, it } from "vitest";
import { compileExpression } from "../../src/rules/index.ts";
import { makeInput } from "./helpers.ts";

describe("linear-time regular expressions", () => {
  const long = "a".repeat(50_000);
  it('"(a+)+$" against a 50,000-character path', () => {
    const c = compileExpression('http.request.uri.path matches "(a+)+$"');
    expect(c.evaluate(makeInput({ path: long + "!" }))).toBe(false);
    expect(c.evaluate(makeInput({ path: long }))).toBe(true);
    expect(c.evaluate(makeInput({ path: "!" + long }))).toBe(true);
  });
  it("other classic catastrophic patterns", () => {
    const cases: [string, string, boolean][] = [
      ["^(a|a)*$", long + "b", false],
      ["^(a|aa)+$", long, true],
      ["^(.*a){12}$", long + "b", false],
      ["^(\\\\w+\\\\s?)*$", "word ".repeat(10_000) + "!", false],
    ];
    for (const [re, path, want] of cases) {
      expect(compileExpression(`http.request.uri.path matches "${re}"`).evaluate(makeInput({ path })), re).toBe(want);
    }
  });
});
