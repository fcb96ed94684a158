// `wildcard` / `strict wildcard` patterns: `*` matches any run of characters (including none),
// `\*` and `\\` are a literal star and backslash; the whole value must match.

/** Splits a pattern into the literal segments between stars; a string result is an error message. */
export function parseWildcard(pattern: string): { segments: string[] } | { error: string; offset: number } {
  const segments: string[] = [];
  let cur = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "\\") {
      const n = pattern[i + 1];
      if (n !== "*" && n !== "\\") return { error: "in a wildcard pattern, a backslash may only escape * or \\", offset: i };
      cur += n;
      i++;
    } else if (c === "*") {
      segments.push(cur);
      cur = "";
    } else {
      cur += c;
    }
  }
  segments.push(cur);
  return { segments };
}

/**
 * A matcher over pre-split segments: anchored first and last segments, then leftmost search for
 * the middle ones. Greedy leftmost placement is optimal when `*` is the only metacharacter, so
 * this is linear in the value for a fixed pattern (no backtracking).
 */
export function wildcardMatcher(segments: readonly string[]): (v: string) => boolean {
  if (segments.length === 1) {
    const only = segments[0]!;
    return (v) => v === only;
  }
  const first = segments[0]!;
  const last = segments[segments.length - 1]!;
  const middle = segments.slice(1, -1).filter((s) => s !== "");
  const minLen = segments.reduce((n, s) => n + s.length, 0);
  return (v) => {
    if (v.length < minLen || !v.startsWith(first) || !v.endsWith(last)) return false;
    let pos = first.length;
    const end = v.length - last.length;
    for (const seg of middle) {
      const at = v.indexOf(seg, pos);
      if (at < 0 || at + seg.length > end) return false;
      pos = at + seg.length;
    }
    return true;
  };
}
