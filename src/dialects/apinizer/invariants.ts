// The Apinizer dialect's invariants: the policies deployed to every environment compile
// (rules.ts), and a policy that checks certificates is never deployed on a hostname that does
// not ask for one (it would refuse every request of its API proxy).
import type { Model } from "../../model/schema.ts";
import { checkApinizerRules, enforces } from "./rules.ts";

type Problem = { path: string; message: string };

/** With `prev`, checks whose inputs are unchanged are skipped. */
export function apinizerProblems(model: Model, prev?: Model): Problem[] {
  const apinizer = model.dialects.apinizer;
  if (!apinizer.projects.length) return [];
  const changed = prev?.dialects.apinizer !== apinizer;
  return [...(changed || prev?.hosts !== model.hosts ? clientCaProblems(model) : []), ...(changed || prev?.routes !== model.routes ? checkApinizerRules(model) : [])];
}

function clientCaProblems(model: Model): Problem[] {
  const problems: Problem[] = [];
  const hosts = new Map(model.hosts.map((h) => [h.hostname, h]));
  model.dialects.apinizer.projects.forEach((project, pi) =>
    project.api_proxies.forEach((proxy, xi) => {
      const host = hosts.get(proxy.hostname);
      if (host?.mtls.trust_bundle && host.mtls.mode !== "off") return;
      proxy.deployments.forEach((d, di) => {
        const policy = d.policies.find(enforces);
        if (!policy) return;
        problems.push({
          path: `dialects.apinizer.projects[${pi}].api_proxies[${xi}].deployments[${di}]`,
          message:
            `API proxy "${project.name}/${proxy.name}" has no client CA: its hostname ${proxy.hostname} does not request client certificates, ` +
            `so policy "${policy.name}" deployed to ${d.environment} would refuse every request; give the hostname a trust bundle ` +
            `(create the API proxy with trustBundleId or clientCaCertificate), or deactivate or undeploy the policy`,
        });
      });
    }),
  );
  return problems;
}
