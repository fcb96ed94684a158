// One HTTP/2 stream as the request pipeline sees a request and its response
// (request/exchange.ts): the same decide() and proxy() as HTTP/1.1, on a stream.
import http2, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import { distinctHeaders, rawHeader, tagFields } from "../http1/http1.ts";
import type { ClientRequest, ClientResponse } from "../request/exchange.ts";

const { NGHTTP2_INTERNAL_ERROR, NGHTTP2_NO_ERROR, NGHTTP2_FLAG_END_STREAM } = http2.constants;

/** Request body bytes dropped after a refusal before the stream is reset instead (RST_STREAM NO_ERROR, RFC 9113 §8.1). */
const DISCARD_LIMIT = 64 * 1024;

/**
 * The request's header list in HTTP/1.1 terms: `:authority` becomes the one `host` (a `host`
 * field that names another host is kept as a second one, so the pipeline answers 400 as for a
 * repeated Host: RFC 9113 §8.3.1), pseudo-headers are left out and cookie crumbs joined with
 * "; " (RFC 9113 §8.2.3), so rules, routes and the origin see what an HTTP/1.1 request carries.
 */
function requestHeaders(raw: readonly string[], authority: string | undefined): string[] {
  const out: string[] = [];
  let cookie: string | undefined;
  let host = authority;
  if (authority !== undefined) out.push("host", authority);
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (name.charCodeAt(0) === 58 /* : */) continue;
    if (name === "cookie") cookie = cookie === undefined ? value : `${cookie}; ${value}`;
    else if (name === "host") {
      if (host === undefined || host.toLowerCase() !== value.toLowerCase()) out.push("host", value);
      host ??= value;
    } else out.push(name, value);
  }
  if (cookie !== undefined) out.push("cookie", cookie);
  return out;
}

export class H2Request implements ClientRequest {
  readonly protocol = "h2" as const;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly socket: TLSSocket;
  readonly bodyLength: number;
  readonly body: Readable | null;
  readonly stream: ServerHttp2Stream;
  /** The body has been received in full (always true without one). */
  complete: boolean;
  discarding = false;
  #distinct: Record<string, string[]> | undefined;

  constructor(stream: ServerHttp2Stream, socket: TLSSocket, headers: IncomingHttpHeaders, flags: number, raw: string[]) {
    this.stream = stream;
    this.socket = socket;
    this.method = String(headers[":method"] ?? "");
    this.url = String(headers[":path"] ?? "");
    this.rawHeaders = requestHeaders(raw, headers[":authority"] as string | undefined);
    const ended = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    const cl = headers["content-length"];
    // nghttp2 checks that the DATA frames add up to a declared content-length.
    this.bodyLength = ended ? 0 : cl !== undefined && /^\d+$/.test(cl) ? Number(cl) : -1;
    this.complete = ended || this.bodyLength === 0;
    this.body = this.complete ? null : stream;
    if (!this.complete) stream.once("end", () => (this.complete = true));
  }

  header(name: string): string | undefined {
    return rawHeader(this.rawHeaders, name);
  }

  get headersDistinct(): Record<string, string[]> {
    return (this.#distinct ??= distinctHeaders(this.rawHeaders));
  }

  discardBody(): void {
    if (this.discarding || this.complete) return;
    this.discarding = true;
    const s = this.stream;
    let dropped = 0;
    s.on("data", (c: Buffer) => {
      dropped += c.length;
      // A refused upload is not read to its end: the answer is sent, then the stream reset.
      if (dropped > DISCARD_LIMIT && !s.destroyed) s.close(NGHTTP2_NO_ERROR);
    });
    s.resume();
  }
}

/** Response headers in node:http2's shape: lower-case names, repeated ones as arrays. */
function outgoing(status: number, headers: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ":status": status };
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const prev = out[name];
    out[name] = prev === undefined ? headers[i + 1]! : Array.isArray(prev) ? [...prev, headers[i + 1]!] : [String(prev), headers[i + 1]!];
  }
  return out;
}

