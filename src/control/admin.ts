// The admin listener: /healthz and /metrics (no token), and, when a control plane is given,
// the Fastly (/tls/...), Cloudflare (/accounts/..., /zones..., also under /client/v4) and
// native (/v1/...) dialects, each with its own error envelope.
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { Metrics } from "../observability/metrics.ts";
import type { Enforcer, ProcessGroup } from "./enforcer.ts";
import type { Authenticator } from "./auth.ts";
import { presentedToken } from "./auth.ts";
import { APINIZER_ROUTES } from "../dialects/apinizer/routes.ts";
import { CLOUDFLARE_ROUTES } from "../dialects/cloudflare/routes.ts";
import { CLIENT_CERT_ROUTES } from "../dialects/cloudflare/clientcerts.ts";
import type { ManagedCaService } from "../managedca/service.ts";
import { ApiError, renderError, renderWarnings, toApiError, type Dialect } from "./apierrors.ts";
import { FASTLY_ROUTES } from "../dialects/fastly/routes.ts";
import { compileRoute, decodeSegment, parseBody, readBody, type AdminRoute, type Ctx, type Reply } from "./http.ts";
import { NATIVE_ROUTES } from "../dialects/native/routes.ts";
import { auditEntry } from "./writepath.ts";
import { requireAccount } from "./ownership.ts";
import type { WritePath, WriteContext } from "./writepath.ts";
import type { SeenInventory } from "./seen.ts";

export interface AdminOptions {
  plane: WritePath;
  auth: Authenticator;
  /** mTLS on the admin listener itself: PEM server cert/key and the CA clients must chain to. */
  tls?: { cert: string; key: string; clientCa: string };
  /** Called with unexpected errors (500s). */
  onError?: (e: unknown) => void;
  /** A write without a valid token (401): logged, not stored, so no one without a token can grow the audit table. */
  onUnauthenticated?: (method: string, path: string, remote: string | undefined) => void;
  managedCa?: ManagedCaService;
  /** A write stored with warnings (validity.ts): the caller logs them. */
  onWarnings?: (warnings: string[], write: { method: string; path: string; token_id: string }) => void;
  /** The worker processes (serve --workers N): /healthz lists them, /metrics merges theirs, /v1/reload replaces them. */
  processes?: ProcessGroup;
  /** The inventory of client certificates seen (GET /v1/client_certificates/seen); absent when off. */
  seen?: SeenInventory;
  /** A fleet's store connection, for /healthz. */
  storeHealth?: () => object;
}

// The dialect of a route (its error envelope) follows from its path: dialectOf.
// Its authorization rule: `adminOnly` (unrestricted tokens), `accountScoped` (account tokens
// too, on their account's objects: ownership.ts), else global tokens (read-only ones: GET only).
/** Every admin endpoint (the authorization matrix test enumerates this table). */
export const ADMIN_ROUTES: readonly AdminRoute[] = [...FASTLY_ROUTES, ...CLOUDFLARE_ROUTES, ...CLIENT_CERT_ROUTES, ...NATIVE_ROUTES, ...APINIZER_ROUTES].map(compileRoute);

export function dialectOf(path: string): Dialect {
  if (path.startsWith("/tls/")) return "fastly";
  if (path.startsWith("/accounts/") || path === "/zones" || path.startsWith("/zones/")) return "cloudflare";
  if (path === "/apiops" || path.startsWith("/apiops/")) return "apinizer";
  return "native";
}

/** The path as routed: Cloudflare's API is also served under /client/v4. */
const routedPath = (rawPath: string): string => (rawPath.startsWith("/client/v4/") ? rawPath.slice("/client/v4".length) : rawPath);

