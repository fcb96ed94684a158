// The authorization matrix: every admin endpoint of every dialect (ADMIN_ROUTES, the router's own
// table) × {global, read-only, account A, account B, no token, wrong token} × {own object,
// foreign object}, over a real socket to one running certgate. The expected outcome follows from
// the endpoint's role, written in its case (admin / global / account; the router's flags must
// agree), and the object's owner; a refused write must store nothing (GET /v1/config unchanged)
// and be in the audit log as refused. An endpoint added without a case here fails the first test.
import { execFileSync } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ADMIN_ROUTES, dialectOf } from "../../src/control/admin.ts";
import type { AdminRoute } from "../../src/control/http.ts";
import { ApiError } from "../../src/control/apierrors.ts";
import { authorize } from "../../src/control/ownership.ts";
import { COLLECTIONS } from "../../src/control/store.ts";
import { Model as ModelSchema, type Model } from "../../src/model/schema.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import { pki } from "../helpers/harness.ts";
import { api, apinizerError, cfError, echo, fastlyError, jsonapi, nativeError, rel, seedModel, startCertgate, TOKEN, type ApiReply, type Certgate } from "./helpers.ts";

type Acc = "accA" | "accB";
const OTHER: Record<Acc, Acc> = { accA: "accB", accB: "accA" };
const WHO = ["global", "read-only", "account A", "account B", "no token", "wrong token"] as const;
type Who = (typeof WHO)[number];
type Target = "own" | "foreign";

/** Per account: its zone (id, name, ruleset, rule), bundles, host, client certificates. */
interface AccountFx {
  zone: string;
  zoneName: string;
  ruleset: string;
  rule: string;
  bundle: string;
  spareBundle: string;
  host: string;
  activation: string;
  cert: string;
  pendingCert: string;
}
interface Fx {
  acc: Record<Acc, AccountFx>;
  opsActivation: string;
  csr: string;
  extra: Issued;
  newKey: string;
  origin: string;
  baseline: Record<string, unknown>;
}

/** One request of a case: `pathAcc` is the account in the path, `objAcc` the owner of the objects it names. */
interface CaseCtx {
  fx: Fx;
  target: Target;
  pathAcc: Acc;
  objAcc: Acc;
}
interface Req {
  path: string;
  body?: unknown;
}
/**
 * Who may call an endpoint, written here per endpoint (not read from the router's flags, which
 * the first tests check against it): `admin` unrestricted tokens only; `global` global tokens
 * (read-only ones: GET only); `account` account tokens too, on their own account's objects.
 */
type Role = "admin" | "global" | "account";
interface Spec {
  role: Role;
  /** Status when allowed. */
  ok: number;
  req: (c: CaseCtx) => Req | Promise<Req>;
  /** What an account token gets for a foreign object when it is not 403 (lists filter instead). */
  foreignForAccount?: number;
}

const P = "/apiops/projects/proj/apiProxies/api";
const FULL_POLICY = {
  operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: true, deployTargetEnvironmentNameList: ["production"] },
  policy: { type: "policy-auth-mtls", active: true, validateCertificate: true, validateACLForIssuer: false },
};
const get = (role: Role, path: string | ((c: CaseCtx) => string)): Spec => ({ role, ok: 200, req: (c) => ({ path: typeof path === "string" ? path : path(c) }) });
const a = (c: CaseCtx) => c.fx.acc[c.objAcc];
/** Fastly's and the native API's objects: the operator's for "own", an account's for "foreign" (a global token may touch both). */
const fastlyObj = <T,>(c: CaseCtx, own: T, foreign: (x: AccountFx) => T): T => (c.target === "own" ? own : foreign(a(c)));

