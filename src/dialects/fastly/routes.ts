// The Fastly dialect (JSON:API, application/vnd.api+json): TLS certificates, private keys,
// domains, configurations, activations and mutual authentications, as views of the one model.
//
//   mutual_authentication  = trust_bundles[]      (enforced is the bundle's field)
//   tls_activation         = hosts[]              (certificate pinned in hosts[].certificate,
//                                                  mutual authentication in hosts[].mtls.trust_bundle;
//                                                  id and tls_configuration in dialects.fastly.activations)
//   tls_certificate        = certificates[]       (with the key of a tls_private_key)
//   tls_private_key        = dialects.fastly.pending_private_keys[] until its certificate arrives,
//                            then the key of certificates[] (id in dialects.fastly.certificates);
//                            never returned
//   tls_domain             = a SAN name of a certificate, or a host's hostname
//   tls_configuration      = dialects.fastly.tls_configurations[] (a built-in default when none is the default)
// (render.ts: the JSON:API resources; schemas.ts: request attributes; records.ts: what this
// dialect keeps beside the core model.)
import { randomBytes } from "node:crypto";
import type { Host, Model, TrustBundle } from "../../model/schema.ts";
import { ApiError, badRequest, notFound } from "../../control/apierrors.ts";
import { intParam, isObject, type Ctx, type Reply, type RouteDef } from "../../control/http.ts";
import { parseRequest } from "../../control/request.ts";
import { CertificateCreate, CertificatePatch, ConfigurationPatch, MutualAuthCreate, MutualAuthPatch, PrivateKeyCreate } from "./schemas.ts";
import { claimable, zoneOwnerOf } from "../../control/ownership.ts";
import { now } from "../../control/writepath.ts";
import { addBundle, associate, hostEntry, putHost, removeAt, removeBundle, replaceAt, setHostBundle, withDialect } from "../../model/ops.ts";
import type { FastlyActivation, FastlyRecords } from "./records.ts";
import { activationId, activationOf, activationRes, certOf, certRes, configRes, configurations, defaultConfigId, doc, domainRes, domains, includedFor, keyRes, keys, mutualAuthRes } from "./render.ts";
import { caBundle, certInfo, covers, keyInfo } from "../../control/certinfo.ts";
import { fileBackedConflict } from "../../control/filesource.ts";

// ---- identities ------------------------------------------------------------------------

const ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** A Fastly-style alphanumeric id (22 characters). */
function alnumId(): string {
  let s = "";
  for (const x of randomBytes(22)) s += ALNUM[x % 62];
  return s;
}

/** The model with Fastly's records changed. */
const withFastly = (model: Model, change: Partial<FastlyRecords>): Model => withDialect(model, "fastly", { ...model.dialects.fastly, ...change });

function findActivation(model: Model, id: string): number {
  const i = model.hosts.findIndex((h) => activationId(model, h) === id);
  if (i < 0) throw notFound("tls_activation", id);
  return i;
}

// ---- request helpers -------------------------------------------------------------------

function includes(ctx: Ctx, allowed: string[]): Set<string> {
  const raw = ctx.query("include");
  if (!raw) return new Set();
  const out = new Set(raw.split(",").map((s) => s.trim()).filter(Boolean));
  for (const i of out) if (!allowed.includes(i)) throw badRequest(`include "${i}" is not supported here; permitted: ${allowed.join(", ")}`, "include");
  return out;
}

/** JSON:API pagination: page[number] (from 1), page[size] (1-100, default 20), meta and links. */
function paginate<T>(ctx: Ctx, items: T[]): { page: T[]; meta: Record<string, number>; links: Record<string, string> } {
  const size = intParam(ctx, "page[size]", 20, 1, 100);
  const number = intParam(ctx, "page[number]", 1, 1, 1_000_000);
  const total = Math.max(1, Math.ceil(items.length / size));
  const link = (n: number) => {
    const u = new URL(ctx.url.href);
    u.searchParams.set("page[number]", String(n));
    u.searchParams.set("page[size]", String(size));
    return u.pathname + u.search;
  };
  const links: Record<string, string> = { self: link(number), first: link(1), last: link(total) };
  if (number > 1) links.prev = link(Math.min(number - 1, total));
  if (number < total) links.next = link(number + 1);
  return {
    page: items.slice((number - 1) * size, number * size),
    meta: { current_page: number, per_page: size, record_count: items.length, total_pages: total },
    links,
  };
}

