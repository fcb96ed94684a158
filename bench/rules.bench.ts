// Rules engine benchmark: parse / compile / execute, compiled program vs the reference
// interpreter (baseline) in the same run. Plain script: `node bench/rules.bench.ts`
// (Node 24: node_modules/.bin/node). Prints ns/op, ratios and a markdown table.

import { NO_CERT, compileExpression, compileRuleset, interpret, parseExpression } from "../src/rules/index.ts";
import type { Ast, RequestInput, RuleSpec } from "../src/rules/index.ts";

let sink = 0;

/** Median ns/op over 9 rounds of a calibrated loop (each round ≥ ~50 ms), after a bounded warm-up. */
function measure(fn: () => unknown): number {
  const warmUntil = Date.now() + 150;
  for (let i = 0; i < 5000 && Date.now() < warmUntil; i++) if (fn()) sink ^= 1; // let V8 optimise
  let n = 1;
  for (;;) {
    const t = time(fn, n);
    if (t > 50e6 || n > 1e8) break;
    n *= 2;
  }
  const rounds: number[] = [];
  for (let r = 0; r < 9; r++) rounds.push(time(fn, n) / n);
  rounds.sort((a, b) => a - b);
  return rounds[4]!;
}

function time(fn: () => unknown, n: number): number {
  // A local Smi counter: incrementing a module-level number would box it and skew short cases.
  let hits = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if (fn()) hits++;
  const dt = Number(process.hrtime.bigint() - t0);
  sink ^= hits & 1;
  return dt;
}

function input(path: string, host = "app.example.com"): RequestInput {
  return {
    host,
    method: "GET",
    uri: path,
    path,
    query: "",
    userAgent: "curl/8.5.0",
    headers: { host: [host], "user-agent": ["curl/8.5.0"], accept: ["*/*"] },
    srcIp: "203.0.113.7",
    ssl: true,
    tlsVersion: "TLSv1.3",
    cert: NO_CERT,
  };
}

/** The reference interpreter walking a ruleset in order, as the baseline for programs. */
function interpretRules(asts: readonly Ast[], rules: readonly RuleSpec[], req: RequestInput): string {
  for (let i = 0; i < asts.length; i++) {
    if (!interpret(asts[i]!, req)) continue;
    if (rules[i]!.action !== "log") return rules[i]!.action;
  }
  return "pass";
}

type Row = { group: string; case: string; compiled: number; baseline?: number; target?: string };
const rows: Row[] = [];
const fmt = (ns: number) => (ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : ns >= 1e4 ? `${(ns / 1e3).toFixed(1)} µs` : `${ns.toFixed(1)} ns`);
function report(r: Row): void {
  rows.push(r);
  const ratio = r.baseline ? `  interpreter ${fmt(r.baseline)}  → ${(r.baseline / r.compiled).toFixed(1)}x faster` : "";
  console.log(`${r.group.padEnd(8)} ${r.case.padEnd(52)} ${fmt(r.compiled).padStart(10)}${ratio}`);
}

const started = Date.now();
console.log(`node ${process.version}, ${process.arch}\n`);

// (a) the seed's canonical rule
const CANONICAL = 'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/admin"}';
const canonical = compileExpression(CANONICAL);
const canonicalAst = parseExpression(CANONICAL);
const adminNoCert = input("/admin");
const publicNoCert = input("/public");
report({ group: "parse", case: "canonical rule (parse + type check)", compiled: measure(() => parseExpression(CANONICAL)) });
report({ group: "compile", case: "canonical rule (parse + check + compile)", compiled: measure(() => compileExpression(CANONICAL)) });
report({
  group: "execute",
  case: "canonical rule, /admin without cert (match)",
  compiled: measure(() => canonical.evaluate(adminNoCert)),
  baseline: measure(() => interpret(canonicalAst, adminNoCert)),
  target: "≤ 50 ns, ≥ 5x",
});
report({
  group: "execute",
  case: "canonical rule, /public without cert (no match)",
  compiled: measure(() => canonical.evaluate(publicNoCert)),
  baseline: measure(() => interpret(canonicalAst, publicNoCert)),
  target: "≤ 50 ns, ≥ 5x",
});
const program1 = compileRuleset([{ id: "admin", expression: CANONICAL, action: "block" }]);
report({
  group: "execute",
  case: "canonical rule as a 1-rule program (Decision)",
  compiled: measure(() => program1.evaluate(adminNoCert).action === "block"),
  baseline: measure(() => interpretRules([canonicalAst], [{ id: "admin", expression: CANONICAL, action: "block" }], adminNoCert) === "block"),
});