let p: DevPki;
const SPECS: Record<string, Spec> = {
  // ---- Fastly
  "GET /tls/activations": get("global", "/tls/activations"),
  "POST /tls/activations": {
    role: "global",
    ok: 201,
    req: (c) => ({ path: "/tls/activations", body: jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", "srv"), tls_domain: rel("tls_domain", c.target === "own" ? "localhost" : "x.localhost") }) }),
  },
  "GET /tls/activations/:id": get("global", (c) => `/tls/activations/${fastlyObj(c, c.fx.opsActivation, (x) => x.activation)}`),
  "PATCH /tls/activations/:id": {
    role: "global",
    ok: 200,
    req: (c) => {
      const id = fastlyObj(c, c.fx.opsActivation, (x) => x.activation);
      return { path: `/tls/activations/${id}`, body: jsonapi("tls_activation", undefined, { mutual_authentication: rel("mutual_authentication", null) }, id) };
    },
  },
  "DELETE /tls/activations/:id": { role: "global", ok: 204, req: (c) => ({ path: `/tls/activations/${fastlyObj(c, c.fx.opsActivation, (x) => x.activation)}` }) },
  "GET /tls/mutual_authentications": get("global", "/tls/mutual_authentications"),
  "POST /tls/mutual_authentications": { role: "global", ok: 201, req: () => ({ path: "/tls/mutual_authentications", body: jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem }) }) },
  "GET /tls/mutual_authentications/:id": get("global", (c) => `/tls/mutual_authentications/${fastlyObj(c, "ops-ca", (x) => x.bundle)}`),
  "PATCH /tls/mutual_authentications/:id": {
    role: "global",
    ok: 200,
    req: (c) => {
      const id = fastlyObj(c, "ops-ca", (x) => x.bundle);
      return { path: `/tls/mutual_authentications/${id}`, body: jsonapi("mutual_authentication", { name: "renamed" }, undefined, id) };
    },
  },
  "DELETE /tls/mutual_authentications/:id": { role: "global", ok: 204, req: (c) => ({ path: `/tls/mutual_authentications/${fastlyObj(c, "spare-ops", (x) => x.spareBundle)}` }) },
  "GET /tls/certificates": get("global", "/tls/certificates"),
  "POST /tls/certificates": { role: "global", ok: 201, req: (c) => ({ path: "/tls/certificates", body: jsonapi("tls_certificate", { cert_blob: c.fx.extra.certPem }) }) },
  "GET /tls/certificates/:id": get("global", "/tls/certificates/srv"),
  "PATCH /tls/certificates/:id": { role: "global", ok: 200, req: () => ({ path: "/tls/certificates/srv", body: jsonapi("tls_certificate", { name: "renamed" }, undefined, "srv") }) },
  "DELETE /tls/certificates/:id": { role: "global", ok: 204, req: () => ({ path: "/tls/certificates/spare-cert" }) },
  "GET /tls/private_keys": get("global", "/tls/private_keys"),
  "POST /tls/private_keys": { role: "global", ok: 201, req: (c) => ({ path: "/tls/private_keys", body: jsonapi("tls_private_key", { key: c.fx.newKey }) }) },
  "GET /tls/private_keys/:id": get("global", "/tls/private_keys/pending-key"),
  "DELETE /tls/private_keys/:id": { role: "global", ok: 204, req: () => ({ path: "/tls/private_keys/pending-key" }) },
  "GET /tls/domains": get("global", "/tls/domains"),
  "GET /tls/configurations": get("global", "/tls/configurations"),
  "GET /tls/configurations/:id": get("global", "/tls/configurations/default"),
  "PATCH /tls/configurations/:id": { role: "global", ok: 200, req: () => ({ path: "/tls/configurations/default", body: jsonapi("tls_configuration", { name: "renamed" }, undefined, "default") }) },

  // ---- Cloudflare: an account token names its own account in the path and another's objects in the body or id.
  "GET /accounts/:account_id/access/certificates/settings": get("account", (c) => `/accounts/${c.objAcc}/access/certificates/settings`),
  "PUT /accounts/:account_id/access/certificates/settings": {
    role: "account",
    ok: 202,
    req: (c) => ({ path: `/accounts/${c.pathAcc}/access/certificates/settings`, body: { settings: [{ hostname: a(c).host, china_network: false, client_certificate_forwarding: true }] } }),
  },
  "GET /accounts/:account_id/access/certificates": get("account", (c) => `/accounts/${c.objAcc}/access/certificates`),
  "POST /accounts/:account_id/access/certificates": {
    role: "account",
    ok: 201,
    req: (c) => ({ path: `/accounts/${c.pathAcc}/access/certificates`, body: { name: "new", certificate: p.ca.certPem, associated_hostnames: [`new.${a(c).zoneName}`] } }),
  },
  "GET /accounts/:account_id/access/certificates/:id": get("account", (c) => `/accounts/${c.pathAcc}/access/certificates/${a(c).bundle}`),
  "PUT /accounts/:account_id/access/certificates/:id": { role: "account", ok: 200, req: (c) => ({ path: `/accounts/${c.pathAcc}/access/certificates/${a(c).bundle}`, body: { name: "renamed", associated_hostnames: [a(c).host] } }) },
  "DELETE /accounts/:account_id/access/certificates/:id": { role: "account", ok: 200, req: (c) => ({ path: `/accounts/${c.pathAcc}/access/certificates/${a(c).spareBundle}` }) },
  "GET /zones": { ...get("account", (c) => `/zones?account.id=${c.objAcc}`), foreignForAccount: 200 },
  "POST /zones": { role: "account", ok: 200, req: (c) => ({ path: "/zones", body: { name: `sub.${a(c).zoneName}`, account: { id: c.pathAcc } } }) },
  "GET /zones/:zone_id": get("account", (c) => `/zones/${a(c).zone}`),
  "DELETE /zones/:zone_id": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}` }) },
  "GET /zones/:zone_id/rulesets": get("account", (c) => `/zones/${a(c).zone}/rulesets`),
  "GET /zones/:zone_id/rulesets/phases/:phase/entrypoint": get("account", (c) => `/zones/${a(c).zone}/rulesets/phases/http_request_firewall_custom/entrypoint`),
  "PUT /zones/:zone_id/rulesets/phases/:phase/entrypoint": {
    role: "account",
    ok: 200,
    req: (c) => ({ path: `/zones/${a(c).zone}/rulesets/phases/http_request_firewall_custom/entrypoint`, body: { rules: [{ action: "log", expression: "true" }] } }),
  },
  "GET /zones/:zone_id/rulesets/:ruleset_id": get("account", (c) => `/zones/${a(c).zone}/rulesets/${a(c).ruleset}`),
  "POST /zones/:zone_id/rulesets/:ruleset_id/rules": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}/rulesets/${a(c).ruleset}/rules`, body: { action: "log", expression: "true" } }) },
  "PATCH /zones/:zone_id/rulesets/:ruleset_id/rules/:rule_id": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}/rulesets/${a(c).ruleset}/rules/${a(c).rule}`, body: { enabled: false } }) },
  "DELETE /zones/:zone_id/rulesets/:ruleset_id/rules/:rule_id": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}/rulesets/${a(c).ruleset}/rules/${a(c).rule}` }) },
  "POST /zones/:zone_id/client_certificates": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}/client_certificates`, body: { csr: c.fx.csr, validity_days: 1 } }) },
  "GET /zones/:zone_id/client_certificates": get("account", (c) => `/zones/${a(c).zone}/client_certificates`),
  "GET /zones/:zone_id/client_certificates/:id": get("account", (c) => `/zones/${a(c).zone}/client_certificates/${a(c).cert}`),
  "DELETE /zones/:zone_id/client_certificates/:id": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}/client_certificates/${a(c).cert}` }) },
  "PATCH /zones/:zone_id/client_certificates/:id": { role: "account", ok: 200, req: (c) => ({ path: `/zones/${a(c).zone}/client_certificates/${a(c).pendingCert}`, body: { reactivate: true } }) },
  "GET /zones/:zone_id/certificate_authorities/hostname_associations": get("account", (c) => `/zones/${a(c).zone}/certificate_authorities/hostname_associations?mtls_certificate_id=${a(c).bundle}`),
  "PUT /zones/:zone_id/certificate_authorities/hostname_associations": {
    role: "account",
    ok: 200,
    req: (c) => ({ path: `/zones/${c.fx.acc[c.pathAcc].zone}/certificate_authorities/hostname_associations`, body: { hostnames: [a(c).host, `assoc.${a(c).zoneName}`], mtls_certificate_id: a(c).bundle } }),
  },

  // ---- native
  "GET /v1/trust_bundles/:id/revocation": get("global", (c) => `/v1/trust_bundles/${fastlyObj(c, "ops-ca", (x) => x.bundle)}/revocation`),
  "PUT /v1/trust_bundles/:id/revocation": { role: "global", ok: 200, req: (c) => ({ path: `/v1/trust_bundles/${fastlyObj(c, "ops-ca", (x) => x.bundle)}/revocation`, body: {} }) },
  "GET /v1/routes": get("global", "/v1/routes"),
  "GET /v1/routes/:id": get("global", "/v1/routes/r0"),
  "PUT /v1/routes/:id": { role: "global", ok: 201, req: (c) => ({ path: "/v1/routes/new-route", body: { hostname: "localhost", path_prefix: "/new", origin: c.fx.origin } }) },
  "DELETE /v1/routes/:id": { role: "global", ok: 204, req: () => ({ path: "/v1/routes/r-spare" }) },
  "GET /v1/config": get("global", "/v1/config"),
  "PUT /v1/config": { role: "global", ok: 200, req: (c) => ({ path: "/v1/config", body: c.fx.baseline }) },
  "GET /v1/tokens": get("admin", "/v1/tokens"),
  "POST /v1/tokens": { role: "admin", ok: 201, req: () => ({ path: "/v1/tokens", body: { name: "matrix" } }) },
  "DELETE /v1/tokens/:id": { role: "admin", ok: 204, req: async () => ({ path: `/v1/tokens/${(await api(cg, "POST", "/v1/tokens", { name: "doomed" })).body.id}` }) },
  "GET /v1/audit": get("global", "/v1/audit?limit=1"),
  "GET /v1/certificates/expiring": get("global", "/v1/certificates/expiring?within=3650d"),
  "GET /v1/client_certificates/seen": get("global", "/v1/client_certificates/seen?per_page=5"),
  "POST /v1/reload": { role: "admin", ok: 200, req: () => ({ path: "/v1/reload" }) },

  // ---- Apinizer
  "GET /apiops/environments": get("global", "/apiops/environments"),
  "POST /apiops/environments/:environment": { role: "global", ok: 200, req: () => ({ path: "/apiops/environments/new-env" }) },
  "DELETE /apiops/environments/:environment": { role: "global", ok: 200, req: () => ({ path: "/apiops/environments/spare-env" }) },
  "GET /apiops/projects": get("global", "/apiops/projects"),
  "GET /apiops/projects/:project": get("global", "/apiops/projects/proj"),
  "POST /apiops/projects/:project": { role: "global", ok: 200, req: () => ({ path: "/apiops/projects/new-proj" }) },
  "DELETE /apiops/projects/:project": { role: "global", ok: 200, req: () => ({ path: "/apiops/projects/spare-proj" }) },
  "GET /apiops/projects/:project/issuerAcl": get("global", "/apiops/projects/proj/issuerAcl"),
  "PUT /apiops/projects/:project/issuerAcl": { role: "global", ok: 200, req: () => ({ path: "/apiops/projects/proj/issuerAcl", body: { issuerList: [] } }) },
  "GET /apiops/projects/:project/apiProxies": get("global", "/apiops/projects/proj/apiProxies"),
  "GET /apiops/projects/:project/apiProxies/:proxy": get("global", P),
  "POST /apiops/projects/:project/apiProxies/:proxy": {
    role: "global",
    ok: 200,
    req: (c) => ({ path: "/apiops/projects/proj/apiProxies/new-api", body: { hostname: "localhost", relativePath: "/newapi", backendUrl: c.fx.origin } }),
  },
  "DELETE /apiops/projects/:project/apiProxies/:proxy": { role: "global", ok: 200, req: () => ({ path: P }) },
  "GET /apiops/projects/:project/apiProxies/:proxy/issuerAcl": get("global", `${P}/issuerAcl`),
  "PUT /apiops/projects/:project/apiProxies/:proxy/issuerAcl": { role: "global", ok: 200, req: () => ({ path: `${P}/issuerAcl`, body: { issuerList: [] } }) },
  "POST /apiops/projects/:project/apiProxies/:proxy/environments/:environment": { role: "global", ok: 200, req: () => ({ path: `${P}/environments/production` }) },
  "DELETE /apiops/projects/:project/apiProxies/:proxy/environments/:environment": { role: "global", ok: 200, req: () => ({ path: `${P}/environments/production` }) },
  "GET /apiops/projects/:project/apiProxies/:proxy/policies": get("global", `${P}/policies`),
  "GET /apiops/projects/:project/apiProxies/:proxy/policies/:policy": get("global", `${P}/policies/pol`),
  "POST /apiops/projects/:project/apiProxies/:proxy/policies/:policy": { role: "global", ok: 200, req: () => ({ path: `${P}/policies/new-pol`, body: FULL_POLICY }) },
  "PUT /apiops/projects/:project/apiProxies/:proxy/policies/:policy": { role: "global", ok: 200, req: () => ({ path: `${P}/policies/pol`, body: FULL_POLICY }) },
  "DELETE /apiops/projects/:project/apiProxies/:proxy/policies/:policy": { role: "global", ok: 200, req: () => ({ path: `${P}/policies/pol` }) },
};

