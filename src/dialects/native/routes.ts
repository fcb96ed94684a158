// The native API: what no vendor dialect covers. Routes, the whole model (the bootstrap file's
// shape) as JSON or YAML, scoped tokens, and the audit log. Errors: {error: {code, message}}.
import { stringify as toYaml } from "yaml";
import type { Model, Route } from "../../model/schema.ts";
import { ApiError, badRequest, notFound } from "../../control/apierrors.ts";
import { intParam, isObject, objectBody, type Ctx, type Reply, type RouteDef } from "../../control/http.ts";
import { parseRequest } from "../../control/request.ts";
import { RouteBody, TokenBody } from "./schemas.ts";
import { upgradeLegacy } from "../../model/upgrade.ts";
import { auditEntry, now } from "../../control/writepath.ts";
import { removeAt, replaceAt } from "../../model/ops.ts";
import { newTokenSecret, sha256 } from "../../control/auth.ts";
import { randomBytes } from "node:crypto";
import { certificateExpiries, certificateUsage, parseWindow } from "../../control/expiry.ts";
import { rfc2253 } from "../../pki/dn.ts";
import { listSeen } from "./seen.ts";

/** What private keys read as in an export; PUT /v1/config keeps the stored key for it. */
const REDACTED = "<redacted>";

const json = (body: unknown, status = 200): Reply => ({ status, body });

function listRoutes(ctx: Ctx): Reply {
  let routes = ctx.plane.model.routes;
  const host = ctx.query("hostname");
  if (host !== null) routes = routes.filter((r) => r.hostname === host.toLowerCase());
  return json({ routes });
}

function getRoute(ctx: Ctx): Reply {
  const r = ctx.plane.model.routes.find((x) => x.id === ctx.params.id);
  if (!r) throw notFound("route", ctx.params.id!);
  return json(r);
}

async function putRoute(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  const b = await objectBody(ctx, { shape: "a JSON object: {hostname, path_prefix, origin, ...}" });
  // Parsed first: String() of a JSON object with a non-function toString throws (a 500).
  const { id: bodyId, hostname } = parseRequest(RouteBody, b);
  if (bodyId !== undefined && bodyId !== id) throw badRequest(`id "${bodyId}" does not match the URL's "${id}"`, "id");
  const { created, route } = await ctx.write(`put route ${id} ${hostname}${typeof b.path_prefix === "string" ? b.path_prefix : "/"} → ${String(b.origin)}`, (model) => {
    const i = model.routes.findIndex((r) => r.id === id);
    const at = now();
    const { created_at: _c, updated_at: _u, ...fields } = b;
    const route = { ...fields, id, created_at: model.routes[i]?.created_at ?? at, updated_at: at } as unknown as Route;
    return { model: { ...model, routes: i >= 0 ? replaceAt(model.routes, i, route) : [...model.routes, route] }, result: { created: i < 0, route } };
  });
  const stored = ctx.plane.model.routes.find((r) => r.id === route.id)!;
  return json(stored, created ? 201 : 200);
}

async function deleteRoute(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  await ctx.write(`delete route ${id}`, (model) => {
    const i = model.routes.findIndex((r) => r.id === id);
    if (i < 0) throw notFound("route", id);
    return { model: { ...model, routes: removeAt(model.routes, i) }, result: null };
  });
  return { status: 204 };
}

/** The model without private keys (a file-backed key is its key_file alone). */
export function redact(model: Model): Model {
  return {
    ...model,
    certificates: model.certificates.map(({ key: _k, ...c }) => (c.key_file ? c : { ...c, key: REDACTED })),
    dialects: { ...model.dialects, fastly: { ...model.dialects.fastly, pending_private_keys: model.dialects.fastly.pending_private_keys.map((k) => ({ ...k, key: REDACTED })) } },
  };
}

function wantsYaml(ctx: Ctx): boolean {
  const f = ctx.query("format");
  if (f === "yaml" || f === "yml") return true;
  if (f === "json") return false;
  if (f !== null) throw badRequest(`format must be json or yaml, got "${f}"`, "format");
  return /\b(application|text)\/(x-)?yaml\b/i.test(String(ctx.req.headers.accept ?? ""));
}

