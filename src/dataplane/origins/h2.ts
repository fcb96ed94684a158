// HTTP/2 to origins (a route's `origin_protocol: h2`, TLS with ALPN, or `h2c`, cleartext with
// prior knowledge): one node:http2 client session per origin configuration, every request a
// stream on it. Bodies stream both ways with HTTP/2 flow control as backpressure, and response
// trailers (gRPC's grpc-status, grpc-message) are handed to the client's response.
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http2";
import type { Readable } from "node:stream";
import type { OriginRoute } from "../snapshot.ts";
import { OriginError, type BodySink, type Exchange, type OriginErrorCode, type OriginRequest, type ResponseHead, type Upgraded } from "./origins.ts";

/** A session without streams closes after this long (below common origin idle timeouts). */
const IDLE_MS = 30_000;
const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM } = http2.constants;
/** Sessions whose connection (and TLS handshake) completed: a failure before is a connect failure (502/504 alike, but told apart in logs and metrics). */
const connected = new WeakSet<ClientHttp2Session>();

/** Flat [name, value, ...] from Node's raw header list, pseudo-headers left out. */
function flat(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.charCodeAt(0) !== 58 /* : */) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

export class H2OriginPool {
  readonly route: OriginRoute;
  #session: ClientHttp2Session | null = null;
  #closed = false;

  constructor(route: OriginRoute) {
    this.route = route;
  }

