// fast-check generators of well-typed expressions (as small syntax trees printed with random
// surface syntax) and of request inputs drawn from small alphabets, so equalities often hold.

import fc from "fast-check";
import type { RequestInput } from "../../src/rules/index.ts";
import { makeInput } from "./helpers.ts";

/** A generated condition: comparisons are leaves; logic is a tree printed with minimal parentheses. */
export type G = { k: "leaf"; s: string } | { k: "not"; e: G } | { k: "op"; op: "and" | "xor" | "or"; l: G; r: G };

const PREC = { or: 1, xor: 2, and: 3 } as const;
const SYMBOL = { and: "&&", xor: "^^", or: "||" } as const;

/** Prints with the fewest parentheses precedence needs; `noise` adds redundant ones and symbol operators. */
export function printG(g: G, noise: readonly boolean[] = [], i = { n: 0 }): string {
  const flip = () => noise.length > 0 && noise[i.n++ % noise.length] === true;
  const wrap = (s: string, need: boolean) => (need || flip() ? `(${s})` : s);
  switch (g.k) {
    case "leaf":
      return g.s;
    case "not": {
      const inner = printG(g.e, noise, i);
      return `${flip() ? "!" : "not "}${wrap(inner, g.e.k === "op")}`;
    }
    case "op": {
      const side = (c: G) => wrap(printG(c, noise, i), c.k === "op" && PREC[c.op] < PREC[g.op]);
      return `${side(g.l)} ${flip() ? SYMBOL[g.op] : g.op} ${side(g.r)}`;
    }
  }
}

const strLit = fc.constantFrom("", "a", "A", "/a", "/admin", "b", "ab", "a b", "%41", "x-a", "10", "é", 'q"', "\\", "app.example.com");
const quoted = (s: string) => `"${s.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`;
const STRING_FIELDS = [
  "http.host",
  "http.request.method",
  "http.request.uri",
  "http.request.uri.path",
  "http.request.uri.query",
  "http.user_agent",
  "cf.tls_version",
  "cf.tls_client_auth.cert_subject_dn",
  "cf.tls_client_auth.cert_serial",
  "cf.tls_client_auth.cert_issuer_serial",
  "certgate.tls_client_auth.spiffe_id",
];
const BOOL_FIELDS = ["ssl", "cf.tls_client_auth.cert_presented", "cf.tls_client_auth.cert_verified", "cf.tls_client_auth.cert_revoked", "cf.tls_client_auth.cert_rfc9440_too_large", "cf.tls_client_auth.cert_chain_rfc9440_too_large"];
// certgate's SAN arrays: missing (no certificate, no SAN of the type) as often as present.
const SAN_FIELDS = ["certgate.tls_client_auth.san.dns", "certgate.tls_client_auth.san.uri", "certgate.tls_client_auth.san.email", "certgate.tls_client_auth.san.ip"];
const INT_FIELDS = ["certgate.tls_client_auth.not_before", "certgate.tls_client_auth.not_after"];
const HEADER_KEYS = ["x-a", "x-b", "X-A"];

const strExpr: fc.Arbitrary<string> = fc.letrec<{ s: string }>((tie) => ({
  s: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.constantFrom(...STRING_FIELDS),
    fc.tuple(fc.constantFrom(...HEADER_KEYS), fc.nat(2)).map(([k, i]) => `http.request.headers[${quoted(k)}][${i}]`),
    fc.tuple(fc.constantFrom(...SAN_FIELDS), fc.nat(2)).map(([f, i]) => `${f}[${i}]`),
    fc.tuple(fc.constantFrom("lower", "upper"), tie("s")).map(([f, a]) => `${f}(${a})`),
    fc.tuple(tie("s"), fc.constantFrom("", ', "r"', ', "u"')).map(([a, o]) => `url_decode(${a}${o})`),
    fc.tuple(tie("s"), strLit).map(([a, b]) => `concat(${a}, ${quoted(b)})`),
  ),
})).s;

const WILDCARDS = ["*", "a*", "*a", "/a*", "*A*", "a*b", "\\\\*", "*.example.com", "APP*", "", "*\\\\\\\\*"];
const REGEXES = ["^/a", "a+", "(?i)A", "b$", "[ab]c", "^$", "(a+)+$", "\\\\d", "é"];

