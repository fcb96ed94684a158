// What an admin upload of an expired certificate gets, the same in every dialect (docs/admin-api.md):
//   - a server certificate whose leaf has expired is refused (400): it could never terminate a
//     handshake a client accepts (Fastly: not_after "must be in the future to be used to terminate
//     TLS traffic"; Cloudflare refuses custom certificates that are about to expire);
//   - a trust bundle holding an expired CA is accepted with a warning: bundles commonly carry old
//     CAs beside their successors, and the expired one simply verifies nothing any more.
// Only what a write brings in is checked (an object whose id is new, or whose PEM changed): a stored
// certificate that has expired since (sent back unchanged by PUT /v1/config, or renamed) is neither
// refused nor warned about again.
import { ModelError, type Model } from "../model/schema.ts";
import { parseCertificates } from "../pki/pem.ts";
import { certInfo } from "./certinfo.ts";

/** Throws ModelError for a new expired server certificate; returns a warning per expired CA of a new bundle. */
export function checkValidity(prev: Model, next: Model, at = Date.now()): string[] {
  const warnings: string[] = [];
  if (next.certificates !== prev.certificates) {
    const known = new Map(prev.certificates.map((c) => [c.id, c.cert]));
    const problems: { path: string; message: string }[] = [];
    next.certificates.forEach((c, i) => {
      if (known.get(c.id) === c.cert || c.cert === undefined) return;
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
  if (next.trust_bundles !== prev.trust_bundles) {
    const known = new Map(prev.trust_bundles.map((b) => [b.id, b.ca]));
    for (const b of next.trust_bundles) {
      if (known.get(b.id) === b.ca || b.ca === undefined) continue;
      let cas;
      try {
        cas = parseCertificates(b.ca);
      } catch {
        continue; // malformed: as above
      }
      cas.forEach((ca, j) => {
        const notAfter = new Date(ca.validTo);
        if (notAfter.getTime() < at)
          warnings.push(`trust bundle "${b.id}": CA certificate ${j + 1} (${ca.subject.replace(/\n/g, ", ")}) expired on ${notAfter.toISOString()}; client certificates issued by it no longer verify`);
      });
    }
  }
  return warnings;
}
