// `certgate rules check 'EXPR'`: the normalised expression and its fields with their types, or
// the error with its caret. Pure: the CLI prints `output` and exits non-zero unless `ok`.

import { RuleSyntaxError } from "./errors.ts";
import { compileExpression } from "./expression.ts";
import type { CheckOptions } from "./expression.ts";
import { lookupField } from "./scheme.ts";
import { typeName } from "./types.ts";

export interface CheckResult {
  readonly ok: boolean;
  /** Human-readable report, ending with a newline. */
  readonly output: string;
  readonly normalized?: string;
  readonly fields?: readonly { readonly name: string; readonly type: string }[];
  readonly error?: RuleSyntaxError;
}

export function checkExpression(src: string, options: CheckOptions = {}): CheckResult {
  try {
    const c = compileExpression(src, options);
    const fields = c.fields.map((name) => ({ name, type: typeName(lookupField(name)!.type) }));
    const width = Math.max(0, ...fields.map((f) => f.name.length));
    const lines = [`ok: ${c.normalized}`];
    if (c.constant !== undefined) lines.push(`note: the expression is always ${c.constant}`);
    if (fields.length > 0) {
      lines.push("fields:");
      for (const f of fields) lines.push(`  ${f.name.padEnd(width)}  ${f.type}`);
    }
    return { ok: true, output: lines.join("\n") + "\n", normalized: c.normalized, fields };
  } catch (e) {
    if (!(e instanceof RuleSyntaxError)) throw e;
    return { ok: false, output: e.describe() + "\n", error: e };
  }
}
