// Admin fuzzing: every endpoint of every dialect (the admin server's own route table), with the
// global token, gets hostile bodies (wrong types, unknown fields, huge strings, deep nesting,
// non-JSON, invalid UTF-8, empty) and hostile ids (percent-encoded garbage, very long, unicode).
// Whatever comes in: a 2xx or a 4xx in the dialect's envelope, never a 5xx, never a dropped
// connection, and GET /v1/config is unchanged after every 4xx (and after every GET).
// Bounded: a fixed table per endpoint, then a few fast-check runs per endpoint.
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, pki } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Model, ModelInput } from "../../src/model/schema.ts";
import { ADMIN_ROUTES as ROUTES } from "../../src/control/admin.ts";
import type { WriteContext } from "../../src/control/writepath.ts";
import { webcrypto } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as x509 from "@peculiar/x509";
import { Client } from "undici";
import { api, dialectError, jsonapi, seedModel, startCertgate, TOKEN, type ApiReply, type Certgate } from "./helpers.ts";

const ACC = "acc1";
// FUZZ_RUNS raises the bound for a longer hunt (FUZZ_STATS=1 prints every answer); CI uses the default.
const RUNS_PER_ENDPOINT = Number(process.env.FUZZ_RUNS ?? 8);
const RANDOM_TIMEOUT_MS = 60_000 * Math.max(1, RUNS_PER_ENDPOINT / 8);
const system = (): WriteContext => ({ principal: { token_id: "fuzz", read_only: false, account_id: null }, method: "FUZZ", path: "", warnings: [] });

// ---- ids -----------------------------------------------------------------------------------

/** Percent-encoded garbage: malformed escapes, truncated and overlong UTF-8, surrogates, encoded separators. */
const GARBAGE_IDS = ["%ZZ", "%", "%4", "%F0%9F", "%C0%AF", "%ED%A0%80", "%FF", "%00", "%2F", "%2e%2e", "..", ".", "%25", "a%20b", "%E2%80%AE", "null", "undefined", "__proto__", "constructor"];

const idArb = (real: string[]): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...real) },
    { weight: 2, arbitrary: fc.constantFrom(...GARBAGE_IDS) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.string({ unit: "binary", minLength: 1, maxLength: 20 }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.integer({ min: 200, max: 4000 }).map((n) => "a".repeat(n)) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...real), fc.constantFrom(...GARBAGE_IDS)).map(([a, b]) => a + b) },
  );

// ---- bodies --------------------------------------------------------------------------------

/** Field names the handlers read, across dialects: random objects are built from these so they reach past the first check. */
const KEYS = [
  // Fastly
  "data", "type", "id", "attributes", "relationships", "cert_blob", "cert_bundle", "enforced", "key", "name", "tls_certificate", "tls_configuration", "tls_domain", "mutual_authentication", "tls_activations",
  // Cloudflare
  "certificate", "associated_hostnames", "settings", "hostname", "china_network", "client_certificate_forwarding", "account", "rules", "action", "expression", "description", "enabled", "ref",
  "action_parameters", "response", "status_code", "content_type", "content", "position", "before", "after", "index", "csr", "validity_days", "reactivate", "hostnames", "mtls_certificate_id",
  // native
  "origin", "path_prefix", "origin_tls", "connect_timeout_ms", "read_timeout_ms", "read_only", "account_id", "crl", "ocsp", "pem", "urls", "when_missing", "mode", "responder_url",
  "certificates", "trust_bundles", "hosts", "routes", "zones", "default_certificate", "limits", "mtls", "trust_bundle", "ca",
  "upgrades", "url_normalization", "merge_slashes", "max_header_count", "max_header_bytes", "trust_forwarded_for", "dialects",
  "origin_protocol", "http2", "cert_file", "key_file", "ca_file", "crl_file", "upstream_client_cert", "trusted_peers", "header",
  "tls", "min_version", "max_version", "ciphers", "groups", "proxy_protocol", "trusted",
  // Apinizer
  "relativePath", "backendUrl", "backendUrlList", "trustBundleId", "clientCaCertificate", "mtlsMode", "issuerList", "deploy", "deployTargetEnvironmentNameList", "operationMetadata",
  "targetScope", "targetPipeline", "order", "targetEndpoint", "targetEndpointHTTPMethod", "policy", "active", "validateCertificate", "validateACLForIssuer",
  // the usual suspects
  "__proto__", "constructor", "toString", "valueOf", "",
];

