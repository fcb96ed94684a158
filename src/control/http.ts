// The admin server's small HTTP toolkit: routes, request context, bodies, replies.
import type http from "node:http";
import { parse as parseYaml } from "yaml";
import type { Principal } from "./auth.ts";
import type { WritePath, WriteContext } from "./writepath.ts";
import { ApiError } from "./apierrors.ts";
import type { Model } from "../model/schema.ts";
import type { ManagedCaService } from "../managedca/service.ts";
import type { ProcessGroup } from "./enforcer.ts";
import type { SeenInventory } from "./seen.ts";

export const MAX_BODY_BYTES = 32 << 20;

export interface Reply {
  status: number;
  body?: unknown;
  /** Raw text body (YAML export); `body` is JSON-encoded otherwise. */
  text?: string;
  contentType?: string;
}

export interface Ctx {
  req: http.IncomingMessage;
  url: URL;
  params: Record<string, string>;
  principal: Principal;
  plane: WritePath;
  /** certgate's managed CA (Cloudflare client certificates); absent where not configured. */
  managedCa?: ManagedCaService;
  /** The worker processes; absent with --workers 1. */
  processes?: ProcessGroup;
  /** The inventory of client certificates seen; absent when off (serve --client-cert-inventory 0). */
  seen?: SeenInventory;
  /** The path as routed (without a /client/v4 prefix). */
  path: string;
  query(name: string): string | null;
  /** The parsed JSON (or, where allowed, YAML) body; 400 when malformed or, unless optional, empty. */
  body(opts?: { yaml?: boolean; optional?: boolean }): Promise<unknown>;
  write<T>(summary: string, mutate: (model: Model) => { model: Model; result: T }): Promise<T>;
  writeCtx(): WriteContext;
  /** Forget cached scoped tokens after /v1/tokens changes them. */
  invalidateTokens(): void;
}

export interface RouteDef {
  method: string;
  /** Path pattern with `:name` parameters. */
  path: string;
  /** Only tokens that are neither read-only nor account-limited. */
  adminOnly?: boolean;
  /** Account-limited tokens may call it (on their own account's objects: a path's :account_id is checked by the router, the rest by ownership.ts). */
  accountScoped?: boolean;
  handler: (ctx: Ctx) => Promise<Reply> | Reply;
}

export interface AdminRoute extends RouteDef {
  re: RegExp;
  names: string[];
}

export function compileRoute(r: RouteDef): AdminRoute {
  const names: string[] = [];
  const re = new RegExp(
    "^" +
      r.path.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/:([a-z_]+)/g, (_, n: string) => {
        names.push(n);
        return "([^/]+)";
      }) +
      "/?$",
  );
  return { ...r, re, names };
}

/** One percent-encoded path segment, decoded; 400 when it is not valid percent-encoded UTF-8 (`%ZZ`, `%FF`). */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    const shown = segment.length > 64 ? segment.slice(0, 64) + "..." : segment;
    throw new ApiError("bad_request", `malformed percent-encoding in the path segment "${shown}"`);
  }
}

export function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) {
        // Stop reading (destroying the request would lose the 413); the admin server closes the connection after answering.
        req.off("data", onData);
        req.pause();
        reject(new ApiError("payload_too_large", `the body exceeds ${MAX_BODY_BYTES} bytes`));
        return;
      }
      chunks.push(c);
    };
    req.on("data", onData);
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

// Fatal: a body that is not UTF-8 is refused rather than stored with U+FFFD in place of its bytes.
const utf8 = new TextDecoder("utf-8", { fatal: true });

export function parseBody(req: http.IncomingMessage, raw: Buffer, yaml: boolean, optional = false): unknown {
  let text: string;
  try {
    text = utf8.decode(raw);
  } catch {
    throw new ApiError("invalid_json", "the body is not valid UTF-8");
  }
  if (!text.trim()) {
    if (optional) return undefined;
    throw new ApiError("invalid_json", "a request body is required");
  }
  const ct = String(req.headers["content-type"] ?? "").toLowerCase();
  if (yaml && /yaml/.test(ct)) {
    try {
      return parseYaml(text, { logLevel: "error" }); // errors still throw; warnings (an unknown tag) are not printed
    } catch (e) {
      throw new ApiError("invalid_json", `invalid YAML: ${(e as Error).message}`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new ApiError("invalid_json", `invalid JSON: ${(e as Error).message}`);
  }
}

/** A JSON (or, with `yaml`, YAML) object body; 400 otherwise, naming the expected `shape` when given. */
export async function objectBody(ctx: Ctx, opts: { yaml?: boolean; shape?: string } = {}): Promise<Record<string, unknown>> {
  return asObject(await ctx.body({ yaml: opts.yaml }), opts.shape);
}

/** A JSON object body, or undefined when the request has none. */
export async function optionalObjectBody(ctx: Ctx): Promise<Record<string, unknown> | undefined> {
  const b = await ctx.body({ optional: true });
  return b === undefined ? undefined : asObject(b);
}

function asObject(b: unknown, shape?: string): Record<string, unknown> {
  if (!isObject(b)) throw new ApiError("bad_request", shape ? `the body must be ${shape}` : "the body must be a JSON object");
  return b;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `page`-style integer query parameter within bounds, else 400. */
export function intParam(ctx: Ctx, name: string, dflt: number, min: number, max: number): number {
  const raw = ctx.query(name);
  if (raw === null || raw === "") return dflt;
  if (!/^\d+$/.test(raw)) throw new ApiError("invalid_pagination", `${name} must be an integer between ${min} and ${max}, got "${raw}"`, name);
  const n = Number(raw);
  if (n < min || n > max) throw new ApiError("invalid_pagination", `${name} must be between ${min} and ${max}, got ${n}`, name);
  return n;
}
