// Golden tests: every field and every operator, checked against both the compiler and the
// reference interpreter, with inputs that make each expression true and false.

import { describe, expect, it } from "vitest";
import { FIELDS, compileExpression, interpret } from "../../src/rules/index.ts";
import { VALID_CERT, makeInput } from "./helpers.ts";
import type { InputPatch } from "./helpers.ts";

function both(expr: string, patch: InputPatch): boolean {
  const c = compileExpression(expr);
  const input = makeInput(patch);
  const compiled = c.evaluate(input);
  expect(interpret(c.ast, input), `interpreter disagrees on ${expr}`).toBe(compiled);
  return compiled;
}

type Case = [expr: string, whenTrue: InputPatch, whenFalse: InputPatch];

const CERT = "cf.tls_client_auth.";
const OWN = "certgate.tls_client_auth.";
const fieldCases: Record<string, Case> = {
  [`${CERT}cert_presented`]: [`${CERT}cert_presented`, { cert: { presented: true } }, {}],
  [`${CERT}cert_verified`]: [`${CERT}cert_verified`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_revoked`]: [`${CERT}cert_revoked`, { cert: { ...VALID_CERT, revoked: true } }, { cert: VALID_CERT }],
  [`${CERT}cert_issuer_dn`]: [`${CERT}cert_issuer_dn eq "CN=Test CA,O=Example,C=US"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_subject_dn`]: [`${CERT}cert_subject_dn contains "CN=client"`, { cert: VALID_CERT }, { cert: { subjectDn: "CN=other" } }],
  [`${CERT}cert_issuer_dn_rfc2253`]: [`${CERT}cert_issuer_dn_rfc2253 eq "CN=Test CA,O=Example,C=US"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_subject_dn_rfc2253`]: [`${CERT}cert_subject_dn_rfc2253 eq "CN=client,O=Example,C=US"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_issuer_dn_legacy`]: [`${CERT}cert_issuer_dn_legacy eq "/C=US/O=Example/CN=Test CA"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_subject_dn_legacy`]: [`ends_with(${CERT}cert_subject_dn_legacy, "/CN=client")`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_serial`]: [`${CERT}cert_serial in {"1A2B3C" "FFFF"}`, { cert: VALID_CERT }, { cert: { serial: "1a2b3c" } }],
  [`${CERT}cert_fingerprint_sha256`]: [`${CERT}cert_fingerprint_sha256 eq "${"ab".repeat(32)}"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_fingerprint_sha1`]: [`len(${CERT}cert_fingerprint_sha1) eq 40`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_ski`]: [`${CERT}cert_ski eq "0A0B0C"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_issuer_ski`]: [`${CERT}cert_issuer_ski eq "0D0E0F"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_not_before`]: [`${CERT}cert_not_before wildcard "* 2022 GMT"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_not_after`]: [`${CERT}cert_not_after matches "20[3-9][0-9] GMT$"`, { cert: VALID_CERT }, { cert: { notAfter: "Mar 21 13:35:00 2024 GMT" } }],
  [`${CERT}cert_rfc9440`]: [`${CERT}cert_rfc9440 eq ":MIIB:"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_chain_rfc9440`]: [`${CERT}cert_chain_rfc9440 contains ":MIID:"`, { cert: VALID_CERT }, {}],
  [`${CERT}cert_rfc9440_too_large`]: [`${CERT}cert_rfc9440_too_large`, { cert: { ...VALID_CERT, rfc9440: "", rfc9440TooLarge: true } }, { cert: VALID_CERT }],
  [`${CERT}cert_chain_rfc9440_too_large`]: [`${CERT}cert_chain_rfc9440_too_large and ${CERT}cert_chain_rfc9440 eq ""`, { cert: { ...VALID_CERT, chainRfc9440: "", chainRfc9440TooLarge: true } }, { cert: VALID_CERT }],
  [`${CERT}cert_issuer_serial`]: [`${CERT}cert_issuer_serial eq "0F0E0D"`, { cert: VALID_CERT }, {}],
  [`${OWN}san.dns`]: [`any(${OWN}san.dns[*] wildcard "*.payments.example")`, { cert: VALID_CERT }, { cert: { ...VALID_CERT, sanDns: ["payments.example"] } }],
  [`${OWN}san.uri`]: [`any(${OWN}san.uri[*] eq "spiffe://prod.example/ns/payments/sa/api")`, { cert: VALID_CERT }, { cert: { ...VALID_CERT, sanUri: ["spiffe://prod.example/ns/payments/sa/web"] } }],
  [`${OWN}san.email`]: [`${OWN}san.email[0] eq "ops@example.com"`, { cert: VALID_CERT }, {}],
  [`${OWN}san.ip`]: [`any(${OWN}san.ip[*] in {"2001:db8::7"})`, { cert: VALID_CERT }, { cert: { ...VALID_CERT, sanIp: ["10.0.0.7"] } }],
  [`${OWN}spiffe_id`]: [`starts_with(${OWN}spiffe_id, "spiffe://prod.example/")`, { cert: VALID_CERT }, {}],
  [`${OWN}not_before`]: [`${OWN}not_before lt 1700000000`, { cert: VALID_CERT }, { cert: { ...VALID_CERT, notBeforeUnix: 1800000000 } }],
  [`${OWN}not_after`]: [`${OWN}not_after in {1900000000..2000000000}`, { cert: VALID_CERT }, {}],
  "http.host": [`http.host eq "admin.example.com"`, { host: "admin.example.com" }, {}],
  "http.request.method": [`http.request.method in {"POST" "PUT"}`, { method: "PUT" }, { method: "GET" }],
  "http.request.uri": [`http.request.uri eq "/a?b=1"`, { uri: "/a?b=1" }, {}],
  "http.request.uri.path": [`http.request.uri.path in {"/admin"}`, { path: "/admin" }, { path: "/admin/" }],
  "http.request.uri.query": [`http.request.uri.query contains "debug=1"`, { query: "x=2&debug=1" }, {}],
  "http.user_agent": [`http.user_agent wildcard "curl/*"`, {}, { userAgent: "Mozilla/5.0" }],
  "http.request.headers": [`http.request.headers["x-api-key"][0] eq "k1"`, { headers: { "x-api-key": ["k1"] } }, { headers: { "x-api-key": ["k2", "k1"] } }],
  "http.request.headers.names": [`any(http.request.headers.names[*] eq "x-debug")`, { headers: { "x-debug": ["1"] } }, {}],
  "http.request.headers.values": [`any(http.request.headers.values[*] contains "secret")`, { headers: { a: ["x", "top-secret"] } }, {}],
  "ip.src": [`ip.src in {10.0.0.0/8}`, { srcIp: "10.9.8.7" }, {}],
  ssl: ["ssl", {}, { ssl: false }],
  "cf.tls_version": [`cf.tls_version eq "TLSv1.3"`, {}, { tlsVersion: "TLSv1.2" }],
};

describe("every field of the scheme", () => {
  it("has a golden case for each field", () => {
    expect(Object.keys(fieldCases).sort()).toEqual([...FIELDS.keys()].sort());
  });
  for (const [name, [expr, t, f]] of Object.entries(fieldCases)) {
    it(`${name}: ${expr}`, () => {
      expect(compileExpression(expr).fields).toContain(name);
      expect(both(expr, t)).toBe(true);
      expect(both(expr, f)).toBe(false);
    });
  }
});

// [expression, input, expected]
const operatorCases: [string, InputPatch, boolean][] = [
  // eq / ne, words and symbols
  ['http.host eq "app.example.com"', {}, true],
  ['http.host == "APP.example.com"', {}, false], // eq is case-sensitive
  ['http.host ne "app.example.com"', {}, false],
  ['http.host != "other"', {}, true],
  ["ssl eq true", {}, true],
  ["ssl == false", {}, false],
  ["ssl ne false", {}, true],
  // ordering: strings lexicographic, integers numeric
  ['http.request.method lt "HEAD"', { method: "GET" }, true],
  ['http.request.method < "GET"', { method: "GET" }, false],
  ['http.request.method le "GET"', { method: "GET" }, true],
  ['http.request.method gt "DELETE"', { method: "GET" }, true],
  ['http.request.method >= "GET"', { method: "GET" }, true],
  ['http.request.uri.path gt "/b"', { path: "/a/very/long" }, false],
  ["len(http.request.uri.path) gt 10", { path: "/a/very/long" }, true],
  ["len(http.request.uri.path) > 9", { path: "/b" }, false], // numeric, not "2" > "9"
  ["len(http.request.uri.path) ge 2", { path: "/b" }, true],
  ["len(http.request.uri.path) lt 10", { path: "/b" }, true],
  ["len(http.request.uri.path) <= 1", { path: "/b" }, false],
  ["len(http.request.uri.path) eq -1", {}, false],
  // contains is case-sensitive
  ['http.user_agent contains "curl"', {}, true],
  ['http.user_agent contains "CURL"', {}, false],
  // matches / ~: RE2 syntax, unanchored search, case-sensitive
  ['http.request.uri.path matches "^/api/v[0-9]+/"', { path: "/api/v2/users" }, true],
  ['http.request.uri.path ~ "users$"', { path: "/api/v2/users" }, true],
  ['http.request.uri.path ~ "USERS"', { path: "/api/v2/users" }, false],
  ['http.request.uri.path ~ "(?i)USERS"', { path: "/api/v2/users" }, true],
  ['http.request.uri.path matches r"\\.(php|asp)$"', { path: "/x.php" }, true],
  // anchored literal prefixes are pre-checked: quantifiers and alternation must not break that
  ['http.request.uri.path matches "^/ab+c"', { path: "/abbbc" }, true],
  ['http.request.uri.path matches "^/ab*c"', { path: "/ac" }, true],
  ['http.request.uri.path matches "^/ab?c"', { path: "/ac" }, true],
  ['http.request.uri.path matches "^/ab{0,2}c"', { path: "/ac" }, true],
  ['http.request.uri.path matches "^/api|admin"', { path: "/x/admin" }, true],
  ['http.request.uri.path matches "^/api/"', { path: "/apix" }, false],
  // wildcard: case-insensitive, * is any run; strict wildcard: case-sensitive
  ['http.host wildcard "*.EXAMPLE.com"', {}, true],
  ['http.host wildcard "*.example.org"', {}, false],
  ['http.host wildcard "app*"', {}, true],
  ['http.host wildcard "a*p*e*m"', {}, true],
  ['http.host wildcard "app.example.com*"', {}, true], // * matches the empty run
  ['http.host wildcard "*"', {}, true],
  ['http.host wildcard "app"', {}, false], // anchored
  ['http.host strict wildcard "*.EXAMPLE.com"', {}, false],
  ['http.host strict wildcard "*.example.com"', {}, true],
  ['http.request.uri.path wildcard "/a\\\\*b"', { path: "/a*b" }, true],
  ['http.request.uri.path wildcard "/a\\\\*b"', { path: "/axb" }, false],
  // in: strings, integers, ranges, IPs, CIDRs, IP ranges
  ['http.request.uri.path in {"/admin" "/private"}', { path: "/private" }, true],
  ['http.request.uri.path in {"/admin", "/private"}', { path: "/public" }, false],
  ["len(http.request.uri.path) in {1 5 80..443}", { path: "/" }, true],
  ["len(http.request.uri.path) in {1 5 80..443}", { path: "/" + "a".repeat(99) }, true],
  ["len(http.request.uri.path) in {1 5 80..443}", { path: "/ab" }, false],
  ["ip.src eq 203.0.113.7", {}, true],
  ["ip.src eq 203.0.113.8", {}, false],
  ["ip.src ne 203.0.113.8", {}, true],
  ["ip.src in {10.0.0.0/8 192.168.0.0/16}", { srcIp: "192.168.44.1" }, true],
  ["ip.src in {10.0.0.0/8 192.168.0.0/16}", { srcIp: "172.16.0.1" }, false],
  ["ip.src in {10.0.0.5..10.0.0.9}", { srcIp: "10.0.0.7" }, true],
  ["ip.src in {10.0.0.5..10.0.0.9}", { srcIp: "10.0.0.10" }, false],
  ["ip.src in {::1}", { srcIp: "::1" }, true],
  ["ip.src eq ::1", { srcIp: "0:0:0:0:0:0:0:1" }, true],
  ["ip.src in {2001:db8::/32}", { srcIp: "2001:db8:1::5" }, true],
  ["ip.src in {2001:db8::/32}", { srcIp: "2001:db9::5" }, false],
  ["ip.src in {10.0.0.0/8}", { srcIp: "::ffff:10.1.1.1" }, true], // IPv4-mapped counts as IPv4
  ["ip.src in {0.0.0.0/0}", { srcIp: "::1" }, false],
  ["ip.src in {::/0}", { srcIp: "::1" }, true],
  ["ip.src in {10.0.0.0/8}", { srcIp: "garbage" }, false], // missing value
  ["not ip.src in {10.0.0.0/8}", { srcIp: "garbage" }, true],
  // logic and precedence: not > and > xor > or
  ["true or false and false", {}, true],
  ["(true or false) and false", {}, false],
  ["true xor true or true", {}, true],
  ["true xor (true or true)", {}, false],
  ["false and true xor true", {}, true],
  ["not false and false", {}, false],
  ["not (false and false)", {}, true],
  ["! ssl || ssl && ! ssl", {}, false],
  ["ssl ^^ ssl", {}, false],
  ["ssl xor not ssl", {}, true],
  ["true xor true xor true", {}, true],
  // functions
  ['lower(http.host) eq "app.example.com"', { host: "APP.Example.COM" }, true],
  ['upper(http.request.method) eq "POST"', { method: "post" }, true],
  ['lower("ÄB") eq "Äb"', {}, true], // ASCII-only case mapping
  ['len("é") eq 2', {}, true], // UTF-8 bytes
  ['starts_with(http.request.uri.path, "/api")', { path: "/api/x" }, true],
  ['starts_with(http.request.uri.path, "/api")', { path: "/x/api" }, false],
  ['ends_with(http.request.uri.path, ".json")', { path: "/x.json" }, true],
  ['concat(http.host, http.request.uri.path) eq "app.example.com/index.html"', {}, true],
  ['concat("a", "b", "c") eq "abc"', {}, true],
  ['url_decode(http.request.uri.query) eq "a b=/x/"', { query: "a+b=%2Fx%2f" }, true],
  ['url_decode(http.request.uri.query) eq "%41"', { query: "%2541" }, true],
  ['url_decode(http.request.uri.query, "r") eq "A"', { query: "%2541" }, true],
  ['url_decode(http.request.uri.query, "u") eq "☁"', { query: "%u2601" }, true],
  ['url_decode(http.request.uri.query) eq "☁"', { query: "%E2%98%81" }, true],
  ['any(http.request.headers["x-a"][*] == "1")', { headers: { "x-a": ["0", "1"] } }, true],
  ['any(http.request.headers["x-a"][*] == "1")', { headers: { "x-a": ["0", "2"] } }, false],
  ['any(http.request.headers["x-a"][*] == "1")', { headers: {} }, false],
  ['all(http.request.headers["x-a"][*] == "1")', { headers: { "x-a": ["1", "1"] } }, true],
  ['all(http.request.headers["x-a"][*] == "1")', { headers: { "x-a": ["1", "0"] } }, false],
  ['all(http.request.headers["x-a"][*] == "1")', { headers: {} }, false], // missing is not "all"
  ['any(lower(http.request.headers.names[*])[*] contains "debug")', { headers: { "x-debug": ["1"] } }, true],
  ['any(starts_with(http.request.headers.values[*], "Bearer "))', { headers: { authorization: ["Bearer x"] } }, true],
  ["any(len(http.request.headers.values[*])[*] gt 3)", { headers: { a: ["abc", "abcd"] } }, true],
  ["any(len(http.request.headers.values[*])[*] gt 3)", { headers: { a: ["abc", "ab"] } }, false],
  ['any(http.request.headers[*][0] eq "v2")', { headers: { a: ["v1"], b: ["v2", "v3"] } }, true],
  ["len(http.request.headers.names) eq 2", { headers: { a: ["1"], b: ["2"] } }, true],
  ['len(concat(http.request.headers["a"], http.request.headers["b"])) eq 3', { headers: { a: ["1"], b: ["2", "3"] } }, true],
  // indexing and missing values: a comparison on a missing value is false, even ne
  ['http.request.headers["x-a"][1] eq "b"', { headers: { "x-a": ["a", "b"] } }, true],
  ['http.request.headers["X-A"][0] eq "a"', { headers: { "x-a": ["a"] } }, true], // keys are case-insensitive
  ['http.request.headers["x-a"][5] eq "a"', { headers: { "x-a": ["a"] } }, false],
  ['http.request.headers["x-a"][0] ne "a"', { headers: {} }, false],
  ['not http.request.headers["x-a"][0] eq "a"', { headers: {} }, true],
  ['len(http.request.headers["x-a"][0]) ge 0', { headers: {} }, false],
  ['http.request.headers["constructor"][0] eq "x"', { headers: {} }, false],
  ['lower(http.request.headers["x-a"][0]) eq "a"', { headers: {} }, false],
  // certgate's SAN arrays and validity: no certificate, or no SAN of a type, is missing, never an empty array
  ['all(certgate.tls_client_auth.san.dns[*] ne "evil.example")', { cert: VALID_CERT }, true],
  ['all(certgate.tls_client_auth.san.dns[*] ne "evil.example")', {}, false], // no certificate: not vacuously "all"
  ['all(ends_with(certgate.tls_client_auth.san.email[*], "@example.com"))', { cert: { ...VALID_CERT, sanEmail: undefined } }, false],
  ["not len(certgate.tls_client_auth.san.email) gt 0", { cert: { ...VALID_CERT, sanEmail: undefined } }, true], // "has no email SAN"
  ["len(certgate.tls_client_auth.san.dns) eq 2", { cert: VALID_CERT }, true],
  ['certgate.tls_client_auth.san.uri[1] eq "x"', { cert: VALID_CERT }, false],
  ['certgate.tls_client_auth.spiffe_id eq ""', {}, true], // a String: empty without a certificate, as Cloudflare's
  ["certgate.tls_client_auth.not_after gt 0", {}, false], // an Int: missing without a certificate
  ["not certgate.tls_client_auth.not_after lt 2000000000", {}, true],
  ['any(lower(certgate.tls_client_auth.san.dns[*])[*] in {"localhost"})', { cert: VALID_CERT }, true],
];

describe("operators, functions and precedence", () => {
  for (const [expr, patch, expected] of operatorCases) {
    it(`${expr} → ${expected} (${JSON.stringify(patch)})`, () => {
      expect(both(expr, patch)).toBe(expected);
    });
  }
});

describe("normalised form", () => {
  const cases: [string, string][] = [
    ['not cf.tls_client_auth.cert_verified && http.request.uri.path in {"/admin"}', 'not cf.tls_client_auth.cert_verified and http.request.uri.path in {"/admin"}'],
    ["(ssl || ssl) && !ssl", "(ssl or ssl) and not ssl"],
    ["ssl or (ssl and ssl)", "ssl or ssl and ssl"],
    ["(ssl and ssl) and ssl", "(ssl and ssl) and ssl"],
    ["not (not ssl)", "not not ssl"],
    ['http.host == "a" ^^ http.host != "b"', 'http.host eq "a" xor http.host ne "b"'],
    ["ip.src in {10.1.2.3/8 0:0::1 192.168.0.1..192.168.0.9}", "ip.src in {10.0.0.0/8 ::1 192.168.0.1..192.168.0.9}"],
    ['http.request.uri.path ~ "\\\\d+"', 'http.request.uri.path matches r"\\d+"'],
    ['any(http.request.headers["X-A"][*] == "1")', 'any(http.request.headers["x-a"][*] eq "1")'],
    ['http.host strict wildcard r#"a"b"#', 'http.host strict wildcard "a\\"b"'],
  ];
  for (const [src, want] of cases) {
    it(src, () => expect(compileExpression(src).normalized).toBe(want));
  }
});