/** The model as stored: file-backed objects show their paths, not the files' contents, so a re-import keeps them file-backed. */
function getConfig(ctx: Ctx): Reply {
  const model = redact(ctx.plane.stored);
  if (wantsYaml(ctx)) return { status: 200, text: toYaml(model, { lineWidth: 0 }), contentType: "application/yaml; charset=utf-8" };
  return json(model);
}

async function putConfig(ctx: Ctx): Promise<Reply> {
  // An export of an older certgate (vendor fields on the core objects) reads as it always did.
  const raw = upgradeLegacy(await objectBody(ctx, { yaml: true, shape: "the whole model as a JSON or YAML object" })) as Record<string, unknown>;
  const counts = ["certificates", "trust_bundles", "hosts", "routes", "zones"].map((k) => `${Array.isArray(raw[k]) ? (raw[k] as unknown[]).length : 0} ${k}`).join(", ");
  await ctx.plane.replace(ctx.writeCtx(), `replace config (${counts})`, (cur) => {
    // Keys left redacted (or out) keep the stored key of the certificate / pending key with that id; a key_file is read.
    const fill = (list: unknown, stored: { id: string; key?: string }[], what: string) =>
      Array.isArray(list)
        ? list.map((o: unknown, i) => {
            if (!isObject(o) || (o.key !== undefined && o.key !== REDACTED) || (o.key === undefined && o.key_file !== undefined)) return o;
            const prev = stored.find((s) => s.id === o.id);
            if (!prev) throw new ApiError("invalid_key", `${what}[${i}].key is redacted but no stored ${what} has id ${JSON.stringify(o.id ?? null)}`, `${what}[${i}].key`);
            return { ...o, key: prev.key };
          })
        : list;
    const dialects = isObject(raw.dialects) ? raw.dialects : undefined;
    const fastly = isObject(dialects?.fastly) ? dialects.fastly : undefined;
    const pending = fastly && fill(fastly.pending_private_keys, cur.dialects.fastly.pending_private_keys, "dialects.fastly.pending_private_keys");
    return {
      model: { ...raw, certificates: fill(raw.certificates, cur.certificates, "certificates"), ...(fastly ? { dialects: { ...dialects, fastly: { ...fastly, pending_private_keys: pending } } } : {}) },
      result: null,
    };
  });
  return json({ config_version: ctx.plane.runtime.snapshot.version, applied: true });
}

// worker processes

/** Replaces every worker process, one at a time, without dropping a connection (as SIGHUP does); audited. */
async function reload(ctx: Ctx): Promise<Reply> {
  // One process (--workers 1) has no workers to replace; its configuration applies live anyway.
  const replaced = ctx.processes ? await ctx.processes.reload() : 0;
  await ctx.plane.store.audit(auditEntry(ctx.writeCtx(), `reload: ${replaced} worker process(es) replaced`));
  return json({ reloaded: replaced, ...ctx.processes?.health() });
}

// tokens

async function listTokens(ctx: Ctx): Promise<Reply> {
  const tokens = await ctx.plane.store.listTokens();
  return json({ tokens: tokens.map(({ hash: _h, ...t }) => t) });
}

async function createToken(ctx: Ctx): Promise<Reply> {
  const b = await objectBody(ctx, { shape: "a JSON object: {name, read_only, account_id}" });
  const body = parseRequest(TokenBody, b);
  const name = body.name;
  const read_only = body.read_only ?? false;
  const account_id = body.account_id ?? null;
  const secret = newTokenSecret();
  const t = { id: "tok_" + randomBytes(8).toString("hex"), name, hash: sha256(secret).toString("hex"), read_only, account_id, created_at: now() };
  const summary = `create token ${t.id} (${name}${t.read_only ? ", read-only" : ""}${account_id ? `, account ${account_id}` : ""})`;
  await ctx.plane.store.addToken(t, { audit: auditEntry(ctx.writeCtx(), summary, 201) });
  ctx.invalidateTokens();
  const { hash: _h, ...view } = t;
  return json({ ...view, token: secret }, 201);
}

async function deleteToken(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  if (!(await ctx.plane.store.deleteToken(id, { audit: auditEntry(ctx.writeCtx(), `delete token ${id}`, 204) }))) throw notFound("token", id);
  ctx.invalidateTokens();
  return { status: 204 };
}

