// HTTP/2 towards clients, on the TLS socket certgate already verified (ALPN h2): the per-host
// TLS server, handshake-time verification, resumption scoping and the connection's facts are
// exactly those of HTTP/1.1. node:http2 (nghttp2) does the framing, HPACK, flow control and
// the protocol's own limits; each stream is then a request for the same pipeline as HTTP/1.1.
//
// What node:http2 enforces itself, set here: SETTINGS_MAX_CONCURRENT_STREAMS 100 (more is
// RST_STREAM REFUSED_STREAM; maxSessionRejectedStreams of those ends the session), the header
// list size and field count (RST_STREAM ENHANCE_YOUR_CALM above), invalid frames
// (maxSessionInvalidFrames), queued PING/SETTINGS acknowledgements (nghttp2 ends a session
// that does not read them), CONTINUATION floods (nghttp2 1.61+), and
// per-session memory (maxSessionMemory). What it does not, done here (budget.ts): rapid
// reset, PING and SETTINGS floods (node:http2 writes each PING's answer to the socket at once, so a client
// that never reads grows the socket's buffer without bound), request deadlines per stream,
// the idle deadline of a session without streams.
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { TLSSocket } from "node:tls";
import type { Http1Limits } from "../http1/http1.ts";
import type { ClientRequest, ClientResponse } from "../request/exchange.ts";
import { REFUSALS, type RefusalReason, type RefusalSpec } from "../request/refusals.ts";
import { isGrpc, sendGrpc } from "../request/grpc.ts";
import { H2Request, H2Response } from "./stream.ts";
import { Budget, PINGS, RESETS, SETTINGS } from "./budget.ts";

export interface Http2Handlers {
  request(req: ClientRequest, res: ClientResponse): void;
  /** The HTTP/2 front end refused a stream by itself (CONNECT, too many or too large headers, too slow). */
  refused(socket: TLSSocket, reason: RefusalReason): void;
}

/** Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). */
export const MAX_CONCURRENT_STREAMS = 100;
const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_CANCEL, NGHTTP2_NO_ERROR } = http2.constants;
/** After GOAWAY, streams in flight get this long to finish before the connection is cut. */
const CLOSE_GRACE_MS = 5_000;

// Deadlines checked on one timer for every session, as the HTTP/1.1 front end does.
const TICK_MS = 250;
const live = new Set<Http2Connection>();
/** HTTP/2 connections serving now (added to certgate_http_connections). */
export const openSessions = (): number => live.size;
let ticker: NodeJS.Timeout | null = null;
function sweep(): void {
  const now = Date.now();
  for (const c of live) c.check(now);
}

/** Set by drainHttp2(): sessions started from now on get GOAWAY at once. */
let draining = false;

/**
 * Graceful stop (Runtime.drain): every session gets GOAWAY NO_ERROR, so clients open no new
 * streams on it; streams in flight finish, then the session closes (or is cut CLOSE_GRACE_MS
 * later, or by the caller's own deadline).
 */
export function drainHttp2(): void {
  draining = true;
  for (const c of live) c.drain();
}

/** Serves HTTP/2 on a TLS socket whose handshake chose ALPN h2. */
export function serveHttp2(socket: TLSSocket, limits: Http1Limits, handlers: Http2Handlers): void {
  new Http2Connection(socket, limits, handlers);
}

interface Live {
  req: H2Request;
  res: H2Response;
  /** The request (its body included) must be in by then; 0 once it is. */
  deadline: number;
}

class Http2Connection {
  readonly #socket: TLSSocket;
  readonly #session: ServerHttp2Session;
  readonly #limits: Http1Limits;
  readonly #handlers: Http2Handlers;
  readonly #streams = new Map<ServerHttp2Stream, Live>();
  readonly #resets = new Budget(RESETS);
  readonly #pings = new Budget(PINGS);
  readonly #settings = new Budget(SETTINGS);
  /** Without streams, the session closes at this time. */
  #idleDeadline: number;
  #closing = 0;

