// GET /v1/client_certificates/seen: the inventory of client certificates certgate has seen
// (control/seen.ts), filtered and paged. Global tokens only (read-only ones too): an entry's
// counters and hostnames span every host that saw the certificate, whoever owns it.
import { ApiError, badRequest } from "../../control/apierrors.ts";
import { intParam, type Ctx, type Reply } from "../../control/http.ts";
import { seenView } from "../../control/seen.ts";

const PARAMS = new Set(["host", "issuer", "expiring_within", "page", "per_page"]);
const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_WINDOW_MS = 3650 * UNIT_MS.d!;

/** `30d`, `12h`, `90m`, `3600s`: at most 3650 days. */
function windowMs(raw: string): number {
  const m = /^(\d{1,10})([smhd])$/.exec(raw);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2]!]! : NaN;
  if (!(ms <= MAX_WINDOW_MS)) throw badRequest(`expiring_within must be a duration such as 30d, 12h, 90m or 3600s (at most 3650d), got "${raw}"`, "expiring_within");
  return ms;
}

function text(ctx: Ctx, name: string, max: number): string | undefined {
  const v = ctx.query(name);
  if (v === null) return undefined;
  if (v === "" || v.length > max) throw badRequest(`${name} must be 1 to ${max} characters`, name);
  return v;
}

export async function listSeen(ctx: Ctx): Promise<Reply> {
  for (const name of ctx.url.searchParams.keys()) if (!PARAMS.has(name)) throw badRequest(`unknown query parameter "${name}" (known: ${[...PARAMS].join(", ")})`, name);
  const host = text(ctx, "host", 253)?.toLowerCase();
  const issuer = text(ctx, "issuer", 1024);
  const within = text(ctx, "expiring_within", 32);
  const page = intParam(ctx, "page", 1, 1, 1_000_000);
  const perPage = intParam(ctx, "per_page", 100, 1, 1000);
  const expiringWithinMs = within === undefined ? undefined : windowMs(within);
  if (!ctx.seen) throw new ApiError("conflict", "the client certificate inventory is off on this node (serve --client-cert-inventory 0)");
  const { entries, total } = await ctx.seen.query({ host, issuer, expiringWithinMs, page, perPage });
  return {
    status: 200,
    body: {
      client_certificates: entries.map(seenView),
      page,
      per_page: perPage,
      total_count: total,
      total_pages: Math.max(1, Math.ceil(total / perPage)),
      max_entries: ctx.seen.table.max,
    },
  };
}
