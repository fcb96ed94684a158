// The Cloudflare dialect ({success, errors, messages, result, result_info}): Access mTLS
// certificates and hostname settings, zones, and the custom-rules phase entrypoint.
//
//   Access certificate       = trust_bundles[] (enforced: true, account_id = the account);
//                              associated_hostnames = hosts[] whose mtls.trust_bundle is it
//   hostname settings        = hosts[]: client_certificate_forwarding = forward_client_cert.cloudflare,
//                              china_network = dialects.cloudflare.hostnames[] (stored, returned, no effect)
//   zone                     = zones[] (account_id); its custom rules ruleset = zones[].rules
//                              (+ dialects.cloudflare.zones[]: the ruleset's id, name, description,
//                              version, and each rule's version, ref, last change: records.ts)
// (render.ts: the envelope and objects; schemas.ts: request bodies; clientcerts.ts: the managed CA API.)
import { randomBytes } from "node:crypto";
import type { Host, Model, Rule, TrustBundle, Zone } from "../../model/schema.ts";
import { ApiError, badRequest, notFound } from "../../control/apierrors.ts";
import { intParam, isObject, objectBody, type Ctx, type Reply, type RouteDef } from "../../control/http.ts";
import { parseRequest } from "../../control/request.ts";
import { AccessCertCreate, AccessCertUpdate, CfRule, EntrypointPut, SettingsPut, ZoneCreate } from "./schemas.ts";
import type { RuleMeta, Ruleset } from "./records.ts";
import { accessCertRes, ok, PHASE, rulesetOf, rulesetRes, view, zoneRes, type CfZone } from "./render.ts";
import { canRead, claimable, requireAccount } from "../../control/ownership.ts";
import { now } from "../../control/writepath.ts";
import { addBundle, associate, hostEntry, putHost, removeAt, removeBundle, replaceAt, withDialect } from "../../model/ops.ts";
import { caBundle } from "../../control/certinfo.ts";
import { fileBackedConflict } from "../../control/filesource.ts";


/** A Cloudflare-style id (32 hex digits). */
export const hexId = (): string => randomBytes(16).toString("hex");

export function page<T>(ctx: Ctx, items: T[], dflt: number, min: number, max: number): { items: T[]; info: Record<string, number> } {
  const per_page = intParam(ctx, "per_page", dflt, min, max);
  const p = intParam(ctx, "page", 1, 1, 1_000_000);
  const slice = items.slice((p - 1) * per_page, p * per_page);
  return { items: slice, info: { page: p, per_page, count: slice.length, total_count: items.length, total_pages: Math.max(1, Math.ceil(items.length / per_page)) } };
}



// ---- Access certificates ---------------------------------------------------------------

/**
 * What /accounts/{account}/... shows: the account's objects, and to a global token also the
 * operator's (which belong to no account); an account token never sees another owner's.
 */
function visible(ctx: Ctx, o: { account_id?: string }, account: string): boolean {
  return o.account_id === account || (o.account_id === undefined && ctx.principal.account_id === null);
}

/** 403 when an account token names an object of another owner (it is told no more than that). */
export function refuseForeign(ctx: Ctx, o: { account_id?: string } | undefined, what: string, id: string): void {
  if (o && !canRead(ctx.principal, o.account_id ?? null)) throw new ApiError("forbidden", `${what} "${id}" is not in account ${ctx.principal.account_id}`);
}

/** 403 for an object of another owner that an account token names; 404 when it is simply not in this account. */
function hidden(ctx: Ctx, o: { account_id?: string } | undefined, what: string, id: string): ApiError {
  refuseForeign(ctx, o, what, id);
  return notFound(what, id);
}

function findBundle(ctx: Ctx, model: Model, account: string, id: string): number {
  const i = model.trust_bundles.findIndex((b) => b.id === id);
  if (i < 0 || !visible(ctx, model.trust_bundles[i]!, account)) throw hidden(ctx, model.trust_bundles[i], "access certificate", id);
  return i;
}

/** associated_hostnames: exactly these hostnames use the bundle (new host entries are the bundle owner's). */
function associateAll(ctx: Ctx, model: Model, b: TrustBundle, names: string[], at: string): Host[] {
  return associate(model, { bundle: b.id, names, owner: b.account_id ?? null, at, replace: true, claim: (n) => claimable(ctx.principal, model, n), refuse: (m) => badRequest(m, "associated_hostnames") });
}

