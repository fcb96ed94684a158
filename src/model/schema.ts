// The one configuration model. The bootstrap YAML, `/v1/config` and every vendor dialect
// read and write exactly this shape (snake_case, as it appears on the wire). Unknown fields
// are errors: a typo must never silently weaken a policy. The core objects hold what every
// dialect and the data plane need; a dialect's own presentation lives in `dialects.<name>`.
import { z } from "zod";
import { MAX_RESPONSE_BODY, MEDIA_TYPE } from "../rules/ruleset.ts";

import { filePath, hostname, id, ms, pem, stamp } from "./primitives.ts";
import { Dialects, pruneDialects } from "../dialects/records.ts";
import { upgradeLegacy } from "./upgrade.ts";
import { ModelError, formatPath } from "./error.ts";

// File-backed contents (`*_file`): the store keeps the path; the control plane reads the file on
// every node (src/control/filesource.ts) and hands the data plane a model with the contents filled
// in beside the path. Hence "the content, its file, or both" below, never neither.
const fromFile = (content: string, file: string) => (o: Record<string, unknown>) => o[content] !== undefined || o[file] !== undefined;
const either = (content: string, file: string) => ({ message: `give ${content} or ${file}`, path: [content] });

export const Certificate = z
  .strictObject({
    id,
    name: z.string().optional(),
    /** Leaf first, then intermediates. */
    cert: pem.optional(),
    key: pem.optional(),
    /** The PEM chain is read from this file, and again whenever it changes. */
    cert_file: filePath.optional(),
    key_file: filePath.optional(),
    created_at: stamp,
    updated_at: stamp,
  })
  .refine(fromFile("cert", "cert_file"), either("cert", "cert_file"))
  .refine(fromFile("key", "key_file"), either("key", "key_file"));

export const TrustBundle = z
  .strictObject({
    id,
    name: z.string().optional(),
    /** One or more PEM CA certificates. */
    ca: pem.optional(),
    /** The CA certificates are read from this file, and again whenever it changes. */
    ca_file: filePath.optional(),
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
            /** The uploaded CRLs are read from this file, and again whenever it changes. */
            crl_file: filePath.optional(),
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
  })
  .refine(fromFile("ca", "ca_file"), either("ca", "ca_file"));

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
  /** Offer HTTP/2 (ALPN `h2`) besides HTTP/1.1; absent = true. Optional, so stored models need no migration. */
  http2: z.boolean().optional(),
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
  /** How certgate speaks to the origin: HTTP/1.1 (absent), HTTP/2 over TLS with ALPN (`h2`, needs https), or cleartext HTTP/2 with prior knowledge (`h2c`, needs http). gRPC needs h2 or h2c. */
  origin_protocol: z.enum(["http1", "h2", "h2c"]).optional(),
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
});

export const Zone = z.strictObject({
  id,
  /** A zone holds its name and every name below it. */
  name: hostname,
  rules: z.array(Rule).default([]),
  /** The Cloudflare account owning the zone, its rules and its hostnames; absent = the operator's. */
  account_id: id.optional(),
  created_at: stamp,
  updated_at: stamp,
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
  /** Certificates issued by the managed CA; bundles with `managed_ca: true` refuse the revoked ones. */
  managed_client_certificates: z.array(ManagedClientCertificate).default([]),
  /**
   * What each vendor dialect keeps beside the core objects, keyed by their ids (Fastly key ids and
   * TLS configurations, Cloudflare china_network and ruleset bookkeeping, Apinizer projects and
   * environments): src/dialects/<name>/records.ts. The data plane reads none of it.
   */
  dialects: Dialects.default(Dialects.parse({})),
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
export type ManagedClientCertificate = z.infer<typeof ManagedClientCertificate>;

// Read at run time by the data plane, which must not load zod in every worker process.
export { managedRevokedAt, toRuleSpec } from "./derived.ts";
export { ModelError, formatPath };

/**
 * Parses raw input into the model, or throws ModelError with every problem found. Input in the
 * layout before per-dialect records (vendor fields on hosts, certificates, zones and rules; Fastly
 * and Apinizer lists at the top) is read as it always was: upgradeLegacy moves those fields into
 * `dialects` first, so old bootstrap files, exports and stores keep working. Records of objects
 * the model does not hold are dropped.
 */
export function parseModel(input: unknown): Model {
  const r = Model.safeParse(upgradeLegacy(input));
  if (!r.success) throw new ModelError(r.error.issues.map((i) => ({ path: formatPath(i.path), message: i.message })));
  return pruneDialects(r.data);
}
