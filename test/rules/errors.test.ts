// Every error code, with its exact position and caret.

import { describe, expect, it } from "vitest";
import { MAX_DEPTH, RuleSyntaxError, checkExpression, compileExpression, parseExpression } from "../../src/rules/index.ts";
import type { RuleErrorCode } from "../../src/rules/index.ts";

function error(src: string, options = {}): RuleSyntaxError {
  try {
    parseExpression(src, options);
  } catch (e) {
    expect(e).toBeInstanceOf(RuleSyntaxError);
    return e as RuleSyntaxError;
  }
  throw new Error(`expected ${src} to fail`);
}

// [expression, code, position, length]
const cases: [string, RuleErrorCode, number, number][] = [
  ["", "empty", 0, 1],
  ["   ", "empty", 3, 1],
  ["http.hots eq \"a\"", "unknown_field", 0, 9],
  ['ssl and http.request.uri.paht eq "/"', "unknown_field", 8, 21],
  ['lowr(http.host) eq "a"', "unknown_function", 0, 4],
  ['cf.tls_client_auth.cert_verified eq "x"', "type_mismatch", 36, 3],
  ['http.host eq example.com', "type_mismatch", 13, 11],
  ["http.host", "type_mismatch", 0, 9],
  ["len(http.host)", "type_mismatch", 0, 14],
  ['http.host contains "a" and http.host', "type_mismatch", 27, 9],
  ['ip.src contains "10."', "type_mismatch", 7, 8],
  ["ip.src lt 10.0.0.1", "type_mismatch", 7, 2],
  ["http.request.headers eq \"a\"", "type_mismatch", 21, 2],
  ['http.request.headers[0][0] eq "a"', "type_mismatch", 0, 23],
  ['http.request.headers["a"][*] eq "x"', "type_mismatch", 0, 35],
  ['any(http.host eq "a")', "type_mismatch", 4, 16],
  ['starts_with(http.host)', "type_mismatch", 0, 22],
  ['len(http.request.uri.path) eq "3"', "type_mismatch", 30, 3],
  ['http.request.uri.path in {"/a" 3}', "type_mismatch", 31, 1],
  ['len(http.host) eq 3x', "bad_literal", 18, 2],
  ["len(http.host) in {10..2}", "bad_literal", 19, 5],
  ["ip.src eq 10.0.0.256", "bad_literal", 10, 10],
  ["ip.src in {10.0.0.0/33}", "bad_literal", 11, 11],
  ['http.host eq "abc', "bad_literal", 13, 1],
  ['http.host eq "a\\qb"', "bad_literal", 15, 2],
  ["http.host in {}", "bad_literal", 13, 2],
  ['url_decode(http.host, "x") eq "a"', "bad_literal", 22, 3],
  ['http.host wildcard "a\\\\b"', "bad_literal", 21, 3],
  ['(http.host eq "a"', "unbalanced_parens", 0, 1],
  ['http.host eq "a")', "unbalanced_parens", 16, 1],
  ['((ssl) and (ssl)', "unbalanced_parens", 0, 1],
  ['http.host in {"a" "b"', "unbalanced_parens", 13, 1],
  ['lower(http.host eq "a"', "unbalanced_parens", 5, 1],
  ['http.request.headers["a"', "unbalanced_parens", 20, 1],
  [")", "unbalanced_parens", 0, 1],
  ['http.host eq', "unexpected_token", 12, 1],
  ['http.host eq "a" "b"', "unexpected_token", 17, 3],
  ['http.host "a"', "unexpected_token", 10, 3],
  ["and ssl", "unexpected_token", 0, 3],
  ["ssl and", "unexpected_token", 7, 1],
  ["ssl @ ssl", "unexpected_token", 4, 1],
  ['"a" eq http.host', "unexpected_token", 0, 3],
  ['http.host strict "a"', "unexpected_token", 17, 3],
  ['http.host in "a"', "unexpected_token", 13, 3],
  ['http.request.uri.path matches "(a)\\\\1"', "bad_regex", 34, 3],
  ['http.request.uri.path matches "^/a(?=b)"', "bad_regex", 34, 3],
  ['http.request.uri.path matches r"(?<!x)y"', "bad_regex", 32, 4],
  ['http.request.uri.path matches "a["', "bad_regex", 32, 1],
  ['http.request.uri.path matches "a{2,1}"', "bad_regex", 32, 5],
  // 10 × 1,000 repetitions: 10,002 RE2 instructions, over the documented 10,000
  [`http.request.uri.path matches "${[..."abcdefghij"].map((c) => `${c}{1000}`).join("")}"`, "bad_regex", 31, 70],
  ['http.host in $nope', "unknown_list", 13, 5],
  [`http.host eq "${"a".repeat(4100)}"`, "too_large", 4096, 1],
  [`${"(".repeat(MAX_DEPTH + 1)}ssl${")".repeat(MAX_DEPTH + 1)}`, "too_deep", MAX_DEPTH, 1],
  [`${"not ".repeat(MAX_DEPTH + 1)}ssl`, "too_deep", 4 * MAX_DEPTH, 3],
];