function listAccessCerts(ctx: Ctx): Reply {
  const acc = ctx.params.account_id!;
  const model = ctx.plane.model;
  const { items, info } = page(ctx, model.trust_bundles.filter((b) => visible(ctx, b, acc)), 50, 1, 1000);
  return ok(items.map((b) => accessCertRes(model, b)), 200, info);
}

function getAccessCert(ctx: Ctx): Reply {
  const acc = ctx.params.account_id!;
  const model = ctx.plane.model;
  return ok(accessCertRes(model, model.trust_bundles[findBundle(ctx, model, acc, ctx.params.id!)]!));
}

async function createAccessCert(ctx: Ctx): Promise<Reply> {
  const acc = ctx.params.account_id!;
  const { name, certificate: ca, associated_hostnames: names = [] } = parseRequest(AccessCertCreate, await objectBody(ctx));
  caBundle(ca, "certificate");
  const bundle = await ctx.write(`create access certificate ${name} (${names.length} hostnames)`, (model) => {
    if (model.trust_bundles.some((x) => x.name === name && x.account_id === acc)) throw new ApiError("conflict", `an access certificate named "${name}" already exists`);
    const at = now();
    const { model: withBundle, bundle } = addBundle(model, { id: crypto.randomUUID(), name, ca, enforced: true, account_id: acc }, at);
    return { model: { ...withBundle, hosts: associateAll(ctx, withBundle, bundle, names, at) }, result: bundle };
  });
  return ok(accessCertRes(ctx.plane.model, bundle), 201);
}

async function updateAccessCert(ctx: Ctx): Promise<Reply> {
  const acc = ctx.params.account_id!;
  const id = ctx.params.id!;
  const { name, certificate: ca, associated_hostnames: names } = parseRequest(AccessCertUpdate, await objectBody(ctx));
  if (ca !== undefined) caBundle(ca, "certificate");
  const bundle = await ctx.write(`update access certificate ${id}`, (model) => {
    const i = findBundle(ctx, model, acc, id);
    if (ca !== undefined && model.trust_bundles[i]!.ca_file) throw fileBackedConflict("trust_bundles", model.trust_bundles[i]!, "ca_file", "certificate");
    const at = now();
    const bundle: TrustBundle = { ...model.trust_bundles[i]!, ...(name !== undefined ? { name } : {}), ...(ca !== undefined ? { ca } : {}), updated_at: at };
    const next = { ...model, trust_bundles: replaceAt(model.trust_bundles, i, bundle) };
    return { model: names ? { ...next, hosts: associateAll(ctx, next, bundle, names, at) } : next, result: bundle };
  });
  return ok(accessCertRes(ctx.plane.model, bundle));
}

async function deleteAccessCert(ctx: Ctx): Promise<Reply> {
  const acc = ctx.params.account_id!;
  const id = ctx.params.id!;
  await ctx.write(`delete access certificate ${id}`, (model) => {
    const i = findBundle(ctx, model, acc, id);
    const refuse = (users: Host[]) => badRequest(`certificate "${id}" still has associated hostnames (${users.map((h) => h.hostname).slice(0, 5).join(", ")}); update it with associated_hostnames [] first`);
    return { model: removeBundle(model, i, refuse), result: null };
  });
  return ok({ id });
}

function settingsOf(ctx: Ctx, model: Model, account: string): Record<string, unknown>[] {
  return model.hosts
    .filter((h) => visible(ctx, h, account))
    .map((h) => ({ hostname: h.hostname, china_network: model.dialects.cloudflare.hostnames[h.hostname]?.china_network ?? false, client_certificate_forwarding: h.forward_client_cert.cloudflare }));
}

function getSettings(ctx: Ctx): Reply {
  const acc = ctx.params.account_id!;
  return ok(settingsOf(ctx, ctx.plane.model, acc));
}

async function putSettings(ctx: Ctx): Promise<Reply> {
  const acc = ctx.params.account_id!;
  const settings = parseRequest(SettingsPut, await objectBody(ctx)).settings.map((s) => ({ hostname: s.hostname, china_network: s.china_network, forwarding: s.client_certificate_forwarding }));
  await ctx.write(`update access certificate settings (${settings.map((s) => s.hostname).join(", ")})`, (model) => {
    let m = model;
    const records = { ...model.dialects.cloudflare.hostnames };
    const at = now();
    for (const s of settings) {
      const { i, host: h } = hostEntry(m, s.hostname, acc, at);
      m = { ...m, hosts: putHost(m.hosts, i, { ...h, forward_client_cert: { ...h.forward_client_cert, cloudflare: s.forwarding }, updated_at: at }) };
      records[s.hostname] = { ...records[s.hostname], china_network: s.china_network };
    }
    return { model: withDialect(m, "cloudflare", { ...model.dialects.cloudflare, hostnames: records }), result: null };
  });
  return ok(settingsOf(ctx, ctx.plane.model, acc), 202);
}