  constructor(socket: TLSSocket, limits: Http1Limits, handlers: Http2Handlers) {
    this.#socket = socket;
    this.#limits = limits;
    this.#handlers = handlers;
    this.#session = http2.performServerHandshake(socket, {
      settings: {
        maxConcurrentStreams: MAX_CONCURRENT_STREAMS,
        maxHeaderListSize: limits.maxHeaderBytes,
        enablePush: false,
      },
      // Pseudo-headers count as fields for node:http2; 431 above max_header_count is ours (below).
      maxHeaderListPairs: limits.maxHeaderCount + 8,
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
    });
    this.#idleDeadline = Date.now() + limits.headersTimeoutMs;
    const session = this.#session;
    session.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => this.#onStream(stream, headers, flags, raw));
    session.on("error", () => session.destroy());
    session.on("ping", () => this.#pings.take() || this.#goaway(NGHTTP2_ENHANCE_YOUR_CALM));
    session.on("remoteSettings", () => this.#settings.take() || this.#goaway(NGHTTP2_ENHANCE_YOUR_CALM));
    session.on("close", () => this.#onClose());
    socket.on("error", () => socket.destroy());
    live.add(this);
    if (!ticker) (ticker = setInterval(sweep, TICK_MS)).unref();
    if (draining) this.drain();
  }

  drain(): void {
    this.#goaway(NGHTTP2_NO_ERROR);
  }

  #onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]): void {
    const req = new H2Request(stream, this.#socket, headers, flags, raw);
    const res = new H2Response(req, () => this.#goaway(NGHTTP2_NO_ERROR));
    const entry: Live = { req, res, deadline: req.complete ? 0 : Date.now() + this.#limits.requestTimeoutMs };
    this.#streams.set(stream, entry);
    this.#idleDeadline = 0;
    stream.on("error", () => {});
    if (!req.complete) stream.once("end", () => (entry.deadline = 0));
    stream.once("close", () => this.#onStreamClose(stream, entry));
    if (req.method === "CONNECT") return this.#refuse(entry, "connect");
    // Counted here: node:http2's own count includes pseudo-headers.
    if (req.rawHeaders.length > 2 * this.#limits.maxHeaderCount) return this.#refuse(entry, "too_many_headers");
    this.#handlers.request(req, res);
  }

  #onStreamClose(stream: ServerHttp2Stream, e: Live): void {
    this.#streams.delete(stream);
    if (!this.#streams.size) this.#idleDeadline = Date.now() + this.#limits.keepAliveTimeoutMs;
    // A stream the client reset before its response ended: rapid reset counts these.
    if (!e.res.finished && !e.res.resetByUs && !this.#resets.take()) this.#goaway(NGHTTP2_ENHANCE_YOUR_CALM);
  }

  /** The front end answers by itself: the catalog's status and body, on this stream only. */
  #refuse(e: Live, reason: RefusalReason): void {
    this.#handlers.refused(this.#socket, reason);
    e.req.discardBody();
    const r: RefusalSpec = REFUSALS[reason];
    if (isGrpc(e.req)) return sendGrpc(e.res, r.grpc, r.body);
    e.res.writeHead(r.status, ["content-type", "text/plain; charset=utf-8", "content-length", String(Buffer.byteLength(r.body))]);
    e.res.end(r.body);
  }

  /** No new streams; those in flight get CLOSE_GRACE_MS (none when the client misbehaves). */
  #goaway(code: number): void {
    const s = this.#session;
    if (s.destroyed) return;
    if (code !== NGHTTP2_NO_ERROR) {
      // Streams in flight are dropped with the connection: a client over its budget gets nothing more.
      for (const e of this.#streams.values()) e.res.resetByUs = true;
      s.goaway(code);
      // destroy() after the GOAWAY frame is written, or it would never leave.
      return void setImmediate(() => s.destroy());
    }
    if (this.#closing) return;
    this.#closing = Date.now() + CLOSE_GRACE_MS;
    s.close();
  }

  /** Deadlines, from the sweep. */
  check(now: number): void {
    if (this.#closing && now >= this.#closing) return void this.#session.destroy();
    if (this.#idleDeadline && now >= this.#idleDeadline) {
      this.#idleDeadline = 0;
      return this.#goaway(NGHTTP2_NO_ERROR);
    }
    for (const e of this.#streams.values()) {
      if (!e.deadline || now < e.deadline) continue;
      e.deadline = 0;
      // Too slow to send its request: the origin request (if any) is abandoned; 408 if nothing
      // was answered yet, then the stream ends (RST_STREAM NO_ERROR after a complete answer,
      // RFC 9113 §8.1), else the answer in progress is cut (CANCEL).
      const answered = e.res.headersSent;
      e.res.resetByUs = true;
      if (!answered) {
        const abort = e.res.onAbort;
        e.res.onAbort = null;
        abort?.();
        this.#refuse(e, "request_timeout");
      }
      if (!e.req.stream.destroyed) e.req.stream.close(answered ? NGHTTP2_CANCEL : NGHTTP2_NO_ERROR);
    }
  }

  #onClose(): void {
    live.delete(this);
    if (!live.size && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
    if (!this.#socket.destroyed) this.#socket.destroy();
  }
}
