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
  /** Its reason label in certgate_refusals_total; null when the origin failed rather than certgate refused (certgate_origin_duration_seconds counts those). */
  metric: string | null;
}

/** The status line's own text: the front end's answers say no more than that. */
const statusText = (status: number): string => `${STATUS_CODES[status]}\n`;
const front = (status: number, metric: string): RefusalSpec => ({ status, body: statusText(status), close: true, metric });
const cert = (failure: FailureClass): RefusalSpec => ({
  status: 403,
  body: `Client certificate error: ${failure}. ${FAILURE_MESSAGES[failure]}\n`,
  close: true,
  metric: `cert_${failure}`,
});

export const REFUSALS = {
  // The HTTP/1.1 front end, before a request is handed on.
  connect: front(405, "connect"),
  too_many_headers: front(431, "too_many_headers"),
  headers_too_large: front(431, "headers_too_large"),
  /** Unparseable (llhttp), or a Transfer-Encoding whose last coding is not chunked. */
  malformed: front(400, "bad_request"),
  chunk_extensions_too_large: front(413, "bad_request"),
  transfer_coding: front(501, "transfer_coding"),
  expectation_failed: front(417, "expectation_failed"),
  request_timeout: front(408, "request_timeout"),
  // decide(): the request against the connection, the host's policy, its rules and routes.
  bad_target: { status: 400, body: "Bad request target.\n", close: true, metric: "bad_request" },
  bad_host: { status: 400, body: "A valid Host header is required.\n", close: true, metric: "bad_request" },
  misdirected: { status: 421, body: "Misdirected Request: this connection cannot serve that host.\n", close: true, metric: "misdirected" },
  policy_changed: { status: 421, body: "Misdirected Request: the host's client-certificate policy changed; reconnect.\n", close: true, metric: "policy_changed" },
  cert_missing: cert("missing"),
  cert_untrusted: cert("untrusted"),
  cert_expired: cert("expired"),
  cert_not_yet_valid: cert("not_yet_valid"),
  cert_revoked: cert("revoked"),
  /** A rule's block: the rule's own response (status, body, content type) when it has one. */
  rule: { status: 403, body: "Forbidden\n", close: false, metric: "rule" },
  no_route: { status: 404, body: "No route for this host and path.\n", close: false, metric: "no_route" },
  // The proxy.
  body_too_large: { status: 413, body: "Request body too large.\n", close: true, metric: "body_too_large" },
  upgrade: { status: 400, body: "This upgrade is not allowed on this route.\n", close: true, metric: "upgrade" },
  origin_timeout: { status: 504, body: "Gateway Timeout: the origin did not answer in time.\n", close: false, metric: null },
  origin_unreachable: { status: 502, body: "Bad Gateway: the origin could not be reached.\n", close: false, metric: null },
  upgrade_failed: { status: 502, body: "Bad Gateway: the origin did not accept the upgrade.\n", close: true, metric: null },
} as const satisfies Record<string, RefusalSpec>;

export type RefusalReason = keyof typeof REFUSALS;

/** Every reason label certgate_refusals_total can carry, each once. */
export const REFUSAL_LABELS: readonly string[] = [...new Set(Object.values(REFUSALS).flatMap((r: RefusalSpec) => (r.metric === null ? [] : [r.metric])))];

/** Counts a refusal under its label on `host` (a host pattern or "_default"); origin failures are not refusals. */
export function countRefusal(metrics: Metrics, host: string, reason: RefusalReason): void {
  const label = (REFUSALS[reason] as RefusalSpec).metric;
  if (label !== null) metrics.refusals.inc({ host, reason: label });
}