/** The `data` of a JSON:API write, checked for type (409 when wrong) and id (when in the path). */
async function dataOf(ctx: Ctx, type: string, id?: string): Promise<{ attributes: Record<string, unknown>; relationships: Record<string, unknown> }> {
  const body = await ctx.body();
  if (!isObject(body) || !isObject(body.data)) throw badRequest("the body must be a JSON:API document with a `data` object", "/data");
  const d = body.data;
  if (d.type !== type) throw new ApiError("type_mismatch", `data.type must be "${type}", got ${JSON.stringify(d.type ?? null)}`, "/data/type");
  if (id !== undefined && d.id !== undefined && d.id !== id) throw new ApiError("type_mismatch", `data.id "${String(d.id)}" does not match the URL's "${id}"`, "/data/id");
  if (d.attributes !== undefined && !isObject(d.attributes)) throw badRequest("data.attributes must be an object", "/data/attributes");
  if (d.relationships !== undefined && !isObject(d.relationships)) throw badRequest("data.relationships must be an object", "/data/relationships");
  return { attributes: (d.attributes as Record<string, unknown>) ?? {}, relationships: (d.relationships as Record<string, unknown>) ?? {} };
}

/** A to-one relationship: undefined when absent, null when `data: null`, else the id. */
function toOne(rels: Record<string, unknown>, name: string, type: string): string | null | undefined {
  if (!(name in rels)) return undefined;
  const r = rels[name];
  if (!isObject(r) || !("data" in r)) throw badRequest(`relationships.${name} must be {"data": {...}} or {"data": null}`, `/data/relationships/${name}`);
  if (r.data === null) return null;
  if (!isObject(r.data) || typeof r.data.id !== "string") throw badRequest(`relationships.${name}.data must have an id`, `/data/relationships/${name}/data`);
  if (r.data.type !== type) throw new ApiError("type_mismatch", `relationships.${name}.data.type must be "${type}", got ${JSON.stringify(r.data.type ?? null)}`, `/data/relationships/${name}/data/type`);
  return r.data.id;
}

function toMany(rels: Record<string, unknown>, name: string, type: string): string[] | undefined {
  if (!(name in rels)) return undefined;
  const r = rels[name];
  if (!isObject(r) || !Array.isArray(r.data)) throw badRequest(`relationships.${name}.data must be an array`, `/data/relationships/${name}`);
  return r.data.map((x: unknown, i) => {
    if (!isObject(x) || typeof x.id !== "string") throw badRequest(`relationships.${name}.data[${i}] must have an id`, `/data/relationships/${name}/data/${i}`);
    if (x.type !== type) throw new ApiError("type_mismatch", `relationships.${name}.data[${i}].type must be "${type}"`, `/data/relationships/${name}/data/${i}/type`);
    return x.id;
  });
}

function bundleIndex(model: Model, id: string, inBody = false): number {
  const i = model.trust_bundles.findIndex((b) => b.id === id);
  if (i < 0) throw inBody ? badRequest(`mutual_authentication "${id}" not found`) : notFound("mutual_authentication", id);
  return i;
}

/** A write's tls_certificate relationship: it must exist and cover `hostname` (400 at `pointer` otherwise). */
function checkCovers(model: Model, certId: string, hostname: string, pointer: string): void {
  const cert = model.certificates.find((c) => c.id === certId);
  if (!cert) throw badRequest(`tls_certificate "${certId}" not found`, "/data/relationships/tls_certificate/data/id");
  const names = certInfo(cert.cert!).names;
  if (!covers(names, hostname)) throw badRequest(`tls_domain "${hostname}" is not among the certificate's names (${names.join(", ")})`, pointer);
}

/** A write's tls_configuration relationship must name one (400). */
function checkConfiguration(model: Model, id: string): void {
  if (!configurations(model).some((c) => c.id === id)) throw badRequest(`tls_configuration "${id}" not found`, "/data/relationships/tls_configuration/data/id");
}

// ---- handlers --------------------------------------------------------------------------

