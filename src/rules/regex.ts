// `matches` / `~` run on re2js, a pure-JS port of RE2: matching time is linear in the input for
// every pattern, so `(a+)+$` cannot stall the hot path. RE2 cannot express backreferences or
// lookaround; those are refused when the rule is compiled, with the position of the construct.

import { RE2JS } from "re2js";

/** Upper bound on RE2's program size (instructions), keeping the per-regex memory small. */
export const MAX_REGEX_PROGRAM = 10_000;

export type RegexResult = { ok: true; re: RE2JS } | { ok: false; message: string; offset: number; length: number };

export function compileRegex(pattern: string): RegexResult {
  const unsupported = findUnsupported(pattern);
  if (unsupported) return { ok: false, ...unsupported };
  let re: RE2JS;
  try {
    re = RE2JS.compile(pattern);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    // re2js names the offending fragment between backquotes at the end of its message.
    const frag = /`([^`]*)`$/.exec(msg)?.[1];
    const at = frag !== undefined && frag !== "" ? pattern.indexOf(frag) : -1;
    return { ok: false, message: `invalid regular expression: ${msg.replace(/^error parsing regexp: /, "")}`, offset: Math.max(0, at), length: at >= 0 ? frag!.length : pattern.length };
  }
  if (re.programSize() > MAX_REGEX_PROGRAM) {
    return { ok: false, message: `regular expression is too complex (${re.programSize()} instructions, at most ${MAX_REGEX_PROGRAM})`, offset: 0, length: pattern.length };
  }
  return { ok: true, re };
}

/** Backreferences and lookaround, which RE2 (and any linear-time engine) cannot run. */
function findUnsupported(p: string): { message: string; offset: number; length: number } | undefined {
  let inClass = false;
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === "\\") {
      const n = p[i + 1] ?? "";
      if (!inClass && (/[1-9]/.test(n) || (n === "k" && p[i + 2] === "<"))) {
        return { message: "backreferences are not supported: the regex engine (RE2) guarantees linear-time matching", offset: i, length: 2 };
      }
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") {
      inClass = true;
      // "[]abc]" and "[^]abc]" hold a literal ]
      if (p[i + 1] === "^") i++;
      if (p[i + 1] === "]") i++;
      continue;
    }
    if (c === "(" && p[i + 1] === "?") {
      const look = /^\(\?(=|!|<=|<!)/.exec(p.slice(i, i + 4));
      if (look) return { message: "lookaround is not supported: the regex engine (RE2) guarantees linear-time matching", offset: i, length: look[0].length };
    }
  }
  return undefined;
}