function valueArb(leaves: string[]): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom<unknown>(...leaves) },
    { weight: 2, arbitrary: fc.string({ unit: "grapheme", maxLength: 30 }) },
    { weight: 1, arbitrary: fc.constantFrom<unknown>(null, true, false, 0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, "", " ", "\r\n", "\u0000", "\ud800", { toString: 1 }, { valueOf: {}, toString: "x" }) },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 1, arbitrary: fc.integer({ min: 10_000, max: 300_000 }).map((n) => "x".repeat(n)) },
  );
  const { value } = fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, leaf, fc.array(tie("value"), { maxLength: 3 }), fc.dictionary(fc.constantFrom(...KEYS), tie("value"), { maxKeys: 5 })),
  }));
  return value;
}

interface Body {
  bytes?: Uint8Array | string;
  contentType?: string;
  label: string;
}

const json = (v: unknown, label: string): Body => ({ bytes: JSON.stringify(v), label });

/** Hostile bodies every endpoint gets once. */
function fixedBodies(): Body[] {
  const deep = (n: number) => "[".repeat(n) + "]".repeat(n);
  const deepObject = (n: number) => '{"a":'.repeat(n) + "1" + "}".repeat(n);
  return [
    { label: "none" },
    { bytes: "", label: "empty" },
    { bytes: "   \r\n", label: "blank" },
    { bytes: "{", label: "truncated JSON" },
    { bytes: "<xml/>", label: "XML" },
    { bytes: "null", label: "null" },
    { bytes: "[]", label: "array" },
    { bytes: '"s"', label: "string" },
    { bytes: "1e999", label: "huge number" },
    { bytes: Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), label: "invalid UTF-8" },
    { bytes: Buffer.from([0xef, 0xbb, 0xbf, 0x7b, 0x7d]), label: "BOM + {}" },
    { bytes: deep(50_000), label: "deep array" },
    { bytes: deepObject(20_000), label: "deep object" },
    { bytes: JSON.stringify({ data: { attributes: { name: "x".repeat(1 << 20) } }, name: "x".repeat(1 << 20) }), label: "huge strings" },
    json({ __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } }, "prototype keys"),
    json(Object.fromEntries(KEYS.map((k) => [k, 1])), "every key a number"),
    json(Object.fromEntries(KEYS.map((k) => [k, [{}]])), "every key an array"),
    json(Object.fromEntries(KEYS.map((k) => [k, { toString: 1 }])), "every key an object String() cannot convert"),
    json({ data: { type: "x", attributes: null, relationships: { tls_domain: { data: [{}] }, mutual_authentication: { data: "x" } } } }, "JSON:API wrong types"),
    { bytes: "a: &a [*a]\n", contentType: "application/yaml", label: "YAML recursive alias" },
    { bytes: "a: &a ['x','x','x','x','x','x','x','x','x']\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n", contentType: "application/yaml", label: "YAML billion laughs" },
    { bytes: "{a: 1", contentType: "application/yaml", label: "broken YAML" },
    { bytes: "!!js/function 'function(){}'\n", contentType: "application/yaml", label: "YAML tag" },
  ];
}

/** Every node of a JSON value, as the path to it. */
function nodePaths(v: unknown, at: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  out.push(at);
  if (Array.isArray(v)) v.forEach((x, i) => nodePaths(x, [...at, i], out));
  else if (typeof v === "object" && v !== null) for (const [k, x] of Object.entries(v)) nodePaths(x, [...at, k], out);
  return out;
}

