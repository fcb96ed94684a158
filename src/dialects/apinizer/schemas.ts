// Request bodies of the Apinizer dialect (/apiops/...), as Apinizer's API Management API
// documents them (camelCase). Unknown fields are refused, naming the known ones.
import { z } from "zod";
import { optional, required } from "../../control/request.ts";

export const PIPELINES = ["REQUEST", "RESPONSE", "ERROR"] as const;
export const SCOPES = ["ALL", "ENDPOINT"] as const;
export const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"] as const;
export const POLICY_TYPE = "policy-auth-mtls";

const description = optional(z.string().max(1000));

/** Issuer ACL entries as given (issuer DNs, CA fingerprints or CA PEMs), resolved against the model by the handler. */
const IssuerList = optional(z.array(z.string().trim().min(1, { error: "must be an issuer DN, a CA certificate SHA-256 fingerprint or a PEM CA certificate" }), { error: "must be an array of issuer DNs or CA fingerprints" }));

const EnvironmentNames = optional(
  z
    .array(z.string().min(1), { error: "must be an array of environment names" })
    .transform((v) => [...new Set(v)]),
).transform((v) => v ?? []);

export const EnvironmentCreate = z.strictObject({ description });

export const ProjectCreate = z.strictObject({ description, issuerList: IssuerList });

export const AclPut = z.strictObject({
  issuerList: z.custom<unknown>((v) => v !== undefined, { error: "issuerList is required (an array; [] clears the ACL)" }).pipe(IssuerList),
});

