// Rulesets: order, actions, custom responses, disabled rules, validation, field reads, index.

import { describe, expect, it } from "vitest";
import { DEFAULT_BLOCK_RESPONSE, FIELDS, RuleSetError, RuleSyntaxError, compileExpression, compileRuleset } from "../../src/rules/index.ts";
import type { RuleSpec } from "../../src/rules/index.ts";
import { VALID_CERT, countingInput, makeInput } from "./helpers.ts";

const ADMIN_BLOCK: RuleSpec = { id: "admin-mtls", expression: 'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/admin"}', action: "block" };

describe("the seed's mTLS rules", () => {
  const program = compileRuleset([ADMIN_BLOCK]);
  it("blocks /admin without a certificate with 403", () => {
    const d = program.evaluate(makeInput({ path: "/admin" }));
    expect(d.action).toBe("block");
    expect(d.rule?.id).toBe("admin-mtls");
    expect(d.response).toEqual(DEFAULT_BLOCK_RESPONSE);
    expect(d.response?.status).toBe(403);
  });
  it("passes /public without a certificate", () => {
    expect(program.evaluate(makeInput({ path: "/public" }))).toEqual({ action: "pass", logged: [] });
  });
  it("passes /admin with a valid certificate", () => {
    expect(program.evaluate(makeInput({ path: "/admin", cert: VALID_CERT })).action).toBe("pass");
  });
  it("blocks a revoked certificate with the revocation rule (cert_verified stays true)", () => {
    const p = compileRuleset([{ id: "r", expression: '(not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked) and http.request.uri.path in {"/admin"}', action: "block" }]);
    expect(p.evaluate(makeInput({ path: "/admin", cert: { ...VALID_CERT, revoked: true } })).action).toBe("block");
    expect(p.evaluate(makeInput({ path: "/admin", cert: VALID_CERT })).action).toBe("pass");
  });
});

describe("actions and order", () => {
  const rules: RuleSpec[] = [
    { id: "log-all-admin", expression: 'starts_with(http.request.uri.path, "/admin")', action: "log" },
    { id: "allow-office", expression: "ip.src in {10.0.0.0/8}", action: "allow" },
    { id: "log-curl", expression: 'http.user_agent contains "curl"', action: "log", description: "who uses curl" },
    { id: "block-admin", expression: 'starts_with(http.request.uri.path, "/admin")', action: "block", response: { status: 401, contentType: "application/json", body: '{"error":"mtls required"}' } },
    { id: "block-all", expression: "true", action: "block" },
  ];
  const p = compileRuleset(rules);

  it("stops at the first allow, keeping the logs recorded before it", () => {
    const d = p.evaluate(makeInput({ path: "/admin/x", srcIp: "10.1.1.1" }));
    expect(d.action).toBe("allow");
    expect(d.rule?.id).toBe("allow-office");
    expect(d.response).toBeUndefined();
    expect(d.logged.map((r) => r.id)).toEqual(["log-all-admin"]);
  });
  it("logs and continues, then blocks with the custom response", () => {
    const d = p.evaluate(makeInput({ path: "/admin/x" }));
    expect(d.action).toBe("block");
    expect(d.rule?.id).toBe("block-admin");
    expect(d.logged.map((r) => r.id)).toEqual(["log-all-admin", "log-curl"]);
    expect(d.response).toEqual({ status: 401, contentType: "application/json", body: '{"error":"mtls required"}' });
  });
  it("falls through to later rules in order", () => {
    const d = p.evaluate(makeInput({ path: "/", userAgent: "Mozilla" }));
    expect(d.rule?.id).toBe("block-all");
    expect(d.logged).toEqual([]);
  });
  it("passes when nothing decides, with the log rules that matched", () => {
    const q = compileRuleset([rules[0]!, rules[2]!]);
    expect(q.evaluate(makeInput({ path: "/admin" })).action).toBe("pass");
    expect(q.evaluate(makeInput({ path: "/admin" })).logged.map((r) => r.id)).toEqual(["log-all-admin", "log-curl"]);
    expect(q.evaluate(makeInput({ path: "/", userAgent: "x" }))).toEqual({ action: "pass", logged: [] });
  });
  it("skips disabled rules but still checks them", () => {
    const q = compileRuleset([{ ...rules[4]!, enabled: false }, { id: "b", expression: "ssl", action: "allow" }]);
    expect(q.size).toBe(1);
    expect(q.evaluate(makeInput()).action).toBe("allow");
    expect(() => compileRuleset([{ id: "x", expression: "ssl eq 1", action: "block", enabled: false }])).toThrow(RuleSetError);
  });
  it("fills a partial custom response from the defaults", () => {
    const q = compileRuleset([{ id: "b", expression: "true", action: "block", response: { status: 429 } }]);
    expect(q.evaluate(makeInput()).response).toEqual({ ...DEFAULT_BLOCK_RESPONSE, status: 429 });
    const r = compileRuleset([{ id: "b", expression: "true", action: "block", response: { status: 403, body: "no" } }]);
    expect(r.evaluate(makeInput()).response).toEqual({ status: 403, contentType: "text/plain; charset=utf-8", body: "no" });
  });
  it("does not let callers mutate shared decisions", () => {
    const d = p.evaluate(makeInput({ path: "/", userAgent: "x" }));
    expect(Object.isFrozen(d)).toBe(true);
    expect(Object.isFrozen(d.logged)).toBe(true);
  });
});