const strCompare = fc.oneof(
  fc.tuple(strExpr, fc.constantFrom("eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">", "ge", ">=", "contains"), strLit).map(([l, op, r]) => `${l} ${op} ${quoted(r)}`),
  fc.tuple(strExpr, fc.constantFrom("wildcard", "strict wildcard"), fc.constantFrom(...WILDCARDS)).map(([l, op, r]) => `${l} ${op} "${r}"`),
  fc.tuple(strExpr, fc.constantFrom("matches", "~"), fc.constantFrom(...REGEXES)).map(([l, op, r]) => `${l} ${op} "${r}"`),
  fc.tuple(strExpr, fc.uniqueArray(strLit, { minLength: 1, maxLength: 4 })).map(([l, xs]) => `${l} in {${xs.map(quoted).join(" ")}}`),
  fc.tuple(fc.constantFrom("starts_with", "ends_with"), strExpr, strLit).map(([f, a, b]) => `${f}(${a}, ${quoted(b)})`),
);

const intExpr = fc.oneof(
  strExpr.map((s) => `len(${s})`),
  fc.constantFrom(...HEADER_KEYS).map((k) => `len(http.request.headers[${quoted(k)}])`),
  fc.constant("len(http.request.headers.names)"),
  fc.constantFrom(...SAN_FIELDS).map((f) => `len(${f})`),
  fc.constantFrom(...INT_FIELDS),
);
const intItem = fc.oneof(
  fc.integer({ min: -1, max: 20 }).map(String),
  fc.tuple(fc.integer({ min: 0, max: 20 }), fc.nat(6)).map(([a, d]) => `${a}..${a + d}`),
);
const intCompare = fc.oneof(
  fc.tuple(intExpr, fc.constantFrom("eq", "ne", "lt", "le", "gt", "ge", "==", "<", ">="), fc.integer({ min: -1, max: 20 })).map(([l, op, r]) => `${l} ${op} ${r}`),
  fc.tuple(intExpr, fc.array(intItem, { minLength: 1, maxLength: 5 })).map(([l, xs]) => `${l} in {${xs.join(" ")}}`),
);

const IP_ITEMS = ["10.0.0.0/8", "10.1.2.3", "192.168.0.0/16", "192.168.1.2..192.168.1.6", "::1", "2001:db8::/32", "2001:db8::5..2001:db8::9", "0.0.0.0/0", "203.0.113.7/32", "::/0"];
const ipCompare = fc.oneof(
  fc.tuple(fc.constantFrom("eq", "ne"), fc.constantFrom("10.1.2.3", "::1", "203.0.113.7", "2001:db8::5")).map(([op, a]) => `ip.src ${op} ${a}`),
  fc.uniqueArray(fc.constantFrom(...IP_ITEMS), { minLength: 1, maxLength: 4 }).map((xs) => `ip.src in {${xs.join(" ")}}`),
);

const boolValue = fc.oneof(
  fc.constantFrom(...BOOL_FIELDS),
  fc.tuple(fc.constantFrom(...BOOL_FIELDS), fc.constantFrom("eq", "ne"), fc.boolean()).map(([f, op, b]) => `${f} ${op} ${b}`),
  fc.constantFrom("true", "false"),
);

const eachSource = fc.oneof(
  fc.constantFrom(...HEADER_KEYS).map((k) => `http.request.headers[${quoted(k)}][*]`),
  fc.constantFrom("http.request.headers.names[*]", "http.request.headers.values[*]", "http.request.headers[*][0]"),
  fc.constantFrom("lower(http.request.headers.values[*])[*]", 'url_decode(http.request.headers["x-a"][*])[*]'),
  fc.constantFrom(...SAN_FIELDS).map((f) => `${f}[*]`),
  fc.constantFrom(...SAN_FIELDS).map((f) => `lower(${f}[*])[*]`),
);
const eachCompare = fc.oneof(
  fc.tuple(fc.constantFrom("any", "all"), eachSource, fc.constantFrom("eq", "ne", "contains", "lt"), strLit).map(([f, src, op, r]) => `${f}(${src} ${op} ${quoted(r)})`),
  fc.tuple(fc.constantFrom("any", "all"), eachSource, strLit).map(([f, src, r]) => `${f}(starts_with(${src}, ${quoted(r)}))`),
  fc.tuple(fc.constantFrom("any", "all"), eachSource, fc.integer({ min: 0, max: 4 })).map(([f, src, n]) => `${f}(len(${src})[*] gt ${n})`),
  fc.tuple(fc.constantFrom("any", "all"), eachSource, fc.uniqueArray(strLit, { minLength: 1, maxLength: 3 })).map(([f, src, xs]) => `${f}(${src} in {${xs.map(quoted).join(" ")}})`),
);

export const leaf: fc.Arbitrary<string> = fc.oneof(strCompare, intCompare, ipCompare, boolValue, eachCompare);

export const condition: fc.Arbitrary<G> = fc.letrec<{ c: G }>((tie) => ({
  c: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf.map((s): G => ({ k: "leaf", s })),
    tie("c").map((e): G => ({ k: "not", e })),
    fc.tuple(fc.constantFrom("and", "xor", "or") as fc.Arbitrary<"and" | "xor" | "or">, tie("c"), tie("c")).map(([op, l, r]): G => ({ k: "op", op, l, r })),
  ),
})).c;

/** A source text of a well-typed condition, with random surface syntax. */
export const expressionSource: fc.Arbitrary<string> = fc.tuple(condition, fc.array(fc.boolean(), { maxLength: 8 })).map(([g, noise]) => printG(g, noise));

const sanValue = fc.constantFrom("", "a", "A", "ab", "app.example.com", "spiffe://a", "10", "é");
const sanArray = fc.option(fc.array(sanValue, { minLength: 1, maxLength: 3 }), { nil: undefined });
const headerValue = fc.constantFrom("", "a", "A", "1", "ab", "a b", "%41", "b", "x-a", "é");
export const requestInput: fc.Arbitrary<RequestInput> = fc
  .record({
    host: fc.constantFrom("app.example.com", "a", "APP.example.com", "b", ""),
    method: fc.constantFrom("GET", "POST", "a"),
    path: fc.constantFrom("/", "/a", "/admin", "/a/b", "/%41", "", "a b", "/é", "/" + "a".repeat(12)),
    query: fc.constantFrom("", "a=1", "%2541", "a+b", "%u0041", "%E2%98%81"),
    userAgent: fc.constantFrom("curl/8", "a", "A", ""),
    headers: fc.dictionary(fc.constantFrom("x-a", "x-b", "host", "a"), fc.array(headerValue, { minLength: 1, maxLength: 3 }), { maxKeys: 3 }),
    srcIp: fc.constantFrom("10.1.2.3", "192.168.1.5", "192.168.1.1", "192.168.1.2", "192.168.1.6", "192.168.1.7", "2001:db8::9", "2001:db8::a", "10.255.255.255", "11.0.0.0", "203.0.113.7", "::1", "2001:db8::7", "::ffff:10.1.2.3", "fe80::1%eth0", "", "bogus"),
    ssl: fc.boolean(),
    tlsVersion: fc.constantFrom("TLSv1.3", "TLSv1.2", ""),
    cert: fc.record({
      presented: fc.boolean(),
      verified: fc.boolean(),
      revoked: fc.boolean(),
      subjectDn: fc.constantFrom("", "a", "CN=a"),
      serial: fc.constantFrom("", "A", "ab"),
      issuerSerial: fc.constantFrom("", "A", "10"),
      rfc9440TooLarge: fc.boolean(),
      chainRfc9440TooLarge: fc.boolean(),
      sanDns: sanArray,
      sanUri: sanArray,
      sanEmail: sanArray,
      sanIp: sanArray,
      spiffeId: fc.constantFrom("", "a", "spiffe://a"),
      notBeforeUnix: fc.constantFrom(undefined, 0, 3, 10, 20),
      notAfterUnix: fc.constantFrom(undefined, 1, 5, 15, 1900000000),
    }),
  })
  .map(({ path, query, ...r }) => makeInput({ ...r, path, query, uri: query ? `${path}?${query}` : path }));
