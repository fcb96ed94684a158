// The dialects' records, composed into the model's `dialects` section (model/schema.ts): each
// dialect declares its own in src/dialects/<name>/records.ts, so a field of one dialect is added
// in that dialect's folder. Pure schemas and functions: the model imports this, the data plane
// never reads it.
import { z } from "zod";
import type { Model } from "../model/schema.ts";
import { Apinizer } from "./apinizer/records.ts";
import { CLOUDFLARE_RECORD_OWNERS, CloudflareRecords, pruneCloudflare } from "./cloudflare/records.ts";
import { FastlyRecords, pruneFastly } from "./fastly/records.ts";

export const Dialects = z.strictObject({
  fastly: FastlyRecords.default(FastlyRecords.parse({})),
  cloudflare: CloudflareRecords.default(CloudflareRecords.parse({})),
  apinizer: Apinizer.default(Apinizer.parse({})),
});

/**
 * The records keyed by a core object, per dialect: they belong to that object's owner (an account
 * token may change those of its own hosts and zones: control/ownership.ts). Every other record is
 * global configuration.
 */
export const RECORD_OWNERS: Partial<Record<keyof z.infer<typeof Dialects>, Record<string, "hosts" | "zones">>> = { cloudflare: CLOUDFLARE_RECORD_OWNERS };

/** Which kinds of core objects may have lost members since the stored model (all, without one). */
export interface Lost {
  hosts: boolean;
  certificates: boolean;
}

/**
 * Can `next` lack a key `prev` has? Not when it is as long and every position holds the same
 * object or one with the same key (what a write that edits or appends objects leaves): a
 * pointer comparison per element, so a write to one of 10,000 hosts does not rebuild lookups.
 */
function mayHaveLost<T>(prev: readonly T[], next: readonly T[], key: (o: T) => string): boolean {
  if (prev === next) return false;
  if (next.length < prev.length) return true;
  for (let i = 0; i < prev.length; i++) if (prev[i] !== next[i] && key(prev[i]!) !== key(next[i]!)) return true;
  return false;
}

/**
 * The model without records of core objects that are gone (a host, certificate, zone or rule
 * removed through any dialect takes its records with it); the same model when there are none.
 * With `prev` (the stored model), only kinds that may have lost objects are looked at.
 */
export function pruneDialects(model: Model, prev?: Model): Model {
  if (prev && prev.hosts === model.hosts && prev.certificates === model.certificates && prev.zones === model.zones && prev.dialects === model.dialects) return model;
  const lost: Lost = prev
    ? { hosts: mayHaveLost(prev.hosts, model.hosts, (h) => h.hostname), certificates: mayHaveLost(prev.certificates, model.certificates, (c) => c.id) }
    : { hosts: true, certificates: true };
  // Records a write just added are checked too: a record for an object that does not exist is dropped.
  if (prev && prev.dialects !== model.dialects) lost.hosts = lost.certificates = true;
  const d = model.dialects;
  const fastly = pruneFastly(model, d.fastly, lost);
  const cloudflare = pruneCloudflare(model, d.cloudflare, lost);
  return fastly === d.fastly && cloudflare === d.cloudflare ? model : { ...model, dialects: { ...d, fastly, cloudflare } };
}