describe("validation names the rule", () => {
  const bad = (rule: Partial<RuleSpec>, pattern: RegExp) => {
    let err: unknown;
    try {
      compileRuleset([{ id: "ok", expression: "ssl", action: "log" }, rule as RuleSpec]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuleSetError);
    const e = err as RuleSetError;
    expect(e.index).toBe(1);
    expect(e.message).toMatch(pattern);
    return e;
  };
  it("reports an expression error with its rule id, position and caret", () => {
    const e = bad({ id: "r2", expression: 'http.hots eq "a"', action: "block" }, /rule "r2" \(#1\).*unknown field/s);
    expect(e.ruleId).toBe("r2");
    expect(e.cause).toBeInstanceOf(RuleSyntaxError);
    expect(e.cause?.code).toBe("unknown_field");
    expect(e.cause?.position).toBe(0);
    expect(e.message).toContain("^~~~~~~~~");
  });
  it("refuses invalid specs", () => {
    bad({ id: "ok", expression: "ssl", action: "log" }, /duplicate rule id/);
    bad({ id: "", expression: "ssl", action: "log" }, /id must be/);
    bad({ id: "a", expression: "ssl", action: "deny" as "block" }, /action must be/);
    bad({ id: "a", expression: "ssl", action: "allow", response: { status: 403 } }, /only block rules/);
    bad({ id: "a", expression: "ssl", action: "block", response: { status: 200 } }, /400 to 499/);
    bad({ id: "a", expression: "ssl", action: "block", response: { status: 403, contentType: "text/html\r\nX-Evil: 1" } }, /media type/);
    bad({ id: "a", expression: "ssl", action: "block", response: { status: 403, body: "x".repeat(20000) } }, /at most/);
    bad({ id: "a", expression: 5 as unknown as string, action: "block" }, /expression must be a string/);
    bad({ id: "a", expression: "ssl", action: "block", enabled: "yes" as unknown as boolean }, /enabled/);
  });
});

describe("field reads", () => {
  it("reads each field at most once per evaluation, and only fields a rule needs", () => {
    const p = compileRuleset([
      { id: "a", expression: 'http.request.uri.path eq "/a" and http.host eq "x"', action: "log" },
      { id: "b", expression: 'http.request.uri.path eq "/b" or http.request.uri.path eq "/c"', action: "log" },
      { id: "c", expression: 'http.request.uri.path matches "^/d" and not cf.tls_client_auth.cert_verified', action: "block" },
      { id: "d", expression: "ssl", action: "allow", enabled: false },
    ]);
    const { input, reads } = countingInput({ path: "/d" });
    expect(p.evaluate(input).action).toBe("block");
    expect(reads.get("path")).toBe(1);
    expect(reads.get("cert.verified")).toBe(1);
    expect(reads.has("host")).toBe(false); // rule a failed on the path first
    expect(reads.has("ssl")).toBe(false); // only a disabled rule names it
    expect(reads.has("headers")).toBe(false);
    // A second evaluation reads again (no stale cache across requests).
    const second = countingInput({ path: "/b" });
    expect(p.evaluate(second.input).action).toBe("pass");
    expect(second.reads.get("path")).toBe(1);
  });
  it("ip.src parses an address once while it stays the same, and follows when it changes", () => {
    const read = FIELDS.get("ip.src")!.read;
    const a = read(makeInput({ srcIp: "10.1.2.3" }));
    expect(a).toEqual({ v: 4, n: 0x0a010203 });
    expect(read(makeInput({ srcIp: "10.1.2.3" }))).toBe(a); // the memo: same object
    expect(Object.isFrozen(a)).toBe(true);
    expect(read(makeInput({ srcIp: "bogus" }))).toBeUndefined();
    expect(read(makeInput({ srcIp: "::1" }))).toEqual({ v: 6, n: 1n });
    expect(read(makeInput({ srcIp: "10.1.2.4" }))).toEqual({ v: 4, n: 0x0a010204 });
    const c = compileExpression("ip.src in {10.0.0.0/8}");
    expect([c.evaluate(makeInput({ srcIp: "10.9.9.9" })), c.evaluate(makeInput({ srcIp: "11.0.0.1" })), c.evaluate(makeInput({ srcIp: "10.9.9.9" }))]).toEqual([true, false, true]);
  });
  it("a compiled expression also reads a field once", () => {
    const c = compileExpression('http.host eq "a" or http.host eq "b" or lower(http.host) eq "c"');
    const { input, reads } = countingInput({ host: "C" });
    expect(c.evaluate(input)).toBe(true);
    expect(reads.get("host")).toBe(1);
  });
});

describe("indexed rulesets", () => {
  const N = 200;
  const rules: RuleSpec[] = [];
  for (let i = 0; i < N; i++) {
    rules.push({ id: `r${i}`, expression: `http.host eq "h${i}.example.com" and http.request.uri.path in {"/p${i}" "/q${i}"}`, action: i % 3 === 0 ? "log" : "block" });
    if (i === 50) rules.push({ id: "unindexed", expression: 'starts_with(http.request.uri.path, "/p60") and http.request.method ne "GET"', action: "allow" });
    if (i === 70) rules.push({ id: "or-rule", expression: 'http.host eq "h80.example.com" or http.request.uri.path eq "/special"', action: "log" });
    // Keyed on other fields than the host: a request can hit several indexes at once.
    if (i === 30) rules.push({ id: "post-p40", expression: 'http.request.method eq "POST" and http.request.uri.path eq "/p40"', action: "allow" });
    if (i === 90) rules.push({ id: "purge", expression: 'http.request.method in {"PURGE" "DELETE"}', action: "log" });
  }
  const p = compileRuleset(rules);
  const linear = (input: ReturnType<typeof makeInput>) => {
    // The same semantics, walked naively: the oracle for the index.
    const logged: string[] = [];
    for (const r of rules) {
      if (!compileExpression(r.expression).evaluate(input)) continue;
      if (r.action === "log") logged.push(r.id);
      else return { action: r.action, id: r.id, logged };
    }
    return { action: "pass", id: undefined, logged };
  };
  const probe = (host: string, path: string, method = "GET") => {
    const input = makeInput({ host, path, method });
    const d = p.evaluate(input);
    expect({ action: d.action, id: d.rule?.id, logged: d.logged.map((r) => r.id) }).toEqual(linear(input));
    return d;
  };
  it("matches the naive walk, keeping rule order across index and unindexed rules", () => {
    expect(probe("h7.example.com", "/q7").rule?.id).toBe("r7");
    expect(probe("h60.example.com", "/p60", "POST").rule?.id).toBe("unindexed");
    expect(probe("h60.example.com", "/p60").logged.map((r) => r.id)).toEqual(["r60"]);
    expect(probe("h61.example.com", "/p61").rule?.id).toBe("r61");
    expect(probe("h80.example.com", "/p80").logged.map((r) => r.id)).toEqual(["or-rule"]);
    expect(probe("h81.example.com", "/special").logged.map((r) => r.id)).toEqual(["or-rule"]);
    expect(probe("h3.example.com", "/p3").action).toBe("pass");
    expect(probe("nobody", "/nothing").action).toBe("pass");
    expect(probe("h199.example.com", "/p199").rule?.id).toBe("r199");
    for (let i = 0; i < N; i += 7) probe(`h${i}.example.com`, `/p${(i * 13) % N}`);
  });
  it("merges hits from several indexes in rule order", () => {
    expect(probe("h40.example.com", "/p40", "POST").rule?.id).toBe("post-p40");
    expect(probe("h41.example.com", "/p40", "POST").rule?.id).toBe("post-p40");
    const purge = probe("h95.example.com", "/p95", "PURGE");
    expect([purge.rule?.id, purge.logged.map((r) => r.id)]).toEqual(["r95", ["purge"]]);
    expect(probe("h40.example.com", "/p40", "DELETE").rule?.id).toBe("r40");
    expect(probe("h10.example.com", "/p10", "DELETE").logged.map((r) => r.id)).toEqual([]);
    expect(probe("nobody", "/p40", "DELETE").logged.map((r) => r.id)).toEqual(["purge"]);
  });
});