// ---- zones -----------------------------------------------------------------------------

export function findZone(ctx: Ctx, model: Model, id: string): number {
  const i = model.zones.findIndex((z) => z.id === id);
  if (i < 0 || !canRead(ctx.principal, model.zones[i]!.account_id ?? null)) throw hidden(ctx, model.zones[i], "zone", id);
  return i;
}

function listZones(ctx: Ctx): Reply {
  let zones = ctx.plane.model.zones.filter((z) => canRead(ctx.principal, z.account_id ?? null));
  const name = ctx.query("name");
  const acc = ctx.query("account.id");
  if (name !== null) zones = zones.filter((z) => z.name === name.toLowerCase());
  if (acc !== null) zones = zones.filter((z) => z.account_id === acc);
  const { items, info } = page(ctx, zones, 20, 5, 50);
  return ok(items.map(zoneRes), 200, info);
}

function getZone(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  return ok(zoneRes(model.zones[findZone(ctx, model, ctx.params.zone_id!)]!));
}

async function createZone(ctx: Ctx): Promise<Reply> {
  const { name, account } = parseRequest(ZoneCreate, await objectBody(ctx));
  const acc = account.id ?? ctx.principal.account_id ?? undefined;
  requireAccount(ctx.principal, acc);
  const z = await ctx.write(`create zone ${name}`, (model) => {
    // Another account's zone of that name is refused by the ownership check (403) without saying it exists.
    if (model.zones.some((x) => x.name === name && canRead(ctx.principal, x.account_id ?? null))) throw new ApiError("conflict", `zone "${name}" already exists`);
    const at = now();
    const zone: Zone = { id: hexId(), name, rules: [], ...(acc ? { account_id: acc } : {}), created_at: at, updated_at: at };
    return { model: { ...model, zones: [...model.zones, zone] }, result: zone };
  });
  return ok(zoneRes(z));
}

async function deleteZone(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.zone_id!;
  await ctx.write(`delete zone ${id}`, (model) => ({ model: { ...model, zones: removeAt(model.zones, findZone(ctx, model, id)) }, result: null }));
  return ok({ id });
}

// ---- custom rules ----------------------------------------------------------------------

/** The model with zones[i] replaced by `z`: the core zone, and the dialect's record of it. */
function commit(model: Model, i: number, z: CfZone): Model {
  const { ruleset, meta, ...zone } = z;
  const rules = Object.fromEntries(zone.rules.flatMap((r) => (meta[r.id] ? [[r.id, meta[r.id]!]] : [])));
  const cf = model.dialects.cloudflare;
  const next = withDialect(model, "cloudflare", { ...cf, zones: { ...cf.zones, [zone.id]: { ...(ruleset ? { ruleset } : {}), rules } } });
  return { ...next, zones: replaceAt(model.zones, i, zone) };
}

/** A Cloudflare rule object → a model rule (validated by the schema and compiled on write). */
function ruleFrom(v: unknown, pointer: string, prev: { rule: Rule; meta: RuleMeta } | undefined, at: string): { rule: Rule; meta: RuleMeta } {
  const p = prev?.rule;
  const pm = prev?.meta ?? {};
  const r = parseRequest(CfRule, v, pointer);
  let action = r.action ?? p?.action;
  if (action === "skip") action = "allow";
  if (action !== "block" && action !== "allow" && action !== "log")
    throw badRequest(`${pointer}.action must be one of block, log, allow (skip is taken as allow), got ${JSON.stringify(action ?? null)}`, `${pointer}.action`);
  const expression = r.expression ?? p?.expression;
  if (!expression) throw badRequest(`${pointer}.expression is required`, `${pointer}.expression`);
  let response = p?.response;
  if (r.action_parameters !== undefined) {
    const res = r.action_parameters?.response;
    if (!res) response = undefined;
    else {
      if (action !== "block") throw badRequest(`${pointer}.action_parameters.response is only valid with action block`, `${pointer}.action_parameters.response`);
      response = { status: res.status_code ?? 403, content_type: res.content_type ?? "text/plain; charset=utf-8", body: res.content ?? "Forbidden\n" };
    }
  }
  const id = r.id ?? p?.id ?? hexId();
  const ref = r.ref ?? pm.ref;
  const changed = !p || JSON.stringify([p.action, p.expression, p.response]) !== JSON.stringify([action, expression, response]) || r.enabled !== undefined || r.description !== undefined;
  return {
    rule: { id, expression, action, description: r.description ?? p?.description ?? "", enabled: r.enabled ?? p?.enabled ?? true, ...(response ? { response } : {}) },
    meta: {
      version: p ? (changed ? String(Number(pm.version ?? "1") + 1) : (pm.version ?? "1")) : "1",
      ...(ref ? { ref } : {}),
      last_updated: changed ? at : (pm.last_updated ?? at),
    },
  };
}

