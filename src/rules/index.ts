// Public API of the rules engine: the Cloudflare Rules language, compiled for the hot path.

export type { ClientCertInput, RequestInput } from "./input.ts";
export { NO_CERT } from "./input.ts";
export { RuleSetError, RuleSyntaxError } from "./errors.ts";
export type { RuleErrorCode } from "./errors.ts";
export type { CompareOp, LogicalOp, SetItem, TExpr as Ast, TExpr } from "./ast.ts";
export { parseExpression, compileExpression } from "./expression.ts";
export type { CheckOptions, CompiledExpression } from "./expression.ts";
export { compileRuleset, DEFAULT_BLOCK_RESPONSE, MAX_RESPONSE_BODY } from "./ruleset.ts";
export type { BlockResponse, Decision, DecisionResponse, RuleAction, RuleProgram, RuleSpec, RulesetOptions } from "./ruleset.ts";
export { checkExpression } from "./check.ts";
export type { CheckResult } from "./check.ts";
export { interpret } from "./interpret.ts";
export { printExpr } from "./printer.ts";
export { FIELDS } from "./scheme.ts";
export type { FieldDef } from "./scheme.ts";
export { FUNCTIONS } from "./functions.ts";
export { MAX_DEPTH, MAX_EXPRESSION_BYTES } from "./parser.ts";
export type { Type } from "./types.ts";
export { typeName } from "./types.ts";