/** One http(s) origin, scheme://host[:port]: certgate forwards the request path unchanged. */
function backendOrigin(u: unknown, i: number, ctx: z.RefinementCtx): string | undefined {
  const at = `backendUrlList[${i}]`;
  let url: URL;
  try {
    if (typeof u !== "string") throw new Error();
    url = new URL(u);
  } catch {
    ctx.addIssue({ code: "custom", path: ["backendUrlList", i], message: `${at} must be an http(s) URL` });
    return undefined;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") ctx.addIssue({ code: "custom", path: ["backendUrlList", i], message: `${at} must be an http or https URL` });
  else if (url.pathname !== "/" || url.search || url.hash)
    ctx.addIssue({ code: "custom", path: ["backendUrlList", i], message: `${at} must be scheme://host[:port] without a path: certgate forwards the request path unchanged (${url.pathname} would be ignored)` });
  else return url.origin;
  return undefined;
}

export const ProxyCreate = z
  .strictObject({
    description,
    hostname: optional(z.string().max(253)),
    relativePath: optional(z.string().max(1024)),
    backendUrl: z.unknown().optional(),
    backendUrlList: optional(z.array(z.unknown(), { error: "must be an array of URLs" })),
    trustBundleId: optional(z.string().max(128)),
    clientCaCertificate: optional(z.string().max(1 << 20)),
    mtlsMode: optional(z.enum(["fail_open", "enforced"])),
    issuerList: IssuerList,
    deploy: optional(z.boolean()),
    deployTargetEnvironmentNameList: EnvironmentNames,
  })
  .transform((b, ctx) => {
    const hostname = b.hostname?.toLowerCase();
    const relativePath = b.relativePath ?? "/";
    const issue = (path: string, message: string) => {
      ctx.addIssue({ code: "custom", path: [path], message });
      return z.NEVER;
    };
    if (!hostname) return issue("hostname", "hostname is required: the name clients reach the API proxy on");
    if (hostname.startsWith("*.")) return issue("hostname", "hostname must be an exact name (no wildcard)");
    if (!/^\/[^\s?#]*$/.test(relativePath)) return issue("relativePath", `relativePath must start with / and hold no spaces, ? or #, got ${JSON.stringify(relativePath)}`);
    const given = b.backendUrlList ?? (b.backendUrl !== undefined && b.backendUrl !== null ? [b.backendUrl] : undefined);
    if (!given) return issue("backendUrl", "backendUrl (or backendUrlList) is required: the backend the API proxy forwards to");
    if (given.length !== 1) return issue("backendUrlList", `backendUrlList must hold exactly one URL (certgate routes an API proxy to one backend), got ${given.length}`);
    const urls = given.map((u, i) => backendOrigin(u, i, ctx));
    if (urls.some((u) => u === undefined)) return z.NEVER;
    if (b.trustBundleId && b.clientCaCertificate) return issue("clientCaCertificate", "give trustBundleId or clientCaCertificate, not both");
    return { ...b, hostname, relativePath, backendUrls: urls as string[], mtlsMode: b.mtlsMode ?? "fail_open", deploy: b.deploy ?? true };
  });

const ORDER = "must be an integer starting from 1";

const OperationMetadataFields = {
  targetEndpoint: optional(z.string().max(1024)),
  targetEndpointHTTPMethod: optional(z.enum(METHODS)),
  deploy: optional(z.boolean()),
  deployTargetEnvironmentNameList: EnvironmentNames,
  order: optional(z.number({ error: ORDER }).int({ error: ORDER }).min(1, { error: ORDER })),
};

/** Where a policy goes, and whether (and where) to deploy the change. */
const OperationMetadata = z
  .strictObject({ targetScope: required(z.enum(SCOPES)), targetPipeline: required(z.enum(PIPELINES)), ...OperationMetadataFields }, { error: (iss) => (iss.code === "invalid_type" && iss.input === undefined ? "is required (an object with targetScope and targetPipeline)" : undefined) })
  .superRefine((om, ctx) => {
    const at = (field: string, message: string) => ctx.addIssue({ code: "custom", path: [field], message: `operationMetadata.${message}` });
    if (om.targetScope === "ENDPOINT") {
      if (!om.targetEndpoint) at("targetEndpoint", "targetEndpoint is required when targetScope is ENDPOINT");
      else if (!om.targetEndpoint.startsWith("/") || /[\s?#]/.test(om.targetEndpoint))
        at("targetEndpoint", `targetEndpoint must be a path starting with / (no spaces, ? or #), got ${JSON.stringify(om.targetEndpoint)}`);
      else if (!om.targetEndpointHTTPMethod) at("targetEndpointHTTPMethod", `targetEndpointHTTPMethod is required when targetScope is ENDPOINT (one of ${METHODS.join(", ")})`);
    } else if (om.targetEndpoint || om.targetEndpointHTTPMethod)
      at(om.targetEndpoint ? "targetEndpoint" : "targetEndpointHTTPMethod", "targetEndpoint and targetEndpointHTTPMethod are only valid with targetScope ENDPOINT");
  });

const Policy = z.strictObject(
  {
    type: z.unknown().superRefine((t, ctx) => {
      if (t === undefined || t === null) ctx.addIssue({ code: "custom", message: `policy.type is required ("${POLICY_TYPE}")` });
      else if (t !== POLICY_TYPE) ctx.addIssue({ code: "custom", message: `unknown policy type ${JSON.stringify(t)}: certgate supports "${POLICY_TYPE}"` });
    }),
    name: z.unknown().optional(),
    description,
    active: optional(z.boolean()),
    validateCertificate: optional(z.boolean()),
    validateACLForIssuer: optional(z.boolean()),
  },
  { error: (iss) => (iss.code === "invalid_type" && iss.input === undefined ? `is required (an object with type ${POLICY_TYPE})` : undefined) },
);

/** POST/PUT .../policies/:policy. */
export const PolicyWrite = z.strictObject({ operationMetadata: OperationMetadata, policy: Policy });
export type PolicyWrite = z.output<typeof PolicyWrite>;

/** DELETE .../policies/:policy: where to deploy the change (optional). */
export const PolicyDelete = z.strictObject({
  operationMetadata: optional(z.strictObject({ targetScope: optional(z.enum(SCOPES)), targetPipeline: optional(z.enum(PIPELINES)), ...OperationMetadataFields })),
});