export class H2Response implements ClientResponse {
  readonly request: H2Request;
  readonly stream: ServerHttp2Stream;
  statusCode = 0;
  headersSent = false;
  finished = false;
  onFinish: (() => void) | null = null;
  /** certgate reset the stream itself (not a client's reset). */
  resetByUs = false;
  #onAbort: (() => void) | null = null;
  #head: OutgoingHttpHeaders | null = null;
  #noBody = false;
  #trailers: OutgoingHttpHeaders | null = null;
  /** An HTTP/2 origin may send trailers: the response waits for them (else no trailers, and no extra frame). */
  #trailersExpected = false;
  #endConnection: () => void;

  constructor(req: H2Request, endConnection: () => void) {
    this.request = req;
    this.stream = req.stream;
    this.#endConnection = endConnection;
    this.stream.once("close", () => {
      if (!this.finished) this.#onAbort?.();
    });
  }

  get onAbort(): (() => void) | null {
    return this.#onAbort;
  }
  /** Set after the stream closed (the client reset it while the request was being decided): called at once. */
  set onAbort(cb: (() => void) | null) {
    this.#onAbort = cb;
    if (cb && this.#gone() && !this.finished) queueMicrotask(cb);
  }

  #gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }

  writeContinue(): void {
    const req = this.request;
    if (this.headersSent || req.complete || this.#gone() || req.header("expect")?.trim().toLowerCase() !== "100-continue") return;
    this.stream.additionalHeaders({ ":status": 100 });
  }

  writeHead(status: number, headers: string[]): void {
    if (this.headersSent) throw new Error("response head already sent");
    this.statusCode = status;
    this.headersSent = true;
    this.#noBody = this.request.method === "HEAD" || status === 204 || status === 304;
    const tag = tagFields();
    this.#head = outgoing(status, tag.length ? [...headers, ...tag] : headers);
    // Sent with the first body bytes or the end, whichever comes first in this tick: a
    // body-less answer (a gRPC status) then goes out as one HEADERS frame with END_STREAM.
    queueMicrotask(() => this.#flush(false));
  }

  #flush(ending: boolean): void {
    const head = this.#head;
    if (!head) return;
    this.#head = null;
    if (this.#gone()) return;
    const endStream = this.#noBody || (ending && this.#trailers === null);
    const waitForTrailers = !endStream && (this.#trailersExpected || this.#trailers !== null);
    try {
      this.stream.respond(head, endStream ? { endStream: true } : waitForTrailers ? { waitForTrailers: true } : undefined);
    } catch {
      // Headers node:http2 will not send (a connection-specific field from an origin): cut.
      return this.destroy();
    }
    if (waitForTrailers)
      this.stream.once("wantTrailers", () => {
        try {
          this.stream.sendTrailers(this.#trailers ?? {});
        } catch {
          this.stream.sendTrailers({});
        }
      });
  }

  flush(): void {
    this.#flush(false);
  }

  write(chunk: Buffer): boolean {
    if (this.#noBody || this.finished || chunk.length === 0) return true;
    this.#flush(false);
    if (this.#gone()) return true;
    return this.stream.write(chunk);
  }

  end(body?: string): void {
    if (this.finished) return;
    this.finished = true;
    const hasBody = !!body && !this.#noBody;
    this.#flush(!hasBody);
    if (!this.#gone() && !this.stream.writableEnded && !this.#noBody) {
      if (hasBody) this.stream.end(body);
      else this.stream.end();
    }
    this.onFinish?.();
  }

  expectTrailers(): void {
    this.#trailersExpected = true;
  }

  trailers(headers: string[]): void {
    const t = outgoing(0, headers);
    delete t[":status"];
    this.#trailers = t;
  }

  onDrain(cb: () => void): void {
    this.stream.once("drain", cb);
  }

  destroy(): void {
    if (this.finished && this.stream.writableEnded) return;
    this.resetByUs = true;
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  endConnection(): void {
    this.#endConnection();
  }
}