function bumpRuleset(z: CfZone, at: string, extra: Partial<Ruleset> = {}): Ruleset {
  const rs = rulesetOf(z);
  return {
    id: rs?.id ?? hexId(),
    name: rs?.name ?? "default",
    description: rs?.description ?? "",
    ...extra,
    version: rs ? String(Number(rs.version) + 1) : "1",
    last_updated: at,
  };
}

function checkPhase(ctx: Ctx): void {
  if (ctx.params.phase !== PHASE) throw notFound("ruleset phase entrypoint", ctx.params.phase!);
}

function getEntrypoint(ctx: Ctx): Reply {
  checkPhase(ctx);
  const model = ctx.plane.model;
  const z = view(model, model.zones[findZone(ctx, model, ctx.params.zone_id!)]!);
  if (!rulesetOf(z)) throw new ApiError("not_found", `zone "${z.id}" has no ${PHASE} entrypoint ruleset yet; PUT one`);
  return ok(rulesetRes(z));
}

async function putEntrypoint(ctx: Ctx): Promise<Reply> {
  checkPhase(ctx);
  const zoneId = ctx.params.zone_id!;
  const b = parseRequest(EntrypointPut, await objectBody(ctx));
  const { name, description } = b;
  const z = await ctx.write(`replace ${PHASE} entrypoint of zone ${zoneId} (${b.rules?.length ?? 0} rules)`, (model) => {
    const i = findZone(ctx, model, zoneId);
    const z = view(model, model.zones[i]!);
    const at = now();
    const byId = new Map(z.rules.map((r) => [r.id, { rule: r, meta: z.meta[r.id] ?? {} }]));
    const parsed = (b.rules ?? []).map((r, j) => ruleFrom(r, `rules[${j}]`, isObject(r) && typeof r.id === "string" ? byId.get(r.id) : undefined, at));
    const ids = new Set<string>();
    for (const { rule: r } of parsed) {
      if (ids.has(r.id)) throw badRequest(`duplicate rule id "${r.id}"`, "rules");
      ids.add(r.id);
    }
    const rules = parsed.map((x) => x.rule);
    const meta = Object.fromEntries(parsed.map((x) => [x.rule.id, x.meta]));
    const next: CfZone = { ...z, rules, meta, ruleset: bumpRuleset(z, at, { ...(name !== undefined ? { name } : {}), ...(description !== undefined ? { description } : {}) }), updated_at: at };
    return { model: commit(model, i, next), result: next };
  });
  return ok(rulesetRes(z));
}

function zoneWithRuleset(ctx: Ctx, model: Model): { i: number; z: CfZone } {
  const i = findZone(ctx, model, ctx.params.zone_id!);
  const z = view(model, model.zones[i]!);
  if (rulesetOf(z)?.id !== ctx.params.ruleset_id) throw notFound("ruleset", ctx.params.ruleset_id!);
  return { i, z };
}

/** The rule of the path's rule_id in the zone's ruleset: the zone and the rule's index. */
function zoneWithRule(ctx: Ctx, model: Model): { i: number; z: CfZone; k: number } {
  const { i, z } = zoneWithRuleset(ctx, model);
  const k = z.rules.findIndex((r) => r.id === ctx.params.rule_id);
  if (k < 0) throw notFound("rule", ctx.params.rule_id!);
  return { i, z, k };
}

function getRuleset(ctx: Ctx): Reply {
  return ok(rulesetRes(zoneWithRuleset(ctx, ctx.plane.model).z));
}

function listRulesets(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const z = view(model, model.zones[findZone(ctx, model, ctx.params.zone_id!)]!);
  if (!rulesetOf(z)) return ok([]);
  const { rules: _rules, ...summary } = rulesetRes(z);
  return ok([summary]);
}