const keyOf = (r: AdminRoute): string => `${r.method} ${r.path}`;
const isWrite = (method: string): boolean => method !== "GET" && method !== "HEAD";

/** The outcome the endpoint's role (as written in SPECS) and the object's owner call for. */
function expected(r: AdminRoute, spec: Spec, who: Who, target: Target): number {
  if (who === "no token" || who === "wrong token") return 401;
  if (spec.role === "admin") return who === "global" ? spec.ok : 403;
  if (who === "global") return spec.ok;
  if (who === "read-only") return isWrite(r.method) ? 403 : spec.ok;
  if (spec.role !== "account") return 403;
  return target === "own" ? spec.ok : (spec.foreignForAccount ?? 403);
}

/** The error envelope of the path's dialect, asserted; returns its message. */
function errorOf(path: string, r: ApiReply): string {
  const d = dialectOf(path.split("?")[0]!);
  return d === "fastly" ? fastlyError(r) : d === "cloudflare" ? cfError(r) : d === "apinizer" ? apinizerError(r) : nativeError(r).message;
}

/** A success envelope of the path's dialect. */
function assertSuccess(path: string, r: ApiReply): void {
  if (r.status === 204) return expect(r.text).toBe("");
  const d = dialectOf(path.split("?")[0]!);
  if (d === "fastly") expect(r.body).toHaveProperty("data");
  else if (d === "cloudflare") expect(r.body).toMatchObject({ success: true, errors: [] });
  else if (d === "apinizer") expect(r.body).toMatchObject({ success: true });
  else expect(typeof r.body).toBe("object");
}

