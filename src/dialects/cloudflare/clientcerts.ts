// Cloudflare's managed-CA API over certgate's own CA: client certificates issued from CSRs,
// revoked and reactivated, and the hostnames that trust the managed CA.
//
//   client certificate      = managed_client_certificates[] (zone_id = the zone)
//   DELETE                  = status pending_revocation (refused at once; final after 24 h)
//   PATCH {reactivate:true} = back to active while pending_revocation
//   hostname_associations   = hosts[] with mtls.trust_bundle = "managed-ca" (fail-open: rules
//                             decide, as on Cloudflare), or the bundle named by mtls_certificate_id
import type { Host, ManagedClientCertificate, Model, Zone } from "../../model/schema.ts";
import { CsrError } from "../../managedca/ca.ts";
import { MANAGED_BUNDLE_ID, effectiveStatus, type ManagedCaService } from "../../managedca/service.ts";
import { findZone, hexId, page, refuseForeign } from "./routes.ts";
import { ok } from "./render.ts";
import { AssociationsPut, ClientCertCreate, ClientCertPatch } from "./schemas.ts";
import { parseRequest } from "../../control/request.ts";
import { ApiError, badRequest, notFound } from "../../control/apierrors.ts";
import { intParam, objectBody, type Ctx, type Reply, type RouteDef } from "../../control/http.ts";
import { claimable } from "../../control/ownership.ts";
import { now } from "../../control/writepath.ts";
import { addBundle, associate, replaceAt } from "../../model/ops.ts";

const STATUSES = ["all", "active", "pending_revocation", "revoked", "pending_reactivation"] as const;

function service(ctx: Ctx): ManagedCaService {
  if (!ctx.managedCa) throw new ApiError("not_found", "the managed CA is not configured on this node");
  return ctx.managedCa;
}

function certRes(c: ManagedClientCertificate, caName: string): Record<string, unknown> {
  return {
    id: c.id,
    certificate: c.certificate,
    certificate_authority: { id: MANAGED_BUNDLE_ID, name: caName },
    common_name: c.common_name,
    country: c.country,
    location: c.location,
    organization: c.organization,
    organizational_unit: c.organizational_unit,
    state: c.state,
    csr: c.csr,
    expires_on: c.expires_on,
    issued_on: c.issued_on,
    fingerprint_sha256: c.fingerprint_sha256,
    serial_number: c.serial,
    signature: "ECDSAWithSHA256",
    ski: c.ski,
    status: effectiveStatus(c),
    validity_days: c.validity_days,
  };
}

const CA_NAME = "certgate managed client CA";

function zoneId(ctx: Ctx): string {
  const id = ctx.params.zone_id!;
  findZone(ctx, ctx.plane.model, id);
  return id;
}

function findCert(model: Model, zone: string, id: string): number {
  const i = model.managed_client_certificates.findIndex((c) => c.id === id && c.zone_id === zone);
  if (i < 0) throw notFound("client certificate", id);
  return i;
}

/** Makes sure the model trusts the managed CA as a bundle hosts can use. */
function withManagedBundle(model: Model, caPem: string, at: string): Model {
  if (model.trust_bundles.some((b) => b.id === MANAGED_BUNDLE_ID)) return model;
  return addBundle(model, { id: MANAGED_BUNDLE_ID, name: CA_NAME, ca: caPem, verify_depth: 2, enforced: false, managed_ca: true }, at).model;
}

async function create(ctx: Ctx): Promise<Reply> {
  const zone = zoneId(ctx);
  const svc = service(ctx);
  const { csr, validity_days: days } = parseRequest(ClientCertCreate, await objectBody(ctx));
  const ca = await svc.ca();
  let issued;
  try {
    issued = await ca.issue(csr, days, svc.urls());
  } catch (e) {
    if (e instanceof CsrError) throw badRequest(e.message, "csr");
    throw e;
  }
  const cert = await ctx.write(`issue client certificate ${issued.commonName} (${days} days)`, (model) => {
    const at = now();
    const c: ManagedClientCertificate = {
      id: hexId(),
      zone_id: zone,
      certificate: issued.certificate,
      csr,
      serial: issued.serial,
      common_name: issued.commonName,
      country: issued.subject.country ?? "",
      state: issued.subject.state ?? "",
      location: issued.subject.location ?? "",
      organization: issued.subject.organization ?? "",
      organizational_unit: issued.subject.organizationalUnit ?? "",
      status: "active",
      validity_days: days,
      issued_on: issued.issuedOn.toISOString(),
      expires_on: issued.expiresOn.toISOString(),
      fingerprint_sha256: issued.fingerprintSha256,
      ski: issued.ski,
    };
    const next = withManagedBundle(model, ca.certPem, at);
    return { model: { ...next, managed_client_certificates: [...next.managed_client_certificates, c] }, result: c };
  });
  return ok(certRes(cert, CA_NAME));
}

function list(ctx: Ctx): Reply {
  const zone = zoneId(ctx);
  const status = ctx.query("status") ?? "all";
  if (!(STATUSES as readonly string[]).includes(status)) throw badRequest(`status must be one of ${STATUSES.join(", ")}`, "status");
  const all = ctx.plane.model.managed_client_certificates.filter((c) => c.zone_id === zone && (status === "all" || effectiveStatus(c) === status));
  // Cloudflare pages with page/per_page, or limit/offset.
  if (ctx.query("limit") !== null || ctx.query("offset") !== null) {
    const limit = intParam(ctx, "limit", 20, 1, 1000);
    const offset = intParam(ctx, "offset", 0, 0, 1_000_000);
    const items = all.slice(offset, offset + limit);
    return ok(items.map((c) => certRes(c, CA_NAME)), 200, { count: items.length, total_count: all.length, offset, limit });
  }
  const { items, info } = page(ctx, all, 20, 5, 50);
  return ok(items.map((c) => certRes(c, CA_NAME)), 200, info);
}

