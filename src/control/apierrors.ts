// The admin API's error catalog (not the rules language's: src/rules/errors.ts); each dialect renders it in its own envelope.
import { ModelError } from "../model/schema.ts";
import { StoreUnavailable } from "./store.ts";

export type Dialect = "fastly" | "cloudflare" | "apinizer" | "native";

/** code → HTTP status, Fastly title, Cloudflare numeric code. */
const ERRORS = {
  unauthorized: { status: 401, title: "Unauthorized", cf: 10000 },
  forbidden: { status: 403, title: "Forbidden", cf: 10000 },
  not_found: { status: 404, title: "Not found", cf: 10006 },
  method_not_allowed: { status: 405, title: "Method not allowed", cf: 10405 },
  bad_request: { status: 400, title: "Bad request", cf: 10001 },
  invalid_json: { status: 400, title: "Invalid JSON", cf: 10002 },
  invalid_pagination: { status: 400, title: "Invalid pagination", cf: 10003 },
  invalid_certificate: { status: 400, title: "Invalid certificate", cf: 12100 },
  invalid_key: { status: 400, title: "Invalid private key", cf: 12101 },
  invalid_expression: { status: 400, title: "Invalid expression", cf: 20021 },
  invalid_config: { status: 400, title: "Invalid configuration", cf: 10004 },
  type_mismatch: { status: 409, title: "Conflict", cf: 10005 },
  conflict: { status: 409, title: "Conflict", cf: 10009 },
  request_timeout: { status: 408, title: "Request timeout", cf: 10408 },
  payload_too_large: { status: 413, title: "Payload too large", cf: 10413 },
  headers_too_large: { status: 431, title: "Request header fields too large", cf: 10431 },
  internal: { status: 500, title: "Internal server error", cf: 10500 },
  store_unavailable: { status: 503, title: "Service unavailable", cf: 10503 },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** JSON pointer or model path of the offending input, when known. */
  readonly pointer: string | undefined;
  constructor(code: ErrorCode, message: string, pointer?: string) {
    super(message);
    this.name = "ApiError";
    this.code = code;
    this.status = ERRORS[code].status;
    this.pointer = pointer;
  }
}

export const notFound = (what: string, id: string): ApiError => new ApiError("not_found", `${what} "${id}" not found`);
export const badRequest = (message: string, pointer?: string): ApiError => new ApiError("bad_request", message, pointer);

/** A compile failure of the new model → 400, the expression ones as invalid_expression. */
function fromModelError(e: ModelError): ApiError {
  const first = e.issues[0];
  const code: ErrorCode = e.issues.some((i) => /\.expression$/.test(i.path)) ? "invalid_expression" : /\.(cert|ca)(_file)?$/.test(first?.path ?? "") ? "invalid_certificate" : /\.key(_file)?$/.test(first?.path ?? "") ? "invalid_key" : "invalid_config";
  return new ApiError(code, e.issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("; "), first?.path);
}

export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  if (e instanceof ModelError) return fromModelError(e);
  if (e instanceof StoreUnavailable) return new ApiError("store_unavailable", `the configuration store is unreachable (${e.message}): nothing was changed; certgate keeps serving its last configuration, retry later`);
  return new ApiError("internal", "internal error");
}

/** The body of an error response in a dialect's envelope. */
export function renderError(dialect: Dialect, err: ApiError): { contentType: string; body: unknown } {
  const meta = ERRORS[err.code];
  switch (dialect) {
    case "fastly":
      return {
        contentType: "application/vnd.api+json",
        body: { errors: [{ title: meta.title, detail: err.message, status: String(err.status), ...(err.pointer ? { source: { pointer: err.pointer } } : {}) }] },
      };
    case "cloudflare":
      return {
        contentType: "application/json",
        body: {
          success: false,
          errors: [{ code: meta.cf, message: err.message, ...(err.pointer ? { source: { pointer: err.pointer } } : {}) }],
          messages: [],
          result: null,
        },
      };
    case "apinizer":
      return {
        contentType: "application/json",
        body: {
          success: false,
          message: err.message,
          errors: [{ code: `CERTGATE_ERR_${err.code.toUpperCase()}`, title: meta.title, message: err.message, ...(err.pointer ? { field: err.pointer } : {}) }],
        },
      };
    default:
      return { contentType: "application/json", body: { error: { code: err.code, message: err.message, ...(err.pointer ? { path: err.pointer } : {}) } } };
  }
}

/** Cloudflare `messages[].code` of a warning (certgate's own; Cloudflare documents none for this). */
const CF_WARNING = 10099;

/** A success body with the write's warnings added where the dialect carries notes: Cloudflare's `messages`, Fastly's top-level `meta`, else `warnings`. */
export function renderWarnings(dialect: Dialect, body: Record<string, unknown>, warnings: string[]): Record<string, unknown> {
  switch (dialect) {
    case "cloudflare":
      return { ...body, messages: [...(Array.isArray(body.messages) ? body.messages : []), ...warnings.map((message) => ({ code: CF_WARNING, message }))] };
    case "fastly":
      return { ...body, meta: { ...(typeof body.meta === "object" && body.meta !== null ? body.meta : {}), warnings } };
    default:
      return { ...body, warnings };
  }
}
