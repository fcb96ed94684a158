// The one configuration model. The bootstrap YAML, `/v1/config` and every vendor dialect
// read and write exactly this shape (snake_case, as it appears on the wire). Unknown fields
// are errors: a typo must never silently weaken a policy.
import { z } from "zod";
import type { RuleSpec } from "../rules/index.ts";
import { MAX_RESPONSE_BODY, MEDIA_TYPE } from "../rules/ruleset.ts";

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "ids are 1-128 of [A-Za-z0-9._-]");
const hostname = z
  .string()
  .transform((s) => s.toLowerCase())
  .pipe(
    z
      .string()
      .regex(
        /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
        "a DNS name, optionally starting with '*.'",
      ),
  );
const pem = z.string().min(1);
const ms = z.number().int().positive();

/** ISO 8601 timestamps kept for the vendor dialects (Fastly created_at/updated_at, Cloudflare created_at/modified_on). */
const stamp = z.string().optional();

export const Certificate = z.strictObject({
  id,
  name: z.string().optional(),
  /** Leaf first, then intermediates. */
  cert: pem,
  key: pem,
  /** Control plane: the Fastly private_key id this certificate's key was uploaded as, and its name. */
  private_key_id: id.optional(),
  private_key_name: z.string().optional(),
  created_at: stamp,
  updated_at: stamp,
});

export const TrustBundle = z.strictObject({
  id,
  name: z.string().optional(),
  /** One or more PEM CA certificates. */
  ca: pem,
  /** CA certificates allowed above the leaf in the verified chain, root included. */
  verify_depth: z.number().int().min(1).max(16).default(4),
  /** Fail closed (true) or open (false) on hosts that use this bundle without their own mode (Fastly's `enforced`). */
  enforced: z.boolean().default(true),
  revocation: z
    .strictObject({
      crl: z
        .strictObject({
          /** Uploaded CRLs (PEM), each verified against a CA of this bundle. */
          pem: z.string().optional(),
          /** CRLs fetched over HTTP, kept until nextUpdate and refreshed before it. */
          urls: z.array(z.url({ protocol: /^https?$/ })).default([]),
          /** Also fetch the CRLs named in client certificates' CRL distribution points. */
          fetch_distribution_points: z.boolean().default(false),
          /** When no usable CRL covers a certificate's issuer: ignore it, or treat it as revoked. */
          when_missing: z.enum(["ignore", "revoked"]).default("ignore"),
        })
        .optional(),
      ocsp: z
        .strictObject({
          mode: z.enum(["off", "soft_fail", "hard_fail"]).default("off"),
          /** Ask this responder instead of the one in the certificate's AIA. */
          responder_url: z.url({ protocol: /^https?$/ }).optional(),
          timeout_ms: z.number().int().min(50).max(30_000).default(3_000),
          nonce: z.boolean().default(false),
        })
        .optional(),
    })
    .optional(),
  /** This bundle is certgate's managed CA: certificates revoked through the client-certificates API are refused. */
  managed_ca: z.boolean().optional(),
  /** The Cloudflare account owning this bundle (an Access certificate); absent = the operator's (src/control/ownership.ts). */
  account_id: id.optional(),
  created_at: stamp,
  updated_at: stamp,
});

export const MtlsMode = z.enum(["off", "fail_open", "enforced"]);

export const Forwarding = z.strictObject({
  /** RFC 9440 Client-Cert and Client-Cert-Chain. */
  rfc9440: z.boolean().default(false),
  /** Cloudflare's Cf-Client-Cert-Der-Base64 and Cf-Client-Cert-Sha256. */
  cloudflare: z.boolean().default(false),
  /** Envoy's X-Forwarded-Client-Cert (Hash, Cert, Subject, URI, DNS). */
  xfcc: z.boolean().default(false),
});

export const Host = z.strictObject({
  /** Exact name or `*.parent` (one label). */
  hostname,
  /** Serve this certificate for the host instead of choosing one by SAN. */
  certificate: id.optional(),
  /** No trust_bundle: mTLS off. A mode left out follows the bundle's `enforced`. */
  mtls: z
    .strictObject({ mode: MtlsMode.optional(), trust_bundle: id.optional() })
    .refine((m) => m.mode === undefined || m.mode === "off" || m.trust_bundle, { message: "trust_bundle is required unless mode is off", path: ["trust_bundle"] })
    .default({}),
  forward_client_cert: Forwarding.default({ rfc9440: false, cloudflare: false, xfcc: false }),
  /** Control plane: the Fastly tls_activation id of this host entry (derived from the hostname when absent). */
  id: id.optional(),
  /** Control plane: the Fastly tls_configuration this activation uses (the default one when absent). */
  tls_configuration: id.optional(),
  /** Cloudflare's per-hostname `china_network`: stored and returned, no effect off Cloudflare's network. */
  china_network: z.boolean().optional(),
  /** The Cloudflare account owning this hostname; absent = the operator's (src/control/ownership.ts). */
  account_id: id.optional(),
  created_at: stamp,
  updated_at: stamp,
});

