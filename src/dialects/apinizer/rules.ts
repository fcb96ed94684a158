// Apinizer `policy-auth-mtls` → rules. A pure function of the model and the node's environment:
// every active policy deployed to that environment becomes block rules (401, JSON body) at the
// front of the global rules, scoped to the API proxy's hostname and relative path (and, for
// ENDPOINT scope, the endpoint path and method). Nothing derived is stored: each node compiles
// the policies of ITS environment when it builds a snapshot (Snapshot, with Runtime's `environment`).
//
// One policy gives, in this order (the first that matches answers):
//   <id>:no-cert  scope and not cert_presented                         (either check on)
//   <id>:cert     scope and cert_presented and not cert_verified       (validateCertificate)
//   <id>:revoked  scope and cert_revoked                               (validateCertificate)
//   <id>:issuer   scope and cert_presented and not <issuer in ACL>     (validateACLForIssuer)
// with <id> = apinizer:<project>:<proxy>:<policy>.
import { compileRuleset } from "../../rules/index.ts";
import { toRuleSpec } from "../../model/derived.ts";
import type { Model, Rule } from "../../model/schema.ts";
import type { ApinizerIssuer, ApinizerPolicy, ApinizerProject, ApinizerProxy } from "./records.ts";

const RULE_PREFIX = "apinizer:";
/** The environment a node serves unless `certgate serve --environment` says otherwise. */
export const DEFAULT_ENVIRONMENT = "production";
const F = "cf.tls_client_auth.";
const PATH = "http.request.uri.path";