function listActivations(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const inc = includes(ctx, ["tls_certificate", "tls_configuration", "tls_domain", "mutual_authentication"]);
  let hosts = model.hosts;
  const fCert = ctx.query("filter[tls_certificate.id]");
  const fConf = ctx.query("filter[tls_configuration.id]");
  const fDom = ctx.query("filter[tls_domain.id]");
  const fMa = ctx.query("filter[mutual_authentication.id]");
  if (fCert !== null) hosts = hosts.filter((h) => certOf(ctx, h) === fCert);
  if (fConf !== null) hosts = hosts.filter((h) => (activationOf(model, h).tls_configuration ?? defaultConfigId(model)) === fConf);
  if (fDom !== null) hosts = hosts.filter((h) => h.hostname === fDom.toLowerCase());
  if (fMa !== null) {
    const none = fMa === "" || fMa === "null";
    hosts = hosts.filter((h) => (none ? !h.mtls.trust_bundle : h.mtls.trust_bundle === fMa));
  }
  const { page, meta, links } = paginate(ctx, hosts);
  const data = page.map((h) => activationRes(ctx, model, h));
  return doc(data, { ...(inc.size ? { included: includedFor(ctx, model, data, inc) } : {}), meta, links });
}

function getActivation(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const inc = includes(ctx, ["tls_certificate", "tls_configuration", "tls_domain", "mutual_authentication"]);
  const h = model.hosts[findActivation(model, ctx.params.id!)]!;
  const data = activationRes(ctx, model, h);
  return doc(data, inc.size ? { included: includedFor(ctx, model, [data], inc) } : {});
}

async function createActivation(ctx: Ctx): Promise<Reply> {
  const { relationships: rels } = await dataOf(ctx, "tls_activation");
  const certId = toOne(rels, "tls_certificate", "tls_certificate");
  const domain = toOne(rels, "tls_domain", "tls_domain");
  const conf = toOne(rels, "tls_configuration", "tls_configuration");
  const ma = toOne(rels, "mutual_authentication", "mutual_authentication");
  if (!certId) throw badRequest("relationships.tls_certificate is required", "/data/relationships/tls_certificate");
  if (!domain) throw badRequest("relationships.tls_domain is required", "/data/relationships/tls_domain");
  const hostname = domain.toLowerCase();
  const h = await ctx.write(`create tls_activation ${hostname} (certificate ${certId})`, (model) => {
    checkCovers(model, certId, hostname, "/data/relationships/tls_domain/data/id");
    if (conf) checkConfiguration(model, conf);
    if (ma) bundleIndex(model, ma, true);
    const at = now();
    const { i, host: entry } = hostEntry(model, hostname, zoneOwnerOf(model, hostname), at);
    if (entry.certificate) throw new ApiError("conflict", `tls_domain "${hostname}" is already activated (tls_activation "${activationId(model, entry)}")`);
    let next = { ...model, hosts: putHost(model.hosts, i, { ...entry, certificate: certId, updated_at: at }) };
    // Its mutual authentication: the one association operation (a hostname another bundle holds is refused, never moved).
    if (ma) next = { ...next, hosts: associate(next, { bundle: ma, names: [hostname], owner: entry.account_id ?? null, at, replace: false, refuse: (m) => badRequest(m, "/data/relationships/mutual_authentication") }) };
    const rec = model.dialects.fastly.activations[hostname];
    const activation: FastlyActivation = { ...rec, id: rec?.id ?? alnumId(), ...(conf ? { tls_configuration: conf } : {}) };
    next = withFastly(next, { activations: { ...model.dialects.fastly.activations, [hostname]: activation } });
    return { model: next, result: next.hosts.find((x) => x.hostname === hostname)! };
  });
  return doc(activationRes(ctx, ctx.plane.model, h), {}, 201);
}

