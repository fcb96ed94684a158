// The Apinizer dialect's rendering: the {success, resultList, resultCount} and
// {success, deploymentResult} shapes and the environment, issuer ACL, project, API proxy and
// policy objects, as views of the model and of Apinizer's records (records.ts).
import type { Model } from "../../model/schema.ts";
import type { Ctx, Reply } from "../../control/http.ts";
import type { ApinizerIssuer, ApinizerPolicy, ApinizerProject, ApinizerProxy } from "./records.ts";

export const ok = (extra: Record<string, unknown> = {}, status = 200): Reply => ({ status, body: { success: true, ...extra } });
export const list = (items: unknown[]): Reply => ok({ resultList: items, resultCount: items.length });

export interface EnvResult {
  environmentName: string;
  success: boolean;
  message: string;
}

export function deploymentResult(results: EnvResult[]): Record<string, unknown> {
  return { deploymentResult: { success: results.every((r) => r.success), deploymentResults: results } };
}

/** The API proxies deployed to an environment, as project/proxy. */
export function deployedTo(model: Model, environment: string): string[] {
  return model.dialects.apinizer.projects.flatMap((p) => p.api_proxies.filter((x) => x.deployments.some((d) => d.environment === environment)).map((x) => `${p.name}/${x.name}`));
}

export function envRes(ctx: Ctx, model: Model, name: string, description: string): Record<string, unknown> {
  return { name, description, servedByThisNode: ctx.plane.runtime.environment === name, deployedApiProxyList: deployedTo(model, name) };
}

export function issuerList(acl: readonly ApinizerIssuer[]): string[] {
  return acl.map((a) => a.fingerprint_sha256 ?? a.dn);
}

export function aclRes(acl: readonly ApinizerIssuer[]): Record<string, unknown> {
  return { issuerList: issuerList(acl), issuers: acl.map((a) => ({ issuerDN: a.dn, ...(a.fingerprint_sha256 ? { fingerprintSha256: a.fingerprint_sha256 } : {}), ...(a.ski ? { ski: a.ski } : {}) })) };
}

export function projectRes(p: ApinizerProject): Record<string, unknown> {
  return { name: p.name, description: p.description, apiProxyList: p.api_proxies.map((x) => x.name), issuerList: issuerList(p.issuer_acl), createdAt: p.created_at ?? null, updatedAt: p.updated_at ?? null };
}

export function proxyRes(model: Model, p: ApinizerProxy): Record<string, unknown> {
  const host = model.hosts.find((h) => h.hostname === p.hostname);
  const route = model.routes.find((r) => r.id === p.route_id);
  return {
    name: p.name,
    description: p.description,
    hostname: p.hostname,
    relativePath: p.relative_path,
    backendUrlList: p.backend_urls,
    routeId: p.route_id,
    routePresent: route !== undefined,
    trustBundleId: p.trust_bundle ?? host?.mtls.trust_bundle ?? null,
    mtlsMode: host?.mtls.trust_bundle ? (host.mtls.mode ?? (model.trust_bundles.find((b) => b.id === host.mtls.trust_bundle)?.enforced ? "enforced" : "fail_open")) : "off",
    issuerList: issuerList(p.issuer_acl),
    policyCount: p.policies.length,
    deployments: p.deployments.map((d) => ({ environmentName: d.environment, deployedAt: d.deployed_at ?? null, policyCount: d.policies.length })),
    createdAt: p.created_at ?? null,
    updatedAt: p.updated_at ?? null,
  };
}

export function orderIn(policies: readonly ApinizerPolicy[], p: ApinizerPolicy): number {
  return policies.filter((x) => x.pipeline === p.pipeline).indexOf(p) + 1;
}

export function policyRes(proxy: ApinizerProxy, p: ApinizerPolicy): Record<string, unknown> {
  return {
    type: p.type,
    name: p.name,
    description: p.description,
    active: p.active,
    validateCertificate: p.validate_certificate,
    validateACLForIssuer: p.validate_acl_for_issuer,
    order: orderIn(proxy.policies, p),
    targetScope: p.scope,
    targetPipeline: p.pipeline,
    ...(p.scope === "ENDPOINT" ? { targetEndpoint: p.target_endpoint, targetEndpointHTTPMethod: p.target_method } : {}),
    /** Environments running exactly this version of the policy. */
    deployedEnvironmentNameList: proxy.deployments.filter((d) => d.policies.some((x) => samePolicy(x, p))).map((d) => d.environment),
  };
}

const samePolicy = (a: ApinizerPolicy, b: ApinizerPolicy): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);
