// The one configuration model. The bootstrap YAML, `/v1/config` and every vendor dialect
// read and write exactly this shape (snake_case, as it appears on the wire). Unknown fields
// are errors: a typo must never silently weaken a policy.
import { z } from "zod";

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

export const Certificate = z.strictObject({
  id,
  name: z.string().optional(),
  /** Leaf first, then intermediates. */
  cert: pem,
  key: pem,
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
});

export const OriginTls = z.strictObject({
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
});

export const RuleResponse = z.strictObject({
  status: z.number().int().min(400).max(599).default(403),
  content_type: z.string().default("text/plain; charset=utf-8"),
  body: z.string().max(65_536).default("Forbidden\n"),
});

export const Rule = z.strictObject({
  id,
  expression: z.string().min(1),
  action: z.enum(["block", "allow", "log"]),
  description: z.string().default(""),
  enabled: z.boolean().default(true),
  response: RuleResponse.optional(),
});

export const Zone = z.strictObject({
  id,
  /** A zone holds its name and every name below it. */
  name: hostname,
  rules: z.array(Rule).default([]),
});

export const Limits = z.strictObject({
  max_header_bytes: z.number().int().min(1024).max(1 << 20).default(16_384),
  max_body_bytes: z.number().int().min(0).default(10 << 20),
  handshake_timeout_ms: ms.default(10_000),
  request_timeout_ms: ms.default(60_000),
  keep_alive_timeout_ms: ms.default(5_000),
});

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
