// Keep-alive HTTP/1.1 connections to origins: one pool per distinct origin configuration,
// shared across snapshots so a config change does not drop warm connections.
//
// Deliberately lean, because it runs once per proxied request: the request head is written
// as one string, Node's native llhttp parses the response, and the body goes straight into
// the client's stream with backpressure. undici cost ~100 µs more server CPU per keep-alive
// request on the benchmark machine (docs/benchmarks.md).
import net from "node:net";
import type { Readable } from "node:stream";
import tls from "node:tls";
import { closeParser, consumeReads, createParser, HTTPParser, trailersClose, type ConsumedReads, type Parser } from "../http1/llhttp.ts";
import type { OriginRoute } from "../snapshot.ts";
import { H2OriginPool } from "./h2.ts";

export type OriginErrorCode = "connect" | "connect_timeout" | "timeout" | "reset" | "protocol" | "body_too_large" | "aborted";

export class OriginError extends Error {
  readonly code: OriginErrorCode;
  constructor(code: OriginErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface OriginRequest {
  method: string;
  /** Origin-form target: path and query. */
  target: string;
  /** Flat [name, value, ...], Host included, hop-by-hop and framing headers removed. */
  headers: string[];
  /** The request body, or null; sent with Content-Length when `bodyLength` ≥ 0, else chunked. */
  body: Readable | null;
  bodyLength: number;
  maxBodyBytes: number;
}

/** Where a response body goes: the client's response. */
export interface BodySink {
  /** False when the client is behind: stop until onDrain. */
  write(chunk: Buffer): boolean;
  end(): void;
  /** The body cannot complete: cut the client's response short. */
  destroy(): void;
  onDrain(cb: () => void): void;
  /**
   * The origin's read is over: send what is held back. A client's HTTP/1.1 response holds its
   * head for the first body bytes, so that the two go out as one TLS record and one write.
   */
  flush?(): void;
  /** Trailer fields, flat, before end() (HTTP/2 origins only; an HTTP/1.1 client's response drops them). */
  trailers?(headers: string[]): void;
}

/** Receives the origin's final response head (1xx interim responses are dropped) and returns where the body goes. */
export type ResponseHead = (status: number, headers: string[]) => BodySink;

export interface Exchange {
  /** Settles when the response body has been handed to the writable and ended. */
  readonly done: Promise<void>;
  /** The client went away: drop the origin connection. */
  abort(): void;
}

export interface Upgraded {
  status: number;
  headers: string[];
  socket: net.Socket;
  head: Buffer;
}

const IDLE_MS = 4_000; // below common origin keep-alive timeouts (nginx 75 s, Node 5 s)
const MAX_IDLE = 256;
const MAX_HEAD = 64 * 1024;
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

/** A connection to an origin and its parser; `exchange` is the request it is serving. */
interface OriginConn {
  socket: net.Socket;
  parser: Parser;
  exchange: ExchangeImpl | null;
  /** Between a response's first byte and its end: bytes the next request must not inherit. */
  inMessage: boolean;
  /** Served at least one response: a reset before any byte may be a keep-alive race. */
  reused: boolean;
  /** TCP (and TLS) established: errors before are connect failures. */
  connected: boolean;
  /** Responses parsed straight from the socket's handle (null: from 'data' events). */
  consumed: ConsumedReads | null;
  /** Reads stopped until the client catches up. */
  paused: boolean;
  /** When it last went back to the pool (Date.now()). */
  idleSince: number;
}

export class OriginPool {
  readonly route: OriginRoute;
  readonly #idle: OriginConn[] = [];
  #session: Buffer | undefined;
  #closed = false;

  constructor(route: OriginRoute) {
    this.route = route;
  }

  exchange(req: OriginRequest, onHead: ResponseHead): Exchange {
    const x = new ExchangeImpl(this, req, onHead);
    x.start(this.#take());
    return x;
  }

  /** Sends an Upgrade request on a fresh connection; resolves on 101 with the raw socket. */
  upgrade(req: OriginRequest): Promise<Upgraded> {
    return new Promise((resolve, reject) => {
      // Read through the socket's Readable: after the 101 the socket is handed over as a stream.
      const conn = this.connect(false);
      const x = new ExchangeImpl(this, req, null);
      x.upgraded = resolve;
      x.done.catch(reject);
      x.start(conn);
    });
  }

  #take(): OriginConn {
    let c: OriginConn | undefined;
    const now = Date.now();
    while ((c = this.#idle.pop())) {
      if (reusable(c) && now - c.idleSince < IDLE_MS) return c;
      c.socket.destroy();
    }
    return this.connect();
  }

  /** Returns a connection whose last exchange ended cleanly; any other is closed. */
  release(c: OriginConn): void {
    c.exchange = null;
    c.reused = true;
    if (this.#closed || this.#idle.length >= MAX_IDLE || !reusable(c)) return void c.socket.destroy();
    // No timer per request: a connection idle for IDLE_MS is never taken again (#take), the
    // oldest such are closed here as traffic goes on, and the read timeout it keeps closes one
    // left idle without traffic. Two socket.setTimeout() calls per request (each a new Timeout
    // and a bound function) were 3-5% of a keep-alive request's CPU.
    const now = (c.idleSince = Date.now());
    const idle = this.#idle;
    while (idle.length && now - idle[0]!.idleSince >= IDLE_MS) idle.shift()!.socket.destroy();
    idle.push(c);
  }

  /** `consume`: llhttp reads the socket's handle directly (not for upgrades). */
  connect(consume = true): OriginConn {
    const r = this.route;
    const u = r.origin;
    const port = Number(u.port) || (u.protocol === "https:" ? 443 : 80);
    const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    const socket = r.tls
      ? tls.connect({
          host,
          port,
          servername: r.tls.serverName,
          ca: r.tls.ca,
          cert: r.tls.cert,
          key: r.tls.key,
          rejectUnauthorized: r.tls.verify,
          ALPNProtocols: ["http/1.1"],
          session: this.#session,
        })
      : net.connect({ host, port });
    socket.setNoDelay(true);
    if (r.tls) socket.on("session", (s: Buffer) => (this.#session = s));
    const conn: OriginConn = { socket, parser: undefined as unknown as Parser, exchange: null, inMessage: false, reused: false, connected: false, consumed: null, paused: false, idleSince: 0 };
    conn.parser = createParser(HTTPParser.RESPONSE, MAX_HEAD, {
      headersComplete: (_maj, _min, headers, _m, _u, status, _msg, upgrade, keepAlive) => conn.exchange?.onHead(status ?? 0, headers!, upgrade, keepAlive) ?? 0,
      body: (chunk) => conn.exchange?.onBody(chunk),
      // Trailers are not forwarded; a `Connection: close` among them makes the connection unusable.
      trailers: (t) => trailersClose(t) && conn.exchange?.noReuse(),
      messageComplete: () => {
        conn.inMessage = false;
        conn.exchange?.onComplete();
      },
    });
    conn.parser[HTTPParser.kOnMessageBegin] = () => {
      conn.inMessage = true;
    };
    // Until connected, the socket's timeout is the connect timeout.
    socket.setTimeout(r.connectTimeoutMs);
    socket.once(r.tls ? "secureConnect" : "connect", () => {
      conn.connected = true;
      socket.setTimeout(conn.exchange ? r.readTimeoutMs : IDLE_MS);
    });
    socket.on("data", (d: Buffer) => (conn.exchange ? conn.exchange.onData(d) : socket.destroy()));
    if (consume) conn.consumed = consumeReads(conn.parser, socket, (ret) => (conn.exchange ? conn.exchange.parsed(ret, null) : socket.destroy()));
    socket.on("timeout", () => (conn.exchange ? conn.exchange.fail(conn.connected ? "timeout" : "connect_timeout") : socket.destroy()));
    socket.on("error", (err) => conn.exchange?.fail(conn.connected ? "reset" : "connect", err.message));
    // An idle connection the origin closes is dropped at once, not left for a request to find half-closed.
    socket.on("end", () => (conn.exchange ? conn.exchange.onEnd() : socket.destroy()));
    socket.on("close", () => {
      conn.exchange?.onEnd();
      conn.consumed?.release();
      closeParser(conn.parser);
    });
    return conn;
  }

  close(): void {
    this.#closed = true;
    for (const c of this.#idle.splice(0)) c.socket.destroy();
  }
}

/**
 * Ready for a new request: open both ways, reading (on a paused socket the next response
 * would never be seen and the request would wait for the read timeout), between messages.
 */
function reusable(c: OriginConn): boolean {
  const s = c.socket;
  return c.exchange === null && !c.inMessage && !c.paused && !s.destroyed && !s.readableEnded && s.writable;
}

class ExchangeImpl implements Exchange {
  readonly done: Promise<void>;
  upgraded: ((u: Upgraded) => void) | null = null;
  #resolve!: () => void;
  #reject!: (e: Error) => void;
  readonly #pool: OriginPool;
  readonly #req: OriginRequest;
  readonly #onHead: ResponseHead | null;
  #conn!: OriginConn;
  #out: BodySink | null = null;
  #keepAlive = false;
  #sent = false; // whole request written
  #bodyStarted = false; // the request body was read from (a byte, or its end): it cannot be sent again
  #received = false; // any response byte seen
  #complete = false; // the whole response was handed over
  #settled = false;
  #retried = false;
  #paused = false; // origin reads paused until the client drains
  #stopBody: (() => void) | null = null;
  #upgradeHead: Buffer | null = null;

  constructor(pool: OriginPool, req: OriginRequest, onHead: ResponseHead | null) {
    this.#pool = pool;
    this.#req = req;
    this.#onHead = onHead;
    this.done = new Promise((res, rej) => {
      this.#resolve = res;
      this.#reject = rej;
    });
  }

  start(conn: OriginConn): void {
    this.#conn = conn;
    conn.exchange = this;
    const s = conn.socket;
    // A reused connection already has the read timeout (the pool's routes share it).
    if (conn.connected && s.timeout !== this.#pool.route.readTimeoutMs) s.setTimeout(this.#pool.route.readTimeoutMs);
    const r = this.#req;
    // Latin-1 both ways: llhttp hands header bytes over as Latin-1 strings, so obs-text bytes
    // reach the origin unchanged (and the encoding is cheaper than UTF-8).
    let head = `${r.method} ${r.target} HTTP/1.1\r\n`;
    const h = r.headers;
    for (let i = 0; i < h.length; i += 2) head += `${h[i]}: ${h[i + 1]}\r\n`;
    if (!r.body) {
      // A body-less request still tells the origin so when its method usually has one.
      head += r.method === "POST" || r.method === "PUT" || r.method === "PATCH" ? "content-length: 0\r\n\r\n" : "\r\n";
      s.write(head, "latin1");
      this.#sent = true;
      return;
    }
    head += r.bodyLength >= 0 ? `content-length: ${r.bodyLength}\r\n\r\n` : "transfer-encoding: chunked\r\n\r\n";
    s.write(head, "latin1");
    this.#sendBody(r.body, r.bodyLength < 0);
  }

  #sendBody(body: Readable, chunked: boolean): void {
    const s = this.#conn.socket;
    let seen = 0;
    const onData = (chunk: Buffer) => {
      seen += chunk.length;
      if (seen > this.#req.maxBodyBytes) return this.fail("body_too_large", "request body too large");
      this.#bodyStarted = true;
      let ok: boolean;
      if (chunked) {
        s.write(`${chunk.length.toString(16)}\r\n`);
        s.write(chunk);
        ok = s.write("\r\n");
      } else ok = s.write(chunk);
      if (!ok) {
        body.pause();
        s.once("drain", () => body.resume());
      }
    };
    const onEnd = () => {
      this.#stopBody = null;
      this.#bodyStarted = true;
      cleanup();
      if (chunked) s.write("0\r\n\r\n");
      this.#sent = true;
      this.#maybeRelease();
    };
    const onAbort = () => {
      this.#stopBody = null;
      cleanup();
      this.fail("aborted", "the client's request body was cut short");
    };
    const cleanup = () => {
      body.off("data", onData);
      body.off("end", onEnd);
      body.off("close", onClose);
    };
    const onClose = () => {
      if (!this.#sent) onAbort();
    };
    body.on("data", onData);
    body.on("end", onEnd);
    body.on("close", onClose);
    this.#stopBody = cleanup;
  }

  onData(d: Buffer): void {
    this.parsed(this.#conn.parser.execute(d), d);
  }

  /** llhttp parsed a read: `d`, or (null) the one it took from the socket's handle. */
  parsed(ret: number | (Error & { code?: string }), d: Buffer | null): void {
    this.#received = true;
    if (typeof ret !== "number") return this.fail("protocol", `malformed response from the origin: ${ret.code ?? ret.message}`);
    if (!this.#onHead) {
      // The bytes after the 101 head belong to the upgraded protocol (upgrades are read as 'data').
      if (this.#settled && d) this.#upgradeHead = d.subarray(ret);
      return;
    }
    this.#out?.flush?.();
    // Released only here, after execute(): whatever followed the response in this read has
    // been seen (and makes the connection unusable) rather than left for the next request.
    this.#maybeRelease();
  }

  onHead(status: number, headers: string[], upgrade: boolean, keepAlive: boolean): number {
    if (this.#complete) {
      // A second response to one request: the connection is out of step.
      this.fail("protocol", "the origin sent a response nobody asked for");
      return 1;
    }
    if (status < 200 && !(upgrade && status === 101)) return 1; // interim (103 Early Hints): dropped
    if (!this.#onHead) {
      if (status !== 101) {
        this.fail("protocol", `the origin answered the upgrade with ${status}`);
        return 1;
      }
      const socket = this.#conn.socket;
      this.#settled = true;
      this.#conn.exchange = null;
      socket.setTimeout(0);
      socket.removeAllListeners("data");
      queueMicrotask(() => {
        this.upgraded!({ status, headers, socket, head: this.#upgradeHead ?? Buffer.alloc(0) });
        this.#resolve();
      });
      return 0;
    }
    this.#keepAlive = keepAlive;
    try {
      this.#out = this.#onHead(status, headers);
    } catch (err) {
      this.fail("protocol", (err as Error).message);
      return 1;
    }
    return this.#req.method === "HEAD" ? 1 : 0;
  }

  /** The origin closes this connection after the response (a `Connection: close` trailer). */
  noReuse(): void {
    this.#keepAlive = false;
  }

  onBody(chunk: Buffer): void {
    const out = this.#out;
    if (!out || out.write(chunk) || this.#paused) return;
    // The client is behind: stop reading the origin until it catches up.
    this.#paused = true;
    this.#reading(false);
    out.onDrain(() => this.#unpause());
  }

  /**
   * Reading resumes when the client drains or when this response is whole, whichever comes
   * first: a client gone without draining must not leave the connection paused for the next.
   */
  #unpause(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#reading(true);
  }

  #reading(on: boolean): void {
    const c = this.#conn;
    c.paused = !on;
    if (c.consumed) c.consumed.reading = on;
    else if (on) c.socket.resume();
    else c.socket.pause();
  }

  onComplete(): void {
    if (this.#settled || !this.#out) return;
    this.#settled = true;
    this.#complete = true;
    this.#unpause();
    this.#out.end();
    this.#resolve();
  }

  /** The connection is reusable once both the response and the request body are complete. */
  #maybeRelease(): void {
    if (!this.#complete || !this.#sent) return;
    const c = this.#conn;
    if (c.exchange !== this) return;
    if (this.#keepAlive) this.#pool.release(c);
    else {
      c.exchange = null;
      c.socket.destroy();
    }
  }

  onEnd(): void {
    if (this.#settled) {
      // Answered while the request body is still going: the connection is done.
      if (this.#complete) this.fail("reset");
      return;
    }
    // A close-delimited body ends here; anything else was cut short.
    if (this.#out && this.#conn.parser.finish() === undefined && this.#settled) return void this.#maybeRelease();
    this.fail("reset", "the origin closed the connection");
  }

  fail(code: OriginErrorCode, message: string = code): void {
    const c = this.#conn;
    if (this.#settled) {
      // The response went out but the request body did not: the connection is not reusable.
      if (c.exchange === this) {
        c.exchange = null;
        c.socket.destroy();
      }
      return;
    }
    c.exchange = null;
    c.socket.destroy();
    this.#stopBody?.();
    this.#stopBody = null;
    // A reused keep-alive connection the origin closed before answering (it may have been
    // closing it as the request went out): retry once on a fresh one when the request can be
    // sent again unchanged, as nginx (proxy_next_upstream error) and undici do.
    if (code === "reset" && c.reused && !this.#received && !this.#retried && !this.#bodyStarted && IDEMPOTENT.has(this.#req.method)) {
      this.#retried = true;
      return this.start(this.#pool.connect());
    }
    this.#settled = true;
    this.#out?.destroy();
    this.#reject(new OriginError(code, message));
  }

  abort(): void {
    this.fail("aborted", "the client went away");
  }
}

/** What the request pipeline asks of a pool, whatever the origin speaks. */
export interface Pool {
  exchange(req: OriginRequest, onHead: ResponseHead): Exchange;
  upgrade(req: OriginRequest): Promise<Upgraded>;
  close(): void;
}

export class Origins {
  readonly #pools = new Map<string, Pool>();

  get(route: OriginRoute): Pool {
    let pool = this.#pools.get(route.originKey);
    if (!pool) this.#pools.set(route.originKey, (pool = route.protocol === "http1" ? new OriginPool(route) : new H2OriginPool(route)));
    return pool;
  }

  /** Closes the idle connections of pools no route uses any more (in-flight exchanges finish). */
  retain(keys: Set<string>): void {
    for (const [key, pool] of this.#pools) {
      if (keys.has(key)) continue;
      this.#pools.delete(key);
      pool.close();
    }
  }

  async close(): Promise<void> {
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
  }
}
