// The Apinizer dialect (/apiops/...): projects, API proxies, issuer ACLs, environments and
// `policy-auth-mtls` policies, with Apinizer's `{success, resultList, resultCount}` and
// `{success, deploymentResult}` shapes; errors `{success: false, errors: [{code, message, field?}]}`.
//
//   project            = dialects.apinizer.projects[] (records.ts)
//   API proxy          = dialects.apinizer.projects[].api_proxies[] + the routes[] entry it owns
//                        (hostname, path_prefix = relative path, origin = backend URL) + the
//                        hosts[] entry's mtls (trust bundle, fail_open by default)
//   issuer ACL         = api_proxies[].issuer_acl and projects[].issuer_acl (both apply)
//   environment        = dialects.apinizer.environments[] (default: production)
//   policy             = api_proxies[].policies[] (working copy, in execution order); deploying
//                        copies them into api_proxies[].deployments[{environment, policies}]
//   enforcement        = each node compiles the policies deployed to its --environment into
//                        401 block rules (rules.ts, compiled per node by Snapshot)
// (render.ts: the responses; schemas.ts: request bodies; invariants.ts: what every write keeps true.)
import "reflect-metadata"; // @peculiar/x509 needs it loaded first
import { SubjectKeyIdentifierExtension, X509Certificate as PeculiarCert } from "@peculiar/x509";
import { createHash, type X509Certificate } from "node:crypto";
import type {
  ApinizerDeployment,
  ApinizerIssuer,
  ApinizerPolicy,
  ApinizerProject,
  ApinizerProxy,
} from "./records.ts";
import type { Model, Route } from "../../model/schema.ts";
import { rfc2253 } from "../../pki/dn.ts";
import { ApiError, badRequest, notFound } from "../../control/apierrors.ts";
import { objectBody, optionalObjectBody, type Ctx, type Reply, type RouteDef } from "../../control/http.ts";
import { parseRequest } from "../../control/request.ts";
import { aclRes, deployedTo, deploymentResult, envRes, list, ok, orderIn, policyRes, projectRes, proxyRes, type EnvResult } from "./render.ts";
import { AclPut, EnvironmentCreate, POLICY_TYPE, PolicyDelete, PolicyWrite, ProjectCreate, ProxyCreate } from "./schemas.ts";
import { now } from "../../control/writepath.ts";
import { addBundle, associate, removeAt, replaceAt, withDialect } from "../../model/ops.ts";
import { claimable, zoneOwnerOf } from "../../control/ownership.ts";
import { caBundle, certInfo } from "../../control/certinfo.ts";

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// ---- input helpers -----------------------------------------------------------------------

function checkName(v: string, what: string): string {
  if (!NAME.test(v)) throw badRequest(`${what} "${v}" is not valid: names are 1-64 of [A-Za-z0-9._-], starting with a letter or digit`, what);
  return v;
}


// ---- lookups -----------------------------------------------------------------------------

function findProject(model: Model, name: string): number {
  const i = model.dialects.apinizer.projects.findIndex((p) => p.name === name);
  if (i < 0) throw notFound("project", name);
  return i;
}

function findProxy(model: Model, project: string, name: string): { pi: number; xi: number; project: ApinizerProject; proxy: ApinizerProxy } {
  const pi = findProject(model, project);
  const p = model.dialects.apinizer.projects[pi]!;
  const xi = p.api_proxies.findIndex((x) => x.name === name);
  if (xi < 0) throw notFound("API proxy", `${project}/${name}`);
  return { pi, xi, project: p, proxy: p.api_proxies[xi]! };
}

function withProxy(model: Model, pi: number, xi: number, proxy: ApinizerProxy): Model {
  const p = model.dialects.apinizer.projects[pi]!;
  const project: ApinizerProject = { ...p, api_proxies: replaceAt(p.api_proxies, xi, proxy) };
  return withProject(model, pi, project);
}

