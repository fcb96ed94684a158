// The examples in docs/rules-language.md compile, and the documented outputs are what the engine prints.

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkExpression, compileExpression } from "../../src/rules/index.ts";

const doc = readFileSync(new URL("../../docs/rules-language.md", import.meta.url), "utf8");

describe("docs/rules-language.md", () => {
  it("every example expression compiles", () => {
    const block = /## Examples\n\n```\n([\s\S]*?)```/.exec(doc)?.[1];
    expect(block).toBeDefined();
    const exprs = block!.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("#"));
    expect(exprs.length).toBeGreaterThanOrEqual(6);
    for (const e of exprs) expect(() => compileExpression(e, { lists: { acl: ["CN=Partner CA,O=Partner,C=US"] } }), e).not.toThrow();
  });
  it("the inline examples compile", () => {
    const own = /\*\*certgate's own fields\*\*[\s\S]*?```\n([\s\S]*?)```/.exec(doc)?.[1]?.split("\n").filter(Boolean) ?? [];
    expect(own.length).toBe(4);
    for (const e of [...own, 'any(http.request.headers["x-a"][*] == "1")', 'any(lower(http.request.headers.names[*])[*] contains "debug")', 'all(starts_with(http.request.headers["authorization"][*], "Bearer "))', 'http.request.uri.path matches r"^/api/v\\d+/" and http.request.uri.path matches "\\\\pL[[:alpha:]]"']) {
      expect(() => compileExpression(e), e).not.toThrow();
    }
  });
  it("shows the exact output of rules check", () => {
    // Count the examples the pattern itself finds: a loop over zero matches would check nothing.
    const examples = [...doc.matchAll(/```\n\$ certgate rules check '([^']+)'\n([\s\S]*?)```/g)];
    expect(examples.length).toBe([...doc.matchAll(/\$ certgate rules check/g)].length);
    expect(examples.length).toBe(3);
    for (const m of examples) expect(checkExpression(m[1]!).output).toBe(m[2]);
  });
});
