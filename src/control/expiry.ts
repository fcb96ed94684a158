// Every certificate certgate relies on and when it expires: each server certificate's leaf, each
// CA of each trust bundle, and the managed CA. Read from the compiled snapshot in force (never
// from where its PEM came from), so the gauges certgate_certificate_not_after_seconds and
// GET /v1/certificates/expiring list the same series and follow every apply.
import type { X509Certificate } from "node:crypto";
import type { Snapshot } from "../dataplane/snapshot.ts";
import { rfc2253 } from "../pki/dn.ts";
import { ApiError } from "./apierrors.ts";

export type ExpiryKind = "server" | "ca" | "managed_ca";

export interface CertExpiry {
  kind: ExpiryKind;
  /** The certificate's id (server), or the id of the bundle holding the CA (ca, managed_ca). */
  id: string;
  /** RFC 2253 subject; a CA sharing its subject with another in its bundle (a renewal) gets its serial appended. */
  subject: string;
  cert: X509Certificate;
  /** ms since the epoch. */
  notAfter: number;
}

const listed = new WeakMap<Snapshot, CertExpiry[]>();

/** The snapshot's certificates, soonest expiry first; computed once per snapshot. */
export function certificateExpiries(snap: Snapshot): readonly CertExpiry[] {
  let out = listed.get(snap);
  if (out) return out;
  out = [];
  for (const [id, c] of snap.certs) out.push({ kind: "server", id, subject: rfc2253(c.leaf.subject), cert: c.leaf, notAfter: c.notAfter });
  const managed = new Set(snap.model.trust_bundles.filter((b) => b.managed_ca).map((b) => b.id));
  for (const [id, b] of snap.bundles) {
    const kind = managed.has(id) ? "managed_ca" : "ca";
    const cas = [...new Map(b.cas.map((ca) => [ca.fingerprint256, ca])).values()]; // one CA pasted twice is one series
    const shared = new Set(cas.filter((ca, i) => cas.findIndex((x) => x.subject === ca.subject) !== i).map((ca) => ca.subject));
    for (const ca of cas) {
      const subject = rfc2253(ca.subject) + (shared.has(ca.subject) ? ` (serial ${ca.serialNumber.toUpperCase()})` : "");
      out.push({ kind, id, subject, cert: ca, notAfter: ca.validToDate.getTime() });
    }
  }
  out.sort((a, b) => a.notAfter - b.notAfter || a.kind.localeCompare(b.kind) || a.id.localeCompare(b.id) || a.subject.localeCompare(b.subject));
  listed.set(snap, out);
  return out;
}

/**
 * Where each certificate is used: the hostnames (host entries and routes' hostnames) each server
 * certificate is served for, and the hosts with mTLS on that trust each bundle.
 */
export function certificateUsage(snap: Snapshot): { servedFor: Map<string, string[]>; trustedBy: Map<string, string[]> } {
  const servedFor = new Map<string, string[]>();
  const trustedBy = new Map<string, string[]>();
  const add = (m: Map<string, string[]>, k: string, v: string) => void (m.get(k) ?? m.set(k, []).get(k)!).push(v);
  const names = new Set([...snap.model.hosts.map((h) => h.hostname), ...snap.model.routes.map((r) => r.hostname)]);
  for (const name of [...names].sort()) {
    const cert = snap.certFor(name);
    if (cert) add(servedFor, cert.id, name);
    const bundle = snap.hostPolicy(name).bundle;
    if (bundle) add(trustedBy, bundle.id, name);
  }
  return { servedFor, trustedBy };
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3_600, d: 86_400 };
const MAX_WINDOW_S = 100 * 365 * 86_400;

/** `30d`, `12h`, `90m`, `3600s`: the window in seconds; 400 otherwise. */
export function parseWindow(s: string, field: string): number {
  const m = /^(\d{1,10})([smhd])$/.exec(s.trim());
  const seconds = m ? Number(m[1]) * UNITS[m[2]!]! : NaN;
  if (!(seconds <= MAX_WINDOW_S)) throw new ApiError("bad_request", `${field} must be a whole number with a unit s, m, h or d (e.g. 30d, 12h, 3600s), at most 36500d; got "${s}"`, field);
  return seconds;
}