function withProject(model: Model, pi: number, project: ApinizerProject): Model {
  return withDialect(model, "apinizer", { ...model.dialects.apinizer, projects: replaceAt(model.dialects.apinizer.projects, pi, project) });
}

// ---- deployment --------------------------------------------------------------------------

/**
 * Deploys the proxy's working copy to `names` (none given: every environment it is deployed to).
 * Unknown environments are reported, the others deployed.
 */
function deploy(model: Model, proxy: ApinizerProxy, names: string[], at: string): { proxy: ApinizerProxy; results: EnvResult[] } {
  const targets = names.length ? names : proxy.deployments.map((d) => d.environment);
  const known = new Set(model.dialects.apinizer.environments.map((e) => e.name));
  let deployments = proxy.deployments;
  const results: EnvResult[] = [];
  for (const env of targets) {
    if (!known.has(env)) {
      results.push({ environmentName: env, success: false, message: `Environment "${env}" not found (known: ${[...known].join(", ") || "none"})` });
      continue;
    }
    const dep: ApinizerDeployment = { environment: env, policies: proxy.policies, deployed_at: at };
    const i = deployments.findIndex((d) => d.environment === env);
    deployments = i < 0 ? [...deployments, dep] : replaceAt(deployments, i, dep);
    results.push({ environmentName: env, success: true, message: "Deployment successful" });
  }
  return { proxy: { ...proxy, deployments }, results };
}

// ---- environments ------------------------------------------------------------------------

function listEnvironments(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  return list(model.dialects.apinizer.environments.map((e) => envRes(ctx, model, e.name, e.description)));
}

async function createEnvironment(ctx: Ctx): Promise<Reply> {
  const name = checkName(ctx.params.environment!, "environmentName");
  const description = parseRequest(EnvironmentCreate, (await optionalObjectBody(ctx)) ?? {}).description ?? "";
  await ctx.write(`apinizer: create environment ${name}`, (model) => {
    if (model.dialects.apinizer.environments.some((e) => e.name === name)) throw new ApiError("conflict", `environment "${name}" already exists`);
    return { model: withDialect(model, "apinizer", { ...model.dialects.apinizer, environments: [...model.dialects.apinizer.environments, { name, description, created_at: now() }] }), result: null };
  });
  return ok({ result: envRes(ctx, ctx.plane.model, name, description) });
}

async function deleteEnvironment(ctx: Ctx): Promise<Reply> {
  const name = ctx.params.environment!;
  await ctx.write(`apinizer: delete environment ${name}`, (model) => {
    const i = model.dialects.apinizer.environments.findIndex((e) => e.name === name);
    if (i < 0) throw notFound("environment", name);
    const users = deployedTo(model, name);
    if (users.length) throw new ApiError("conflict", `environment "${name}" still has deployed API proxies (${users.slice(0, 5).join(", ")}); undeploy them first`);
    return { model: withDialect(model, "apinizer", { ...model.dialects.apinizer, environments: removeAt(model.dialects.apinizer.environments, i) }), result: null };
  });
  return ok();
}

// ---- issuer ACLs -------------------------------------------------------------------------

/** An ACL entry as given: an issuer DN, a CA certificate's SHA-256 fingerprint, or a CA certificate PEM. */
function parseIssuer(model: Model, raw: unknown, pointer: string): ApinizerIssuer {
  if (typeof raw !== "string" || !raw.trim()) throw badRequest(`${pointer} must be an issuer DN, a CA certificate SHA-256 fingerprint or a PEM CA certificate`, pointer);
  const s = raw.trim();
  if (s.startsWith("-----BEGIN CERTIFICATE-----")) return fromCa(certInfo(s, pointer).cert);
  const hex = s.replace(/:/g, "").toLowerCase();
  if (/^[0-9a-f]{64}$/.test(hex)) {
    for (const b of model.trust_bundles)
      for (const c of caBundle(b.ca, "trust_bundles")) if (c.fingerprint256.replace(/:/g, "").toLowerCase() === hex) return fromCa(c);
    throw badRequest(`${pointer}: no CA certificate with SHA-256 fingerprint ${hex} in any trust bundle; give the issuer DN or the CA certificate PEM instead`, pointer);
  }
  if (!s.includes("=")) throw badRequest(`${pointer}: "${s}" is neither a DN (CN=...,O=...) nor a SHA-256 fingerprint`, pointer);
  return { dn: normalizeDn(s) };
}

