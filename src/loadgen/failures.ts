// Failure classes: what an operator needs to tell a policy refusal from an overloaded or
// misconfigured server. A class is "kind:name", counted per class:
//
//   tls_alert:certificate_required   the server sent that TLS alert (RFC 8446 names)
//   verify:UNABLE_TO_VERIFY_LEAF_SIGNATURE   this client refused the server's certificate
//   connect:ECONNREFUSED, error:ECONNRESET   socket errors by errno code
//   timeout:connect | timeout:handshake | timeout:response
//   http:403                          a complete response with a status of 400 or more
//   closed:before_response            the server closed without (a complete) answer
//   protocol:bad_response             bytes that are not an HTTP/1.x response

/** TLS alert descriptions (RFC 8446 §6, RFC 5246 §7.2), by number. */
export const TLS_ALERTS: Record<number, string> = {
  0: "close_notify",
  10: "unexpected_message",
  20: "bad_record_mac",
  21: "decryption_failed",
  22: "record_overflow",
  40: "handshake_failure",
  42: "bad_certificate",
  43: "unsupported_certificate",
  44: "certificate_revoked",
  45: "certificate_expired",
  46: "certificate_unknown",
  47: "illegal_parameter",
  48: "unknown_ca",
  49: "access_denied",
  50: "decode_error",
  51: "decrypt_error",
  70: "protocol_version",
  71: "insufficient_security",
  80: "internal_error",
  86: "inappropriate_fallback",
  90: "user_canceled",
  109: "missing_extension",
  110: "unsupported_extension",
  112: "unrecognized_name",
  113: "bad_certificate_status_response",
  115: "unknown_psk_identity",
  116: "certificate_required",
  120: "no_application_protocol",
};

/** OpenSSL's reason strings for alerts where they differ from the RFC names. */
const OPENSSL_ALERT_ALIASES: Record<string, string> = {
  sslv3_alert_certificate_unknown: "certificate_unknown",
  tlsv1_alert_unknown_ca: "unknown_ca",
  tlsv1_unrecognized_name: "unrecognized_name",
};

/** Socket errors reported under "connect:" (the connection was never established). */
const CONNECT_ERRORS = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH", "EADDRNOTAVAIL", "ENOTFOUND", "EAI_AGAIN"]);

/**
 * The class of an error from a TLS socket. Node reports a received alert as
 * ERR_SSL_{SSLV3,TLSV1,TLSV13}_ALERT_<NAME> with "SSL alert number N" in the message;
 * the number wins (it is the wire value), the code's name is the fallback.
 */
export function classifyError(e: NodeJS.ErrnoException): string {
  const msg = e.message ?? "";
  const num = /SSL alert number (\d+)/.exec(msg);
  if (num && TLS_ALERTS[Number(num[1])]) return `tls_alert:${TLS_ALERTS[Number(num[1])]}`;
  const code = e.code ?? "";
  const alert = /^ERR_SSL_(?:SSLV3|TLSV1|TLSV13)_ALERT_(\w+)$/.exec(code);
  if (alert) return `tls_alert:${alert[1]!.toLowerCase()}`;
  const lower = code.replace(/^ERR_SSL_/, "").toLowerCase();
  if (OPENSSL_ALERT_ALIASES[lower]) return `tls_alert:${OPENSSL_ALERT_ALIASES[lower]}`;
  if (CONNECT_ERRORS.has(code)) return `connect:${code}`;
  // Verification of the server by this client: OpenSSL's X509 codes, and Node's host check.
  if (/^(UNABLE_TO_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|ERR_TLS_CERT_ALTNAME_INVALID$|HOSTNAME_MISMATCH$|INVALID_CA$|PATH_LENGTH_EXCEEDED$)/.test(code)) return `verify:${code}`;
  if (code) return `error:${code}`;
  return `error:${msg.slice(0, 60) || "unknown"}`;
}

/** "tls_alert:unknown_ca" → "TLS alert unknown_ca", for people. */
export function describeClass(c: string): string {
  const i = c.indexOf(":");
  const kind = c.slice(0, i);
  const name = c.slice(i + 1);
  switch (kind) {
    case "tls_alert":
      return `TLS alert ${name}`;
    case "verify":
      return `server certificate not accepted: ${name}`;
    case "connect":
      return `connection failed: ${name}`;
    case "timeout":
      return `timeout (${name})`;
    case "http":
      return `HTTP ${name}`;
    case "closed":
      return `closed ${name.replace(/_/g, " ")}`;
    case "dropped":
      return `not sent: ${name.replace(/_/g, " ")}`;
    default:
      return `${kind} ${name}`;
  }
}