describe("error codes and positions", () => {
  for (const [src, code, position, length] of cases) {
    it(`${code}: ${src.length > 60 ? src.slice(0, 60) + "…" : src}`, () => {
      const e = error(src);
      expect({ code: e.code, position: e.position, length: e.length }).toEqual({ code, position, length });
      expect(e.expression).toBe(src);
    });
  }

  it("accepts the deepest allowed nesting", () => {
    expect(() => parseExpression(`${"(".repeat(MAX_DEPTH)}ssl${")".repeat(MAX_DEPTH)}`)).not.toThrow();
    expect(() => parseExpression(`${"not ".repeat(MAX_DEPTH)}ssl`)).not.toThrow();
  });

  it("counts the size limit in UTF-8 bytes", () => {
    const ok = `http.host eq "${"é".repeat(2030)}"`; // 2030 × 2 bytes + 15 = 4075 bytes
    expect(() => parseExpression(ok)).not.toThrow();
    expect(error(`http.host eq "${"é".repeat(2050)}"`).code).toBe("too_large");
  });

  it("draws a caret under the offending text", () => {
    const e = error('cf.tls_client_auth.cert_verified eq "x"');
    expect(e.caret()).toBe('cf.tls_client_auth.cert_verified eq "x"\n                                    ^~~');
    expect(error("ssl and\n  http.hots eq \"a\"").caret()).toBe('  http.hots eq "a"\n  ^~~~~~~~~');
  });

  it("suggests the field that was probably meant", () => {
    expect(error('http.hots eq "a"').message).toContain("did you mean http.host?");
    expect(error("cert_verified").message).toContain("did you mean cf.tls_client_auth.cert_verified?");
    // certgate's own fields live under certgate.tls_client_auth., not Cloudflare's prefix.
    expect(error('spiffe_id eq "x"').message).toContain("did you mean certgate.tls_client_auth.spiffe_id?");
    expect(error('certgate.tls_client_auth.san_dns eq "x"').message).toContain("did you mean certgate.tls_client_auth.san.dns?");
    expect(error('cf.tls_client_auth.san.uri[0] eq "x"').message).toContain("did you mean certgate.tls_client_auth.san.uri?");
  });

  it("explains why backreferences and lookaround are refused", () => {
    expect(error('http.request.uri.path matches "(a)\\\\1"').message).toMatch(/backreferences are not supported.*linear/);
    expect(error('http.request.uri.path matches "(?=a)"').message).toMatch(/lookaround is not supported/);
  });

  it("refuses a regular expression over 10,000 RE2 instructions as too complex, and accepts one just under", () => {
    const pattern = (n: number) => [..."abcdefghij"].slice(0, n).map((c) => `${c}{1000}`).join("");
    expect(error(`http.request.uri.path matches "${pattern(10)}"`).message).toMatch(/too complex \(10002 instructions, at most 10000\)/);
    expect(() => parseExpression(`http.request.uri.path matches "${pattern(9)}"`)).not.toThrow();
  });

  it("resolves lists given at compile time and types their items", () => {
    const lists = { acl: ["CN=Test CA,O=Example,C=US"], nets: ["10.0.0.0/8", "::1"], bad: ["10.0.0.300"] };
    const c = compileExpression("cf.tls_client_auth.cert_issuer_dn in $acl and ip.src in $nets", { lists });
    expect(c.normalized).toBe("cf.tls_client_auth.cert_issuer_dn in $acl and ip.src in $nets");
    expect(error("ip.src in $bad", { lists }).code).toBe("bad_literal");
  });
});

describe("rules check", () => {
  it("prints the normalised expression and the fields with their types", () => {
    const r = checkExpression('!cf.tls_client_auth.cert_verified && http.request.uri.path in {"/admin"}');
    expect(r.ok).toBe(true);
    expect(r.output).toBe(
      'ok: not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/admin"}\n' +
        "fields:\n" +
        "  cf.tls_client_auth.cert_verified  Bool\n" +
        "  http.request.uri.path             String\n",
    );
    expect(r.fields).toEqual([
      { name: "cf.tls_client_auth.cert_verified", type: "Bool" },
      { name: "http.request.uri.path", type: "String" },
    ]);
  });

  it("prints the error with its caret", () => {
    const r = checkExpression('cf.tls_client_auth.cert_verified eq "x"');
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe("type_mismatch");
    expect(r.output).toBe(
      "error[type_mismatch]: a Bool compares only with true or false; found a string (a Bool field can also stand alone: field, not field) at position 36\n" +
        'cf.tls_client_auth.cert_verified eq "x"\n' +
        "                                    ^~~\n",
    );
  });

  it("notes expressions that are constant", () => {
    expect(checkExpression("true or ssl").output).toContain("always true");
  });
});