function fromCa(ca: X509Certificate): ApinizerIssuer {
  let ski = "";
  try {
    ski = (new PeculiarCert(ca.raw).getExtension(SubjectKeyIdentifierExtension)?.keyId ?? "").toUpperCase();
  } catch {
    ski = "";
  }
  return { dn: rfc2253(ca.subject), fingerprint_sha256: createHash("sha256").update(ca.raw).digest("hex"), ...(ski ? { ski } : {}) };
}

/** RFC 2253 as certgate prints issuers: most specific RDN first, no spaces around the separators; "/C=../CN=.." is turned around. */
export function normalizeDn(dn: string): string {
  if (dn.startsWith("/")) return dn.slice(1).split("/").reverse().map((r) => r.trim()).join(",");
  const parts: string[] = [];
  let cur = "";
  for (let i = 0; i < dn.length; i++) {
    const c = dn[i]!;
    if (c === "\\" && i + 1 < dn.length) {
      cur += c + dn[++i];
      continue;
    }
    if (c === "," || c === ";") {
      parts.push(cur);
      cur = "";
    } else cur += c;
  }
  parts.push(cur);
  return parts
    .map((p) => {
      const t = p.trim();
      const eq = t.indexOf("=");
      return eq < 0 ? t : t.slice(0, eq).trim() + "=" + t.slice(eq + 1).trim();
    })
    .filter(Boolean)
    .join(",");
}

/** The issuer ACL of PUT .../issuerAcl: `{issuerList}`, required ([] clears the ACL). */
async function aclBody(ctx: Ctx): Promise<string[]> {
  return parseRequest(AclPut, await objectBody(ctx)).issuerList ?? [];
}