/** An answer written straight to the socket (no ServerResponse exists), in the dialect of `target`, closing the connection. */
function refuseRaw(socket: Duplex, target: string, e: ApiError): void {
  const { contentType, body } = renderError(dialectOf(routedPath(target)), e);
  const text = JSON.stringify(body) + "\n";
  socket.end(`HTTP/1.1 ${e.status} ${http.STATUS_CODES[e.status]}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
}

/**
 * A request Node's parser refuses (a request line or headers over 16 KiB, a space or control
 * character in the target...) never reaches the handler: answer it in the envelope of the
 * dialect its request line names, instead of Node's bodiless 400/431, and close.
 */
function onClientError(err: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex): void {
  if (err.code === "ECONNRESET" || !socket.writable) return void socket.destroy();
  const target = /^[A-Z]+ (\/[^ ?]*)/.exec(err.rawPacket?.toString("latin1") ?? "")?.[1] ?? "/";
  // The statuses Node itself would send for these codes.
  const e =
    err.code === "HPE_HEADER_OVERFLOW"
      ? new ApiError("headers_too_large", "the request line and headers exceed 16 KiB")
      : err.code === "HPE_CHUNK_EXTENSIONS_OVERFLOW"
        ? new ApiError("payload_too_large", "chunk extensions too large")
        : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? new ApiError("request_timeout", "the request was not received in time")
          : new ApiError("bad_request", `malformed HTTP request (${err.code ?? "parse error"})`);
  refuseRaw(socket, target, e);
}

function send(res: http.ServerResponse, reply: Reply): void {
  if (reply.status === 204) {
    res.writeHead(204);
    return void res.end();
  }
  const body = reply.text ?? JSON.stringify(reply.body) + "\n";
  res.writeHead(reply.status, { "content-type": reply.contentType ?? "application/json", "content-length": Buffer.byteLength(body), "cache-control": "no-store" });
  res.end(body);
}

/** A successful write's warnings, in the dialect's envelope (only JSON object bodies carry them). */
function withWarnings(dialect: Dialect, reply: Reply, warnings: string[]): Reply {
  if (!warnings.length || typeof reply.body !== "object" || reply.body === null || Array.isArray(reply.body)) return reply;
  return { ...reply, body: renderWarnings(dialect, reply.body as Record<string, unknown>, warnings) };
}

function sendError(res: http.ServerResponse, dialect: Dialect, err: ApiError): void {
  const { contentType, body } = renderError(dialect, err);
  send(res, { status: err.status, body, contentType });
}

export function createAdminServer(runtime: Enforcer, metrics: Metrics, opts?: AdminOptions): http.Server | https.Server {
  const processes = opts?.processes;
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const rawPath = (req.url ?? "/").split("?")[0]!;
    if (req.method === "GET" && rawPath === "/healthz") {
      return send(res, { status: 200, body: { status: "ok", config_version: runtime.snapshot.version, ...processes?.health(), ...opts?.storeHealth?.() } });
    }
    if (req.method === "GET" && rawPath === "/metrics") {
      void (processes ? processes.metricsText() : metrics.registry.metrics()).then(
        (text) => send(res, { status: 200, text, contentType: metrics.registry.contentType }),
        (e: unknown) => sendError(res, "native", toApiError(e)),
      );
      return;
    }
    const path = routedPath(rawPath);
    const dialect = dialectOf(path);
    if (!opts) return sendError(res, dialect, new ApiError("not_found", `no admin endpoint ${req.method} ${rawPath}`));
    void route(opts, req, res, path, dialect).catch((e: unknown) => {
      const err = toApiError(e);
      if (err.status >= 500) opts.onError?.(e);
      // The rest of an oversized body is left unread: close the connection after the 413.
      if (err.code === "payload_too_large") res.setHeader("connection", "close");
      if (!res.headersSent) sendError(res, dialect, err);
      else res.destroy();
    });
  };
  const server = opts?.tls
    ? https.createServer({ cert: opts.tls.cert, key: opts.tls.key, ca: opts.tls.clientCa, requestCert: true, rejectUnauthorized: true, minVersion: "TLSv1.2" }, handler)
    : http.createServer(handler);
  server.on("clientError", onClientError);
  // Without a listener Node closes a CONNECT's connection without a word.
  server.on("connect", (req: http.IncomingMessage, socket: Duplex) => refuseRaw(socket, (req.url ?? "/").split("?")[0]!, new ApiError("method_not_allowed", "CONNECT is not allowed on the admin API")));
  return server;
}

/** Routes a request; a write refused for want of scope (403) is added to the audit log unless the write path already logged it. */
async function route(opts: AdminOptions, req: http.IncomingMessage, res: http.ServerResponse, path: string, dialect: Dialect): Promise<void> {
  const method = req.method ?? "GET";
  const wctx: WriteContext = { principal: { token_id: "-", read_only: true, account_id: null }, method, path, warnings: [] };
  try {
    await dispatch(opts, req, res, path, dialect, wctx);
  } catch (e) {
    const status = toApiError(e).status;
    const isWrite = method !== "GET" && method !== "HEAD";
    if (isWrite && status === 401) opts.onUnauthenticated?.(method, path, req.socket.remoteAddress);
    if (isWrite && status === 403 && !wctx.audited) await opts.plane.store.audit(auditEntry(wctx, `refused: ${(e as Error).message}`, status)).catch(() => {});
    throw e;
  }
}

async function dispatch(opts: AdminOptions, req: http.IncomingMessage, res: http.ServerResponse, path: string, dialect: Dialect, wctx: WriteContext): Promise<void> {
  const method = wctx.method;
  let match: { r: AdminRoute; m: RegExpExecArray } | undefined;
  let pathKnown = false;
  for (const r of ADMIN_ROUTES) {
    const m = r.re.exec(path);
    if (!m) continue;
    pathKnown = true;
    if (r.method === method || (method === "HEAD" && r.method === "GET")) {
      match = { r, m };
      break;
    }
  }
  // Authenticate before saying anything about what exists.
  const principal = await opts.auth.authenticate(presentedToken(req));
  if (!principal) {
    res.setHeader("www-authenticate", dialect === "fastly" ? 'Fastly-Key realm="certgate"' : 'Bearer realm="certgate"');
    throw new ApiError("unauthorized", "a valid admin token is required (Fastly-Key: TOKEN or Authorization: Bearer TOKEN)");
  }
  wctx.principal = principal;
  // Every segment, matched or not, must be valid percent-encoded UTF-8: 400, not a URIError's 500.
  for (const segment of path.split("/")) decodeSegment(segment);
  if (!match) throw pathKnown ? new ApiError("method_not_allowed", `${method} is not allowed on ${path}`) : new ApiError("not_found", `no admin endpoint ${method} ${path}`);
  const { r, m } = match;
  const isWrite = method !== "GET" && method !== "HEAD";
  if (r.adminOnly && (principal.read_only || principal.account_id !== null)) throw new ApiError("forbidden", "this endpoint needs an unrestricted token");
  if (principal.account_id !== null && !r.accountScoped) throw new ApiError("forbidden", `this token is limited to Cloudflare account ${principal.account_id}`);
  if (isWrite && principal.read_only) throw new ApiError("forbidden", "this token is read-only");
  const params: Record<string, string> = {};
  r.names.forEach((n, i) => {
    params[n] = decodeSegment(m[i + 1]!);
  });
  // A path naming a Cloudflare account (/accounts/:account_id/...) is that account's: checked here, once, for every such route.
  if (params.account_id !== undefined) requireAccount(principal, params.account_id);
  const url = new URL(req.url ?? "/", "http://admin.invalid");
  let bodyCache: Promise<Buffer> | undefined;
  const ctx: Ctx = {
    req,
    url,
    params,
    principal,
    plane: opts.plane,
    managedCa: opts.managedCa,
    processes: opts.processes,
    seen: opts.seen,
    path,
    query: (name) => url.searchParams.get(name),
    body: async (o = {}) => parseBody(req, await (bodyCache ??= readBody(req)), o.yaml ?? false, o.optional ?? false),
    write: (summary, mutate) => opts.plane.write(wctx, summary, mutate),
    writeCtx: () => wctx,
    invalidateTokens: () => opts.auth.invalidate(),
  };
  const reply = withWarnings(dialect, await r.handler(ctx), wctx.warnings);
  if (wctx.warnings.length) opts.onWarnings?.(wctx.warnings, { method, path, token_id: principal.token_id });
  if (method === "HEAD") return send(res, { ...reply, body: undefined, text: "" });
  send(res, reply);
}

export function listenAdmin(server: http.Server | https.Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve(server.address() as AddressInfo);
    });
  });
}
