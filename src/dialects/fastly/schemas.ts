// Request attributes of the Fastly dialect (`data.attributes` of a JSON:API write). Attributes
// Fastly has and certgate does not use are ignored, as Fastly ignores read-only ones.
import { z } from "zod";
import { optional, required } from "../../control/request.ts";

const name = optional(z.string().max(255));

export const CertificateCreate = z.looseObject({ cert_blob: required(z.string()), name });
export const CertificatePatch = z.looseObject({ cert_blob: optional(z.string()), name });
export const PrivateKeyCreate = z.looseObject({ key: required(z.string()), name });
export const ConfigurationPatch = z.looseObject({ name: required(z.string().max(255)) });
export const MutualAuthCreate = z.looseObject({ cert_bundle: required(z.string()), enforced: optional(z.boolean()), name });
export const MutualAuthPatch = z.looseObject({ cert_bundle: optional(z.string()), enforced: optional(z.boolean()), name });