const OriginTls = z.strictObject({
  /** PEM CAs to verify the origin; the system store when absent. */
  ca: pem.optional(),
  /** Id of a certificate (with key) to present to the origin. */
  client_certificate: id.optional(),
  server_name: z.string().optional(),
  verify: z.boolean().default(true),
});

export const Route = z.strictObject({
  id,
  hostname,
  path_prefix: z.string().startsWith("/").default("/"),
  origin: z.url({ protocol: /^https?$/ }),
  origin_tls: OriginTls.optional(),
  connect_timeout_ms: ms.default(5_000),
  read_timeout_ms: ms.default(30_000),
  /** Upgrade protocols passed to the origin (RFC 9110 tokens, compared case-insensitively); absent = `[websocket]`. Others are stripped and the request goes on as a plain one. */
  upgrades: z
    .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\/[!#$%&'*+.^_`|~0-9A-Za-z-]+)?$/, "an Upgrade protocol token, e.g. websocket"))
    .transform((l) => l.map((p) => p.toLowerCase()))
    .optional(),
  created_at: stamp,
  updated_at: stamp,
});

// The rules engine's own limits, checked here too so a refusal names the field at fault
// (a CRLF in content_type is reported at response.content_type, not at the rule's expression).
const RuleResponse = z.strictObject({
  status: z.number().int().min(400).max(499).default(403),
  content_type: z.string().max(256).regex(MEDIA_TYPE, 'must be a media type such as "application/json" or "text/html; charset=utf-8"').default("text/plain; charset=utf-8"),
  body: z
    .string()
    .refine((b) => Buffer.byteLength(b) <= MAX_RESPONSE_BODY, `at most ${MAX_RESPONSE_BODY} bytes`)
    .default("Forbidden\n"),
});

export const Rule = z.strictObject({
  id,
  expression: z.string().min(1),
  action: z.enum(["block", "allow", "log"]),
  description: z.string().default(""),
  enabled: z.boolean().default(true),
  response: RuleResponse.optional(),
  /** Control plane: Cloudflare rule bookkeeping (version counter, ref, last change). */
  version: z.string().optional(),
  ref: z.string().max(128).optional(),
  last_updated: stamp,
});

/** Control plane: Cloudflare's phase entrypoint ruleset holding a zone's custom rules. */
const RulesetMeta = z.strictObject({
  id,
  name: z.string().default("default"),
  description: z.string().default(""),
  version: z.string().default("1"),
  last_updated: stamp,
});

export const Zone = z.strictObject({
  id,
  /** A zone holds its name and every name below it. */
  name: hostname,
  rules: z.array(Rule).default([]),
  /** The Cloudflare account owning the zone, its rules and its hostnames; absent = the operator's. */
  account_id: id.optional(),
  ruleset: RulesetMeta.optional(),
  created_at: stamp,
  updated_at: stamp,
});

/** Control plane: Fastly TLS configurations (a default one exists even when this list is empty). */
export const TlsConfiguration = z.strictObject({
  id,
  name: z.string().default(""),
  default: z.boolean().default(false),
  created_at: stamp,
  updated_at: stamp,
});

/** Control plane: a Fastly private key uploaded before the certificate it belongs to; the data plane ignores it. */
export const PendingPrivateKey = z.strictObject({
  id,
  name: z.string().default(""),
  key: pem,
  created_at: stamp,
});

/** How request paths are normalised before rules, routes and the origin see them (README "Paths"). */
const UrlNormalization = z.strictObject({
  /** Successive slashes become one, as Cloudflare's URL normalisation does. */
  merge_slashes: z.boolean().default(true),
});

const Limits = z.strictObject({
  max_header_bytes: z.number().int().min(1024).max(1 << 20).default(16_384),
  /** Header lines in a request head; 431 above. */
  max_header_count: z.number().int().min(1).max(10_000).default(100),
  max_body_bytes: z.number().int().min(0).default(10 << 20),
  handshake_timeout_ms: ms.default(10_000),
  request_timeout_ms: ms.default(60_000),
  keep_alive_timeout_ms: ms.default(5_000),
});

/** A client certificate issued by certgate's managed CA (Cloudflare's client_certificates). */
export const ManagedClientCertificate = z.strictObject({
  id,
  zone_id: id,
  certificate: pem,
  csr: z.string(),
  /** Upper-case hex, no leading zeros. */
  serial: z.string().regex(/^[0-9A-F]+$/),
  common_name: z.string().default(""),
  country: z.string().default(""),
  state: z.string().default(""),
  location: z.string().default(""),
  organization: z.string().default(""),
  organizational_unit: z.string().default(""),
  /** pending_revocation is already refused; it becomes revoked (final) after a grace period. */
  status: z.enum(["active", "pending_revocation", "revoked"]),
  validity_days: z.number().int().min(1).max(3650),
  issued_on: z.string(),
  expires_on: z.string(),
  fingerprint_sha256: z.string(),
  ski: z.string(),
  revoked_at: z.string().optional(),
});

// ---- Apinizer dialect (control plane; see docs/apinizer.md) -------------------------------
// Projects, API proxies, issuer ACLs, environments and `policy-auth-mtls` policies. The data
// plane never reads these directly: each node compiles the policies deployed to ITS environment
// into block rules (src/dialects/apinizer/rules.ts) when it builds a snapshot.
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
// ---- end Apinizer ---------------------------------------------------------------------------

export const Model = z.strictObject({
  certificates: z.array(Certificate).default([]),
  trust_bundles: z.array(TrustBundle).default([]),
  hosts: z.array(Host).default([]),
  routes: z.array(Route).default([]),
  zones: z.array(Zone).default([]),
  /** Rules applied to every hostname, before its zone's rules. */
  rules: z.array(Rule).default([]),
  /** Certificate served when SNI is missing or matches no certificate; null refuses the handshake. */
  default_certificate: id.nullable().default(null),
  /** Overwrite (false) or append to (true) an incoming X-Forwarded-For. */
  trust_forwarded_for: z.boolean().default(false),
  limits: Limits.default(Limits.parse({})),
  url_normalization: UrlNormalization.default(UrlNormalization.parse({})),
  /** Control plane only (see docs/admin-api.md): Fastly TLS configurations and keys awaiting their certificate. */
  tls_configurations: z.array(TlsConfiguration).default([]),
  pending_private_keys: z.array(PendingPrivateKey).default([]),
  /** Control plane: the Apinizer dialect's projects, API proxies, policies and environments (docs/apinizer.md). */
  apinizer: Apinizer.default(Apinizer.parse({})),
  /** Certificates issued by the managed CA; bundles with `managed_ca: true` refuse the revoked ones. */
  managed_client_certificates: z.array(ManagedClientCertificate).default([]),
});

export type Model = z.infer<typeof Model>;
export type ModelInput = z.input<typeof Model>;
export type Certificate = z.infer<typeof Certificate>;
export type TrustBundle = z.infer<typeof TrustBundle>;
export type Host = z.infer<typeof Host>;
export type Route = z.infer<typeof Route>;
export type Rule = z.infer<typeof Rule>;
export type Zone = z.infer<typeof Zone>;
export type MtlsMode = z.infer<typeof MtlsMode>;
export type Forwarding = z.infer<typeof Forwarding>;
export type TlsConfiguration = z.infer<typeof TlsConfiguration>;
export type PendingPrivateKey = z.infer<typeof PendingPrivateKey>;
export type ManagedClientCertificate = z.infer<typeof ManagedClientCertificate>;

/** When a managed certificate was revoked, or null while active: pending_revocation is already refused, so the CRL, OCSP and the data plane all treat it as revoked. */
export function managedRevokedAt(c: ManagedClientCertificate): Date | null {
  return c.status === "active" ? null : new Date(c.revoked_at ?? c.issued_on);
}
export type Apinizer = z.infer<typeof Apinizer>;
export type ApinizerProject = z.infer<typeof ApinizerProject>;
export type ApinizerProxy = z.infer<typeof ApinizerProxy>;
export type ApinizerPolicy = z.infer<typeof ApinizerPolicy>;
export type ApinizerIssuer = z.infer<typeof ApinizerIssuer>;
export type ApinizerDeployment = z.infer<typeof ApinizerDeployment>;

/** A stored rule as the rules engine compiles it. */
export function toRuleSpec(r: Rule): RuleSpec {
  return {
    id: r.id,
    expression: r.expression,
    action: r.action,
    description: r.description,
    enabled: r.enabled,
    response: r.response && { status: r.response.status, contentType: r.response.content_type, body: r.response.body },
  };
}

/** A validation failure naming where in the model it is and why. */
export class ModelError extends Error {
  readonly issues: { path: string; message: string }[];
  constructor(issues: { path: string; message: string }[]) {
    super(issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("\n"));
    this.name = "ModelError";
    this.issues = issues;
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}

/** Parses raw input into the model, or throws ModelError with every problem found. */
export function parseModel(input: unknown): Model {
  const r = Model.safeParse(input);
  if (!r.success) throw new ModelError(r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
  return r.data;
}
