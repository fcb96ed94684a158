// What the request pipeline needs from a front end, whatever the protocol: the HTTP/1.1 front
// end's Request and Response (http1/http1.ts) and an HTTP/2 stream's (http2/stream.ts) both
// satisfy these, so every request goes through the one decide() and proxy().
import type { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";

/** The protocol a request came in on: the access log and certgate_requests_total carry it. */
export type ClientProtocol = "http/1.1" | "h2";

export interface ClientRequest {
  readonly protocol: ClientProtocol;
  readonly method: string;
  /** The request target as sent (HTTP/2: `:path`). */
  readonly url: string;
  /** Flat [name, value, ...]. HTTP/2: `:authority` as `host`, no pseudo-headers, cookies joined. */
  readonly rawHeaders: string[];
  /** The verified TLS socket: its ClientConn (requests.ts) says what the handshake established. */
  readonly socket: TLSSocket;
  /** The declared body length; -1 when unknown (chunked, or HTTP/2 without content-length). */
  readonly bodyLength: number;
  readonly body: Readable | null;
  header(name: string): string | undefined;
  readonly headersDistinct: Record<string, string[]>;
  /** Nobody will read the body: drop it as it arrives. */
  discardBody(): void;
}

export interface ClientResponse {
  statusCode: number;
  readonly headersSent: boolean;
  /** After the last byte was handed on. */
  onFinish: (() => void) | null;
  /** The client went away before the response finished. */
  onAbort: (() => void) | null;
  writeContinue(): void;
  /** `close`: the connection is not to be used after this answer (HTTP/2: this stream only; see endConnection). */
  writeHead(status: number, headers: string[], close?: boolean): void;
  write(chunk: Buffer): boolean;
  /** Sends a head still held back for the first body bytes (the origin's read is over). */
  flush(): void;
  end(body?: string): void;
  onDrain(cb: () => void): void;
  /** Cuts the response short: the client sees it end early. */
  destroy(): void;
  /** Trailer fields to send after the body (HTTP/2 only: HTTP/1.1 responses drop trailers). */
  trailers?(headers: string[]): void;
  /** Before writeHead: trailers may follow (an HTTP/2 origin). Without it, none are waited for. */
  expectTrailers?(): void;
  /** HTTP/2: no new streams on this connection (GOAWAY); streams in flight finish. */
  endConnection?(): void;
}
