// What the Fastly dialect keeps beside the core model (model.dialects.fastly): its own objects
// (TLS configurations, private keys awaiting their certificate) and, keyed by the core object's
// id, what it shows of certificates (the private key's id and name) and of hosts (the
// tls_activation id, the tls_configuration). The data plane reads none of it.
import { z } from "zod";
import { id, pem, stamp } from "../../model/primitives.ts";
import type { Model } from "../../model/schema.ts";
import type { Lost } from "../records.ts";
import { keep } from "../../model/ops.ts";

/** Fastly TLS configurations (a default one exists even when this list is empty). */
export const TlsConfiguration = z.strictObject({
  id,
  name: z.string().default(""),
  default: z.boolean().default(false),
  created_at: stamp,
  updated_at: stamp,
});

/** A Fastly private key uploaded before the certificate it belongs to. */
export const PendingPrivateKey = z.strictObject({
  id,
  name: z.string().default(""),
  key: pem,
  created_at: stamp,
});

/** Per certificate (certificates[].id): the Fastly private_key its key was uploaded as. */
export const FastlyCertificate = z.strictObject({ private_key_id: id.optional(), private_key_name: z.string().optional() });

/** Per host (hosts[].hostname): its tls_activation id (derived from the hostname when absent) and tls_configuration (the default when absent). */
export const FastlyActivation = z.strictObject({ id: id.optional(), tls_configuration: id.optional() });

export const FastlyRecords = z.strictObject({
  tls_configurations: z.array(TlsConfiguration).default([]),
  pending_private_keys: z.array(PendingPrivateKey).default([]),
  certificates: z.record(z.string(), FastlyCertificate).default({}),
  activations: z.record(z.string(), FastlyActivation).default({}),
});

export type FastlyRecords = z.infer<typeof FastlyRecords>;
export type TlsConfiguration = z.infer<typeof TlsConfiguration>;
export type PendingPrivateKey = z.infer<typeof PendingPrivateKey>;
export type FastlyActivation = z.infer<typeof FastlyActivation>;

/** The id of the built-in TLS configuration shown when none is the default. */
export const DEFAULT_CONFIG_ID = "default";

/** Records of certificates and hosts that no longer exist, dropped. */
export function pruneFastly(model: Model, r: FastlyRecords, lost: Lost): FastlyRecords {
  // The lookups are built only when there are records to check.
  let certs: Set<string> | undefined;
  let hosts: Set<string> | undefined;
  const certificates = lost.certificates ? keep(r.certificates, (k) => (certs ??= new Set(model.certificates.map((c) => c.id))).has(k)) : r.certificates;
  const activations = lost.hosts ? keep(r.activations, (k) => (hosts ??= new Set(model.hosts.map((h) => h.hostname))).has(k)) : r.activations;
  return certificates === r.certificates && activations === r.activations ? r : { ...r, certificates, activations };
}

/** An activation's tls_configuration must exist; activation ids are unique. */
export function fastlyProblems(model: Model): { path: string; message: string }[] {
  const r = model.dialects.fastly;
  const problems: { path: string; message: string }[] = [];
  const configs = new Set(r.tls_configurations.map((c) => c.id));
  if (!r.tls_configurations.some((c) => c.default)) configs.add(DEFAULT_CONFIG_ID);
  const ids = new Set<string>();
  for (const [hostname, a] of Object.entries(r.activations)) {
    const at = `dialects.fastly.activations["${hostname}"]`;
    if (a.tls_configuration && !configs.has(a.tls_configuration)) problems.push({ path: `${at}.tls_configuration`, message: `no tls_configuration with id "${a.tls_configuration}"` });
    if (a.id) {
      if (ids.has(a.id)) problems.push({ path: `${at}.id`, message: `duplicate id "${a.id}"` });
      ids.add(a.id);
    }
  }
  for (const kind of ["tls_configurations", "pending_private_keys"] as const) {
    const seen = new Set<string>();
    r[kind].forEach((o, i) => {
      if (seen.has(o.id)) problems.push({ path: `dialects.fastly.${kind}[${i}].id`, message: `duplicate id "${o.id}"` });
      seen.add(o.id);
    });
  }
  return problems;
}
