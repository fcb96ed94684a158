// Errors an operator can act on: every failure names a code, a 0-based position in the
// expression and can draw a caret under the offending text.

export type RuleErrorCode =
  | "empty"
  | "unexpected_token"
  | "unbalanced_parens"
  | "bad_literal"
  | "unknown_field"
  | "unknown_function"
  | "unknown_list"
  | "type_mismatch"
  | "bad_regex"
  | "too_large"
  | "too_deep";

export class RuleSyntaxError extends Error {
  readonly code: RuleErrorCode;
  /** 0-based offset (UTF-16 code units) into `expression`. */
  readonly position: number;
  /** Length of the offending text, at least 1 for the caret. */
  readonly length: number;
  readonly expression: string;
  /** The message without position and caret. */
  readonly detail: string;

  constructor(code: RuleErrorCode, detail: string, expression: string, position: number, length = 1) {
    const pos = Math.max(0, Math.min(position, expression.length));
    super(`${detail} (${code} at position ${pos})`);
    this.name = "RuleSyntaxError";
    this.code = code;
    this.detail = detail;
    this.expression = expression;
    this.position = pos;
    this.length = Math.max(1, length);
  }

  /** The line of the expression holding the error, and a "   ^~~~" line under the offending text. */
  caret(): string {
    const src = this.expression;
    const lineStart = src.lastIndexOf("\n", this.position - 1) + 1;
    let lineEnd = src.indexOf("\n", lineStart);
    if (lineEnd < 0) lineEnd = src.length;
    // Tabs would misalign the caret; show them as single spaces on both lines.
    const line = src.slice(lineStart, lineEnd).replace(/[\t\r]/g, " ");
    const col = this.position - lineStart;
    const width = Math.max(1, Math.min(this.length, lineEnd - this.position));
    return `${line}\n${" ".repeat(col)}^${"~".repeat(width - 1)}`;
  }

  /** Message, then the caret drawing: what `certgate rules check` prints. */
  describe(): string {
    return `error[${this.code}]: ${this.detail} at position ${this.position}\n${this.caret()}`;
  }
}

/** A rule of a ruleset failed to compile or is invalid; names the rule. */
export class RuleSetError extends Error {
  readonly ruleId: string;
  /** Index of the rule in the list given to compileRuleset. */
  readonly index: number;
  /** The expression error, when the expression is at fault (absent for an invalid id, action, response...). */
  override readonly cause: RuleSyntaxError | undefined;

  constructor(ruleId: string, index: number, message: string, cause?: RuleSyntaxError) {
    super(cause ? `rule ${JSON.stringify(ruleId)} (#${index}): ${cause.message}\n${cause.caret()}` : `rule ${JSON.stringify(ruleId)} (#${index}): ${message}`);
    this.name = "RuleSetError";
    this.ruleId = ruleId;
    this.index = index;
    this.cause = cause;
  }
}
