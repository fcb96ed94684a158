// The dialects' records, composed into the model's `dialects` section (model/schema.ts): each
// dialect declares its own in src/dialects/<name>/records.ts, so a field of one dialect is added
// in that dialect's folder. Pure schemas and functions: the model imports this, the data plane
// never reads it.
import { z } from "zod";
import type { Model } from "../model/schema.ts";
import { Apinizer } from "./apinizer/records.ts";
import { CloudflareRecords, pruneCloudflare } from "./cloudflare/records.ts";
import { FastlyRecords, pruneFastly } from "./fastly/records.ts";

export const Dialects = z.strictObject({
  fastly: FastlyRecords.default(FastlyRecords.parse({})),
  cloudflare: CloudflareRecords.default(CloudflareRecords.parse({})),
  apinizer: Apinizer.default(Apinizer.parse({})),
});

/**
 * The model without records of core objects that are gone (a host, certificate, zone or rule
 * removed through any dialect takes its records with it); the same model when there are none.
 */
export function pruneDialects(model: Model): Model {
  const d = model.dialects;
  const fastly = pruneFastly(model, d.fastly);
  const cloudflare = pruneCloudflare(model, d.cloudflare);
  return fastly === d.fastly && cloudflare === d.cloudflare ? model : { ...model, dialects: { ...d, fastly, cloudflare } };
}
