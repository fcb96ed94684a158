// The model's layout before per-dialect records, read as it always was. Until then vendor fields
// sat on the core objects (Fastly private_key_id/private_key_name on certificates, id and
// tls_configuration on hosts; Cloudflare china_network on hosts, ruleset on zones, version/ref/
// last_updated on rules) and Fastly's and Apinizer's own lists at the top of the model. This
// moves them into `dialects` (keyed by the core object's id), on raw input, before validation:
// parseModel runs it on every model that comes in (store, bootstrap file, PUT /v1/config), and
// the store's migration 2 rewrites a store's rows with it once.
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const objects = (v: unknown): Obj[] => (Array.isArray(v) ? v.filter(isObj) : []);

const TOP = ["tls_configurations", "pending_private_keys", "apinizer"] as const;
const HOST = ["id", "tls_configuration", "china_network"] as const;
const CERT = ["private_key_id", "private_key_name"] as const;
const RULE = ["version", "ref", "last_updated"] as const;

const has = (o: Obj, keys: readonly string[]): boolean => keys.some((k) => k in o);
const pick = (o: Obj, keys: readonly string[]): Obj => Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k]]));
const omit = (o: Obj, keys: readonly string[]): Obj => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

/** Does `input` hold anything in the old layout? */
export function isLegacy(input: unknown): boolean {
  if (!isObj(input)) return false;
  return (
    has(input, TOP) ||
    objects(input.hosts).some((h) => has(h, HOST)) ||
    objects(input.certificates).some((c) => has(c, CERT)) ||
    objects(input.rules).some((r) => has(r, RULE)) ||
    objects(input.zones).some((z) => "ruleset" in z || objects(z.rules).some((r) => has(r, RULE)))
  );
}

/** `input` in the current layout (the same object when it already is). */
export function upgradeLegacy(input: unknown): unknown {
  if (!isLegacy(input)) return input;
  const m = input as Obj;
  const d = isObj(m.dialects) ? m.dialects : {};
  const fastly: Obj = { ...(isObj(d.fastly) ? d.fastly : {}) };
  const cloudflare: Obj = { ...(isObj(d.cloudflare) ? d.cloudflare : {}) };
  const out: Obj = omit(m, TOP);
  if (m.tls_configurations !== undefined) fastly.tls_configurations = m.tls_configurations;
  if (m.pending_private_keys !== undefined) fastly.pending_private_keys = m.pending_private_keys;

  const fastlyCerts: Obj = { ...(isObj(fastly.certificates) ? fastly.certificates : {}) };
  const activations: Obj = { ...(isObj(fastly.activations) ? fastly.activations : {}) };
  const cfHosts: Obj = { ...(isObj(cloudflare.hostnames) ? cloudflare.hostnames : {}) };
  const cfZones: Obj = { ...(isObj(cloudflare.zones) ? cloudflare.zones : {}) };

  if (Array.isArray(m.certificates))
    out.certificates = m.certificates.map((c: unknown) => {
      if (!isObj(c) || !has(c, CERT)) return c;
      if (typeof c.id === "string" && Object.keys(pick(c, CERT)).length) fastlyCerts[c.id] = pick(c, CERT);
      return omit(c, CERT);
    });
  if (Array.isArray(m.hosts))
    out.hosts = m.hosts.map((h: unknown) => {
      if (!isObj(h) || !has(h, HOST)) return h;
      const name = typeof h.hostname === "string" ? h.hostname.toLowerCase() : undefined;
      if (name !== undefined) {
        const a = pick(h, ["id", "tls_configuration"]);
        if (Object.keys(a).length) activations[name] = a;
        if (h.china_network !== undefined) cfHosts[name] = { china_network: h.china_network };
      }
      return omit(h, HOST);
    });
  // Global rules never had a dialect showing this bookkeeping: it is dropped.
  if (Array.isArray(m.rules)) out.rules = m.rules.map((r: unknown) => (isObj(r) && has(r, RULE) ? omit(r, RULE) : r));
  if (Array.isArray(m.zones))
    out.zones = m.zones.map((z: unknown) => {
      if (!isObj(z)) return z;
      const rules = objects(z.rules).filter((r) => has(r, RULE));
      if (!("ruleset" in z) && !rules.length) return z;
      if (typeof z.id === "string") {
        const rec: Obj = { ...(isObj(cfZones[z.id]) ? (cfZones[z.id] as Obj) : {}) };
        if (z.ruleset !== undefined) rec.ruleset = z.ruleset;
        const meta: Obj = { ...(isObj(rec.rules) ? rec.rules : {}) };
        for (const r of rules) if (typeof r.id === "string" && Object.keys(pick(r, RULE)).length) meta[r.id] = pick(r, RULE);
        rec.rules = meta;
        cfZones[z.id] = rec;
      }
      return { ...omit(z, ["ruleset"]), ...(Array.isArray(z.rules) ? { rules: z.rules.map((r: unknown) => (isObj(r) && has(r, RULE) ? omit(r, RULE) : r)) } : {}) };
    });

  if (Object.keys(fastlyCerts).length) fastly.certificates = fastlyCerts;
  if (Object.keys(activations).length) fastly.activations = activations;
  if (Object.keys(cfHosts).length) cloudflare.hostnames = cfHosts;
  if (Object.keys(cfZones).length) cloudflare.zones = cfZones;
  out.dialects = {
    ...d,
    ...(Object.keys(fastly).length ? { fastly } : {}),
    ...(Object.keys(cloudflare).length ? { cloudflare } : {}),
    ...(m.apinizer !== undefined ? { apinizer: m.apinizer } : {}),
  };
  return out;
}
