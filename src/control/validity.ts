// What an admin upload of an expired or soon-expiring certificate gets, the same in every dialect
// (docs/admin-api.md):
//   - a server certificate whose leaf has expired is refused (400): it could never terminate a
//     handshake a client accepts (Fastly: not_after "must be in the future to be used to terminate
//     TLS traffic"; Cloudflare refuses custom certificates that are about to expire);
//   - a trust bundle holding an expired CA is accepted with a warning: bundles commonly carry old
//     CAs beside their successors, and the expired one simply verifies nothing any more;
//   - a server certificate or a CA that expires within 7 days is accepted with a warning, so
//     whoever uploads last week's renewal hears of it while they still can act.
// Only what a write brings in is checked (an object whose id is new, or whose PEM changed): a stored
// certificate that has expired since (sent back unchanged by PUT /v1/config, or renamed) is neither
// refused nor warned about again.
import { ModelError, type Model } from "../model/schema.ts";
import type { Snapshot } from "../dataplane/snapshot.ts";
import { certInfo } from "./certinfo.ts";

/** Closer than this to its not_after, a certificate a write brings in gets a warning. */
const EXPIRY_WARNING_MS = 7 * 86_400_000;

/** Throws ModelError for a new expired server certificate. */
export function refuseExpiredServerCerts(prev: Model, next: Model, at = Date.now()): void {
  if (next.certificates === prev.certificates) return;
  const known = new Map(prev.certificates.map((c) => [c.id, c.cert]));
  const problems: { path: string; message: string }[] = [];
  next.certificates.forEach((c, i) => {
    if (known.get(c.id) === c.cert || c.cert === undefined) return; // no contents: a file-backed object checked by filereload.ts
    let info;
    try {
      info = certInfo(c.cert);
    } catch {
      return; // malformed: the compiler reports it at its model path
    }
    if (Date.parse(info.not_after) < at)
      problems.push({ path: `certificates[${i}].cert`, message: `the certificate (${info.issued_to}) expired on ${info.not_after}: no client would accept it; upload one that is valid now` });
  });
  if (problems.length) throw new ModelError(problems);
}

const days = (ms: number): string => {
  const d = Math.floor(ms / 86_400_000);
  return d === 0 ? "in less than a day" : `in ${d} day${d === 1 ? "" : "s"}`;
};
const oneLine = (dn: string): string => dn.replace(/\n/g, ", ");

/**
 * A warning per expired CA, and per server certificate or CA expiring within 7 days, among what
 * `next` (the snapshot just compiled for a write) brings in over `prev` (the one it replaces).
 */
export function uploadWarnings(prev: Snapshot, next: Snapshot, at = Date.now()): string[] {
  const warnings: string[] = [];
  for (const [id, c] of next.certs) {
    if (prev.certs.get(id)?.certPem === c.certPem || c.notAfter - at >= EXPIRY_WARNING_MS) continue;
    const when = new Date(c.notAfter).toISOString();
    warnings.push(`certificate "${id}" (${oneLine(c.leaf.subject)}) expires on ${when}, ${days(c.notAfter - at)}: clients will refuse it from then on; upload its renewal before`);
  }
  for (const [id, b] of next.bundles) {
    if (prev.bundles.get(id)?.caPem === b.caPem) continue;
    b.cas.forEach((ca, j) => {
      const notAfter = ca.validToDate.getTime();
      const what = `trust bundle "${id}": CA certificate ${j + 1} (${oneLine(ca.subject)})`;
      const when = new Date(notAfter).toISOString();
      if (notAfter < at) warnings.push(`${what} expired on ${when}; client certificates issued by it no longer verify`);
      else if (notAfter - at < EXPIRY_WARNING_MS) warnings.push(`${what} expires on ${when}, ${days(notAfter - at)}; client certificates issued by it stop verifying then`);
    });
  }
  return warnings;
}
