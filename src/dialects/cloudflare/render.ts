// The Cloudflare dialect's rendering: the {success, errors, messages, result} envelope and the
// Access certificate, zone, rule and ruleset objects, as views of the model and of Cloudflare's
// records (records.ts).
import { createHash } from "node:crypto";
import type { Model, Rule, TrustBundle, Zone } from "../../model/schema.ts";
import type { Reply } from "../../control/http.ts";
import { caBundle } from "../../control/certinfo.ts";
import type { RuleMeta, Ruleset } from "./records.ts";

export const PHASE = "http_request_firewall_custom";

export function ok(result: unknown, status = 200, result_info?: Record<string, number>): Reply {
  return { status, body: { success: true, errors: [], messages: [], result, ...(result_info ? { result_info } : {}) } };
}

export function accessCertRes(model: Model, b: TrustBundle): Record<string, unknown> {
  const cas = caBundle(b.ca, "certificate");
  const expires = cas.map((c) => new Date(c.validTo).getTime()).reduce((a, x) => Math.min(a, x));
  return {
    id: b.id,
    name: b.name ?? b.id,
    fingerprint: cas[0]!.fingerprint256,
    expires_on: new Date(expires).toISOString(),
    associated_hostnames: model.hosts.filter((h) => h.mtls.trust_bundle === b.id).map((h) => h.hostname),
    // certgate's own field: a file-backed bundle's file (updates of its `certificate` are refused, 409).
    ...(b.ca_file !== undefined ? { ca_file: b.ca_file } : {}),
    created_at: b.created_at ?? null,
    updated_at: b.updated_at ?? null,
  };
}

export function zoneRes(z: Zone): Record<string, unknown> {
  return {
    id: z.id,
    name: z.name,
    status: "active",
    paused: false,
    type: "full",
    account: { id: z.account_id ?? null, name: "" },
    name_servers: [],
    created_on: z.created_at ?? null,
    modified_on: z.updated_at ?? z.created_at ?? null,
  };
}

function ruleRes(r: Rule, m: RuleMeta = {}): Record<string, unknown> {
  return {
    id: r.id,
    version: m.version ?? "1",
    action: r.action,
    expression: r.expression,
    description: r.description,
    enabled: r.enabled,
    ...(m.ref ? { ref: m.ref } : {}),
    ...(r.response ? { action_parameters: { response: { status_code: r.response.status, content_type: r.response.content_type, content: r.response.body } } } : {}),
    last_updated: m.last_updated ?? null,
  };
}

/** A zone as this dialect shows it: the core zone with its ruleset and its rules' bookkeeping (records.ts). */
export type CfZone = Zone & { ruleset?: Ruleset; meta: Record<string, RuleMeta> };

export function view(model: Model, z: Zone): CfZone {
  const rec = model.dialects.cloudflare.zones[z.id];
  return { ...z, ...(rec?.ruleset ? { ruleset: rec.ruleset } : {}), meta: rec?.rules ?? {} };
}

/**
 * A zone's entrypoint ruleset: the stored one; for rules written outside this dialect (bootstrap
 * file, /v1/config), one whose id is derived from the zone's, so every read names the same ruleset.
 */
export function rulesetOf(z: CfZone): Ruleset | undefined {
  if (z.ruleset || !z.rules.length) return z.ruleset;
  return { id: createHash("sha256").update(`ruleset/${z.id}`).digest("hex").slice(0, 32), name: "default", description: "", version: "1", last_updated: z.updated_at };
}

/** The ruleset of a zone that has one. */
export function rulesetRes(z: CfZone): Record<string, unknown> {
  const rs = rulesetOf(z)!;
  return { id: rs.id, name: rs.name, description: rs.description, kind: "zone", version: rs.version, phase: PHASE, rules: z.rules.map((r) => ruleRes(r, z.meta[r.id])), last_updated: rs.last_updated ?? null };
}