type Mutation = { pick: number; op: "replace" | "delete" | "add"; key: string; value: unknown };

/** A valid body with one node replaced (wrong type, garbage), deleted, or given an unknown field. */
function mutate(template: unknown, m: Mutation): unknown {
  const paths = nodePaths(template);
  const at = paths[m.pick % paths.length]!;
  const copy = structuredClone(template);
  if (!at.length) return m.op === "replace" ? m.value : copy;
  const parent = at.slice(0, -1).reduce<Record<string | number, unknown>>((o, k) => o[k] as Record<string | number, unknown>, copy as Record<string, unknown>);
  const last = at[at.length - 1]!;
  if (m.op === "replace") parent[last] = m.value;
  else if (m.op === "delete") {
    if (Array.isArray(parent)) parent.splice(last as number, 1);
    else delete parent[last];
  }
  else if (typeof parent[last] === "object" && parent[last] !== null && !Array.isArray(parent[last])) (parent[last] as Record<string, unknown>)[m.key] = m.value;
  else parent[last] = m.value;
  return copy;
}

// ---- checks --------------------------------------------------------------------------------

function checkSuccessEnvelope(path: string, r: ApiReply): void {
  if (r.status === 204 || r.text === "") return;
  const p = path.startsWith("/client/v4/") ? path.slice("/client/v4".length) : path;
  if (r.headers.get("content-type")?.includes("yaml")) return;
  expect(r.body, `2xx body is JSON: ${r.text.slice(0, 200)}`).toBeTypeOf("object");
  if (p.startsWith("/tls/")) expect(r.body).toHaveProperty("data");
  else if (p.startsWith("/accounts/") || p.startsWith("/zones")) expect(r.body).toMatchObject({ success: true, errors: [] });
  else if (p.startsWith("/apiops")) expect(r.body.success).toBeTypeOf("boolean");
}

