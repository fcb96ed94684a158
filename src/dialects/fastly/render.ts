// The Fastly dialect's rendering: JSON:API documents and resources (tls_activation,
// mutual_authentication, tls_certificate, tls_private_key, tls_domain, tls_configuration) as
// views of the model and of Fastly's records (records.ts). The model they get has file-backed
// contents filled in (control/filesource.ts), so every certificate has its `cert` and `key`.
import { createHash } from "node:crypto";
import type { Host, Model, TrustBundle } from "../../model/schema.ts";
import type { Ctx, Reply } from "../../control/http.ts";
import { certInfo, keyInfo } from "../../control/certinfo.ts";
import { DEFAULT_CONFIG_ID, type FastlyActivation } from "./records.ts";

export const CT = "application/vnd.api+json";
export type Resource = { id: string; type: string; attributes?: Record<string, unknown>; relationships?: Record<string, unknown> };
type Ref = { type: string; id: string };

/** What Fastly keeps of a host (dialects.fastly.activations): its activation id and tls_configuration. */
export const activationOf = (model: Model, h: Host): FastlyActivation => model.dialects.fastly.activations[h.hostname] ?? {};

/** hostname → its own activation id, per records object (a Map: lookups by hostname run for every host of a listing). */
const ownIdCache = new WeakMap<object, Map<string, string>>();
function ownIds(model: Model): Map<string, string> {
  const rec = model.dialects.fastly.activations;
  let ids = ownIdCache.get(rec);
  if (!ids) {
    ids = new Map(Object.entries(rec).flatMap(([hostname, a]) => (a.id ? [[hostname, a.id] as [string, string]] : [])));
    ownIdCache.set(rec, ids);
  }
  return ids;
}

/** A host entry's activation id: its own, else derived from the hostname (stable, alphanumeric). */
const derivedIds = new Map<string, string>();
export function activationId(model: Model, h: Host): string {
  const own = ownIds(model).get(h.hostname);
  if (own) return own;
  let id = derivedIds.get(h.hostname);
  if (!id) {
    id = "a" + createHash("sha256").update(h.hostname).digest("hex").slice(0, 21);
    if (derivedIds.size > 200_000) derivedIds.clear();
    derivedIds.set(h.hostname, id);
  }
  return id;
}

export function configurations(model: Model): { id: string; name: string; default: boolean; created_at?: string; updated_at?: string }[] {
  const list = model.dialects.fastly.tls_configurations.map((c) => ({ ...c }));
  if (!list.some((c) => c.default)) list.unshift({ id: DEFAULT_CONFIG_ID, name: "Default TLS configuration", default: true });
  return list;
}
export const defaultConfigId = (model: Model): string => configurations(model).find((c) => c.default)!.id;

/** The certificate a host serves: pinned, else chosen by SAN as the data plane does. */
export function certOf(ctx: Ctx, h: Host): string | null {
  if (h.certificate) return h.certificate;
  return ctx.plane.runtime.snapshot.certFor(h.hostname.replace(/^\*\./, "x."))?.id ?? null;
}

// ---- serialisation ---------------------------------------------------------------------

const ref = (type: string, id: string): Ref => ({ type, id });
/** certgate's own attribute for a file-backed object: the file its contents come from (edits of those contents are refused, 409). */
export const fileOf = <O extends object>(o: O, field: keyof O & string): Record<string, unknown> => (o[field] !== undefined ? { [field]: o[field] } : {});
const stamps = (o: { created_at?: string; updated_at?: string }) => ({ created_at: o.created_at ?? null, updated_at: o.updated_at ?? o.created_at ?? null, deleted_at: null });

export function activationRes(ctx: Ctx, model: Model, h: Host): Resource {
  const cert = certOf(ctx, h);
  return {
    id: activationId(model, h),
    type: "tls_activation",
    attributes: stamps(h),
    relationships: {
      tls_certificate: { data: cert ? ref("tls_certificate", cert) : null },
      tls_configuration: { data: ref("tls_configuration", activationOf(model, h).tls_configuration ?? defaultConfigId(model)) },
      tls_domain: { data: ref("tls_domain", h.hostname) },
      mutual_authentication: { data: h.mtls.trust_bundle ? ref("mutual_authentication", h.mtls.trust_bundle) : null },
    },
  };
}

export function mutualAuthRes(model: Model, b: TrustBundle): Resource {
  return {
    id: b.id,
    type: "mutual_authentication",
    attributes: { cert_bundle: b.ca, enforced: b.enforced, name: b.name ?? b.id, ...fileOf(b, "ca_file"), ...stamps(b) },
    relationships: { tls_activations: { data: model.hosts.filter((h) => h.mtls.trust_bundle === b.id).map((h) => ref("tls_activation", activationId(model, h))) } },
  };
}