async function listAudit(ctx: Ctx): Promise<Reply> {
  const limit = intParam(ctx, "limit", 100, 1, 1000);
  const before = ctx.query("before");
  if (before !== null && !/^\d+$/.test(before)) throw badRequest("before must be an audit entry id", "before");
  const entries = await ctx.plane.store.listAudit({ limit, before: before === null ? undefined : Number(before) });
  return json({ entries });
}

// ---- revocation settings of a trust bundle (CRL and OCSP; no vendor has these fields) ----

function bundleIndex(model: Model, id: string): number {
  const i = model.trust_bundles.findIndex((b) => b.id === id);
  if (i < 0) throw notFound("trust bundle", id);
  return i;
}

function getRevocation(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  return json(model.trust_bundles[bundleIndex(model, ctx.params.id!)]!.revocation ?? {});
}

/** PUT replaces the bundle's revocation settings; an uploaded CRL is verified before anything is stored. */
async function putRevocation(ctx: Ctx): Promise<Reply> {
  const id = ctx.params.id!;
  const b = await objectBody(ctx, { yaml: true, shape: "an object: {crl?: {...}, ocsp?: {...}}" });
  const bundle = await ctx.write(`put revocation settings of trust bundle ${id}`, (model) => {
    const i = bundleIndex(model, id);
    const next = { ...model.trust_bundles[i]!, revocation: b as Model["trust_bundles"][number]["revocation"], updated_at: now() };
    return { model: { ...model, trust_bundles: replaceAt(model.trust_bundles, i, next) }, result: next };
  });
  // The stored (validated, defaulted) bundle: the write path parsed it with the model's schema.
  return json(ctx.plane.model.trust_bundles.find((x) => x.id === bundle.id)?.revocation ?? {});
}

// ---- certificates expiring within a window (global tokens: server certificates are the operator's) ----

/** GET /v1/certificates/expiring?within=30d: server certificates, bundle CAs and the managed CA, soonest first, with where each is used. */
function listExpiring(ctx: Ctx): Reply {
  const within = parseWindow(ctx.query("within") ?? "30d", "within");
  const snap = ctx.plane.runtime.snapshot;
  const at = Date.now();
  const due = certificateExpiries(snap).filter((e) => e.notAfter - at <= within * 1000);
  const { servedFor, trustedBy } = certificateUsage(snap);
  return json({
    within_seconds: within,
    certificates: due.map((e) => ({
      kind: e.kind,
      id: e.id,
      subject: e.subject,
      issuer: rfc2253(e.cert.issuer),
      serial_number: e.cert.serialNumber.toUpperCase(),
      fingerprint_sha256: e.cert.fingerprint256,
      not_after: new Date(e.notAfter).toISOString(),
      seconds_remaining: Math.floor((e.notAfter - at) / 1000),
      expired: e.notAfter <= at,
      ...(e.kind === "server"
        ? { hosts: servedFor.get(e.id) ?? [], default_certificate: snap.defaultCert?.id === e.id }
        : { bundles: [e.id], hosts: trustedBy.get(e.id) ?? [] }),
    })),
  });
}

export const NATIVE_ROUTES: RouteDef[] = [
  { method: "GET", path: "/v1/certificates/expiring", handler: listExpiring },
  { method: "GET", path: "/v1/trust_bundles/:id/revocation", handler: getRevocation },
  { method: "PUT", path: "/v1/trust_bundles/:id/revocation", handler: putRevocation },
  { method: "GET", path: "/v1/routes", handler: listRoutes },
  { method: "GET", path: "/v1/routes/:id", handler: getRoute },
  { method: "PUT", path: "/v1/routes/:id", handler: putRoute },
  { method: "DELETE", path: "/v1/routes/:id", handler: deleteRoute },
  { method: "GET", path: "/v1/config", handler: getConfig },
  { method: "PUT", path: "/v1/config", handler: putConfig },
  { method: "GET", path: "/v1/tokens", handler: listTokens, adminOnly: true },
  { method: "POST", path: "/v1/tokens", handler: createToken, adminOnly: true },
  { method: "DELETE", path: "/v1/tokens/:id", handler: deleteToken, adminOnly: true },
  { method: "GET", path: "/v1/audit", handler: listAudit },
  { method: "GET", path: "/v1/client_certificates/seen", handler: listSeen },
  { method: "POST", path: "/v1/reload", handler: reload, adminOnly: true },
];
