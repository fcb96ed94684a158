// What the Cloudflare dialect keeps beside the core model (model.dialects.cloudflare), keyed by
// the core object's id: per hostname its `china_network` (stored and returned, no effect off
// Cloudflare's network); per zone the phase entrypoint ruleset holding its custom rules, and per
// rule Cloudflare's bookkeeping (version counter, ref, last change). The data plane reads none of it.
import { z } from "zod";
import { id, stamp } from "../../model/primitives.ts";
import type { Model } from "../../model/schema.ts";
import type { Lost } from "../records.ts";
import { keep } from "../../model/ops.ts";

export const CloudflareHostname = z.strictObject({ china_network: z.boolean().optional() });

/** A zone's phase entrypoint ruleset. */
export const RulesetMeta = z.strictObject({
  id,
  name: z.string().default("default"),
  description: z.string().default(""),
  version: z.string().default("1"),
  last_updated: stamp,
});

/** Per rule of the zone (zones[].rules[].id). */
export const RuleMeta = z.strictObject({ version: z.string().optional(), ref: z.string().max(128).optional(), last_updated: stamp });

export const CloudflareZone = z.strictObject({ ruleset: RulesetMeta.optional(), rules: z.record(z.string(), RuleMeta).default({}) });

export const CloudflareRecords = z.strictObject({
  /** By hostname (hosts[].hostname). */
  hostnames: z.record(z.string(), CloudflareHostname).default({}),
  /** By zone id (zones[].id). */
  zones: z.record(z.string(), CloudflareZone).default({}),
});

export type CloudflareRecords = z.infer<typeof CloudflareRecords>;

/** Which core objects the keyed records follow (their owner is that object's). */
export const CLOUDFLARE_RECORD_OWNERS = { hostnames: "hosts", zones: "zones" } as const;
export type Ruleset = z.infer<typeof RulesetMeta>;
export type RuleMeta = z.infer<typeof RuleMeta>;
export type CloudflareZone = z.infer<typeof CloudflareZone>;

/** Records of hosts, zones and rules that no longer exist, dropped. */
export function pruneCloudflare(model: Model, r: CloudflareRecords, lost: Lost): CloudflareRecords {
  let hosts: Set<string> | undefined; // built only when there are records to check
  const zones = new Map(model.zones.map((z) => [z.id, z]));
  const hostnames = lost.hosts ? keep(r.hostnames, (k) => (hosts ??= new Set(model.hosts.map((h) => h.hostname))).has(k)) : r.hostnames;
  let zoneRecs = keep(r.zones, (k) => zones.has(k));
  for (const [zid, rec] of Object.entries(zoneRecs)) {
    const ruleIds = new Set(zones.get(zid)!.rules.map((x) => x.id));
    const rules = keep(rec.rules, (k) => ruleIds.has(k));
    if (rules !== rec.rules) zoneRecs = { ...zoneRecs, [zid]: { ...rec, rules } };
  }
  return hostnames === r.hostnames && zoneRecs === r.zones ? r : { hostnames, zones: zoneRecs };
}