// (b) 1,000 rules over distinct hostnames and paths
const N = 1000;
const rules: RuleSpec[] = [];
for (let i = 0; i < N; i++) {
  rules.push({
    id: `r${i}`,
    expression: `http.host eq "h${i}.example.com" and http.request.uri.path in {"/admin${i}" "/private${i}"} and not cf.tls_client_auth.cert_verified`,
    action: "block",
  });
}
const asts = rules.map((r) => parseExpression(r.expression));
const noneReq = input("/nothing", "nobody.example.com");
const lastReq = input(`/admin${N - 1}`, `h${N - 1}.example.com`);
const t0 = process.hrtime.bigint();
let program = compileRuleset(rules);
const firstCompile = Number(process.hrtime.bigint() - t0);
if (program.evaluate(lastReq).rule?.id !== `r${N - 1}` || program.evaluate(noneReq).action !== "pass") throw new Error("benchmark ruleset decides wrongly");
if (interpretRules(asts, rules, lastReq) !== "block" || interpretRules(asts, rules, noneReq) !== "pass") throw new Error("baseline decides wrongly");
report({ group: "parse", case: "1,000 rules (parse + type check all)", compiled: measure(() => rules.every((r) => parseExpression(r.expression))) });
report({ group: "compile", case: "1,000 rules → program (first, cold)", compiled: firstCompile, target: "≤ 100 ms" });
report({ group: "compile", case: "1,000 rules → program (warm)", compiled: measure(() => (program = compileRuleset(rules)).size), target: "≤ 100 ms" });
report({
  group: "execute",
  case: "1,000 rules, request matching none",
  compiled: measure(() => program.evaluate(noneReq).action === "pass"),
  baseline: measure(() => interpretRules(asts, rules, noneReq) === "pass"),
  target: "≤ 5 µs",
});
report({
  group: "execute",
  case: "1,000 rules, request matching the last",
  compiled: measure(() => program.evaluate(lastReq).action === "block"),
  baseline: measure(() => interpretRules(asts, rules, lastReq) === "block"),
  target: "≤ 5 µs",
});

// (c) the same size without an index: every rule must be evaluated in turn
const plain: RuleSpec[] = rules.map((r, i) => ({ ...r, expression: `starts_with(http.request.uri.path, "/admin${i}/") and not cf.tls_client_auth.cert_verified` }));
const plainAsts = plain.map((r) => parseExpression(r.expression));
const plainProgram = compileRuleset(plain);
report({
  group: "execute",
  case: "1,000 unindexable rules (starts_with), no match",
  compiled: measure(() => plainProgram.evaluate(noneReq).action === "pass"),
  baseline: measure(() => interpretRules(plainAsts, plain, noneReq) === "pass"),
});

// (d) a ruleset mixing indexed and unindexed rules: the index's lists come pre-merged with the others
const mixed: RuleSpec[] = [];
for (let i = 0; i < 200; i++) {
  mixed.push({ id: `m${i}`, expression: `http.host eq "h${i}.example.com" and http.request.uri.path in {"/admin${i}"}`, action: "block" });
  if (i % 20 === 0) mixed.push({ id: `u${i}`, expression: `starts_with(http.request.uri.path, "/never${i}/")`, action: "block" });
}
const mixedAsts = mixed.map((r) => parseExpression(r.expression));
const mixedProgram = compileRuleset(mixed);
const mixedReq = input("/admin150", "h150.example.com");
if (mixedProgram.evaluate(mixedReq).rule?.id !== "m150") throw new Error("mixed ruleset decides wrongly");
report({
  group: "execute",
  case: "200 indexed + 10 unindexed rules, match",
  compiled: measure(() => mixedProgram.evaluate(mixedReq).action === "block"),
  baseline: measure(() => interpretRules(mixedAsts, mixed, mixedReq) === "block"),
});

// (e) ip.src against CIDRs, the source address the same on every request (a keep-alive connection)
const IP_RULE = "ip.src in {10.0.0.0/8 192.168.0.0/16 2001:db8::/32}";
const ipRule = compileExpression(IP_RULE);
const ipAst = parseExpression(IP_RULE);
for (const [family, srcIp] of [["IPv4", "192.168.7.9"], ["IPv6", "2001:db8:0:1::42"]] as const) {
  const req = { ...input("/"), srcIp };
  if (!ipRule.evaluate(req)) throw new Error(`${IP_RULE} decides wrongly for ${srcIp}`);
  report({ group: "execute", case: `ip.src in {3 CIDRs}, ${family} source (match)`, compiled: measure(() => ipRule.evaluate(req)), baseline: measure(() => interpret(ipAst, req)) });
}

console.log("\n| group | case | compiled | interpreter | speed-up | target |\n|---|---|---:|---:|---:|---|");
for (const r of rows) {
  console.log(`| ${r.group} | ${r.case} | ${fmt(r.compiled)} | ${r.baseline ? fmt(r.baseline) : ""} | ${r.baseline ? `${(r.baseline / r.compiled).toFixed(1)}x` : ""} | ${r.target ?? ""} |`);
}
console.log(`\n(${((Date.now() - started) / 1000).toFixed(1)} s; sink ${sink})`);