describe("admin fuzzing", () => {
  let cg: Certgate;
  let p: DevPki;
  let original: Model;
  let config: string;
  let leaves: string[];
  let client: Client | undefined;
  /** A valid body per write endpoint, and the path ids it is valid for (else the pools' first, or second for a POST). */
  let templates: Record<string, { body: unknown; ids?: Record<string, string> }>;
  const real: Record<string, string[]> = {};
  let filePaths: string[] = [];

  beforeAll(async () => {
    p = await pki();
    // File-backed objects too: a certificate and a bundle whose contents the store does not hold.
    const files = mkdtempSync(join(tmpdir(), "certgate-fuzz-files-"));
    for (const [n, text] of Object.entries({ "tls.crt": p.server.certPem, "tls.key": p.server.keyPem, "ca.crt": p.ca.certPem })) writeFileSync(join(files, n), text);
    filePaths = ["tls.crt", "tls.key", "ca.crt"].map((n) => join(files, n));
    cg = await startCertgate(undefined, (d, o): ModelInput => ({
      ...seedModel(d, o),
      certificates: [...seedModel(d, o).certificates!, { id: "fsrv", cert_file: join(files, "tls.crt"), key_file: join(files, "tls.key") }],
      trust_bundles: [{ id: "tb1", ca: d.ca.certPem, account_id: ACC }, { id: "tb0", ca_file: join(files, "ca.crt") }],
      hosts: [{ hostname: "a.test", account_id: ACC, mtls: { trust_bundle: "tb1" }, upstream_client_cert: { trusted_peers: ["10.0.0.0/8", "2001:db8::/32"], header: "Client-Cert" } }],
      zones: [{ id: "zone1", name: "z.test", account_id: ACC, rules: [{ id: "rule1", expression: 'http.request.uri.path eq "/x"', action: "block" }] }],
      dialects: { cloudflare: { zones: { zone1: { ruleset: { id: "rs1" } } } } },
    }));
    const origin = (await api(cg, "GET", "/v1/routes/r0")).body.origin as string;
    // Objects only the dialects make: an API proxy with a policy, a Fastly mutual authentication, a scoped token.
    expect((await api(cg, "POST", "/apiops/projects/P/apiProxies/X/", { hostname: "b.test", relativePath: "/x", backendUrl: origin, trustBundleId: "tb0" })).status).toBe(200);
    const pol = await api(cg, "POST", "/apiops/projects/P/apiProxies/X/policies/pol", {
      operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: false, order: 1 },
      policy: { type: "policy-auth-mtls", description: "", active: true, validateCertificate: true, validateACLForIssuer: false },
    });
    expect(pol.status).toBe(200);
    const ma = await api(cg, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem, name: "ma" }));
    expect(ma.status).toBe(201);
    const acts = (await api(cg, "GET", "/tls/activations")).body.data as { id: string }[];
    const certs = (await api(cg, "GET", "/tls/certificates")).body.data as { id: string }[];
    const tokens = (await api(cg, "POST", "/v1/tokens", { name: "t" })).body.id as string;
    const leafKey = await issue({ subject: "CN=csr" });
    // Existing objects first (the fixed table uses [0]), then names free to create.
    real.id = ["r0", "srv", "tb1", ma.body.data.id, ...acts.map((a) => a.id), ...certs.map((c) => c.id), tokens, "default", "rule1", "new-id"];
    real.account_id = [ACC, "other"];
    real.zone_id = ["zone1", "zone2"];
    real.ruleset_id = ["rs1"];
    real.rule_id = ["rule1"];
    real.phase = ["http_request_firewall_custom"];
    real.project = ["P", "Q"];
    real.proxy = ["X", "Y"];
    real.environment = ["production", "staging"];
    real.policy = ["pol", "pol2"];
    leaves = [
      p.ca.certPem, p.server.certPem, p.server.keyPem, p.client.certPem, leafKey.keyPem, p.ca.certPem + "junk", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
      // Paths for the *_file fields: real files, a missing one, a directory, a device that never ends, a relative one.
      ...filePaths, "/nonexistent/x.pem", "/", "/dev/zero", "tls.crt",
      "a.test", "b.test", "z.test", "*.z.test", "localhost", "new.test", "A.TEST", "-bad-.test", origin, "http://", "ftp://x", "http://[::1", "/", "/x", "//x", "/x?y#z",
      ...Object.values(real).flat(), "mutual_authentication", "tls_activation", "tls_certificate", "tls_private_key", "tls_configuration", "tls_domain",
      "enforced", "fail_open", "off", "block", "allow", "log", "skip", "REQUEST", "RESPONSE", "ALL", "ENDPOINT", "GET", "policy-auth-mtls", "CN=certgate dev client CA,O=certgate dev",
      'http.request.uri.path eq "/x"', "true", "(", "not cf.tls_client_auth.cert_verified", 'http.host matches "(a"', "text/plain", "text/plain\r\nX: y", "active", "revoked", "all",
      "Client-Cert", "Cf-Client-Cert-Der-Base64", "X-Amzn-Mtls-Clientcert", "client-cert", "10.0.0.0/8", "::ffff:1.2.3.4/128", "1.2.3.4/33", "01.2.3.4/8", "2001:db8::/129",
    ];
    config = (await api(cg, "GET", "/v1/config")).text;
    const csrKeys = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
    const csr = (await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=device", keys: csrKeys, signingAlgorithm: { name: "ECDSA", hash: "SHA-256" } })).toString("pem");
    // A managed client certificate pending revocation (what PATCH {reactivate: true} applies to).
    const cc = await api(cg, "POST", "/zones/zone1/client_certificates", { csr, validity_days: 30 });
    expect(cc.status).toBe(200);
    expect((await api(cg, "DELETE", `/zones/zone1/client_certificates/${cc.body.result.id}`)).status).toBe(200);
    config = (await api(cg, "GET", "/v1/config")).text;
    const rule = { action: "block", expression: 'http.request.uri.path eq "/y"', description: "d", action_parameters: { response: { status_code: 403, content_type: "text/plain", content: "no" } } };
    const rel1 = (type: string, id: string) => ({ data: { type, id } });
    const policy = { operationMetadata: { targetScope: "ENDPOINT", targetEndpoint: "/a/{id}", targetEndpointHTTPMethod: "GET", targetPipeline: "REQUEST", deploy: true, deployTargetEnvironmentNameList: ["production"], order: 1 }, policy: { type: "policy-auth-mtls", description: "x", active: true, validateCertificate: true, validateACLForIssuer: true } };
    templates = {
      "PUT /v1/routes/:id": { body: { hostname: "new.test", path_prefix: "/p", origin, origin_tls: { verify: false, server_name: "x" }, connect_timeout_ms: 100, upgrades: ["websocket", "x-proto/1"], origin_protocol: "h2c" }, ids: { id: "new-id" } },
      "PUT /v1/config": {
        body: { ...(JSON.parse(config) as object), tls: { min_version: "1.2", max_version: "1.3", ciphers: ["ECDHE-ECDSA-AES128-GCM-SHA256"], groups: ["X25519MLKEM768", "X25519", "P-256"] }, proxy_protocol: { trusted: ["10.0.0.0/8", "2001:db8::1"] } },
      },
      "PUT /v1/trust_bundles/:id/revocation": { body: { crl: { urls: ["http://127.0.0.1:1/crl"], when_missing: "ignore", fetch_distribution_points: false }, ocsp: { mode: "soft_fail", timeout_ms: 100, nonce: true } }, ids: { id: "tb1" } },
      "POST /v1/tokens": { body: { name: "n", read_only: true, account_id: ACC } },
      "POST /tls/mutual_authentications": { body: jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem, name: "m", enforced: false }) },
      "PATCH /tls/mutual_authentications/:id": { body: jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem + p.otherCa.certPem, name: "m2", enforced: true }), ids: { id: ma.body.data.id } },
      "POST /tls/activations": { body: jsonapi("tls_activation", undefined, { tls_certificate: rel1("tls_certificate", "srv"), tls_domain: rel1("tls_domain", "new.localhost"), mutual_authentication: rel1("mutual_authentication", ma.body.data.id) }) },
      "PATCH /tls/activations/:id": { body: jsonapi("tls_activation", undefined, { mutual_authentication: rel1("mutual_authentication", ma.body.data.id), tls_configuration: rel1("tls_configuration", "default") }), ids: { id: acts[0]!.id } },
      "POST /tls/certificates": { body: jsonapi("tls_certificate", { cert_blob: p.server.certPem, name: "c" }) },
      "PATCH /tls/certificates/:id": { body: jsonapi("tls_certificate", { cert_blob: p.server.certPem, name: "c2" }), ids: { id: "srv" } },
      "POST /tls/private_keys": { body: jsonapi("tls_private_key", { key: leafKey.keyPem, name: "k" }) },
      "PATCH /tls/configurations/:id": { body: jsonapi("tls_configuration", { name: "conf" }), ids: { id: "default" } },
      "PUT /accounts/:account_id/access/certificates/settings": { body: { settings: [{ hostname: "a.test", china_network: false, client_certificate_forwarding: true }] } },
      "POST /accounts/:account_id/access/certificates": { body: { name: "acc", certificate: p.otherCa.certPem, associated_hostnames: ["new.test"] } },
      "PUT /accounts/:account_id/access/certificates/:id": { body: { name: "acc2", associated_hostnames: ["a.test", "new.test"] }, ids: { account_id: ACC, id: "tb1" } },
      "POST /zones": { body: { name: "new.test", account: { id: ACC }, type: "full" } },
      "PUT /zones/:zone_id/rulesets/phases/:phase/entrypoint": { body: { rules: [rule, { ...rule, action: "log", action_parameters: undefined }] }, ids: { zone_id: "zone1" } },
      "POST /zones/:zone_id/rulesets/:ruleset_id/rules": { body: { ...rule, position: { before: "rule1" } }, ids: { zone_id: "zone1" } },
      "PATCH /zones/:zone_id/rulesets/:ruleset_id/rules/:rule_id": { body: { enabled: false, expression: "true", position: { index: 1 } } },
      "POST /zones/:zone_id/client_certificates": { body: { csr, validity_days: 30 }, ids: { zone_id: "zone1" } },
      "PATCH /zones/:zone_id/client_certificates/:id": { body: { reactivate: true }, ids: { zone_id: "zone1", id: cc.body.result.id } },
      "PUT /zones/:zone_id/certificate_authorities/hostname_associations": { body: { hostnames: ["new.test", "z.test"], mtls_certificate_id: "tb1" }, ids: { zone_id: "zone1" } },
      "POST /apiops/environments/:environment": { body: { description: "e" } },
      "POST /apiops/projects/:project": { body: { description: "p" } },
      "PUT /apiops/projects/:project/issuerAcl": { body: { issuerList: ["CN=certgate dev client CA,O=certgate dev", p.ca.certPem] }, ids: { project: "P" } },
      "POST /apiops/projects/:project/apiProxies/:proxy": { body: { hostname: "new.test", relativePath: "/n", backendUrlList: [origin], clientCaCertificate: p.ca.certPem, mtlsMode: "enforced", issuerList: [p.ca.certPem], deploy: true, deployTargetEnvironmentNameList: ["production"] } },
      "PUT /apiops/projects/:project/apiProxies/:proxy/issuerAcl": { body: { issuerList: ["CN=certgate dev client CA,O=certgate dev"] }, ids: { project: "P", proxy: "X" } },
      "POST /apiops/projects/:project/apiProxies/:proxy/policies/:policy": { body: policy, ids: { project: "P", proxy: "X", policy: "pol2" } },
      "PUT /apiops/projects/:project/apiProxies/:proxy/policies/:policy": { body: policy, ids: { project: "P", proxy: "X", policy: "pol" } },
      "DELETE /apiops/projects/:project/apiProxies/:proxy/policies/:policy": { body: { operationMetadata: { deploy: false } }, ids: { project: "P", proxy: "X", policy: "pol" } },
    };
    original = cg.plane.model;
    client = new Client(cg.admin);
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await cg.close();
  });

  /** One request, its path sent exactly as given (fetch would resolve `..` and `.` segments first). */
  async function send(method: string, path: string, body: Body): Promise<ApiReply> {
    const headers: Record<string, string> = path.startsWith("/tls/") ? { "fastly-key": TOKEN } : { authorization: `Bearer ${TOKEN}` };
    if (body.bytes !== undefined) headers["content-type"] = body.contentType ?? (path.startsWith("/tls/") ? "application/vnd.api+json" : "application/json");
    const res = await client!.request({ method, path, headers, body: body.bytes });
    const text = await res.body.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    const h = new Headers();
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string") h.set(k, v);
    return { status: res.statusCode, headers: h, body: parsed, text };
  }

  /**
   * One request and the properties every answer has. A 4xx (or a GET) must leave the committed
   * model the same object; with `viaApi` (the random runs), GET /v1/config is also compared after
   * every 4xx. The fixed table compares it once per endpoint instead (checkConfig), to stay fast.
   */
  async function probe(method: string, path: string, body: Body, viaApi = false): Promise<void> {
    const what = `${method} ${path.slice(0, 200)} with ${body.label}`;
    const before = cg.plane.model;
    const r = await send(method, path, body);
    if (process.env.FUZZ_STATS) console.log(`STAT ${r.status} ${method} ${path.slice(0, 80)} ${body.label} ${r.text.slice(0, 160)}`);
    expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBeLessThan(500);
    expect(r.status, what).toBeGreaterThanOrEqual(200);
    if (r.status >= 400) {
      expect(() => dialectError(path, r), `${what}: envelope`).not.toThrow();
      expect(cg.plane.model === before, `${what}: a ${r.status} changed the model`).toBe(true);
      if (viaApi) await checkConfig(`${what}: a ${r.status}`);
      return;
    }
    checkSuccessEnvelope(path, r);
    if (method === "GET") expect(cg.plane.model === before, `${what}: a GET changed the model`).toBe(true);
    else if (cg.plane.model !== before) {
      // A write that succeeded: put the fixture back so later runs reach the same objects.
      await cg.plane.replace(system(), "restore the fuzzing fixture", () => ({ model: original, result: null }));
      config = (await api(cg, "GET", "/v1/config")).text;
    }
  }

  async function checkConfig(what: string): Promise<void> {
    expect((await api(cg, "GET", "/v1/config")).text, `${what} changed GET /v1/config`).toBe(config);
  }

  const pathWith = (template: string, id: (name: string) => string) => template.replace(/:([a-z_]+)/g, (_, n: string) => id(n));
  /** The path a template is valid for: its own ids, else the free name for a POST (a creation), else the existing object. */
  const templatePath = (method: string, path: string) =>
    pathWith(path, (n) => templates[`${method} ${path}`]?.ids?.[n] ?? real[n]![method === "POST" && real[n]!.length > 1 ? 1 : 0]!);
  const queryArb = fc.option(
    fc
      .array(fc.tuple(fc.constantFrom("page", "per_page", "page[number]", "page[size]", "filter[in_use]", "filter[not_after]", "hostname", "format", "limit", "before", "status", "name", "account.id", "include", "within", "host", "issuer", "expiring_within", "x"), fc.string({ maxLength: 12 })), { maxLength: 3 })
      .map((qs) => (qs.length ? "?" + qs.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join("&") : "")),
    { nil: "" },
  );

  it("enumerates every endpoint of every dialect", () => {
    const dialects = new Set(ROUTES.map((r) => (r.path.startsWith("/tls/") ? "fastly" : r.path.startsWith("/apiops") ? "apinizer" : r.path.startsWith("/v1/") ? "native" : "cloudflare")));
    expect([...dialects].sort()).toEqual(["apinizer", "cloudflare", "fastly", "native"]);
    for (const r of ROUTES) for (const [, n] of r.path.matchAll(/:([a-z_]+)/g)) expect(real[n!], `a real value for :${n} of ${r.method} ${r.path}`).toBeDefined();
    // Every template names an endpoint that exists (a renamed path must not silently lose its mutations).
    const known = new Set(ROUTES.map((r) => `${r.method} ${r.path}`));
    for (const k of Object.keys(templates)) expect(known.has(k), k).toBe(true);
    // The fields added since the fuzzer was written are in the templates its mutations start from.
    const whole = templates["PUT /v1/config"]!.body as Record<string, Record<string, unknown>>;
    expect(Object.keys(whole)).toEqual(expect.arrayContaining(["url_normalization", "limits", "dialects", "routes", "tls", "proxy_protocol"]));
    expect(whole.url_normalization).toHaveProperty("merge_slashes");
    expect(whole.limits).toHaveProperty("max_header_count");
    expect((whole.hosts as unknown as Record<string, unknown>[])[0]).toHaveProperty("upstream_client_cert");
    expect(templates["PUT /v1/routes/:id"]!.body).toHaveProperty("upgrades");
    expect(templates["PUT /v1/routes/:id"]!.body).toHaveProperty("origin_protocol");
    for (const k of ["upgrades", "url_normalization", "merge_slashes", "max_header_count", "dialects", "origin_protocol", "http2", "cert_file", "key_file", "ca_file", "crl_file", "upstream_client_cert", "trusted_peers", "tls", "groups", "proxy_protocol"]) expect(KEYS, k).toContain(k);
    expect(whole.certificates).toEqual(expect.arrayContaining([expect.objectContaining({ cert_file: filePaths[0] })]));
  });

  it("each write template, sent as it is, is accepted: its mutations start from a valid body", async () => {
    for (const [key, template] of Object.entries(templates)) {
      const [method, path] = key.split(" ") as [string, string];
      const r = await send(method, templatePath(method, path), json(template.body, "template"));
      expect(r.status, `${key}: ${r.text.slice(0, 300)}`).toBeLessThan(300);
      await cg.plane.replace(system(), "restore the fuzzing fixture", () => ({ model: original, result: null }));
    }
    config = (await api(cg, "GET", "/v1/config")).text;
  });

  it("a fixed table of hostile bodies and ids on every endpoint: only 2xx/4xx in the dialect's envelope; the model unchanged by every 4xx", async () => {
    const bodies = fixedBodies();
    for (const r of ROUTES) {
      const withRealIds = pathWith(r.path, (n) => real[n]![0]!);
      for (const body of r.method === "GET" ? bodies.slice(0, 1) : r.method === "DELETE" ? bodies.slice(0, 3) : bodies) await probe(r.method, withRealIds, body);
      for (const bad of ["%ZZ", "%ED%A0%80", "x".repeat(5000), encodeURIComponent("ü/😀")]) {
        if (!r.path.includes(":")) continue;
        await probe(r.method, pathWith(r.path, () => bad), r.method === "GET" ? { label: "none" } : { bytes: "{}", label: "{}" });
      }
      await probe(r.method, "/client/v4" + withRealIds, { label: "none" });
      await checkConfig(`the fixed table on ${r.method} ${r.path}`);
    }
  }, 60_000);

  it("random bodies and ids per endpoint (fast-check): only 2xx/4xx in the dialect's envelope; the model unchanged by every 4xx", async () => {
    const bodyArb: fc.Arbitrary<Body> = fc.oneof(
      { weight: 3, arbitrary: valueArb(leaves).map((v) => json(v, "random JSON")) },
      { weight: 2, arbitrary: valueArb(leaves).map((v) => json({ data: v }, "random JSON:API")) },
      { weight: 1, arbitrary: fc.jsonValue().map((v) => json(v, "fc.jsonValue")) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => ({ bytes: b, label: "random bytes" })) },
      { weight: 1, arbitrary: valueArb(leaves).map((v) => ({ bytes: JSON.stringify(v) ?? "", contentType: "application/yaml", label: "JSON sent as YAML" })) },
    );
    const mutationArb = fc.record({ pick: fc.nat(), op: fc.constantFrom("replace", "delete", "add") as fc.Arbitrary<Mutation["op"]>, key: fc.constantFrom(...KEYS), value: valueArb(leaves) });
    for (const r of ROUTES) {
      const template = templates[`${r.method} ${r.path}`];
      const randomPath = fc.record(Object.fromEntries([...r.path.matchAll(/:([a-z_]+)/g)].map(([, n]) => [n!, idArb(real[n!]!)]))).map((ids) => pathWith(r.path, (n) => ids[n]!));
      // A mutated template goes to the path it is valid for (mostly) so the mutation is what gets judged.
      const request: fc.Arbitrary<[string, Body]> =
        template === undefined
          ? fc.tuple(randomPath, bodyArb)
          : fc.oneof(
              { weight: 2, arbitrary: fc.tuple(fc.constant(templatePath(r.method, r.path)), mutationArb.map((m) => json(mutate(template.body, m), `template with ${m.op} at node ${m.pick}`))) },
              { weight: 1, arbitrary: fc.tuple(randomPath, mutationArb.map((m) => json(mutate(template.body, m), `template with ${m.op} at node ${m.pick}`))) },
              { weight: 1, arbitrary: fc.tuple(randomPath, bodyArb) },
            );
      await fc.assert(
        fc.asyncProperty(request, queryArb, async ([path, body], query) => {
          await probe(r.method, path + query, r.method === "GET" ? { label: "none" } : body, true);
        }),
        { numRuns: RUNS_PER_ENDPOINT },
      );
    }
  }, RANDOM_TIMEOUT_MS);
});