async function patchActivation(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  const { relationships: rels } = await dataOf(ctx, "tls_activation", id);
  const ma = toOne(rels, "mutual_authentication", "mutual_authentication");
  const certId = toOne(rels, "tls_certificate", "tls_certificate");
  const conf = toOne(rels, "tls_configuration", "tls_configuration");
  if (certId === null) throw badRequest("relationships.tls_certificate cannot be null", "/data/relationships/tls_certificate");
  if (ma === undefined && certId === undefined && conf === undefined) throw badRequest("nothing to update: give relationships.mutual_authentication (or null), tls_certificate or tls_configuration");
  const summary = `update tls_activation ${id}: ` + [ma !== undefined ? `mutual_authentication=${ma ?? "null"}` : "", certId ? `tls_certificate=${certId}` : "", conf !== undefined ? `tls_configuration=${conf ?? "default"}` : ""].filter(Boolean).join(" ");
  const h = await ctx.write(summary, (model) => {
    const i = findActivation(model, id);
    let h = model.hosts[i]!;
    const at = now();
    if (ma !== undefined) {
      if (ma) bundleIndex(model, ma, true);
      h = setHostBundle(h, ma, at);
    }
    if (certId) {
      checkCovers(model, certId, h.hostname, "/data/relationships/tls_certificate/data/id");
      h = { ...h, certificate: certId, updated_at: at };
    }
    let next = model;
    if (conf !== undefined) {
      if (conf) checkConfiguration(model, conf);
      const { tls_configuration: _unset, ...rest } = activationOf(model, h);
      next = withFastly(model, { activations: { ...model.dialects.fastly.activations, [h.hostname]: { ...rest, ...(conf ? { tls_configuration: conf } : {}) } } });
      h = { ...h, updated_at: at };
    }
    return { model: { ...next, hosts: replaceAt(model.hosts, i, h) }, result: h };
  });
  return doc(activationRes(ctx, ctx.plane.model, h));
}

async function deleteActivation(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  await ctx.write(`delete tls_activation ${id}`, (model) => {
    const i = findActivation(model, id);
    const hostname = model.hosts[i]!.hostname;
    if (model.routes.some((r) => r.hostname === hostname) && !model.certificates.some((c) => covers(certInfo(c.cert!).names, hostname)) && !model.default_certificate)
      throw new ApiError("conflict", `routes still use "${hostname}" and no other certificate covers it`);
    return { model: { ...model, hosts: removeAt(model.hosts, i) }, result: null };
  });
  return { status: 204 };
}

// mutual authentications

function listMutualAuths(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const inc = includes(ctx, ["tls_activations"]);
  const { page, meta, links } = paginate(ctx, model.trust_bundles);
  const data = page.map((b) => mutualAuthRes(model, b));
  return doc(data, { ...(inc.size ? { included: includedFor(ctx, model, data, inc) } : {}), meta, links });
}

function getMutualAuth(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const inc = includes(ctx, ["tls_activations"]);
  const b = model.trust_bundles[bundleIndex(model, ctx.params.id!)]!;
  const data = mutualAuthRes(model, b);
  return doc(data, inc.size ? { included: includedFor(ctx, model, [data], inc) } : {});
}

async function createMutualAuth(ctx: Ctx): Promise<Reply> {
  const { attributes: a, relationships: rels } = await dataOf(ctx, "mutual_authentication");
  const { cert_bundle: ca, enforced = true, name } = parseRequest(MutualAuthCreate, a);
  caBundle(ca, "/data/attributes/cert_bundle");
  const activations = toMany(rels, "tls_activations", "tls_activation") ?? [];
  const b = await ctx.write(`create mutual_authentication ${name ?? ""}`.trim(), (model) => {
    const id = alnumId();
    const at = now();
    const { model: next, bundle } = addBundle(model, { id, name: name ?? `mutual-authentication-${id.slice(0, 8).toLowerCase()}`, ca, enforced }, at);
    const names = activations.map((aid) => {
      const h = model.hosts.find((x) => activationId(model, x) === aid);
      if (!h) throw badRequest(`tls_activation "${aid}" not found`, "/data/relationships/tls_activations");
      return h.hostname;
    });
    const pointer = "/data/relationships/tls_activations";
    const hosts = associate(next, { bundle: id, names, owner: null, at, replace: false, claim: (n) => claimable(ctx.principal, next, n), refuse: (m) => badRequest(m, pointer) });
    return { model: { ...next, hosts }, result: bundle };
  });
  return doc(mutualAuthRes(ctx.plane.model, b), {}, 201);
}

