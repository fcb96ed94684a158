// gRPC over HTTP/2 (grpc/grpc doc/PROTOCOL-HTTP2.md): which requests are gRPC, how a status
// message is encoded, and the deadline a client gives in grpc-timeout.
import type { ClientRequest, ClientResponse } from "./exchange.ts";

/** `content-type: application/grpc` or `application/grpc+proto` etc.: refusals become gRPC statuses. */
export function isGrpc(req: ClientRequest): boolean {
  const ct = req.header("content-type");
  return ct !== undefined && ct.length >= 16 && ct.slice(0, 16).toLowerCase() === "application/grpc" && (ct.length === 16 || ct[16] === "+" || ct[16] === ";");
}

/** grpc-message is percent-encoded: every byte outside printable ASCII, and `%` itself. */
export function grpcMessage(text: string): string {
  let out = "";
  for (const b of Buffer.from(text, "utf8")) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, "0")}`;
  return out;
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/** grpc-timeout (`1*8DIGIT unit`) in milliseconds, at least 1; null when absent or malformed (no deadline, as gRPC servers do). */
export function grpcTimeoutMs(value: string | undefined): number | null {
  const m = value && /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (!m) return null;
  return Math.max(1, Math.ceil(Number(m[1]) * UNIT_MS[m[2]!]!));
}

/** A gRPC "trailers-only" answer: HTTP 200, grpc-status and grpc-message, no body (what gRPC clients read as a status). */
export function sendGrpc(res: ClientResponse, status: number, message: string): void {
  res.writeHead(200, ["content-type", "application/grpc", "grpc-status", String(status), "grpc-message", grpcMessage(message.trim())]);
  res.end();
}
