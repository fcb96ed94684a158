// Single expressions: parse + check, and compile to an evaluator.

import type { TExpr } from "./ast.ts";
import { Env, compileCondition, countFields } from "./compile.ts";
import type { RequestInput } from "./input.ts";
import { parse } from "./parser.ts";
import { printExpr } from "./printer.ts";
import { typecheck } from "./typecheck.ts";
import type { CheckOptions } from "./typecheck.ts";

export type { CheckOptions };

/** Parses and type-checks an expression; throws RuleSyntaxError. */
export function parseExpression(src: string, options: CheckOptions = {}): TExpr {
  return typecheck(parse(src), src, options);
}

export interface CompiledExpression {
  evaluate(input: RequestInput): boolean;
  /** Field names the expression reads, sorted. */
  readonly fields: readonly string[];
  /** The normalised expression (English operators, minimal parentheses). */
  readonly normalized: string;
  /** The checked tree (for the reference interpreter and tools). */
  readonly ast: TExpr;
  /** true or false when the expression folded to a constant. */
  readonly constant: boolean | undefined;
}

export function compileExpression(src: string, options: CheckOptions = {}): CompiledExpression {
  const ast = parseExpression(src, options);
  const counts = countFields(ast, new Map());
  const env = new Env(counts);
  const { test, constant } = compileCondition(ast, env);
  return {
    // Without cached fields there is nothing to reset: hand out the compiled closure itself.
    evaluate: env.needsBegin
      ? (input) => {
          env.begin();
          return test(input);
        }
      : test,
    fields: [...counts.keys()].sort(),
    normalized: printExpr(ast),
    ast,
    constant,
  };
}