async function patchMutualAuth(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  const { attributes: a } = await dataOf(ctx, "mutual_authentication", id);
  const { cert_bundle: ca, enforced, name } = parseRequest(MutualAuthPatch, a);
  if (ca !== undefined) caBundle(ca, "/data/attributes/cert_bundle");
  const summary = `update mutual_authentication ${id}: ${[ca !== undefined ? "cert_bundle" : "", enforced !== undefined ? `enforced=${enforced}` : "", name !== undefined ? "name" : ""].filter(Boolean).join(" ")}`;
  const b = await ctx.write(summary, (model) => {
    const i = bundleIndex(model, id);
    if (ca !== undefined && model.trust_bundles[i]!.ca_file) throw fileBackedConflict("trust_bundles", model.trust_bundles[i]!, "ca_file", "/data/attributes/cert_bundle");
    const b: TrustBundle = { ...model.trust_bundles[i]!, ...(ca !== undefined ? { ca } : {}), ...(enforced !== undefined ? { enforced } : {}), ...(name !== undefined ? { name } : {}), updated_at: now() };
    return { model: { ...model, trust_bundles: replaceAt(model.trust_bundles, i, b) }, result: b };
  });
  return doc(mutualAuthRes(ctx.plane.model, b));
}

async function deleteMutualAuth(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  await ctx.write(`delete mutual_authentication ${id}`, (model) => {
    const refuse = (users: Host[]) =>
      new ApiError("conflict", `mutual_authentication "${id}" is in use by ${users.length} tls_activation(s) (${users.slice(0, 5).map((h) => h.hostname).join(", ")}); PATCH them with mutual_authentication null first`);
    return { model: removeBundle(model, bundleIndex(model, id), refuse), result: null };
  });
  return { status: 204 };
}

// certificates

function listCertificates(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  let certs = model.certificates;
  const fDomain = ctx.query("filter[tls_domains.id]");
  const fNotAfter = ctx.query("filter[not_after]");
  if (fDomain !== null) certs = certs.filter((c) => certInfo(c.cert!).names.includes(fDomain.toLowerCase()));
  if (fNotAfter !== null) certs = certs.filter((c) => certInfo(c.cert!).not_after <= fNotAfter);
  const inc = includes(ctx, ["tls_domains"]);
  const { page, meta, links } = paginate(ctx, certs);
  const data = page.map(certRes);
  return doc(data, { ...(inc.size ? { included: includedFor(ctx, model, data, inc) } : {}), meta, links });
}

function getCertificate(ctx: Ctx): Reply {
  const c = ctx.plane.model.certificates.find((x) => x.id === ctx.params.id);
  if (!c) throw notFound("tls_certificate", ctx.params.id!);
  return doc(certRes(c));
}

/** The key for a certificate: a pending one (consumed) or the key of a certificate sharing it. */
function keyFor(model: Model, pem: string): { key: string; private_key_id: string; private_key_name: string; pending: number } {
  const want = certInfo(pem).public_key_sha1;
  const pending = model.dialects.fastly.pending_private_keys;
  const p = pending.findIndex((k) => keyInfo(k.key).public_key_sha1 === want);
  if (p >= 0) {
    const k = pending[p]!;
    return { key: k.key, private_key_id: k.id, private_key_name: k.name, pending: p };
  }
  const kv = keys(model).find((k) => keyInfo(k.pem).public_key_sha1 === want);
  if (kv) return { key: kv.pem, private_key_id: kv.id, private_key_name: kv.name, pending: -1 };
  throw new ApiError("invalid_key", "no uploaded private key matches this certificate's public key; POST it to /tls/private_keys first", "/data/attributes/cert_blob");
}

/** Records that certificate `id` holds key `k` (its Fastly id and name), consuming it when it was pending. */
function withKey(model: Model, id: string, k: ReturnType<typeof keyFor>): Model {
  const f = model.dialects.fastly;
  return withFastly(model, {
    certificates: { ...f.certificates, [id]: { private_key_id: k.private_key_id, private_key_name: k.private_key_name } },
    ...(k.pending >= 0 ? { pending_private_keys: removeAt(f.pending_private_keys, k.pending) } : {}),
  });
}

async function createCertificate(ctx: Ctx): Promise<Reply> {
  const { attributes: a } = await dataOf(ctx, "tls_certificate");
  const { cert_blob: blob, name } = parseRequest(CertificateCreate, a);
  const info = certInfo(blob, "/data/attributes/cert_blob");
  if (!info.names.length) throw new ApiError("invalid_certificate", "the certificate has no DNS names in subjectAltName", "/data/attributes/cert_blob");
  const c = await ctx.write(`create tls_certificate ${name ?? info.issued_to}`, (model) => {
    const k = keyFor(model, blob);
    const at = now();
    const cert = { id: alnumId(), name: name ?? info.issued_to, cert: blob, key: k.key, created_at: at, updated_at: at };
    return { model: { ...withKey(model, cert.id, k), certificates: [...model.certificates, cert] }, result: cert };
  });
  return doc(certRes(c), {}, 201);
}

