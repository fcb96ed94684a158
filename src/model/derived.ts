// What the data plane derives from stored objects at compile time. Types only from the schema:
// a worker process compiles models without loading zod (about 18 MB per process).
import type { RuleSpec } from "../rules/index.ts";
import type { ManagedClientCertificate, Rule } from "./schema.ts";

/** When a managed certificate was revoked, or null while active: pending_revocation is already refused, so the CRL, OCSP and the data plane all treat it as revoked. */
export function managedRevokedAt(c: ManagedClientCertificate): Date | null {
  return c.status === "active" ? null : new Date(c.revoked_at ?? c.issued_on);
}

/** A stored rule as the rules engine compiles it. */
export function toRuleSpec(r: Rule): RuleSpec {
  return {
    id: r.id,
    expression: r.expression,
    action: r.action,
    description: r.description,
    enabled: r.enabled,
    response: r.response && { status: r.response.status, contentType: r.response.content_type, body: r.response.body },
  };
}