let cg: Certgate;

describe("authorization matrix", () => {
  const tokens = {} as Record<Who, { token: string | null; id: string }>;
  let fx: Fx;
  let config: string;

  beforeAll(async () => {
    p = await pki();
    const origin = await echo();
    const spare = await issue({ subject: "CN=spare.test", dnsNames: ["spare.test"], eku: ["serverAuth"] }, p.serverCa);
    const extra = await issue({ subject: "CN=extra.test", dnsNames: ["extra.test"], eku: ["serverAuth"] }, p.serverCa);
    const newKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    const account = (acc: Acc, letter: string) => ({
      bundles: [
        { id: `bundle-${letter}`, ca: p.ca.certPem, account_id: acc },
        { id: `spare-${letter}`, ca: p.ca.certPem, account_id: acc },
      ],
      host: { hostname: `app.${letter}.example`, account_id: acc, mtls: { trust_bundle: `bundle-${letter}` } },
      zone: { id: `zone-${letter}`, name: `${letter}.example`, account_id: acc, rules: [{ id: `rule-${letter}`, action: "block" as const, expression: 'http.request.uri.path eq "/blocked"' }] },
    });
    const A = account("accA", "a");
    const B = account("accB", "b");
    cg = await startCertgate(undefined, (pk, o) => ({
      ...seedModel(pk, o),
      certificates: [
        { id: "srv", cert: pk.server.certPem, key: pk.server.keyPem },
        { id: "spare-cert", cert: spare.certPem, key: spare.keyPem },
      ],
      pending_private_keys: [{ id: "pending-key", key: extra.keyPem }],
      routes: [
        { id: "r0", hostname: "localhost", origin: o },
        { id: "r1", hostname: "a.test", origin: o },
        { id: "r-spare", hostname: "spare.test", origin: o },
      ],
      trust_bundles: [{ id: "ops-ca", ca: pk.ca.certPem }, { id: "spare-ops", ca: pk.ca.certPem }, ...A.bundles, ...B.bundles],
      hosts: [{ hostname: "a.test", mtls: { trust_bundle: "ops-ca" } }, A.host, B.host],
      zones: [A.zone, B.zone],
    }));
    const must = async (method: string, path: string, body?: unknown) => {
      const r = await api(cg, method, path, body);
      expect(r.status, `${method} ${path}: ${r.text}`).toBeLessThan(300);
      return r;
    };
    // Apinizer: a project with an API proxy on api.localhost and a deployed policy; an empty project and environment.
    await must("POST", "/apiops/projects/proj");
    await must("POST", P, { hostname: "api.localhost", relativePath: "/api", backendUrl: origin, trustBundleId: "ops-ca" });
    await must("POST", `${P}/policies/pol`, FULL_POLICY);
    await must("POST", "/apiops/projects/spare-proj");
    await must("POST", "/apiops/environments/spare-env");
    // Managed client certificates: one active and one pending revocation per zone.
    const dir = mkdtempSync(join(tmpdir(), "certgate-matrix-"));
    execFileSync("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.csr"), "-subj", "/CN=device"], { stdio: "ignore" });
    const csr = readFileSync(join(dir, "c.csr"), "utf8");
    const acc = {} as Record<Acc, AccountFx>;
    for (const [id, letter] of [["accA", "a"], ["accB", "b"]] as const) {
      const zone = `zone-${letter}`;
      const cert = (await must("POST", `/zones/${zone}/client_certificates`, { csr, validity_days: 1 })).body.result.id;
      const pendingCert = (await must("POST", `/zones/${zone}/client_certificates`, { csr, validity_days: 1 })).body.result.id;
      await must("DELETE", `/zones/${zone}/client_certificates/${pendingCert}`);
      const ruleset = (await must("GET", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`)).body.result.id;
      const host = `app.${letter}.example`;
      const activation = (await must("GET", `/tls/activations?filter[tls_domain.id]=${host}`)).body.data[0].id;
      acc[id] = { zone, zoneName: `${letter}.example`, ruleset, rule: `rule-${letter}`, bundle: `bundle-${letter}`, spareBundle: `spare-${letter}`, host, activation, cert, pendingCert };
    }
    const opsActivation = (await must("GET", "/tls/activations?filter[tls_domain.id]=a.test")).body.data[0].id;
    // The baseline every allowed write is rolled back to: the exported model with its real keys.
    const exported = (await must("GET", "/v1/config")).body;
    exported.certificates = exported.certificates.map((c: { id: string }) => ({ ...c, key: c.id === "srv" ? p.server.keyPem : spare.keyPem }));
    exported.dialects.fastly.pending_private_keys = exported.dialects.fastly.pending_private_keys.map((k: object) => ({ ...k, key: extra.keyPem }));
    fx = { acc, opsActivation, csr, extra, newKey, origin, baseline: exported };
    await must("PUT", "/v1/config", fx.baseline);
    config = (await api(cg, "GET", "/v1/config")).text;
    // The principals.
    const scoped = async (body: object) => (await must("POST", "/v1/tokens", { name: "matrix", ...body })).body;
    const ro = await scoped({ read_only: true });
    const ta = await scoped({ account_id: "accA" });
    const tb = await scoped({ account_id: "accB" });
    Object.assign(tokens, {
      global: { token: TOKEN, id: "admin" },
      "read-only": { token: ro.token, id: ro.id },
      "account A": { token: ta.token, id: ta.id },
      "account B": { token: tb.token, id: tb.id },
      "no token": { token: null, id: "-" },
      "wrong token": { token: "cgt_not-a-token", id: "-" },
    });
  });
  afterAll(() => cg.close());

  it("has a case for every endpoint of every dialect, and nothing else", () => {
    expect(ADMIN_ROUTES.length).toBeGreaterThan(80);
    expect(ADMIN_ROUTES.map(keyOf).sort()).toEqual(Object.keys(SPECS).sort());
  });

  it("every route's authorization flags are the role its case expects", () => {
    const flags = (role: Role) => ({ adminOnly: role === "admin", accountScoped: role === "account" });
    const wrong = ADMIN_ROUTES.filter((r) => SPECS[keyOf(r)] && JSON.stringify({ adminOnly: r.adminOnly === true, accountScoped: r.accountScoped === true }) !== JSON.stringify(flags(SPECS[keyOf(r)]!.role)));
    expect(wrong.map((r) => `${keyOf(r)}: adminOnly=${String(r.adminOnly ?? false)} accountScoped=${String(r.accountScoped ?? false)}, case says ${SPECS[keyOf(r)]!.role}`)).toEqual([]);
    // All three roles are in use (a table of one role would test little).
    expect(new Set(Object.values(SPECS).map((x) => x.role))).toEqual(new Set(["admin", "global", "account"]));
  });

  it("an account token gets 403 on every endpoint under another account's path (/accounts/:account_id/...), and nothing is stored", async () => {
    const routes = ADMIN_ROUTES.filter((r) => r.names.includes("account_id"));
    expect(routes.length).toBeGreaterThan(5);
    for (const r of routes) {
      const req = await SPECS[keyOf(r)]!.req({ fx, target: "foreign", pathAcc: "accB", objAcc: "accB" });
      expect(req.path).toMatch(/^\/accounts\/accB\//);
      const res = await api(cg, r.method, req.path, req.body, { token: tokens["account A"].token });
      expect(res.status, `${r.method} ${req.path} → ${res.text.slice(0, 300)}`).toBe(403);
      expect(cfError(res)).toMatch(/limited to Cloudflare account accA/);
      if (!isWrite(r.method)) continue;
      expect((await api(cg, "GET", "/v1/config")).text, `${r.method} ${req.path} changed the model`).toBe(config);
      expect((await api(cg, "GET", "/v1/audit?limit=1")).body.entries[0]).toMatchObject({ token_id: tokens["account A"].id, method: r.method, path: req.path, status: 403 });
    }
  });

  it("an account token changing a global setting (url_normalization, limits, tls, proxy_protocol...) gets 403, over the API and in the write path every dialect uses", async () => {
    // Over the API: the only endpoint that sets them is not the account's.
    const body = { ...fx.baseline, url_normalization: { merge_slashes: false } };
    const res = await api(cg, "PUT", "/v1/config", body, { token: tokens["account A"].token });
    expect(res.status, res.text).toBe(403);
    expect(nativeError(res).message).toMatch(/limited to Cloudflare account accA/);
    expect((await api(cg, "GET", "/v1/config")).text).toBe(config);
    // In the write path (ownership.ts authorize), whatever endpoint a write came from: every
    // field of the model that is not a collection of owned objects is the operator's.
    const changes: Record<string, (m: Model) => Model> = {
      url_normalization: (m) => ({ ...m, url_normalization: { merge_slashes: !m.url_normalization.merge_slashes } }),
      limits: (m) => ({ ...m, limits: { ...m.limits, max_header_count: m.limits.max_header_count + 1 } }),
      trust_forwarded_for: (m) => ({ ...m, trust_forwarded_for: !m.trust_forwarded_for }),
      default_certificate: (m) => ({ ...m, default_certificate: null }),
      tls: (m) => ({ ...m, tls: { ...m.tls, min_version: "1.3" } }),
      proxy_protocol: (m) => ({ ...m, proxy_protocol: { trusted: ["10.0.0.0/8"] } }),
      "dialects.apinizer": (m) => ({ ...m, dialects: { ...m.dialects, apinizer: { ...m.dialects.apinizer, environments: [...m.dialects.apinizer.environments, { name: "acc-env", description: "" }] } } }),
    };
    const globals = Object.keys(ModelSchema.shape).filter((k) => !(COLLECTIONS as string[]).includes(k) && k !== "dialects");
    expect(Object.keys(changes).filter((k) => !k.startsWith("dialects.")).sort()).toEqual(globals.sort());
    const principal = { token_id: tokens["account A"].id, read_only: false, account_id: "accA" };
    for (const [field, change] of Object.entries(changes)) {
      const before = cg.plane.model;
      const e = await cg.plane.write({ principal, method: "PUT", path: "/matrix", warnings: [] }, `change ${field}`, (m) => ({ model: change(m), result: null })).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e, field).toBeInstanceOf(ApiError);
      expect((e as ApiError).status, field).toBe(403);
      expect((e as ApiError).message, field).toMatch(new RegExp(`: ${field.replace(".", "\\.")}[.\\w]* is global configuration`));
      expect(cg.plane.model, field).toBe(before);
      // The same change by a global token is allowed (the case is a real change, not an invalid one).
      expect(() => authorize({ ...principal, account_id: null }, before, change(before)), field).not.toThrow();
    }
    expect((await api(cg, "GET", "/v1/config")).text).toBe(config);
  });

  for (const who of WHO) {
    it(`${who}: every endpoint × {own, foreign} gets its expected outcome`, async () => {
      const accountOf: Partial<Record<Who, Acc>> = { "account A": "accA", "account B": "accB" };
      const me = accountOf[who];
      const failures: string[] = [];
      for (const r of ADMIN_ROUTES) {
        const spec = SPECS[keyOf(r)];
        if (!spec) continue; // reported by the test above
        for (const target of ["own", "foreign"] as const) {
          const pathAcc: Acc = me ?? (target === "own" ? "accA" : "accB");
          const objAcc: Acc = me ? (target === "own" ? me : OTHER[me]) : pathAcc;
          const req = await spec.req({ fx, target, pathAcc, objAcc });
          const want = expected(r, spec, who, target);
          const label = `${who} ${target}: ${r.method} ${req.path}`;
          const res = await api(cg, r.method, req.path, req.body, { token: tokens[who].token });
          try {
            expect(res.status, `${label} → ${res.text.slice(0, 300)}`).toBe(want);
            if (want >= 400) expect(errorOf(req.path, res)).toBeTruthy();
            else assertSuccess(req.path, res);
            if (me && want < 400) {
              // Nothing of the other account shows through an account token.
              const theirs = fx.acc[OTHER[me]];
              for (const s of [theirs.zone, theirs.bundle, theirs.host, theirs.cert]) expect(res.text, `${label} shows ${s}`).not.toContain(s);
            }
            if (!isWrite(r.method)) continue;
            if (want >= 400) {
              expect((await api(cg, "GET", "/v1/config")).text, `${label} changed the model`).toBe(config);
              const entry = (await api(cg, "GET", "/v1/audit?limit=1")).body.entries[0];
              if (want === 401) {
                // Without a valid token nothing is stored (a log line instead): no one can grow the audit table.
                expect(entry?.summary ?? "", `${label}: audit`).not.toMatch(/^refused: .*token is required/);
                expect(entry?.path === req.path.split("?")[0] && entry?.status === 401, `${label}: audited`).toBe(false);
              } else {
                expect(entry, `${label}: audit`).toMatchObject({ token_id: tokens[who].id, method: r.method, path: req.path.split("?")[0], status: want });
                expect(entry.summary).toMatch(/^refused: /);
              }
            } else {
              const back = await api(cg, "PUT", "/v1/config", fx.baseline);
              expect(back.status, `${label}: restore ${back.text}`).toBe(200);
              config = (await api(cg, "GET", "/v1/config")).text;
            }
          } catch (e) {
            failures.push((e as Error).message.split("\n")[0]!);
          }
        }
      }
      expect(failures).toEqual([]);
    });
  }
});