async function patchCertificate(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  const { attributes: a } = await dataOf(ctx, "tls_certificate", id);
  const { cert_blob: blob, name } = parseRequest(CertificatePatch, a);
  if (blob !== undefined) certInfo(blob, "/data/attributes/cert_blob");
  const c = await ctx.write(`update tls_certificate ${id}${blob ? " (new cert_blob)" : ""}`, (model) => {
    const i = model.certificates.findIndex((x) => x.id === id);
    if (i < 0) throw notFound("tls_certificate", id);
    if (blob !== undefined && model.certificates[i]!.cert_file) throw fileBackedConflict("certificates", model.certificates[i]!, "cert_file", "/data/attributes/cert_blob");
    let c = { ...model.certificates[i]!, ...(name !== undefined ? { name } : {}), updated_at: now() };
    let next = model;
    if (blob !== undefined) {
      const k = keyFor(model, blob);
      c = { ...c, cert: blob, key: k.key };
      next = withKey(model, id, k);
      // Activations pinning it must still be covered by the new names.
      const names = certInfo(blob).names;
      const lost = model.hosts.filter((h) => h.certificate === id && !covers(names, h.hostname));
      if (lost.length) throw badRequest(`the new certificate does not cover activated domain(s) ${lost.map((h) => h.hostname).join(", ")}`, "/data/attributes/cert_blob");
    }
    return { model: { ...next, certificates: replaceAt(model.certificates, i, c) }, result: c };
  });
  return doc(certRes(c));
}

async function deleteCertificate(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  await ctx.write(`delete tls_certificate ${id}`, (model) => {
    const i = model.certificates.findIndex((x) => x.id === id);
    if (i < 0) throw notFound("tls_certificate", id);
    const users = model.hosts.filter((h) => h.certificate === id);
    if (users.length) throw new ApiError("conflict", `tls_certificate "${id}" is used by ${users.length} tls_activation(s); delete them first`);
    if (model.default_certificate === id) throw new ApiError("conflict", `tls_certificate "${id}" is the default certificate`);
    if (model.routes.some((r) => r.origin_tls?.client_certificate === id)) throw new ApiError("conflict", `tls_certificate "${id}" is presented to an origin by a route`);
    return { model: { ...model, certificates: removeAt(model.certificates, i) }, result: null };
  });
  return { status: 204 };
}

// private keys

function listKeys(ctx: Ctx): Reply {
  let list = keys(ctx.plane.model);
  const inUse = ctx.query("filter[in_use]");
  if (inUse !== null) list = list.filter((k) => String(k.in_use) === inUse);
  const { page, meta, links } = paginate(ctx, list);
  return doc(page.map(keyRes), { meta, links });
}

function getKey(ctx: Ctx): Reply {
  const k = keys(ctx.plane.model).find((x) => x.id === ctx.params.id);
  if (!k) throw notFound("tls_private_key", ctx.params.id!);
  return doc(keyRes(k));
}

async function createKey(ctx: Ctx): Promise<Reply> {
  const { attributes: a } = await dataOf(ctx, "tls_private_key");
  const { key: pem, name = "" } = parseRequest(PrivateKeyCreate, a);
  const info = keyInfo(pem, "/data/attributes/key");
  const k = await ctx.write(`create tls_private_key ${name} (${info.key_type} ${info.key_length})`, (model) => {
    if (keys(model).some((x) => keyInfo(x.pem).public_key_sha1 === info.public_key_sha1)) throw new ApiError("conflict", "this private key has already been uploaded");
    const k = { id: alnumId(), name, key: pem, created_at: now() };
    return { model: withFastly(model, { pending_private_keys: [...model.dialects.fastly.pending_private_keys, k] }), result: k };
  });
  return doc(keyRes({ id: k.id, name: k.name, pem: k.key, created_at: k.created_at, in_use: false }), {}, 201);
}