/** ACL entries resolved against the model, each issuer once. */
function parseAcl(model: Model, list: readonly string[] | undefined, key: string): ApinizerIssuer[] {
  const out = (list ?? []).map((x, i) => parseIssuer(model, x, `${key}[${i}]`));
  const seen = new Set<string>();
  return out.filter((a) => {
    const k = a.fingerprint_sha256 ?? a.dn;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function getProxyAcl(ctx: Ctx): Reply {
  const { proxy } = findProxy(ctx.plane.model, ctx.params.project!, ctx.params.proxy!);
  return ok({ result: aclRes(proxy.issuer_acl) });
}

async function putProxyAcl(ctx: Ctx): Promise<Reply> {
  const b = await aclBody(ctx);
  const proxy = await ctx.write(`apinizer: set issuer ACL of ${ctx.params.project}/${ctx.params.proxy}`, (model) => {
    const { pi, xi, proxy } = findProxy(model, ctx.params.project!, ctx.params.proxy!);
    const next: ApinizerProxy = { ...proxy, issuer_acl: parseAcl(model, b, "issuerList"), updated_at: now() };
    return { model: withProxy(model, pi, xi, next), result: next };
  });
  return ok({ result: aclRes(proxy.issuer_acl) });
}

function getProjectAcl(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  return ok({ result: aclRes(model.dialects.apinizer.projects[findProject(model, ctx.params.project!)]!.issuer_acl) });
}

async function putProjectAcl(ctx: Ctx): Promise<Reply> {
  const b = await aclBody(ctx);
  const project = await ctx.write(`apinizer: set issuer ACL of project ${ctx.params.project}`, (model) => {
    const pi = findProject(model, ctx.params.project!);
    const next: ApinizerProject = { ...model.dialects.apinizer.projects[pi]!, issuer_acl: parseAcl(model, b, "issuerList"), updated_at: now() };
    return { model: withProject(model, pi, next), result: next };
  });
  return ok({ result: aclRes(project.issuer_acl) });
}

// ---- projects ----------------------------------------------------------------------------

function listProjects(ctx: Ctx): Reply {
  return list(ctx.plane.model.dialects.apinizer.projects.map(projectRes));
}

function getProject(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  return ok({ result: projectRes(model.dialects.apinizer.projects[findProject(model, ctx.params.project!)]!) });
}

function newProject(name: string, description: string, at: string): ApinizerProject {
  return { name, description, issuer_acl: [], api_proxies: [], created_at: at, updated_at: at };
}

async function createProject(ctx: Ctx): Promise<Reply> {
  const name = checkName(ctx.params.project!, "projectName");
  const b = parseRequest(ProjectCreate, (await optionalObjectBody(ctx)) ?? {});
  const description = b.description ?? "";
  const project = await ctx.write(`apinizer: create project ${name}`, (model) => {
    if (model.dialects.apinizer.projects.some((p) => p.name === name)) throw new ApiError("conflict", `project "${name}" already exists`);
    const project = { ...newProject(name, description, now()), issuer_acl: parseAcl(model, b.issuerList, "issuerList") };
    return { model: withDialect(model, "apinizer", { ...model.dialects.apinizer, projects: [...model.dialects.apinizer.projects, project] }), result: project };
  });
  return ok({ result: projectRes(project) });
}

async function deleteProject(ctx: Ctx): Promise<Reply> {
  const name = ctx.params.project!;
  await ctx.write(`apinizer: delete project ${name}`, (model) => {
    const pi = findProject(model, name);
    const p = model.dialects.apinizer.projects[pi]!;
    if (p.api_proxies.length) throw new ApiError("conflict", `project "${name}" still has API proxies (${p.api_proxies.map((x) => x.name).slice(0, 5).join(", ")}); delete them first`);
    return { model: withDialect(model, "apinizer", { ...model.dialects.apinizer, projects: removeAt(model.dialects.apinizer.projects, pi) }), result: null };
  });
  return ok();
}

// ---- API proxies -------------------------------------------------------------------------

function listProxies(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const p = model.dialects.apinizer.projects[findProject(model, ctx.params.project!)]!;
  return list(p.api_proxies.map((x) => proxyRes(model, x)));
}

function getProxy(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  return ok({ result: proxyRes(model, findProxy(model, ctx.params.project!, ctx.params.proxy!).proxy) });
}

function routeIdFor(project: string, proxy: string): string {
  const id = `apinizer.${project}.${proxy}`;
  return id.length <= 128 ? id : `apinizer.${createHash("sha256").update(`${project}/${proxy}`).digest("hex").slice(0, 40)}`;
}

async function createProxy(ctx: Ctx): Promise<Reply> {
  const projectName = checkName(ctx.params.project!, "projectName");
  const name = checkName(ctx.params.proxy!, "apiProxyName");
  const b = parseRequest(ProxyCreate, await objectBody(ctx));
  const { hostname, relativePath, backendUrls: urls, trustBundleId, clientCaCertificate: caPem, mtlsMode: mode, deploy: deployIt, deployTargetEnvironmentNameList: envs } = b;
  const out = await ctx.write(`apinizer: create API proxy ${projectName}/${name} (${hostname}${relativePath})`, (model) => {
    const at = now();
    let m = model;
    let pi = m.dialects.apinizer.projects.findIndex((p) => p.name === projectName);
    if (pi < 0) {
      m = withDialect(m, "apinizer", { ...m.dialects.apinizer, projects: [...m.dialects.apinizer.projects, newProject(projectName, "", at)] });
      pi = m.dialects.apinizer.projects.length - 1;
    }
    const project = m.dialects.apinizer.projects[pi]!;
    if (project.api_proxies.some((x) => x.name === name)) throw new ApiError("conflict", `API proxy "${projectName}/${name}" already exists`);
    const routeId = routeIdFor(projectName, name);
    if (m.routes.some((r) => r.id === routeId)) throw new ApiError("conflict", `route "${routeId}" already exists`);
    const clash = m.routes.find((r) => r.hostname === hostname && r.path_prefix === relativePath);
    if (clash) throw new ApiError("conflict", `${hostname}${relativePath} is already routed (route "${clash.id}")`, "relativePath");
    // The client CA: an existing trust bundle, or one made from the given PEM.
    let bundleId = trustBundleId;
    if (bundleId && !m.trust_bundles.some((t) => t.id === bundleId)) throw badRequest(`no trust bundle with id "${bundleId}"`, "trustBundleId");
    if (caPem) {
      bundleId = `${routeId}.clients`.slice(0, 128);
      if (m.trust_bundles.some((t) => t.id === bundleId)) throw new ApiError("conflict", `trust bundle "${bundleId}" already exists`);
      m = addBundle(m, { id: bundleId, name: `Apinizer ${projectName}/${name} client CA`, ca: caPem, enforced: mode === "enforced" }, at).model;
    }
    // The hostname verifies with the bundle (the one association operation: never moved off another bundle, 409 here).
    if (bundleId) {
      const claim = (n: string) => claimable(ctx.principal, m, n);
      m = { ...m, hosts: associate(m, { bundle: bundleId, names: [hostname], owner: zoneOwnerOf(m, hostname), mode, at, replace: false, claim, refuse: (msg) => new ApiError("conflict", msg, "trustBundleId") }) };
    }
    const route: Route = { id: routeId, hostname, path_prefix: relativePath, origin: urls[0]!, connect_timeout_ms: 5_000, read_timeout_ms: 30_000, created_at: at, updated_at: at };
    m = { ...m, routes: [...m.routes, route] };
    let proxy: ApinizerProxy = {
      name,
      description: b.description ?? "",
      hostname,
      relative_path: relativePath,
      backend_urls: urls,
      route_id: routeId,
      ...(bundleId ? { trust_bundle: bundleId } : {}),
      issuer_acl: parseAcl(m, b.issuerList, "issuerList"),
      policies: [],
      deployments: [],
      created_at: at,
      updated_at: at,
    };
    let results: EnvResult[] = [];
    if (deployIt && envs.length) ({ proxy, results } = deploy(m, proxy, envs, at));
    m = withProject(m, pi, { ...project, api_proxies: [...project.api_proxies, proxy], updated_at: at });
    return { model: m, result: { proxy, results } };
  });
  return ok({ result: proxyRes(ctx.plane.model, out.proxy), ...deploymentResult(out.results) });
}

async function deleteProxy(ctx: Ctx): Promise<Reply> {
  await ctx.write(`apinizer: delete API proxy ${ctx.params.project}/${ctx.params.proxy}`, (model) => {
    const { pi, xi, project, proxy } = findProxy(model, ctx.params.project!, ctx.params.proxy!);
    const m = { ...model, routes: model.routes.filter((r) => r.id !== proxy.route_id) };
    return { model: withProject(m, pi, { ...project, api_proxies: removeAt(project.api_proxies, xi), updated_at: now() }), result: null };
  });
  return ok({ ...deploymentResult([]) });
}

async function deployProxy(ctx: Ctx): Promise<Reply> {
  const env = ctx.params.environment!;
  const results = await ctx.write(`apinizer: deploy ${ctx.params.project}/${ctx.params.proxy} to ${env}`, (model) => {
    const { pi, xi, proxy } = findProxy(model, ctx.params.project!, ctx.params.proxy!);
    if (!model.dialects.apinizer.environments.some((e) => e.name === env)) throw notFound("environment", env);
    const d = deploy(model, proxy, [env], now());
    return { model: withProxy(model, pi, xi, d.proxy), result: d.results };
  });
  return ok(deploymentResult(results));
}

async function undeployProxy(ctx: Ctx): Promise<Reply> {
  const env = ctx.params.environment!;
  const results = await ctx.write(`apinizer: undeploy ${ctx.params.project}/${ctx.params.proxy} from ${env}`, (model) => {
    const { pi, xi, proxy } = findProxy(model, ctx.params.project!, ctx.params.proxy!);
    const i = proxy.deployments.findIndex((d) => d.environment === env);
    if (i < 0) throw notFound("deployment of this API proxy to environment", env);
    return { model: withProxy(model, pi, xi, { ...proxy, deployments: removeAt(proxy.deployments, i) }), result: [{ environmentName: env, success: true, message: "Undeployment successful" }] };
  });
  return ok(deploymentResult(results));
}

// ---- policies ----------------------------------------------------------------------------

interface PolicyInput {
  policy: Omit<ApinizerPolicy, "name" | "created_at" | "updated_at">;
  order: number | null;
  deploy: boolean;
  envs: string[];
}

/** The documented body: `operationMetadata` + `policy`, with the documented defaults. */
function parsePolicyBody(raw: Record<string, unknown>, name: string): PolicyInput {
  const { operationMetadata: om, policy: pol } = parseRequest(PolicyWrite, raw);
  if (pol.name !== undefined && pol.name !== null && pol.name !== name) throw badRequest(`policy.name "${String(pol.name)}" differs from the policy name in the path ("${name}")`, "policy.name");
  const endpoint = om.targetScope === "ENDPOINT" ? { target_endpoint: om.targetEndpoint!, target_method: om.targetEndpointHTTPMethod! } : {};
  return {
    policy: {
      type: POLICY_TYPE,
      description: pol.description ?? "",
      active: pol.active ?? true,
      validate_certificate: pol.validateCertificate ?? true,
      validate_acl_for_issuer: pol.validateACLForIssuer ?? true,
      pipeline: om.targetPipeline,
      scope: om.targetScope,
      ...endpoint,
    },
    order: om.order ?? null,
    deploy: om.deploy ?? true,
    envs: om.deployTargetEnvironmentNameList,
  };
}

/** Places `p` at 1-based `order` among the policies of its pipeline (null: last; past the end: last). */
function place(policies: readonly ApinizerPolicy[], p: ApinizerPolicy, order: number | null): ApinizerPolicy[] {
  const same = policies.filter((x) => x.pipeline === p.pipeline);
  const k = order === null ? same.length : Math.min(order - 1, same.length);
  if (k >= same.length) return [...policies, p];
  const before = same[k]!;
  const at = policies.indexOf(before);
  return [...policies.slice(0, at), p, ...policies.slice(at)];
}

function listPolicies(ctx: Ctx): Reply {
  const { proxy } = findProxy(ctx.plane.model, ctx.params.project!, ctx.params.proxy!);
  const of = (pipeline: string) => proxy.policies.filter((p) => p.pipeline === pipeline).map((p) => policyRes(proxy, p));
  return list([{ apiProxy: { name: proxy.name, requestPolicyList: of("REQUEST"), responsePolicyList: of("RESPONSE"), errorPolicyList: of("ERROR") } }]);
}

function getPolicy(ctx: Ctx): Reply {
  const { proxy } = findProxy(ctx.plane.model, ctx.params.project!, ctx.params.proxy!);
  const p = proxy.policies.find((x) => x.name === ctx.params.policy);
  if (!p) throw notFound("policy", ctx.params.policy!);
  return ok({ result: policyRes(proxy, p) });
}

async function writePolicy(ctx: Ctx, create: boolean): Promise<Reply> {
  const name = checkName(ctx.params.policy!, "policyName");
  const input = parsePolicyBody(await objectBody(ctx), name);
  const verb = create ? "add" : "update";
  const results = await ctx.write(`apinizer: ${verb} policy ${ctx.params.project}/${ctx.params.proxy}/${name}`, (model) => {
    const { pi, xi, proxy } = findProxy(model, ctx.params.project!, ctx.params.proxy!);
    const at = now();
    const i = proxy.policies.findIndex((p) => p.name === name);
    if (create && i >= 0) throw new ApiError("conflict", `policy "${name}" already exists on API proxy "${proxy.name}"; use PUT to update it`);
    if (!create && i < 0) throw notFound("policy", name);
    const prev = proxy.policies[i];
    const policy: ApinizerPolicy = { name, ...input.policy, created_at: prev?.created_at ?? at, updated_at: at };
    let policies = prev ? removeAt(proxy.policies, i) : proxy.policies;
    // Update without an order keeps the policy where it was (within its pipeline).
    const order = input.order ?? (prev && prev.pipeline === policy.pipeline ? orderIn(proxy.policies, prev) : null);
    policies = place(policies, policy, order);
    let next: ApinizerProxy = { ...proxy, policies, updated_at: at };
    let results: EnvResult[] = [];
    if (input.deploy) ({ proxy: next, results } = deploy(model, next, input.envs, at));
    return { model: withProxy(model, pi, xi, next), result: results };
  });
  return ok(deploymentResult(results));
}

async function deletePolicy(ctx: Ctx): Promise<Reply> {
  const name = ctx.params.policy!;
  const om = parseRequest(PolicyDelete, (await optionalObjectBody(ctx)) ?? {}).operationMetadata;
  const deployIt = om?.deploy ?? true;
  const envs = om?.deployTargetEnvironmentNameList ?? [];
  const results = await ctx.write(`apinizer: delete policy ${ctx.params.project}/${ctx.params.proxy}/${name}`, (model) => {
    const { pi, xi, proxy } = findProxy(model, ctx.params.project!, ctx.params.proxy!);
    const i = proxy.policies.findIndex((p) => p.name === name);
    if (i < 0) throw notFound("policy", name);
    let next: ApinizerProxy = { ...proxy, policies: removeAt(proxy.policies, i), updated_at: now() };
    let results: EnvResult[] = [];
    if (deployIt) ({ proxy: next, results } = deploy(model, next, envs, now()));
    return { model: withProxy(model, pi, xi, next), result: results };
  });
  return ok(deploymentResult(results));
}

const P = "/apiops/projects/:project/apiProxies/:proxy";

export const APINIZER_ROUTES: RouteDef[] = [
  { method: "GET", path: "/apiops/environments", handler: listEnvironments },
  { method: "POST", path: "/apiops/environments/:environment", handler: createEnvironment },
  { method: "DELETE", path: "/apiops/environments/:environment", handler: deleteEnvironment },
  { method: "GET", path: "/apiops/projects", handler: listProjects },
  { method: "GET", path: "/apiops/projects/:project", handler: getProject },
  { method: "POST", path: "/apiops/projects/:project", handler: createProject },
  { method: "DELETE", path: "/apiops/projects/:project", handler: deleteProject },
  { method: "GET", path: "/apiops/projects/:project/issuerAcl", handler: getProjectAcl },
  { method: "PUT", path: "/apiops/projects/:project/issuerAcl", handler: putProjectAcl },
  { method: "GET", path: "/apiops/projects/:project/apiProxies", handler: listProxies },
  { method: "GET", path: P, handler: getProxy },
  { method: "POST", path: P, handler: createProxy },
  { method: "DELETE", path: P, handler: deleteProxy },
  { method: "GET", path: `${P}/issuerAcl`, handler: getProxyAcl },
  { method: "PUT", path: `${P}/issuerAcl`, handler: putProxyAcl },
  { method: "POST", path: `${P}/environments/:environment`, handler: deployProxy },
  { method: "DELETE", path: `${P}/environments/:environment`, handler: undeployProxy },
  { method: "GET", path: `${P}/policies`, handler: listPolicies },
  { method: "GET", path: `${P}/policies/:policy`, handler: getPolicy },
  { method: "POST", path: `${P}/policies/:policy`, handler: (ctx) => writePolicy(ctx, true) },
  { method: "PUT", path: `${P}/policies/:policy`, handler: (ctx) => writePolicy(ctx, false) },
  { method: "DELETE", path: `${P}/policies/:policy`, handler: deletePolicy },
];

