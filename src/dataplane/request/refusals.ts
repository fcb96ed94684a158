// Every answer the data plane gives in place of an origin's: its status, body, whether the
// connection closes after it, and the reason label it is counted under in
// certgate_refusals_total (whose help text lists these labels: createMetrics is given
// REFUSAL_LABELS). The HTTP/1.1 front end, decide() and the proxy all answer from here.
import { STATUS_CODES } from "node:http";
import type { Metrics } from "../../observability/metrics.ts";
import { FAILURE_MESSAGES, type FailureClass } from "../tls/verify.ts";

export interface RefusalSpec {
  status: number;
  body: string;
  /** The connection closes after the answer (an upgrade request's always does). */
  close: boolean;
  /**
   * The gRPC status a gRPC request (content-type application/grpc...) gets instead, in an HTTP 200
   * with grpc-status and grpc-message (the gRPC HTTP mapping: 400 INTERNAL, 404 UNIMPLEMENTED,
   * 502-504 UNAVAILABLE; a certificate 16 UNAUTHENTICATED, a rule 7 PERMISSION_DENIED).
   */
  grpc: GrpcStatus;
  /** HTTP/2: the connection itself is no good (its certificate or policy), so GOAWAY after the answer; otherwise only the stream ends. */
  goaway?: true;
  /** Its reason label in certgate_refusals_total; null when the origin failed rather than certgate refused (certgate_origin_duration_seconds counts those). */
  metric: string | null;
}

/** gRPC status codes certgate answers with (grpc/grpc doc/statuscodes.md). */
export const GRPC = { DEADLINE_EXCEEDED: 4, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;
export type GrpcStatus = (typeof GRPC)[keyof typeof GRPC];

/** The status line's own text: the front end's answers say no more than that. */
const statusText = (status: number): string => `${STATUS_CODES[status]}\n`;
const front = (status: number, metric: string, grpc: GrpcStatus = GRPC.INTERNAL): RefusalSpec => ({ status, body: statusText(status), close: true, grpc, metric });
const cert = (failure: FailureClass): RefusalSpec => ({
  status: 403,
  body: `Client certificate error: ${failure}. ${FAILURE_MESSAGES[failure]}\n`,
  close: true,
  grpc: GRPC.UNAUTHENTICATED,
  goaway: true,
  metric: `cert_${failure}`,
});

export const REFUSALS = {
  // The HTTP/1.1 front end, before a request is handed on.
  connect: front(405, "connect", GRPC.UNIMPLEMENTED),
  too_many_headers: front(431, "too_many_headers", GRPC.RESOURCE_EXHAUSTED),
  headers_too_large: front(431, "headers_too_large", GRPC.RESOURCE_EXHAUSTED),
  /** Unparseable (llhttp), or a Transfer-Encoding whose last coding is not chunked. */
  malformed: front(400, "bad_request"),
  chunk_extensions_too_large: front(413, "bad_request"),
  transfer_coding: front(501, "transfer_coding"),
  expectation_failed: front(417, "expectation_failed"),
  request_timeout: front(408, "request_timeout", GRPC.DEADLINE_EXCEEDED),
  // decide(): the request against the connection, the host's policy, its rules and routes.
  bad_target: { status: 400, body: "Bad request target.\n", close: true, grpc: GRPC.INTERNAL, metric: "bad_request" },
  bad_host: { status: 400, body: "A valid Host header is required.\n", close: true, grpc: GRPC.INTERNAL, metric: "bad_request" },
  misdirected: { status: 421, body: "Misdirected Request: this connection cannot serve that host.\n", close: true, grpc: GRPC.UNAVAILABLE, metric: "misdirected" },
  policy_changed: { status: 421, body: "Misdirected Request: the host's client-certificate policy changed; reconnect.\n", close: true, grpc: GRPC.UNAVAILABLE, goaway: true, metric: "policy_changed" },
  cert_missing: cert("missing"),
  cert_untrusted: cert("untrusted"),
  cert_expired: cert("expired"),
  cert_not_yet_valid: cert("not_yet_valid"),
  cert_revoked: cert("revoked"),
  /** A rule's block: the rule's own response (status, body, content type) when it has one. */
  rule: { status: 403, body: "Forbidden\n", close: false, grpc: GRPC.PERMISSION_DENIED, metric: "rule" },
  no_route: { status: 404, body: "No route for this host and path.\n", close: false, grpc: GRPC.UNIMPLEMENTED, metric: "no_route" },
  // The proxy.
  body_too_large: { status: 413, body: "Request body too large.\n", close: true, grpc: GRPC.RESOURCE_EXHAUSTED, metric: "body_too_large" },
  upgrade: { status: 400, body: "This upgrade is not allowed on this route.\n", close: true, grpc: GRPC.INTERNAL, metric: "upgrade" },
  origin_timeout: { status: 504, body: "Gateway Timeout: the origin did not answer in time.\n", close: false, grpc: GRPC.UNAVAILABLE, metric: null },
  origin_unreachable: { status: 502, body: "Bad Gateway: the origin could not be reached.\n", close: false, grpc: GRPC.UNAVAILABLE, metric: null },
  upgrade_failed: { status: 502, body: "Bad Gateway: the origin did not accept the upgrade.\n", close: true, grpc: GRPC.UNAVAILABLE, metric: null },
  // gRPC only: what an HTTP/1.1 origin or a gRPC deadline cannot give.
  grpc_needs_h2_origin: { status: 502, body: "This route's origin speaks HTTP/1.1 only; gRPC needs origin_protocol h2 or h2c.\n", close: false, grpc: GRPC.UNIMPLEMENTED, metric: "grpc_needs_h2_origin" },
  /** An exception inside certgate's own request pipeline (a bug): logged, never a hang or a crash. */
  internal_error: { status: 500, body: "Internal Server Error: certgate failed to handle this request; its log says why.\n", close: true, grpc: GRPC.INTERNAL, metric: "internal_error" },
  grpc_deadline: { status: 504, body: "Deadline exceeded (grpc-timeout).\n", close: false, grpc: GRPC.DEADLINE_EXCEEDED, metric: null },
} as const satisfies Record<string, RefusalSpec>;

export type RefusalReason = keyof typeof REFUSALS;

/** Every reason label certgate_refusals_total can carry, each once. */
export const REFUSAL_LABELS: readonly string[] = [...new Set(Object.values(REFUSALS).flatMap((r: RefusalSpec) => (r.metric === null ? [] : [r.metric])))];

/** Counts a refusal under its label on `host` (a host pattern or "_default"); origin failures are not refusals. */
export function countRefusal(metrics: Metrics, host: string, reason: RefusalReason): void {
  const label = (REFUSALS[reason] as RefusalSpec).metric;
  if (label !== null) metrics.refusals.inc(host, label);
}