async function deleteKey(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  await ctx.write(`delete tls_private_key ${id}`, (model) => {
    const k = keys(model).find((x) => x.id === id);
    if (!k) throw notFound("tls_private_key", id);
    if (k.in_use) throw new ApiError("conflict", `tls_private_key "${id}" is in use by a certificate; delete the certificate first`);
    return { model: withFastly(model, { pending_private_keys: model.dialects.fastly.pending_private_keys.filter((x) => x.id !== id) }), result: null };
  });
  return { status: 204 };
}

// domains and configurations

function listDomains(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  let list = domains(model);
  const inUse = ctx.query("filter[in_use]");
  const fCert = ctx.query("filter[tls_certificates.id]");
  if (inUse !== null) list = list.filter((d) => String(model.hosts.some((h) => h.hostname === d)) === inUse);
  if (fCert !== null) {
    const c = model.certificates.find((x) => x.id === fCert);
    list = c ? list.filter((d) => certInfo(c.cert!).names.includes(d)) : [];
  }
  const inc = includes(ctx, ["tls_activations", "tls_certificates"]);
  const { page, meta, links } = paginate(ctx, list);
  const data = page.map((d) => domainRes(model, d));
  return doc(data, { ...(inc.size ? { included: includedFor(ctx, model, data, inc) } : {}), meta, links });
}

function listConfigurations(ctx: Ctx): Reply {
  const { page, meta, links } = paginate(ctx, configurations(ctx.plane.model));
  return doc(page.map(configRes), { meta, links });
}

function getConfiguration(ctx: Ctx): Reply {
  const c = configurations(ctx.plane.model).find((x) => x.id === ctx.params.id);
  if (!c) throw notFound("tls_configuration", ctx.params.id!);
  return doc(configRes(c));
}

async function patchConfiguration(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  const { attributes: a } = await dataOf(ctx, "tls_configuration", id);
  const { name } = parseRequest(ConfigurationPatch, a);
  const c = await ctx.write(`update tls_configuration ${id}: name`, (model) => {
    const all = configurations(model);
    const cur = all.find((x) => x.id === id);
    if (!cur) throw notFound("tls_configuration", id);
    const at = now();
    const next = { id, name, default: cur.default, created_at: cur.created_at ?? at, updated_at: at };
    const list = model.dialects.fastly.tls_configurations;
    const i = list.findIndex((x) => x.id === id);
    return { model: withFastly(model, { tls_configurations: i >= 0 ? replaceAt(list, i, next) : [...list, next] }), result: next };
  });
  return doc(configRes(c));
}

export const FASTLY_ROUTES: RouteDef[] = [
  { method: "GET", path: "/tls/activations", handler: listActivations },
  { method: "POST", path: "/tls/activations", handler: createActivation },
  { method: "GET", path: "/tls/activations/:id", handler: getActivation },
  { method: "PATCH", path: "/tls/activations/:id", handler: patchActivation },
  { method: "DELETE", path: "/tls/activations/:id", handler: deleteActivation },
  { method: "GET", path: "/tls/mutual_authentications", handler: listMutualAuths },
  { method: "POST", path: "/tls/mutual_authentications", handler: createMutualAuth },
  { method: "GET", path: "/tls/mutual_authentications/:id", handler: getMutualAuth },
  { method: "PATCH", path: "/tls/mutual_authentications/:id", handler: patchMutualAuth },
  { method: "DELETE", path: "/tls/mutual_authentications/:id", handler: deleteMutualAuth },
  { method: "GET", path: "/tls/certificates", handler: listCertificates },
  { method: "POST", path: "/tls/certificates", handler: createCertificate },
  { method: "GET", path: "/tls/certificates/:id", handler: getCertificate },
  { method: "PATCH", path: "/tls/certificates/:id", handler: patchCertificate },
  { method: "DELETE", path: "/tls/certificates/:id", handler: deleteCertificate },
  { method: "GET", path: "/tls/private_keys", handler: listKeys },
  { method: "POST", path: "/tls/private_keys", handler: createKey },
  { method: "GET", path: "/tls/private_keys/:id", handler: getKey },
  { method: "DELETE", path: "/tls/private_keys/:id", handler: deleteKey },
  { method: "GET", path: "/tls/domains", handler: listDomains },
  { method: "GET", path: "/tls/configurations", handler: listConfigurations },
  { method: "GET", path: "/tls/configurations/:id", handler: getConfiguration },
  { method: "PATCH", path: "/tls/configurations/:id", handler: patchConfiguration },
];
