// The Apinizer dialect: contract tests from the seed (policy-auth-mtls: list, add "Full
// Validation" and "Certificate Validation Only", update, delete, errors), API proxies, issuer
// ACLs and environments; and end to end over real TLS: the policies decide real requests.
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, pki, request, type Reply } from "../../helpers/harness.ts";
import type { DevPki } from "../../../src/pki/devpki.ts";
import type { Issued } from "../../../src/pki/issue.ts";
import type { ModelInput } from "../../../src/model/schema.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { createLogger } from "../../../src/observability/log.ts";
import { Runtime } from "../../../src/dataplane/runtime.ts";
import { apinizerRules } from "../../../src/dialects/apinizer/rules.ts";
import { api, apinizerError, cfError, echo, fastlyError, jsonapi, nativeError, rel, startCertgate, type Certgate } from "../../control/helpers.ts";

/** Trust bundle "clients" = dev CA + other CA; a.test/ and b.test/ routed to the echo origin. */
const seed = (p: DevPki, origin: string): ModelInput => ({
  certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
  trust_bundles: [{ id: "clients", ca: p.ca.certPem + p.otherCa.certPem }],
  routes: [
    { id: "a-root", hostname: "a.test", origin },
    { id: "b-root", hostname: "b.test", origin },
  ],
  default_certificate: "srv",
});
const startNode = (dataDir?: string): Promise<Certgate> => startCertgate(dataDir, seed);

// The seed's two request bodies, as written.
const FULL = {
  operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: true, deployTargetEnvironmentNameList: ["production"], order: 1 },
  policy: { type: "policy-auth-mtls", description: "mTLS authentication with full validation", active: true, validateCertificate: true, validateACLForIssuer: true },
};
const CERT_ONLY = {
  operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: true, deployTargetEnvironmentNameList: ["production"], order: 1 },
  policy: { type: "policy-auth-mtls", description: "mTLS authentication with certificate validation only", active: true, validateCertificate: true, validateACLForIssuer: false },
};
const DEPLOYED = { success: true, deploymentResult: { success: true, deploymentResults: [{ environmentName: "production", success: true, message: "Deployment successful" }] } };

