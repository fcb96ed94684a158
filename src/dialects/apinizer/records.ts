// What the Apinizer dialect keeps beside the core model (model.dialects.apinizer): projects, API
// proxies, issuer ACLs, environments and `policy-auth-mtls` policies (docs/apinizer.md). The
// data plane never reads these directly: each node compiles the policies deployed to ITS
// environment into block rules (rules.ts), which the snapshot receives through an injected function.
import { z } from "zod";
import { hostname, id, stamp } from "../../model/primitives.ts";

const apinizerName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "names are 1-64 of [A-Za-z0-9._-], starting with a letter or digit");

export const ApinizerPolicy = z
  .strictObject({
    name: apinizerName,
    type: z.literal("policy-auth-mtls"),
    description: z.string().max(1000).default(""),
    active: z.boolean().default(true),
    validate_certificate: z.boolean().default(true),
    validate_acl_for_issuer: z.boolean().default(true),
    pipeline: z.enum(["REQUEST", "RESPONSE", "ERROR"]),
    scope: z.enum(["ALL", "ENDPOINT"]),
    /** Relative to the API proxy's relative path; `{param}` segments match one path segment. */
    target_endpoint: z.string().startsWith("/").max(1024).optional(),
    target_method: z.enum(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]).optional(),
    created_at: stamp,
    updated_at: stamp,
  })
  .refine((p) => p.scope === "ALL" || (p.target_endpoint && p.target_method), { message: "ENDPOINT scope needs target_endpoint and target_method", path: ["target_endpoint"] });

/** An allowed issuer: its RFC 2253 DN; for a CA given by fingerprint, also that CA's fingerprint and SKI. */
export const ApinizerIssuer = z.strictObject({
  dn: z.string().min(1).max(1024),
  fingerprint_sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  ski: z.string().regex(/^[0-9A-F]*$/).optional(),
});

/** What an environment runs: a copy of the proxy's policies taken when it was deployed there. */
export const ApinizerDeployment = z.strictObject({
  environment: apinizerName,
  policies: z.array(ApinizerPolicy).default([]),
  deployed_at: stamp,
});

export const ApinizerProxy = z.strictObject({
  name: apinizerName,
  description: z.string().max(1000).default(""),
  /** Exact hostname the proxy answers on. */
  hostname,
  relative_path: z.string().regex(/^\/[^\s?#]*$/, "a path starting with /").default("/"),
  backend_urls: z.array(z.url({ protocol: /^https?$/ })).min(1),
  /** The routes[] entry this proxy owns. */
  route_id: id,
  /** The trust bundle the proxy's hostname verifies client certificates with (hosts[].mtls). */
  trust_bundle: id.optional(),
  issuer_acl: z.array(ApinizerIssuer).default([]),
  /** The working copy, in execution order (per pipeline). */
  policies: z.array(ApinizerPolicy).default([]),
  deployments: z.array(ApinizerDeployment).default([]),
  created_at: stamp,
  updated_at: stamp,
});

export const ApinizerProject = z.strictObject({
  name: apinizerName,
  description: z.string().max(1000).default(""),
  /** Issuers allowed for every API proxy of the project (added to each proxy's own ACL). */
  issuer_acl: z.array(ApinizerIssuer).default([]),
  api_proxies: z.array(ApinizerProxy).default([]),
  created_at: stamp,
  updated_at: stamp,
});

const ApinizerEnvironment = z.strictObject({ name: apinizerName, description: z.string().max(1000).default(""), created_at: stamp });

export const Apinizer = z.strictObject({
  environments: z.array(ApinizerEnvironment).default([{ name: "production", description: "" }]),
  projects: z.array(ApinizerProject).default([]),
});

export type ApinizerRecords = z.infer<typeof Apinizer>;
export type ApinizerProject = z.infer<typeof ApinizerProject>;
export type ApinizerProxy = z.infer<typeof ApinizerProxy>;
export type ApinizerPolicy = z.infer<typeof ApinizerPolicy>;
export type ApinizerIssuer = z.infer<typeof ApinizerIssuer>;
export type ApinizerDeployment = z.infer<typeof ApinizerDeployment>;
