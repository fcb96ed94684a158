// Request bodies of the Cloudflare dialect (Access certificates and hostname settings, zones,
// custom rules, the managed CA's client certificates and hostname associations).
import { z } from "zod";
import { optional, required } from "../../control/request.ts";

/** A list of hostnames: lower-cased, each once. */
const Hostnames = z
  .unknown()
  .refine((v) => Array.isArray(v) && v.every((x) => typeof x === "string" && x), { error: "must be an array of hostnames" })
  .transform((v) => [...new Set((v as string[]).map((s) => s.toLowerCase()))]);

export const AccessCertCreate = z.looseObject({
  name: required(z.string().max(255)),
  certificate: required(z.string()),
  associated_hostnames: optional(Hostnames),
});

export const AccessCertUpdate = z.looseObject({
  name: optional(z.string().max(255)),
  certificate: optional(z.string()),
  associated_hostnames: optional(Hostnames),
});

const Setting = z.looseObject({
  hostname: required(z.string()).transform((s) => s.toLowerCase()),
  china_network: required(z.boolean()),
  client_certificate_forwarding: required(z.boolean()),
});

export const SettingsPut = z.looseObject({
  settings: z.array(Setting, { error: "must be an array of {hostname, china_network, client_certificate_forwarding}" }),
});

export const ZoneCreate = z.looseObject({
  name: required(z.string().max(253)).transform((s) => s.toLowerCase()),
  /** Taken only when an object (Cloudflare's `account: {id}`). */
  account: z.unknown().optional().transform((a) => (typeof a === "object" && a !== null && !Array.isArray(a) ? (a as Record<string, unknown>) : {})).pipe(z.looseObject({ id: optional(z.string()) })),
});

const STATUS = "must be an integer 400-599";
const RuleResponse = z.looseObject({
  status_code: optional(z.number({ error: STATUS }).int({ error: STATUS }).min(400, { error: STATUS }).max(599, { error: STATUS })),
  content_type: optional(z.string()),
  content: optional(z.string().max(65_536)),
}, { error: "must be an object" });

/** A rule as Cloudflare writes it; fields left out keep the rule's stored values (PATCH, PUT of a known id). */
export const CfRule = z.strictObject(
  {
    id: optional(z.string()),
    version: z.unknown().optional(),
    action: optional(z.string()),
    expression: optional(z.string()),
    description: optional(z.string().max(500)),
    enabled: optional(z.boolean()),
    ref: optional(z.string().max(128)),
    logging: z.unknown().optional(),
    /** null removes the response. */
    action_parameters: z.looseObject({ response: RuleResponse.nullish() }, { error: "must be an object" }).nullish(),
    last_updated: z.unknown().optional(),
    position: z.unknown().optional(),
  },
  { error: (iss) => (iss.code === "unrecognized_keys" ? "is not supported" : iss.code === "invalid_type" && iss.expected === "object" ? "must be an object" : undefined) },
);
export type CfRule = z.output<typeof CfRule>;

export const EntrypointPut = z.looseObject({
  rules: z.array(z.unknown()).optional(),
  name: optional(z.string().max(255)),
  description: optional(z.string().max(500)),
});

export const ClientCertCreate = z.looseObject({
  csr: required(z.string().max(16_384)),
  validity_days: z.number({ error: "must be an integer from 1 to 3650" }).int({ error: "must be an integer from 1 to 3650" }).min(1, { error: "must be an integer from 1 to 3650" }).max(3650, { error: "must be an integer from 1 to 3650" }),
});

/** PATCH of a client certificate: reactivation is the only change. */
export const ClientCertPatch = z
  .looseObject({ reactivate: z.unknown().optional() })
  .refine((b) => b.reactivate === true, { error: 'the only change is {"reactivate": true}', path: ["reactivate"] });

export const AssociationsPut = z.looseObject({
  hostnames: optional(Hostnames),
  mtls_certificate_id: optional(z.string()),
});