function get(ctx: Ctx): Reply {
  const zone = zoneId(ctx);
  const model = ctx.plane.model;
  return ok(certRes(model.managed_client_certificates[findCert(model, zone, ctx.params.id!)]!, CA_NAME));
}

async function revoke(ctx: Ctx): Promise<Reply> {
  const zone = zoneId(ctx);
  const id = ctx.params.id!;
  const c = await ctx.write(`revoke client certificate ${id}`, (model) => {
    const i = findCert(model, zone, id);
    const cur = model.managed_client_certificates[i]!;
    if (cur.status !== "active") return { model, result: cur };
    const next: ManagedClientCertificate = { ...cur, status: "pending_revocation", revoked_at: now() };
    return { model: { ...model, managed_client_certificates: replaceAt(model.managed_client_certificates, i, next) }, result: next };
  });
  return ok(certRes(c, CA_NAME));
}

async function patch(ctx: Ctx): Promise<Reply> {
  const zone = zoneId(ctx);
  const id = ctx.params.id!;
  parseRequest(ClientCertPatch, await objectBody(ctx));
  const c = await ctx.write(`reactivate client certificate ${id}`, (model) => {
    const i = findCert(model, zone, id);
    const cur = model.managed_client_certificates[i]!;
    if (effectiveStatus(cur) !== "pending_revocation") throw badRequest(`only a certificate pending revocation can be reactivated (this one is ${effectiveStatus(cur)})`);
    const { revoked_at: _dropped, ...rest } = cur;
    const next: ManagedClientCertificate = { ...rest, status: "active" };
    return { model: { ...model, managed_client_certificates: replaceAt(model.managed_client_certificates, i, next) }, result: next };
  });
  return ok(certRes(c, CA_NAME));
}

/** The zone's owner's hosts: what a zone's hostname associations list and replace. */
const ofZone = (z: Zone) => (h: Host) => (h.account_id ?? null) === (z.account_id ?? null);

function associationsOf(model: Model, zone: Zone, bundleId: string): string[] {
  const mine = ofZone(zone);
  return model.hosts.filter((h) => h.mtls.trust_bundle === bundleId && mine(h)).map((h) => h.hostname);
}

/** The bundle an association names: the managed CA, or one the token may read (403 otherwise). */
function bundleParam(ctx: Ctx, id: string | undefined): string {
  if (id === undefined) return MANAGED_BUNDLE_ID;
  const b = ctx.plane.model.trust_bundles.find((x) => x.id === id);
  if (!b?.managed_ca) refuseForeign(ctx, b, "mTLS certificate", id);
  return id;
}

function getAssociations(ctx: Ctx): Reply {
  const model = ctx.plane.model;
  const zone = model.zones[findZone(ctx, model, ctx.params.zone_id!)]!;
  const bundle = bundleParam(ctx, ctx.query("mtls_certificate_id") ?? undefined);
  return ok({ hostnames: associationsOf(model, zone, bundle) });
}

/**
 * PUT replaces the set of the zone owner's hostnames trusting the bundle (managed CA unless
 * mtls_certificate_id), with the one association operation the Access API uses: a hostname held
 * by another bundle is refused (400), never moved.
 */
async function putAssociations(ctx: Ctx): Promise<Reply> {
  const zoneIdParam = zoneId(ctx);
  const b = parseRequest(AssociationsPut, await objectBody(ctx));
  const names = b.hostnames ?? [];
  const bundleId = bundleParam(ctx, b.mtls_certificate_id);
  const caPem = bundleId === MANAGED_BUNDLE_ID ? (await service(ctx).ca()).certPem : undefined;
  const result = await ctx.write(`hostname associations for ${bundleId}: ${names.length} hostnames`, (model) => {
    const at = now();
    const zone = model.zones[findZone(ctx, model, zoneIdParam)]!;
    let next = caPem ? withManagedBundle(model, caPem, at) : model;
    if (!next.trust_bundles.some((x) => x.id === bundleId)) throw notFound("mTLS certificate", bundleId);
    const owner = zone.account_id ?? null;
    const claim = (n: string) => claimable(ctx.principal, next, n);
    next = { ...next, hosts: associate(next, { bundle: bundleId, names, owner, at, replace: true, scope: ofZone(zone), claim, refuse: (m) => badRequest(m, "hostnames") }) };
    return { model: next, result: associationsOf(next, zone, bundleId) };
  });
  return ok({ hostnames: result });
}

export const CLIENT_CERT_ROUTES: RouteDef[] = [
  { method: "POST", path: "/zones/:zone_id/client_certificates", handler: create },
  { method: "GET", path: "/zones/:zone_id/client_certificates", handler: list },
  { method: "GET", path: "/zones/:zone_id/client_certificates/:id", handler: get },
  { method: "DELETE", path: "/zones/:zone_id/client_certificates/:id", handler: revoke },
  { method: "PATCH", path: "/zones/:zone_id/client_certificates/:id", handler: patch },
  { method: "GET", path: "/zones/:zone_id/certificate_authorities/hostname_associations", handler: getAssociations },
  { method: "PUT", path: "/zones/:zone_id/certificate_authorities/hostname_associations", handler: putAssociations },
].map((r) => ({ ...r, accountScoped: true }));