/** A string literal of the rules language. */
export function lit(s: string): string {
  // eslint-disable-next-line no-control-regex
  return '"' + s.replace(/[\\"]/g, (c) => "\\" + c).replace(/[\x00-\x1f\x7f]/g, (c) => "\\x" + c.charCodeAt(0).toString(16).padStart(2, "0")) + '"';
}

/** The request path an ENDPOINT-scoped policy covers: proxy relative path + endpoint. */
export function endpointPath(relativePath: string, endpoint: string): string {
  const base = relativePath.replace(/\/+$/, "");
  return (base + (endpoint.startsWith("/") ? endpoint : "/" + endpoint)) || "/";
}

const RE_META = /[\\^$.|?*+()[\]{}]/g;

/** `eq` for a literal path, `matches` for a template whose `{param}` segments match one segment. */
function pathCondition(full: string): string {
  if (!/\{[^/{}]+\}/.test(full)) return `${PATH} eq ${lit(full)}`;
  const re = "^" + full.split(/(\{[^/{}]+\})/).map((part, i) => (i % 2 ? "[^/]+" : part.replace(RE_META, "\\$&"))).join("") + "$";
  return `${PATH} matches ${lit(re)}`;
}

/** The requests an API proxy serves: its hostname, under its relative path, minus longer routes of the same host. */
function proxyScope(model: Model, proxy: ApinizerProxy): string {
  const parts = [`http.host eq ${lit(proxy.hostname)}`];
  const prefix = proxy.relative_path;
  if (prefix !== "/") parts.push(`starts_with(${PATH}, ${lit(prefix)})`);
  for (const r of model.routes) {
    if (r.hostname !== proxy.hostname || r.id === proxy.route_id) continue;
    if (r.path_prefix.length > prefix.length && r.path_prefix.startsWith(prefix)) parts.push(`not starts_with(${PATH}, ${lit(r.path_prefix)})`);
  }
  return parts.join(" and ");
}

/** The issuer ACL as a condition (null: empty ACL, nothing is allowed). */
export function aclCondition(acl: readonly ApinizerIssuer[]): string | null {
  const plain = [...new Set(acl.filter((a) => !a.fingerprint_sha256).map((a) => a.dn))];
  const terms: string[] = [];
  if (plain.length === 1) terms.push(`${F}cert_issuer_dn eq ${lit(plain[0]!)}`);
  else if (plain.length) terms.push(`${F}cert_issuer_dn in {${plain.map(lit).join(" ")}}`);
  for (const a of acl) {
    if (!a.fingerprint_sha256) continue;
    // The CA given by fingerprint: its subject DN, and its key id when the leaf names one (AKI).
    terms.push(
      a.ski
        ? `(${F}cert_issuer_dn eq ${lit(a.dn)} and (${F}cert_issuer_ski eq ${lit(a.ski)} or ${F}cert_issuer_ski eq ""))`
        : `${F}cert_issuer_dn eq ${lit(a.dn)}`,
    );
  }
  return terms.length ? terms.join(" or ") : null;
}

function unauthorizedBody(message: string): string {
  return JSON.stringify({ error: "unauthorized", message: `mTLS authentication failed: ${message}` }) + "\n";
}

function block(id: string, expression: string, description: string, message: string): Rule {
  return { id, expression, action: "block", description, enabled: true, response: { status: 401, content_type: "application/json", body: unauthorizedBody(message) } };
}

/** Does the policy become rules (active, in a pipeline certgate runs, with a check on)? */
export function enforces(policy: ApinizerPolicy): boolean {
  return policy.active && policy.pipeline !== "ERROR" && (policy.validate_certificate || policy.validate_acl_for_issuer);
}

function policyRules(model: Model, project: ApinizerProject, proxy: ApinizerProxy, policy: ApinizerPolicy, environment: string): Rule[] {
  if (!enforces(policy)) return [];
  let scope = proxyScope(model, proxy);
  if (policy.scope === "ENDPOINT") scope += ` and ${pathCondition(endpointPath(proxy.relative_path, policy.target_endpoint!))} and http.request.method eq ${lit(policy.target_method!)}`;
  const id = `${RULE_PREFIX}${project.name}:${proxy.name}:${policy.name}`;
  const what = `Apinizer ${project.name}/${proxy.name} policy ${policy.name} (${environment})`;
  const rules = [block(`${id}:no-cert`, `${scope} and not ${F}cert_presented`, `${what}: no client certificate`, "a client certificate is required")];
  if (policy.validate_certificate) {
    rules.push(
      block(`${id}:cert`, `${scope} and ${F}cert_presented and not ${F}cert_verified`, `${what}: certificate not verified`, "the client certificate could not be verified (untrusted issuer, bad signature, expired or not yet valid)"),
      block(`${id}:revoked`, `${scope} and ${F}cert_revoked`, `${what}: certificate revoked`, "the client certificate is revoked"),
    );
  }
  if (policy.validate_acl_for_issuer) {
    const acl = aclCondition([...proxy.issuer_acl, ...project.issuer_acl]);
    rules.push(
      block(
        `${id}:issuer`,
        acl ? `${scope} and ${F}cert_presented and not (${acl})` : `${scope} and ${F}cert_presented`,
        `${what}: issuer not in the ACL`,
        acl ? "the client certificate's issuer is not allowed" : "the client certificate's issuer is not allowed (the issuer ACL is empty)",
      ),
    );
  }
  return rules;
}

/** The rules of every active policy deployed to `environment`, in project, proxy and policy order (REQUEST before RESPONSE). */
export function apinizerRules(model: Model, environment: string): Rule[] {
  const out: Rule[] = [];
  for (const project of model.dialects.apinizer.projects)
    for (const proxy of project.api_proxies) {
      const dep = proxy.deployments.find((d) => d.environment === environment);
      if (!dep) continue;
      for (const pipeline of ["REQUEST", "RESPONSE"] as const)
        for (const policy of dep.policies) if (policy.pipeline === pipeline) out.push(...policyRules(model, project, proxy, policy, environment));
    }
  return out;
}

/**
 * Compiles the rules the nodes of every environment (listed, or deployed to) would derive. One
 * problem per environment that does not compile, at the deployment holding the failing rule's policy.
 */
export function checkApinizerRules(model: Model): { path: string; message: string }[] {
  const envs = new Set(model.dialects.apinizer.environments.map((e) => e.name));
  for (const p of model.dialects.apinizer.projects) for (const x of p.api_proxies) for (const d of x.deployments) envs.add(d.environment);
  const problems: { path: string; message: string }[] = [];
  for (const env of envs) {
    try {
      compileRuleset(apinizerRules(model, env).map(toRuleSpec));
    } catch (e) {
      const ruleId = (e as { ruleId?: unknown }).ruleId;
      problems.push({
        path: typeof ruleId === "string" ? deploymentPath(model, ruleId, env) : "dialects.apinizer",
        message: `the policies deployed to environment ${env} would not compile: ${(e as Error).message}`,
      });
    }
  }
  return problems;
}

/** The model path of the deployment a derived rule comes from (names hold no ':'). */
function deploymentPath(model: Model, ruleId: string, environment: string): string {
  const [, project, proxy] = ruleId.split(":");
  const pi = model.dialects.apinizer.projects.findIndex((p) => p.name === project);
  const xi = pi < 0 ? -1 : model.dialects.apinizer.projects[pi]!.api_proxies.findIndex((x) => x.name === proxy);
  if (xi < 0) return "dialects.apinizer";
  const di = model.dialects.apinizer.projects[pi]!.api_proxies[xi]!.deployments.findIndex((d) => d.environment === environment);
  return `dialects.apinizer.projects[${pi}].api_proxies[${xi}]` + (di < 0 ? "" : `.deployments[${di}]`);
}