async function addRule(ctx: Ctx): Promise<Reply> {
  const b = await objectBody(ctx);
  const z = await ctx.write(`add rule to ruleset ${ctx.params.ruleset_id} of zone ${ctx.params.zone_id}`, (model) => {
    const { i, z } = zoneWithRuleset(ctx, model);
    const at = now();
    const { rule, meta } = ruleFrom({ ...b, position: undefined }, "rule", undefined, at);
    if (z.rules.some((r) => r.id === rule.id)) throw new ApiError("conflict", `rule "${rule.id}" already exists`);
    let at_ = z.rules.length;
    const pos = b.position;
    if (isObject(pos)) {
      if (typeof pos.index === "number") at_ = Math.max(0, Math.min(z.rules.length, pos.index - 1));
      else if (typeof pos.before === "string" || typeof pos.after === "string") {
        const k = z.rules.findIndex((r) => r.id === (pos.before ?? pos.after));
        if (k < 0) throw badRequest(`position refers to unknown rule "${String(pos.before ?? pos.after)}"`, "position");
        at_ = typeof pos.before === "string" ? k : k + 1;
      }
    }
    const rules = [...z.rules.slice(0, at_), rule, ...z.rules.slice(at_)];
    const next: CfZone = { ...z, rules, meta: { ...z.meta, [rule.id]: meta }, ruleset: bumpRuleset(z, at), updated_at: at };
    return { model: commit(model, i, next), result: next };
  });
  return ok(rulesetRes(z));
}

async function patchRule(ctx: Ctx): Promise<Reply> {
  const b = await objectBody(ctx);
  const ruleId = ctx.params.rule_id!;
  const z = await ctx.write(`update rule ${ruleId} of zone ${ctx.params.zone_id}`, (model) => {
    const { i, z, k } = zoneWithRule(ctx, model);
    const at = now();
    const { rule, meta } = ruleFrom({ ...b, id: ruleId, position: undefined }, "rule", { rule: z.rules[k]!, meta: z.meta[ruleId] ?? {} }, at);
    const next: CfZone = { ...z, rules: replaceAt(z.rules, k, rule), meta: { ...z.meta, [ruleId]: meta }, ruleset: bumpRuleset(z, at), updated_at: at };
    return { model: commit(model, i, next), result: next };
  });
  return ok(rulesetRes(z));
}

async function deleteRule(ctx: Ctx): Promise<Reply> {
  const ruleId = ctx.params.rule_id!;
  const z = await ctx.write(`delete rule ${ruleId} of zone ${ctx.params.zone_id}`, (model) => {
    const { i, z, k } = zoneWithRule(ctx, model);
    const at = now();
    const next: CfZone = { ...z, rules: removeAt(z.rules, k), ruleset: bumpRuleset(z, at), updated_at: at };
    return { model: commit(model, i, next), result: next };
  });
  return ok(rulesetRes(z));
}

export const CLOUDFLARE_ROUTES: RouteDef[] = [
  { method: "GET", path: "/accounts/:account_id/access/certificates/settings", handler: getSettings },
  { method: "PUT", path: "/accounts/:account_id/access/certificates/settings", handler: putSettings },
  { method: "GET", path: "/accounts/:account_id/access/certificates", handler: listAccessCerts },
  { method: "POST", path: "/accounts/:account_id/access/certificates", handler: createAccessCert },
  { method: "GET", path: "/accounts/:account_id/access/certificates/:id", handler: getAccessCert },
  { method: "PUT", path: "/accounts/:account_id/access/certificates/:id", handler: updateAccessCert },
  { method: "DELETE", path: "/accounts/:account_id/access/certificates/:id", handler: deleteAccessCert },
  { method: "GET", path: "/zones", handler: listZones },
  { method: "POST", path: "/zones", handler: createZone },
  { method: "GET", path: "/zones/:zone_id", handler: getZone },
  { method: "DELETE", path: "/zones/:zone_id", handler: deleteZone },
  { method: "GET", path: "/zones/:zone_id/rulesets", handler: listRulesets },
  { method: "GET", path: "/zones/:zone_id/rulesets/phases/:phase/entrypoint", handler: getEntrypoint },
  { method: "PUT", path: "/zones/:zone_id/rulesets/phases/:phase/entrypoint", handler: putEntrypoint },
  { method: "GET", path: "/zones/:zone_id/rulesets/:ruleset_id", handler: getRuleset },
  { method: "POST", path: "/zones/:zone_id/rulesets/:ruleset_id/rules", handler: addRule },
  { method: "PATCH", path: "/zones/:zone_id/rulesets/:ruleset_id/rules/:rule_id", handler: patchRule },
  { method: "DELETE", path: "/zones/:zone_id/rulesets/:ruleset_id/rules/:rule_id", handler: deleteRule },
].map((r) => ({ ...r, accountScoped: true }));
