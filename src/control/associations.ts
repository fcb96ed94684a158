// The one operation that attaches hostnames to a trust bundle, used by every dialect that
// associates hostnames in bulk (Cloudflare Access associated_hostnames, the managed CA's
// hostname_associations, Fastly's mutual_authentication tls_activations).
import type { Host, Model, MtlsMode } from "../model/schema.ts";
import { ApiError } from "./apierrors.ts";
import type { Principal } from "./auth.ts";
import { claimable, type Owner } from "./ownership.ts";
import { blankHost, replaceAt } from "../model/ops.ts";

export interface Association {
  /** Who asks: an account token may name only hostnames no other owner holds (403 first). */
  principal: Principal;
  bundle: string;
  names: readonly string[];
  /** Owner of host entries created for names that have none. */
  owner: Owner;
  at: string;
  /** Also detach the bundle from the hosts of `scope` that are not in `names` (a PUT of the whole set). */
  replace: boolean;
  /** Which hosts a replace may detach (default: all); others keep the bundle. */
  scope?: (h: Host) => boolean;
  /** The mode hosts that get the bundle are given (default: none, the bundle's `enforced` decides). */
  mode?: MtlsMode;
  /** The error for a name held by another bundle: 400 (default), or 409 where the dialect says so. */
  conflict?: "bad_request" | "conflict";
  /** JSON pointer of `names` in the request, for the error. */
  pointer: string;
}

/**
 * The hosts after pointing `names` at `bundle`. A name held by another bundle is refused (400
 * naming that bundle): it is never moved silently, nor its explicit `mtls.mode` dropped. A host
 * that already uses the bundle keeps its entry (and mode) as it is; a host without mTLS gets the
 * bundle and follows its `enforced`.
 */
export function associate(model: Model, a: Association): Host[] {
  let hosts = model.hosts;
  const index = new Map(hosts.map((h, i) => [h.hostname, i]));
  for (const n of a.names) claimable(a.principal, model, n);
  for (const n of a.names) {
    const i = index.get(n);
    const h = i === undefined ? undefined : hosts[i];
    if (h?.mtls.trust_bundle === a.bundle) continue;
    if (h?.mtls.trust_bundle)
      throw new ApiError(a.conflict ?? "bad_request", `hostname "${n}" is already associated with certificate "${h.mtls.trust_bundle}"; remove it from that one first`, a.pointer);
    const mtls = { ...(a.mode ? { mode: a.mode } : {}), trust_bundle: a.bundle };
    if (h) hosts = replaceAt(hosts, i!, { ...h, mtls, updated_at: a.at });
    else {
      index.set(n, hosts.length);
      hosts = [...hosts, { ...blankHost(n, a.at, a.owner), mtls }];
    }
  }
  if (!a.replace) return hosts;
  const keep = new Set(a.names);
  return hosts.map((h) => (h.mtls.trust_bundle === a.bundle && !keep.has(h.hostname) && (a.scope?.(h) ?? true) ? { ...h, mtls: {}, updated_at: a.at } : h));
}