const POLICIES = "/apiops/projects/MyProject/apiProxies/MyAPI/policies/";
const CA_DN = "CN=certgate dev client CA,O=certgate dev";

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe("Apinizer dialect: contract", () => {
  let n: Certgate;
  let p: DevPki;
  const call = (method: string, path: string, body?: unknown, opts?: Parameters<typeof api>[4]) => api(n.admin, method, path, body, opts);
  beforeAll(async () => {
    p = await pki();
    n = await startNode();
  });
  afterAll(() => n.close());

  it("401 without a Bearer token, in Apinizer's envelope", async () => {
    const r = await call("GET", POLICIES, undefined, { token: null });
    expect(r.status).toBe(401);
    expect(apinizerError(r)).toMatch(/token/);
    expect(r.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect((await call("GET", POLICIES, undefined, { token: "wrong" })).status).toBe(401);
  });

  it("environments: production exists by default and is the one this node serves", async () => {
    const r = await call("GET", "/apiops/environments/");
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ success: true, resultCount: 1, resultList: [{ name: "production", servedByThisNode: true }] });
  });

  it("404 for policies of an unknown project or API proxy", async () => {
    const r = await call("GET", POLICIES);
    expect(r.status).toBe(404);
    expect(apinizerError(r)).toMatch(/project "MyProject" not found/);
  });

  it("creates a project and an API proxy mapped onto a route and the host's mTLS", async () => {
    const pr = await call("POST", "/apiops/projects/MyProject/", { description: "demo" });
    expect(pr.status).toBe(200);
    expect(pr.body).toMatchObject({ success: true, result: { name: "MyProject", description: "demo", apiProxyList: [] } });
    const r = await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/", {
      hostname: "a.test",
      relativePath: "/myapi",
      backendUrl: await echo(),
      trustBundleId: "clients",
      issuerList: [CA_DN],
    });
    expect(r.status).toBe(200);
    expect(r.body.result).toMatchObject({ name: "MyAPI", hostname: "a.test", relativePath: "/myapi", backendUrlList: [await echo()], trustBundleId: "clients", mtlsMode: "fail_open", issuerList: [CA_DN] });
    const model = n.plane.model;
    expect(model.routes.find((x) => x.id === r.body.result.routeId)).toMatchObject({ hostname: "a.test", path_prefix: "/myapi", origin: await echo() });
    expect(model.hosts.find((h) => h.hostname === "a.test")?.mtls).toEqual({ mode: "fail_open", trust_bundle: "clients" });
    const list = await call("GET", "/apiops/projects/MyProject/apiProxies/");
    expect(list.body).toMatchObject({ success: true, resultCount: 1, resultList: [{ name: "MyAPI" }] });
    expect((await call("GET", "/apiops/projects/MyProject/apiProxies/MyAPI/")).body.result.name).toBe("MyAPI");
    expect((await call("GET", "/apiops/projects/MyProject/apiProxies/Nope/")).status).toBe(404);
  });

  it("refuses bad API proxies with specific errors", async () => {
    const base = { hostname: "b.test", relativePath: "/x", backendUrl: "http://127.0.0.1:1" };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...base, hostname: undefined }, /hostname is required/],
      [{ ...base, backendUrl: undefined }, /backendUrl .*is required/],
      [{ ...base, backendUrl: "http://x/with/path" }, /without a path/],
      [{ ...base, backendUrlList: ["http://a", "http://b"], backendUrl: undefined }, /exactly one URL/],
      [{ ...base, relativePath: "nope" }, /relativePath must start with \//],
      [{ ...base, trustBundleId: "missing" }, /no trust bundle with id "missing"/],
      [{ ...base, issuerList: ["not a dn"] }, /neither a DN/],
      [{ ...base, colour: "red" }, /colour is not a known field/],
    ];
    for (const [body, re] of cases) {
      const r = await call("POST", "/apiops/projects/MyProject/apiProxies/Bad/", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(apinizerError(r)).toMatch(re);
    }
    const dup = await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/", { hostname: "a.test", relativePath: "/other", backendUrl: "http://127.0.0.1:1" });
    expect(dup.status).toBe(409);
    const routed = await call("POST", "/apiops/projects/MyProject/apiProxies/Clash/", { hostname: "a.test", relativePath: "/myapi", backendUrl: "http://127.0.0.1:1" });
    expect(routed.status).toBe(409);
    expect(apinizerError(routed)).toMatch(/already routed/);
  });

  it("adds the seed's Full Validation policy: the documented response", async () => {
    const r = await call("POST", `${POLICIES}mtls-auth-policy/`, FULL);
    expect(r.status).toBe(200);
    expect(r.body).toEqual(DEPLOYED);
  });

  it("lists it in the documented shape", async () => {
    const r = await call("GET", POLICIES);
    expect(r.status).toBe(200);
    expect(r.body.success).toBe(true);
    expect(r.body.resultCount).toBe(1);
    expect(r.body.resultList).toHaveLength(1);
    const proxy = r.body.resultList[0].apiProxy;
    expect(proxy.name).toBe("MyAPI");
    expect(proxy.requestPolicyList).toHaveLength(1);
    expect(proxy.requestPolicyList[0]).toMatchObject({
      type: "policy-auth-mtls",
      name: "mtls-auth-policy",
      description: "mTLS authentication with full validation",
      active: true,
      validateCertificate: true,
      validateACLForIssuer: true,
    });
    expect(proxy.requestPolicyList[0]).toMatchObject({ order: 1, targetScope: "ALL", targetPipeline: "REQUEST", deployedEnvironmentNameList: ["production"] });
    expect(proxy.responsePolicyList).toEqual([]);
    expect(proxy.errorPolicyList).toEqual([]);
  });

  it("adds the seed's Certificate Validation Only policy at order 1: it runs first", async () => {
    const r = await call("POST", `${POLICIES}mtls-cert-only/`, CERT_ONLY);
    expect(r.body).toEqual(DEPLOYED);
    const l = await call("GET", POLICIES);
    const names = l.body.resultList[0].apiProxy.requestPolicyList.map((x: { name: string; order: number }) => [x.name, x.order]);
    expect(names).toEqual([["mtls-cert-only", 1], ["mtls-auth-policy", 2]]);
    expect(l.body.resultList[0].apiProxy.requestPolicyList[0]).toMatchObject({ validateCertificate: true, validateACLForIssuer: false });
  });

  it("applies the documented defaults: validateCertificate, validateACLForIssuer, active and deploy true", async () => {
    const r = await call("POST", `${POLICIES}defaults/`, {
      operationMetadata: { targetScope: "ENDPOINT", targetEndpoint: "/orders", targetEndpointHTTPMethod: "POST", targetPipeline: "RESPONSE", deployTargetEnvironmentNameList: ["production"] },
      policy: { type: "policy-auth-mtls" },
    });
    expect(r.body).toEqual(DEPLOYED);
    const l = await call("GET", POLICIES);
    expect(l.body.resultList[0].apiProxy.responsePolicyList).toEqual([
      expect.objectContaining({ name: "defaults", active: true, validateCertificate: true, validateACLForIssuer: true, description: "", targetScope: "ENDPOINT", targetEndpoint: "/orders", targetEndpointHTTPMethod: "POST", deployedEnvironmentNameList: ["production"] }),
    ]);
    expect((await call("GET", `${POLICIES}defaults/`)).body.result).toMatchObject({ name: "defaults", order: 1 });
  });

  it("refuses a second POST of the same name (409) and a PUT of an unknown one (404)", async () => {
    const dup = await call("POST", `${POLICIES}mtls-auth-policy/`, FULL);
    expect(dup.status).toBe(409);
    expect(apinizerError(dup)).toMatch(/already exists/);
    const nf = await call("PUT", `${POLICIES}nope/`, FULL);
    expect(nf.status).toBe(404);
    expect(apinizerError(nf)).toMatch(/policy "nope" not found/);
  });

  it("validation errors are specific", async () => {
    const withMeta = (m: Record<string, unknown>) => ({ ...clone(FULL), operationMetadata: { ...FULL.operationMetadata, ...m } });
    const withPolicy = (m: Record<string, unknown>) => ({ ...clone(FULL), policy: { ...FULL.policy, ...m } });
    const cases: [unknown, RegExp, string?][] = [
      [withMeta({ targetScope: "ENDPOINT" }), /targetEndpoint is required when targetScope is ENDPOINT/, "operationMetadata.targetEndpoint"],
      [withMeta({ targetScope: "ENDPOINT", targetEndpoint: "/x" }), /targetEndpointHTTPMethod is required when targetScope is ENDPOINT/],
      [withMeta({ targetScope: "ENDPOINT", targetEndpoint: "/x", targetEndpointHTTPMethod: "FETCH" }), /targetEndpointHTTPMethod must be one of GET, POST/],
      [withMeta({ targetScope: "ENDPOINT", targetEndpoint: "x", targetEndpointHTTPMethod: "GET" }), /targetEndpoint must be a path starting with \//],
      [withMeta({ targetScope: "ALL", targetEndpoint: "/x" }), /only valid with targetScope ENDPOINT/],
      [withMeta({ targetScope: "SOME" }), /targetScope must be one of ALL, ENDPOINT, got "SOME"/],
      [withMeta({ targetScope: undefined }), /targetScope is required/],
      [withMeta({ targetPipeline: "BOGUS" }), /targetPipeline must be one of REQUEST, RESPONSE, ERROR, got "BOGUS"/, "operationMetadata.targetPipeline"],
      [withMeta({ targetPipeline: undefined }), /targetPipeline is required/],
      [withMeta({ order: 0 }), /order must be an integer starting from 1/],
      [withMeta({ deploy: "yes" }), /operationMetadata\.deploy must be a boolean/],
      [withMeta({ deployTargetEnvironmentNameList: "production" }), /deployTargetEnvironmentNameList must be an array/],
      [withPolicy({ type: "policy-auth-basic" }), /unknown policy type "policy-auth-basic": certgate supports "policy-auth-mtls"/, "policy.type"],
      [withPolicy({ type: undefined }), /policy.type is required/],
      [withPolicy({ validateCertificate: "true" }), /policy\.validateCertificate must be a boolean/],
      [withPolicy({ validateCertifcate: false }), /validateCertifcate is not a known field/],
      [{ operationMetadata: FULL.operationMetadata }, /policy is required/],
      [{ policy: FULL.policy }, /operationMetadata is required/],
      ["{not json", /invalid JSON/],
    ];
    for (const [body, re, field] of cases) {
      const r = await call("POST", `${POLICIES}bad/`, body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(apinizerError(r)).toMatch(re);
      if (field) expect(r.body.errors[0].field).toBe(field);
    }
    expect((await call("GET", `${POLICIES}bad/`)).status).toBe(404);
  });

  it("PUT updates all fields; an update without order keeps the position", async () => {
    const body = clone(FULL);
    body.policy.description = "updated";
    body.policy.validateACLForIssuer = false;
    body.operationMetadata.order = undefined as unknown as number;
    const r = await call("PUT", `${POLICIES}mtls-auth-policy/`, body);
    expect(r.status).toBe(200);
    expect(r.body).toEqual(DEPLOYED);
    const l = (await call("GET", POLICIES)).body.resultList[0].apiProxy.requestPolicyList;
    expect(l[1]).toMatchObject({ name: "mtls-auth-policy", description: "updated", validateACLForIssuer: false, order: 2 });
    // Moving it to order 1.
    await call("PUT", `${POLICIES}mtls-auth-policy/`, { ...FULL, operationMetadata: { ...FULL.operationMetadata, order: 1 } });
    const l2 = (await call("GET", POLICIES)).body.resultList[0].apiProxy.requestPolicyList;
    expect(l2.map((x: { name: string }) => x.name)).toEqual(["mtls-auth-policy", "mtls-cert-only"]);
    expect(l2[0]).toMatchObject({ description: "mTLS authentication with full validation", validateACLForIssuer: true });
  });

  it("reports an unknown environment per environment in deploymentResult", async () => {
    const body = { ...clone(FULL), operationMetadata: { ...FULL.operationMetadata, deployTargetEnvironmentNameList: ["production", "staging"] } };
    const r = await call("PUT", `${POLICIES}mtls-auth-policy/`, body);
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      success: true,
      deploymentResult: {
        success: false,
        deploymentResults: [
          { environmentName: "production", success: true, message: "Deployment successful" },
          { environmentName: "staging", success: false, message: expect.stringMatching(/Environment "staging" not found/) },
        ],
      },
    });
  });

  it("DELETE with the seed's body (deploy false) answers as documented", async () => {
    const r = await call("DELETE", `${POLICIES}defaults/`, { operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: false } });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ success: true, deploymentResult: { success: true, deploymentResults: [] } });
    const l = (await call("GET", POLICIES)).body.resultList[0].apiProxy;
    expect(l.responsePolicyList).toEqual([]);
    expect((await call("DELETE", `${POLICIES}defaults/`)).status).toBe(404);
    // Without a body: deleted and redeployed where the API proxy runs.
    const d = await call("DELETE", `${POLICIES}mtls-cert-only/`);
    expect(d.body).toEqual(DEPLOYED);
  });

  it("issuer ACLs: DNs are normalised, fingerprints resolved from the trust bundles, unknown ones refused", async () => {
    const fp = new X509Certificate(p.otherCa.certPem).fingerprint256;
    const r = await call("PUT", "/apiops/projects/MyProject/apiProxies/MyAPI/issuerAcl/", { issuerList: ["CN=certgate dev client CA, O=certgate dev", fp] });
    expect(r.status).toBe(200);
    expect(r.body.result.issuerList).toEqual([CA_DN, fp.replace(/:/g, "").toLowerCase()]);
    expect(r.body.result.issuers[1]).toMatchObject({ issuerDN: "CN=some other CA,O=elsewhere" });
    const bad = await call("PUT", "/apiops/projects/MyProject/apiProxies/MyAPI/issuerAcl/", { issuerList: ["ab".repeat(32)] });
    expect(bad.status).toBe(400);
    expect(apinizerError(bad)).toMatch(/no CA certificate with SHA-256 fingerprint/);
    for (const path of ["/apiops/projects/MyProject/apiProxies/MyAPI/issuerAcl/", "/apiops/projects/MyProject/issuerAcl/"]) {
      const missing = await call("PUT", path, {});
      expect(missing.status, path).toBe(400);
      expect(apinizerError(missing)).toBe("issuerList is required (an array; [] clears the ACL)");
      expect(apinizerError(await call("PUT", path, { issuerList: [], colour: "red" }))).toMatch(/colour is not a known field/);
    }
    const legacy = await call("PUT", "/apiops/projects/MyProject/issuerAcl/", { issuerList: ["/O=certgate dev/CN=certgate dev intermediate CA"] });
    expect(legacy.body.result.issuerList).toEqual(["CN=certgate dev intermediate CA,O=certgate dev"]);
    expect((await call("GET", "/apiops/projects/MyProject/issuerAcl/")).body.result.issuerList).toHaveLength(1);
  });

  it("environments can be added and deleted; one in use cannot be deleted", async () => {
    expect((await call("POST", "/apiops/environments/staging/")).status).toBe(200);
    expect((await call("POST", "/apiops/environments/staging/")).status).toBe(409);
    expect((await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/staging/")).body).toMatchObject({ success: true, deploymentResult: { success: true } });
    const inUse = await call("DELETE", "/apiops/environments/staging/");
    expect(inUse.status).toBe(409);
    expect(apinizerError(inUse)).toMatch(/undeploy/);
    expect((await call("DELETE", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/staging/")).status).toBe(200);
    expect((await call("DELETE", "/apiops/environments/staging/")).status).toBe(200);
  });

  it("a policy needs the API proxy's hostname to request client certificates", async () => {
    await call("POST", "/apiops/projects/MyProject/apiProxies/NoCa/", { hostname: "b.test", relativePath: "/noca", backendUrl: await echo() });
    const r = await call("POST", "/apiops/projects/MyProject/apiProxies/NoCa/policies/p/", FULL);
    expect(r.status).toBe(400);
    expect(apinizerError(r)).toMatch(/has no client CA/);
    const inactive = await call("POST", "/apiops/projects/MyProject/apiProxies/NoCa/policies/p/", { ...FULL, policy: { ...FULL.policy, active: false } });
    expect(inactive.status).toBe(200);
  });

  // The Apinizer invariants hold for every write path, not only the Apinizer handlers.
  describe("the invariants hold for every dialect's writes", () => {
    const unchanged = async (before: { version: number; revision: number; config: string }) => {
      expect(n.runtime.snapshot.version).toBe(before.version);
      expect(await n.plane.store.revision()).toBe(before.revision);
      expect(JSON.stringify((await call("GET", "/v1/config")).body)).toBe(before.config);
    };
    const state = async () => ({ version: n.runtime.snapshot.version, revision: await n.plane.store.revision(), config: JSON.stringify((await call("GET", "/v1/config")).body) });

    it("PUT /v1/config with a policy deployed to another environment that does not compile → 400, nothing changed", async () => {
      const before = await state();
      const cfg = JSON.parse(before.config);
      const proxy = cfg.dialects.apinizer.projects[0].api_proxies[0];
      expect(proxy.name).toBe("MyAPI");
      const pol = proxy.deployments.find((d: { environment: string }) => d.environment === "production").policies[0];
      // Two policies of one name: their rules share ids, which a staging node could not compile.
      cfg.dialects.apinizer.environments.push({ name: "staging", description: "" });
      proxy.deployments.push({ environment: "staging", policies: [pol, pol] });
      const r = await call("PUT", "/v1/config", cfg);
      expect(r.status).toBe(400);
      expect(nativeError(r)).toMatchObject({ code: "invalid_config", path: "dialects.apinizer.projects[0].api_proxies[0].deployments[1]" });
      expect(nativeError(r).message).toMatch(/the policies deployed to environment staging would not compile: .*duplicate rule id/);
      await unchanged(before);
      // The same document without the broken deployment is accepted (the check is not over-eager).
      proxy.deployments.pop();
      expect((await call("PUT", "/v1/config", cfg)).status).toBe(200);
      expect(n.plane.model.dialects.apinizer.environments.map((e) => e.name)).toEqual(["production", "staging"]);
    });

    it("PUT /v1/config turning off the client CA of a host with a deployed policy → 400", async () => {
      const before = await state();
      const cfg = JSON.parse(before.config);
      cfg.hosts = cfg.hosts.map((h: { hostname: string }) => (h.hostname === "a.test" ? { ...h, mtls: {} } : h));
      const r = await call("PUT", "/v1/config", cfg);
      expect(r.status).toBe(400);
      expect(nativeError(r).message).toMatch(/API proxy "MyProject\/MyAPI" has no client CA: its hostname a\.test does not request client certificates, so policy "mtls-auth-policy" deployed to production would refuse every request/);
      await unchanged(before);
    });

    it("Fastly: PATCH tls_activation unsetting mutual_authentication on that host → 400 in the JSON:API envelope, nothing changed", async () => {
      const acts = await call("GET", "/tls/activations?filter[tls_domain.id]=a.test");
      expect(acts.body.data).toHaveLength(1);
      const before = await state();
      const r = await call("PATCH", `/tls/activations/${acts.body.data[0].id}`, jsonapi("tls_activation", undefined, { mutual_authentication: rel("mutual_authentication", null) }));
      expect(r.status).toBe(400);
      expect(fastlyError(r)).toMatch(/has no client CA/);
      await unchanged(before);
      expect(n.plane.model.hosts.find((h) => h.hostname === "a.test")?.mtls.trust_bundle).toBe("clients");
    });

    it("Cloudflare: removing the host from the access certificate's associated_hostnames → 400 in Cloudflare's envelope, nothing changed", async () => {
      const before = await state();
      const r = await call("PUT", "/accounts/acc1/access/certificates/clients", { associated_hostnames: [] });
      expect(r.status).toBe(400);
      expect(cfError(r)).toMatch(/has no client CA/);
      await unchanged(before);
    });

    it("once the policy is undeployed, the same writes go through", async () => {
      expect((await call("DELETE", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/production/")).status).toBe(200);
      const r = await call("PUT", "/accounts/acc1/access/certificates/clients", { associated_hostnames: [] });
      expect(r.status).toBe(200);
      expect(n.plane.model.hosts.find((h) => h.hostname === "a.test")?.mtls).toEqual({});
      // Deploying it again is refused now, in the Apinizer envelope.
      const d = await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/production/");
      expect(d.status).toBe(400);
      expect(apinizerError(d)).toMatch(/has no client CA/);
      expect(d.body.errors[0].code).toBe("CERTGATE_ERR_INVALID_CONFIG");
      // Restore: associate again and redeploy.
      expect((await call("PUT", "/accounts/acc1/access/certificates/clients", { associated_hostnames: ["a.test"] })).status).toBe(200);
      expect((await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/production/")).status).toBe(200);
    });
  });

  it("the model is one: /v1/config shows the Apinizer objects, a project with proxies cannot be deleted, deleting a proxy removes its route", async () => {
    const cfg = await call("GET", "/v1/config");
    expect(cfg.body.dialects.apinizer.projects[0].api_proxies.map((x: { name: string }) => x.name)).toEqual(["MyAPI", "NoCa"]);
    expect((await call("DELETE", "/apiops/projects/MyProject/")).status).toBe(409);
    const routeId = (await call("GET", "/apiops/projects/MyProject/apiProxies/NoCa/")).body.result.routeId;
    expect((await call("DELETE", "/apiops/projects/MyProject/apiProxies/NoCa/")).status).toBe(200);
    expect(n.plane.model.routes.some((r) => r.id === routeId)).toBe(false);
  });
});

describe("Apinizer dialect: policies decide real requests", () => {
  let n: Certgate;
  let p: DevPki;
  let stranger: Issued; // a CA outside the trust bundle
  let strangerClient: Issued;
  const call = (method: string, path: string, body?: unknown) => api(n.admin, method, path, body);
  const get = (path: string, cert?: Issued, method = "GET", host = "a.test"): Promise<Reply> => request(n.port, { servername: host, path, method, cert });
  const policy = (scope: Record<string, unknown>, pol: Record<string, unknown>, deploy: Record<string, unknown> = {}) => ({
    operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: true, deployTargetEnvironmentNameList: ["production"], ...scope, ...deploy },
    policy: { type: "policy-auth-mtls", ...pol },
  });
  function unauthorized(r: Reply, re: RegExp): void {
    expect(r.status).toBe(401);
    expect(r.headers["content-type"]).toBe("application/json");
    const b = JSON.parse(r.body) as { error: string; message: string };
    expect(b.error).toBe("unauthorized");
    expect(b.message).toMatch(/^mTLS authentication failed: /);
    expect(b.message).toMatch(re);
  }

  beforeAll(async () => {
    p = await pki();
    stranger = await issue({ subject: "O=nowhere,CN=stranger CA", ca: true, days: 30 });
    strangerClient = await issue({ subject: "O=nowhere,CN=stranger client", days: 30 }, stranger);
    n = await startNode();
    expect((await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/", { hostname: "a.test", relativePath: "/myapi", backendUrl: await echo(), trustBundleId: "clients", issuerList: [CA_DN] })).status).toBe(200);
  });
  afterAll(() => n.close());

  it("before any policy, the API proxy forwards requests without a certificate to its backend", async () => {
    const r = await get("/myapi/hello");
    expect(r.status).toBe(200);
    expect(r.json().url).toBe("/myapi/hello");
  });

  it("Full Validation: no cert → 401; untrusted cert → 401; trusted issuer not in the ACL → 401; allowed issuer → origin", async () => {
    expect((await call("POST", `${POLICIES}mtls-auth-policy/`, FULL)).body).toEqual(DEPLOYED);
    unauthorized(await get("/myapi/hello"), /client certificate is required/);
    unauthorized(await get("/myapi/hello", strangerClient), /could not be verified/);
    unauthorized(await get("/myapi/hello", p.expired), /could not be verified/);
    unauthorized(await get("/myapi/hello", p.untrusted), /issuer is not allowed/); // issued by otherCa: in the bundle, not in the ACL
    const ok = await get("/myapi/hello", p.client);
    expect(ok.status).toBe(200);
    expect(ok.json().url).toBe("/myapi/hello");
  });

  it("only the API proxy's requests are affected: other paths of the host and other hosts pass", async () => {
    expect((await get("/other")).status).toBe(200);
    expect((await get("/myapi/hello", undefined, "GET", "b.test")).status).toBe(200);
  });

  it("a longer route of the same host (another API) is outside the policy's scope", async () => {
    expect((await call("PUT", "/v1/routes/public", { hostname: "a.test", path_prefix: "/myapi/public", origin: await echo() })).status).toBe(201);
    expect((await get("/myapi/public/x")).status).toBe(200);
    unauthorized(await get("/myapi/x"), /client certificate is required/);
    expect((await call("DELETE", "/v1/routes/public")).status).toBe(204);
    unauthorized(await get("/myapi/public/x"), /client certificate is required/);
  });

  it("the ACL is live: adding the other CA by fingerprint lets its certificates through", async () => {
    const fp = new X509Certificate(p.otherCa.certPem).fingerprint256;
    expect((await call("PUT", "/apiops/projects/MyProject/apiProxies/MyAPI/issuerAcl/", { issuerList: [CA_DN, fp] })).status).toBe(200);
    expect((await get("/myapi/x", p.untrusted)).status).toBe(200);
    // A project-level ACL adds to the proxy's.
    expect((await call("PUT", "/apiops/projects/MyProject/apiProxies/MyAPI/issuerAcl/", { issuerList: [] })).status).toBe(200);
    unauthorized(await get("/myapi/x", p.client), /issuer is not allowed/);
    expect((await call("PUT", "/apiops/projects/MyProject/issuerAcl/", { issuerList: [CA_DN] })).status).toBe(200);
    expect((await get("/myapi/x", p.client)).status).toBe(200);
    unauthorized(await get("/myapi/x", p.untrusted), /issuer is not allowed/);
  });

  it("Certificate Validation Only: any verified certificate passes, whatever its issuer", async () => {
    expect((await call("PUT", `${POLICIES}mtls-auth-policy/`, CERT_ONLY)).body).toEqual(DEPLOYED);
    expect((await get("/myapi/x", p.untrusted)).status).toBe(200);
    expect((await get("/myapi/x", p.client)).status).toBe(200);
    unauthorized(await get("/myapi/x", strangerClient), /could not be verified/);
    unauthorized(await get("/myapi/x"), /client certificate is required/);
  });

  it("active false disables the policy without deleting it", async () => {
    await call("PUT", `${POLICIES}mtls-auth-policy/`, policy({}, { active: false }));
    expect((await get("/myapi/x")).status).toBe(200);
    const l = await call("GET", POLICIES);
    expect(l.body.resultList[0].apiProxy.requestPolicyList[0]).toMatchObject({ name: "mtls-auth-policy", active: false });
  });

  it("deploy false stores the change without effect until the API proxy is deployed", async () => {
    const r = await call("PUT", `${POLICIES}mtls-auth-policy/`, policy({}, { active: true }, { deploy: false }));
    expect(r.body).toEqual({ success: true, deploymentResult: { success: true, deploymentResults: [] } });
    expect((await get("/myapi/x")).status).toBe(200);
    expect((await call("GET", POLICIES)).body.resultList[0].apiProxy.requestPolicyList[0]).toMatchObject({ active: true, deployedEnvironmentNameList: [] });
    const d = await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/production/");
    expect(d.body).toEqual(DEPLOYED);
    unauthorized(await get("/myapi/x"), /client certificate is required/);
    // Deleting with deploy false leaves the deployed copy in force, until deployed.
    await call("DELETE", `${POLICIES}mtls-auth-policy/`, { operationMetadata: { targetScope: "ALL", targetPipeline: "REQUEST", deploy: false } });
    unauthorized(await get("/myapi/x"), /client certificate is required/);
    await call("POST", "/apiops/projects/MyProject/apiProxies/MyAPI/environments/production/");
    expect((await get("/myapi/x")).status).toBe(200);
  });

  it("ENDPOINT scope affects only that path and method", async () => {
    const r = await call("POST", `${POLICIES}orders/`, policy({ targetScope: "ENDPOINT", targetEndpoint: "/orders", targetEndpointHTTPMethod: "GET" }, {}));
    expect(r.body).toEqual(DEPLOYED);
    unauthorized(await get("/myapi/orders"), /client certificate is required/);
    expect((await get("/myapi/orders", p.client)).status).toBe(200);
    expect((await get("/myapi/orders", undefined, "POST")).status).toBe(200);
    expect((await get("/myapi/orders/1")).status).toBe(200);
    expect((await get("/myapi/users")).status).toBe(200);
    // A template: {id} matches one segment.
    await call("POST", `${POLICIES}order-by-id/`, policy({ targetScope: "ENDPOINT", targetEndpoint: "/orders/{id}", targetEndpointHTTPMethod: "DELETE" }, {}));
    unauthorized(await get("/myapi/orders/42", undefined, "DELETE"), /client certificate is required/);
    expect((await get("/myapi/orders/42/items", undefined, "DELETE")).status).toBe(200);
    expect((await get("/myapi/orders/42")).status).toBe(200);
    for (const name of ["orders", "order-by-id"]) await call("DELETE", `${POLICIES}${name}/`);
    expect((await get("/myapi/orders")).status).toBe(200);
  });

  it("policies run in order: the first failing one answers", async () => {
    // A: certificate only; B: ACL only (validateCertificate false). The stranger's certificate fails both.
    await call("POST", `${POLICIES}a/`, policy({ order: 1 }, { validateACLForIssuer: false }));
    await call("POST", `${POLICIES}b/`, policy({ order: 2 }, { validateCertificate: false }));
    unauthorized(await get("/myapi/x", strangerClient), /could not be verified/);
    await call("PUT", `${POLICIES}b/`, policy({ order: 1 }, { validateCertificate: false }));
    unauthorized(await get("/myapi/x", strangerClient), /issuer is not allowed/);
    expect((await get("/myapi/x", p.client)).status).toBe(200);
    for (const name of ["a", "b"]) await call("DELETE", `${POLICIES}${name}/`);
  });

  it("policies and deployments survive a restart on the same data directory", async () => {
    await call("POST", `${POLICIES}after-restart/`, FULL);
    unauthorized(await get("/myapi/x"), /client certificate is required/);
    await n.close();
    n = await startNode(n.dataDir);
    unauthorized(await get("/myapi/x"), /client certificate is required/);
    expect((await get("/myapi/x", p.client)).status).toBe(200);
    expect((await call("GET", POLICIES)).body.resultList[0].apiProxy.requestPolicyList.map((x: { name: string }) => x.name)).toEqual(["after-restart"]);
    await call("DELETE", `${POLICIES}after-restart/`);
    expect((await get("/myapi/x")).status).toBe(200);
  });

  it("a policy deployed to another environment has no effect on this node, and decides on a node of that environment", async () => {
    expect((await call("POST", "/apiops/environments/staging/")).status).toBe(200);
    const r = await call("POST", `${POLICIES}staging-only/`, policy({ deployTargetEnvironmentNameList: ["staging"] }, {}));
    expect(r.body).toEqual({ success: true, deploymentResult: { success: true, deploymentResults: [{ environmentName: "staging", success: true, message: "Deployment successful" }] } });
    expect((await get("/myapi/x")).status).toBe(200);
    // A staging node compiling the same stored model enforces it.
    const staging = new Runtime(n.plane.model, { log: createLogger({ level: "silent" }), metrics: createMetrics(), environment: "staging", derivedRules: apinizerRules });
    const { port } = await staging.listen("127.0.0.1", 0);
    try {
      const denied = await request(port, { servername: "a.test", path: "/myapi/x" });
      unauthorized(denied, /client certificate is required/);
      expect((await request(port, { servername: "a.test", path: "/myapi/x", cert: p.client })).status).toBe(200);
    } finally {
      await staging.close();
    }
  });

  it("an API proxy created with clientCaCertificate and mtlsMode enforced: a bundle of its own, the host refuses handshakes without a certificate", async () => {
    const r = await call("POST", "/apiops/projects/MyProject/apiProxies/Enforced/", {
      hostname: "b.test",
      relativePath: "/enf",
      backendUrl: await echo(),
      clientCaCertificate: p.ca.certPem,
      mtlsMode: "enforced",
      issuerList: [p.ca.certPem],
    });
    expect(r.status).toBe(200);
    const bundleId = "apinizer.MyProject.Enforced.clients";
    expect(r.body.result).toMatchObject({ trustBundleId: bundleId, mtlsMode: "enforced", issuerList: [new X509Certificate(p.ca.certPem).fingerprint256.replace(/:/g, "").toLowerCase()] });
    expect(n.plane.model.trust_bundles.find((b) => b.id === bundleId)).toMatchObject({ ca: p.ca.certPem, enforced: true });
    expect(n.plane.model.hosts.find((h) => h.hostname === "b.test")?.mtls).toEqual({ mode: "enforced", trust_bundle: bundleId });
    // Enforced: without a certificate the handshake fails; one from a CA outside this bundle is refused (403) before the rules.
    await expect(get("/enf/x", undefined, "GET", "b.test")).rejects.toThrow();
    const untrusted = await get("/enf/x", p.untrusted, "GET", "b.test");
    expect(untrusted.status).toBe(403);
    expect(untrusted.body).toMatch(/^Client certificate error: untrusted/);
    const ok = await get("/enf/x", p.client, "GET", "b.test");
    expect(ok.status).toBe(200);
    expect(ok.json().url).toBe("/enf/x");
  });
});
