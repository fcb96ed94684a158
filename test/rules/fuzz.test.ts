// Parser fuzzing: random strings and mutated valid expressions either compile or throw a
// RuleSyntaxError with a position inside the expression; nothing else ever escapes.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RuleSyntaxError, checkExpression, compileExpression } from "../../src/rules/index.ts";
import { expressionSource } from "./gen.ts";

function onlySyntaxErrors(src: string): void {
  try {
    compileExpression(src);
  } catch (e) {
    if (!(e instanceof RuleSyntaxError)) throw new Error(`non-syntax error for ${JSON.stringify(src)}: ${String(e)}`, { cause: e });
    expect(e.position).toBeGreaterThanOrEqual(0);
    expect(e.position).toBeLessThanOrEqual(src.length);
    expect(e.caret()).toContain("^");
  }
  // The CLI path must never throw either.
  expect(typeof checkExpression(src).output).toBe("string");
}

const ALPHABET = [..."()[]{}\"\\*$!&|^<>=~,. \t\n:/-#r0123456789aeinotx_", "eq ", "and ", "not ", "in ", "http.host", "ip.src", "any(", "[*]", "r#\"", "ssl", "..", "%"];
const meaningful = fc.array(fc.constantFrom(...ALPHABET), { maxLength: 40 }).map((xs) => xs.join(""));

type Mutation = { at: number; kind: "delete" | "insert" | "swap" | "truncate" | "duplicate"; text: string; len: number };
const mutation: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  kind: fc.constantFrom("delete", "insert", "swap", "truncate", "duplicate"),
  text: fc.constantFrom(...ALPHABET),
  len: fc.integer({ min: 1, max: 6 }),
});

function mutate(src: string, muts: Mutation[]): string {
  let s = src;
  for (const m of muts) {
    const at = s.length === 0 ? 0 : m.at % s.length;
    switch (m.kind) {
      case "delete":
        s = s.slice(0, at) + s.slice(at + m.len);
        break;
      case "insert":
        s = s.slice(0, at) + m.text + s.slice(at);
        break;
      case "swap":
        s = s.slice(0, at) + s.slice(at + 1, at + 2) + s.slice(at, at + 1) + s.slice(at + 2);
        break;
      case "truncate":
        s = s.slice(0, at);
        break;
      case "duplicate":
        s = s.slice(0, at) + s.slice(at, at + m.len) + s.slice(at);
        break;
    }
  }
  return s;
}

describe("parser fuzzing", () => {
  it("random unicode strings only throw RuleSyntaxError", () => {
    fc.assert(fc.property(fc.string({ unit: "grapheme", maxLength: 60 }), onlySyntaxErrors), { numRuns: 2000 });
  });
  it("random strings over the language's own symbols only throw RuleSyntaxError", () => {
    fc.assert(fc.property(meaningful, onlySyntaxErrors), { numRuns: 4000 });
  });
  it("mutated valid expressions only throw RuleSyntaxError", () => {
    let failures = 0;
    fc.assert(
      fc.property(expressionSource, fc.array(mutation, { minLength: 1, maxLength: 4 }), (src, muts) => {
        const m = mutate(src, muts);
        try {
          compileExpression(m);
        } catch {
          failures++;
        }
        onlySyntaxErrors(m);
      }),
      { numRuns: 3000 },
    );
    // The mutations must actually break expressions most of the time, or the test proves little.
    expect(failures).toBeGreaterThan(1000);
  });
  it("huge and deeply nested inputs are refused as too_large / too_deep, before any parsing work", () => {
    const cases: [string, string][] = [
      ["(".repeat(100_000), "too_large"],
      ["not ".repeat(50_000) + "ssl", "too_large"],
      [`http.host in {${'"a" '.repeat(5000)}}`, "too_large"],
      ["!".repeat(3000) + "ssl", "too_deep"],
      ["lower(".repeat(1000), "too_large"],
    ];
    for (const [src, code] of cases) {
      let err: unknown;
      try {
        compileExpression(src);
      } catch (e) {
        err = e;
      }
      expect(err, src.slice(0, 20)).toBeInstanceOf(RuleSyntaxError);
      expect((err as RuleSyntaxError).code).toBe(code);
    }
  });
});