  exchange(req: OriginRequest, onHead: ResponseHead): Exchange {
    const x = new H2Exchange(this.route, req, onHead, () => this.#take());
    x.start();
    return x;
  }

  upgrade(): Promise<Upgraded> {
    return Promise.reject(new Error("upgrades are HTTP/1.1: this route's origin speaks HTTP/2"));
  }

  /** The live session, or a new one: a closed, destroyed or GOAWAY'd session takes no new streams. */
  #take(): ClientHttp2Session {
    // A session the origin sent GOAWAY to (or that is going away) takes no new streams.
    if (this.#session?.closed || this.#session?.destroyed) this.#session = null;
    const s = this.#session;
    if (s && !s.closed && !s.destroyed) return s;
    const r = this.route;
    const u = r.origin;
    const authority = `${r.tls ? "https" : "http"}://${u.host}`;
    const session = http2.connect(authority, {
      ...(r.tls && { servername: r.tls.serverName, ca: r.tls.ca, cert: r.tls.cert, key: r.tls.key, rejectUnauthorized: r.tls.verify, ALPNProtocols: ["h2"] }),
      // No client-initiated pushes: certgate does not forward server push.
      settings: { enablePush: false },
    });
    this.#session = session;
    const connectTimer = setTimeout(() => session.destroy(new OriginError("connect_timeout", "the origin did not connect in time")), r.connectTimeoutMs);
    session.once("connect", () => {
      clearTimeout(connectTimer);
      connected.add(session);
    });
    session.setTimeout(IDLE_MS, () => {
      // Inactivity on the whole session; streams have their own read timeout.
      if (!session.closed) session.close();
    });
    session.on("error", () => {}); // each stream reports its own failure
    session.once("goaway", () => {
      if (this.#session === session) this.#session = null;
    });
    session.once("close", () => {
      clearTimeout(connectTimer);
      if (this.#session === session) this.#session = null;
    });
    if (this.#closed) session.close();
    return session;
  }

  close(): void {
    this.#closed = true;
    this.#session?.close();
    this.#session = null;
  }
}

class H2Exchange implements Exchange {
  readonly done: Promise<void>;
  #resolve!: () => void;
  #reject!: (e: Error) => void;
  readonly #route: OriginRoute;
  readonly #req: OriginRequest;
  readonly #onHead: ResponseHead;
  #stream: ClientHttp2Stream | null = null;
  #out: BodySink | null = null;
  #settled = false;
  #session: ClientHttp2Session | null = null;
  #stopBody: (() => void) | null = null;
  readonly #take: () => ClientHttp2Session;
  /** Request body bytes handed to a stream (or its end): past that, the request cannot be sent again. */
  #bodyStarted = false;
  #retried = false;

  constructor(route: OriginRoute, req: OriginRequest, onHead: ResponseHead, take: () => ClientHttp2Session) {
    this.#route = route;
    this.#req = req;
    this.#onHead = onHead;
    this.#take = take;
    this.done = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
  }

  /** Whether the session got connected: failures before that are connect failures. */
  #connected(): boolean {
    return this.#session !== null && connected.has(this.#session);
  }

  start(): void {
    const session = (this.#session = this.#take());
    const r = this.#req;
    const headers: OutgoingHttpHeaders = { ":method": r.method, ":path": r.target, ":scheme": this.#route.tls ? "https" : "http" };
    const h = r.headers;
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i]!.toLowerCase();
      const key = name === "host" ? ":authority" : name;
      const prev = headers[key];
      headers[key] = prev === undefined ? h[i + 1]! : Array.isArray(prev) ? [...prev, h[i + 1]!] : [String(prev), h[i + 1]!];
    }
    if (r.body && r.bodyLength >= 0) headers["content-length"] = String(r.bodyLength);
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: !r.body });
    } catch (err) {
      return this.fail("protocol", (err as Error).message);
    }
    this.#stream = stream;
    stream.setTimeout(this.#route.readTimeoutMs, () => this.fail(this.#connected() ? "timeout" : "connect_timeout"));
    stream.on("response", (head: IncomingHttpHeaders, _flags: number, raw: string[]) => this.#onResponse(Number(head[":status"]), raw));
    stream.on("data", (chunk: Buffer) => this.#onData(chunk));
    stream.on("trailers", (_t: IncomingHttpHeaders, _flags: number, raw: string[]) => this.#out?.trailers?.(flat(raw)));
    stream.on("end", () => this.#onEnd());
    stream.on("error", (err: Error) => {
      if (this.#stream === stream && !this.#retry(stream)) this.fail(err instanceof OriginError ? err.code : this.#connected() ? "reset" : "connect", err.message);
    });
    stream.on("close", () => {
      if (this.#stream === stream && !this.#settled && !this.#retry(stream)) this.fail(this.#connected() ? "reset" : "connect", `the origin closed the stream (code ${stream.rstCode})`);
    });
    if (r.body) this.#sendBody(r.body, stream);
  }

  /**
   * A stream the origin refused unprocessed (REFUSED_STREAM, or above the last stream id of its
   * GOAWAY: RFC 9113 §8.7) is sent again once, on a fresh session, if no body byte went out.
   */
  #retry(stream: ClientHttp2Stream): boolean {
    if (this.#settled || this.#retried || this.#out || this.#bodyStarted || stream.rstCode !== NGHTTP2_REFUSED_STREAM) return false;
    this.#retried = true;
    this.#stopBody?.();
    this.#stopBody = null;
    this.start();
    return true;
  }

  #sendBody(body: Readable, stream: ClientHttp2Stream): void {
    let seen = 0;
    const onData = (chunk: Buffer) => {
      this.#bodyStarted = true;
      seen += chunk.length;
      if (seen > this.#req.maxBodyBytes) return this.fail("body_too_large", "request body too large");
      if (!stream.write(chunk)) {
        body.pause();
        stream.once("drain", () => body.resume());
      }
    };
    const onEnd = () => {
      this.#bodyStarted = true;
      cleanup();
      stream.end();
    };
    const onClose = () => {
      cleanup();
      this.fail("aborted", "the client's request body was cut short");
    };
    const cleanup = () => {
      this.#stopBody = null;
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("close", onClose);
    };
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("close", onClose);
    this.#stopBody = cleanup;
  }

  #onResponse(status: number, raw: string[]): void {
    if (this.#settled) return;
    try {
      this.#out = this.#onHead(status, flat(raw));
      // An HTTP/2 origin's body comes in later callbacks: the head goes out at the end of this one.
      queueMicrotask(() => this.#out?.flush?.());
    } catch (err) {
      this.fail("protocol", (err as Error).message);
    }
  }

  #onData(chunk: Buffer): void {
    const out = this.#out;
    const stream = this.#stream!;
    if (!out || out.write(chunk) || stream.isPaused()) return;
    // The client is behind: stop reading (HTTP/2 flow control then holds the origin) until it drains.
    stream.pause();
    out.onDrain(() => stream.resume());
  }

  #onEnd(): void {
    if (this.#settled) return;
    if (!this.#out) return this.fail("protocol", "the origin ended the stream without a response");
    this.#settled = true;
    this.#stopBody?.();
    this.#out.end();
    this.#resolve();
  }

  fail(code: OriginErrorCode, message: string = code): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#stopBody?.();
    const s = this.#stream;
    if (s && !s.destroyed) s.close(NGHTTP2_CANCEL);
    this.#out?.destroy();
    this.#reject(new OriginError(code, message));
  }

  abort(): void {
    this.fail("aborted", "the client went away");
  }
}
