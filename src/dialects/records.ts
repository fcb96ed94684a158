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

/**
 * The model without records of core objects that are gone (a host, certificate, zone or rule
 * removed through any dialect takes its records with it); the same model when there are none.
 * With `prev`, nothing is looked at unless hosts, certificates or zones changed.
 */
export function pruneDialects(model: Model, prev?: Model): Model {
  if (prev && prev.hosts === model.hosts && prev.certificates === model.certificates && prev.zones === model.zones && prev.dialects === model.dialects) return model;
  const d = model.dialects;
  const fastly = pruneFastly(model, d.fastly);
  const cloudflare = pruneCloudflare(model, d.cloudflare);
  return fastly === d.fastly && cloudflare === d.cloudflare ? model : { ...model, dialects: { ...d, fastly, cloudflare } };
}