export function certRes(c: Model["certificates"][number]): Resource {
  const i = certInfo(c.cert!);
  return {
    id: c.id,
    type: "tls_certificate",
    attributes: {
      name: c.name ?? i.issued_to,
      issued_to: i.issued_to,
      issuer: i.issuer,
      serial_number: i.serial_number,
      signature_algorithm: i.signature_algorithm,
      not_before: i.not_before,
      not_after: i.not_after,
      replace: false,
      ...fileOf(c, "cert_file"),
      ...fileOf(c, "key_file"),
      ...stamps(c),
    },
    relationships: { tls_domains: { data: i.names.map((n) => ref("tls_domain", n)) } },
  };
}

export interface KeyView {
  id: string;
  name: string;
  pem: string;
  created_at?: string;
  in_use: boolean;
}

export function keys(model: Model): KeyView[] {
  const out = new Map<string, KeyView>();
  for (const c of model.certificates) {
    const rec = model.dialects.fastly.certificates[c.id] ?? {};
    const id = rec.private_key_id ?? `k${createHash("sha256").update(c.id).digest("hex").slice(0, 21)}`;
    if (!out.has(id)) out.set(id, { id, name: rec.private_key_name ?? "", pem: c.key!, created_at: c.created_at, in_use: true });
  }
  for (const k of model.dialects.fastly.pending_private_keys) out.set(k.id, { id: k.id, name: k.name, pem: k.key, created_at: k.created_at, in_use: false });
  return [...out.values()];
}

export function keyRes(k: KeyView): Resource {
  const i = keyInfo(k.pem);
  return {
    id: k.id,
    type: "tls_private_key",
    attributes: { name: k.name, key_length: i.key_length, key_type: i.key_type, public_key_sha1: i.public_key_sha1, replace: false, created_at: k.created_at ?? null },
  };
}

export function domains(model: Model): string[] {
  const set = new Set<string>();
  for (const c of model.certificates) for (const n of certInfo(c.cert!).names) set.add(n);
  for (const h of model.hosts) set.add(h.hostname);
  return [...set].sort();
}

export function domainRes(model: Model, name: string): Resource {
  return {
    id: name,
    type: "tls_domain",
    relationships: {
      tls_certificates: { data: model.certificates.filter((c) => certInfo(c.cert!).names.includes(name)).map((c) => ref("tls_certificate", c.id)) },
      tls_activations: { data: model.hosts.filter((h) => h.hostname === name).map((h) => ref("tls_activation", activationId(model, h))) },
    },
  };
}

export function configRes(c: ReturnType<typeof configurations>[number]): Resource {
  return {
    id: c.id,
    type: "tls_configuration",
    attributes: { name: c.name, default: c.default, bulk: false, http_protocols: ["http/1.1"], tls_protocols: ["1.2", "1.3"], ...stamps(c) },
  };
}

export function doc(data: unknown, extra: Record<string, unknown> = {}, status = 200): Reply {
  return { status, body: { data, ...extra }, contentType: CT };
}

/** Resources related to `data` through the requested relationships, each once. */
export function includedFor(ctx: Ctx, model: Model, data: Resource[], inc: Set<string>): Resource[] {
  const seen = new Map<string, Resource>();
  const add = (r: Resource | undefined) => {
    if (r && !seen.has(`${r.type}/${r.id}`)) seen.set(`${r.type}/${r.id}`, r);
  };
  const confs = configurations(model);
  for (const d of data) {
    for (const name of inc) {
      const rel = (d.relationships?.[name] as { data: Ref | Ref[] | null } | undefined)?.data;
      for (const r of rel === null || rel === undefined ? [] : Array.isArray(rel) ? rel : [rel]) {
        if (r.type === "tls_certificate") {
          const c = model.certificates.find((x) => x.id === r.id);
          add(c && certRes(c));
        } else if (r.type === "tls_configuration") {
          const c = confs.find((x) => x.id === r.id);
          add(c && configRes(c));
        } else if (r.type === "tls_domain") add(domainRes(model, r.id));
        else if (r.type === "mutual_authentication") {
          const b = model.trust_bundles.find((x) => x.id === r.id);
          add(b && mutualAuthRes(model, b));
        } else if (r.type === "tls_activation") {
          const h = model.hosts.find((x) => activationId(model, x) === r.id);
          add(h && activationRes(ctx, model, h));
        }
      }
    }
  }
  return [...seen.values()];
}
