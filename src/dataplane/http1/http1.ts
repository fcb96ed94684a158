// HTTP/1.1 towards clients, on the TLS socket. Requests are parsed by Node's native llhttp,
// the same strict parser node:http runs (smuggling checks included: Content-Length with
// Transfer-Encoding, duplicate lengths, bare LFs and bad chunk sizes are errors), reading the
// TLS handle directly as node:http does (consumeReads); framing, keep-alive, pipelining,
// 100-continue, upgrades and slow-client deadlines are done here.
// node:https did the same with per-request objects and listeners that cost more server CPU
// than the rest of a proxied request (docs/benchmarks.md).
import { STATUS_CODES } from "node:http";
import { Readable } from "node:stream";
import type { TLSSocket } from "node:tls";
import { closeParser, consumeReads, createParser, trailersClose, HTTPParser, METHODS, resetParser, type ConsumedReads, type Parser } from "./llhttp.ts";
import { REFUSALS, type RefusalReason } from "../request/refusals.ts";

export interface Http1Limits {
  maxHeaderBytes: number;
  /** Header lines in a request head; 431 above. */
  maxHeaderCount: number;
  /** From the first byte of a request (or the connection) to the end of its head. */
  headersTimeoutMs: number;
  /** From the first byte of a request to the end of its body. */
  requestTimeoutMs: number;
  /** Idle time allowed between requests. */
  keepAliveTimeoutMs: number;
}

export interface Http1Handlers {
  request(req: Request, res: Response): void;
  /** An Upgrade request without a body: may it switch protocols? If not, it is served as a plain request. */
  upgradeAllowed(req: Request): boolean;
  /** An Upgrade request that `upgradeAllowed` let through. The socket is no longer HTTP; `head` is what the client sent after the request. */
  upgrade(req: Request, socket: TLSSocket, head: Buffer): void;
  /** The HTTP layer itself refused a request (malformed, too large, too slow, CONNECT, bad Expect). */
  refused(socket: TLSSocket, reason: RefusalReason): void;
}

const CONNECT = METHODS.indexOf("CONNECT");

/** The first value of a header in flat [name, value, ...] form, by lower-case name. */
export function rawHeader(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

/** Every header of flat [name, value, ...] by lower-case name, each with all its values in order. */
export function distinctHeaders(raw: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
  for (let i = 0; i < raw.length; i += 2) (out[raw[i]!.toLowerCase()] ??= []).push(raw[i + 1]!);
  return out;
}

/** A parsed request head. Header names keep the client's case; values are Latin-1, as llhttp gives them. */
export class Request {
  readonly protocol = "http/1.1" as const;
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpMinor: number;
  /** Cleared by a `Connection: close` trailer: llhttp then reads nothing more either. */
  keepAlive: boolean;
  readonly socket: TLSSocket;
  /** The declared body length; -1 when chunked. */
  readonly bodyLength: number;
  readonly expectsContinue: boolean;
  /** The body as it arrives, when the request has one. */
  body: RequestBody | null = null;
  /** Received in full (always true without a body). */
  complete = false;
  /** Nobody reads the body: what arrives is dropped. */
  discarding = false;
  continued = false;
  /** The Expect header, trimmed and lower-cased, if any. */
  readonly expect: string | undefined;
  /** Every Transfer-Encoding value, lower-cased and joined with commas, if any. */
  readonly transferEncoding: string | undefined;
  #distinct: Record<string, string[]> | undefined;

  constructor(socket: TLSSocket, method: string, url: string, headers: string[], minor: number, keepAlive: boolean) {
    this.socket = socket;
    this.method = method;
    this.url = url;
    this.rawHeaders = headers;
    this.httpMinor = minor;
    this.keepAlive = keepAlive;
    // llhttp has already refused conflicting or malformed framing headers.
    let length = 0;
    let expect: string | undefined;
    let te: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!;
      if (n.length === 14 && n.toLowerCase() === "content-length") length = Number(headers[i + 1]);
      else if (n.length === 17 && n.toLowerCase() === "transfer-encoding") {
        length = -1;
        te = te === undefined ? headers[i + 1]!.toLowerCase() : `${te},${headers[i + 1]!.toLowerCase()}`;
      } else if (n.length === 6 && n.toLowerCase() === "expect") expect = headers[i + 1]!.trim().toLowerCase();
    }
    this.bodyLength = length;
    this.expect = expect;
    this.transferEncoding = te;
    // HTTP/1.0 clients never wait for 100 Continue (RFC 9110 §10.1.1).
    this.expectsContinue = expect === "100-continue" && minor >= 1 && length !== 0;
  }

  /** The first value of a header, by lower-case name. */
  header(name: string): string | undefined {
    return rawHeader(this.rawHeaders, name);
  }

  /** Every header by lower-case name, each with all its values in order. */
  get headersDistinct(): Record<string, string[]> {
    return (this.#distinct ??= distinctHeaders(this.rawHeaders));
  }

  /** The handler will not read the body: drop it as it arrives (the connection stays in sync). */
  discardBody(): void {
    this.discarding = true;
    this.body?.resume();
  }
}

/** A request body: a Readable whose backpressure pauses the client socket. */
class RequestBody extends Readable {
  readonly #conn: Http1Connection;
  constructor(conn: Http1Connection) {
    super();
    this.#conn = conn;
  }
  override _read(): void {
    this.#conn.bodyWanted();
  }
}

let dateCache = "";
let dateSecond = 0;
function httpDate(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== dateSecond) {
    dateSecond = s;
    dateCache = new Date(now).toUTCString();
  }
  return dateCache;
}

/** A whole response after which the connection closes: for answers given outside a Response (refusals, upgrades). */
export function closingResponse(status: number, body: string, contentType = "text/plain; charset=utf-8"): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\ncontent-type: ${contentType}\r\ncontent-length: ${Buffer.byteLength(body)}\r\ndate: ${httpDate()}\r\nconnection: close\r\n${responseTag}\r\n${body}`;
}

/** One response; its framing (length, chunked, or close) is chosen from the headers it is given. */
export class Response {
  readonly request: Request;
  statusCode = 0;
  headersSent = false;
  finished = false;
  /** The connection stays open for another request after this response. */
  keepAlive = false;
  /** After the last byte was handed to the socket. */
  onFinish: (() => void) | null = null;
  /** The connection closed before the response finished. */
  onAbort: (() => void) | null = null;
  readonly #conn: Http1Connection;
  #chunked = false;
  #noBody = false;
  /**
   * The head, held until the first body bytes or the end so that all go out as one TLS record
   * and one write, or until flush(): the origin's read ended without more.
   */
  #head: string | null = null;

  constructor(conn: Http1Connection, req: Request) {
    this.#conn = conn;
    this.request = req;
  }

  /** Sends 100 Continue if the client waits for it; call before reading the body. */
  writeContinue(): void {
    const req = this.request;
    if (!req.expectsContinue || req.continued || this.headersSent) return;
    req.continued = true;
    this.#conn.write("HTTP/1.1 100 Continue\r\n\r\n");
  }

  /** `headers`: flat [name, value, ...] without framing headers except Content-Length. */
  writeHead(status: number, headers: string[], close = false): void {
    if (this.headersSent) throw new Error("response head already sent");
    const req = this.request;
    this.statusCode = status;
    this.headersSent = true;
    this.#noBody = req.method === "HEAD" || status === 204 || status === 304 || status < 200;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Unknown"}\r\n`;
    let length = false;
    let date = false;
    for (let i = 0; i < headers.length; i += 2) {
      const n = headers[i]!;
      if (n.length === 14 && n.toLowerCase() === "content-length") length = true;
      else if (n.length === 4 && n.toLowerCase() === "date") date = true;
      head += `${n}: ${headers[i + 1]}\r\n`;
    }
    if (!date) head += `date: ${httpDate()}\r\n`;
    // A body neither received in full nor being discarded (an origin that failed while it was
    // going out; a client still waiting for 100 Continue) cannot be skipped safely: the
    // connection closes after this response, and the client hears so now, or it would send its
    // next request on a connection being closed. Both flags only ever turn true.
    let keepAlive = req.keepAlive && !close && !this.#conn.closing && (req.complete || req.discarding);
    if (!this.#noBody && !length) {
      if (req.httpMinor >= 1) {
        this.#chunked = true;
        head += "transfer-encoding: chunked\r\n";
      } else keepAlive = false; // HTTP/1.0 without a length: the body ends with the connection
    }
    if (draining) keepAlive = false;
    if (!keepAlive) head += "connection: close\r\n";
    else if (req.httpMinor === 0) head += "connection: keep-alive\r\n";
    head += responseTag;
    this.keepAlive = keepAlive;
    this.#head = head + "\r\n";
  }

  /** Sends the head if it is still held: nothing more is coming in this turn. */
  flush(): void {
    if (this.#head !== null) this.#conn.send(this.#withHead([]));
  }

  write(chunk: Buffer): boolean {
    if (this.#noBody || this.finished || chunk.length === 0) return true;
    // A streamed body's later chunks: no head to join and no framing, nothing to gather.
    if (this.#head === null && !this.#chunked) return this.#conn.write(chunk);
    return this.#conn.send(this.#withHead(this.#chunked ? [`${chunk.length.toString(16)}\r\n`, chunk, "\r\n"] : [chunk]));
  }

  end(body?: string): void {
    if (this.finished) return;
    const out: (string | Buffer)[] = [];
    if (body && !this.#noBody) {
      const b = Buffer.from(body);
      if (this.#chunked) out.push(`${b.length.toString(16)}\r\n`, b, "\r\n");
      else out.push(b);
    }
    if (this.#chunked && !this.#noBody) out.push("0\r\n\r\n");
    this.#conn.send(this.#withHead(out));
    this.finished = true;
    this.#conn.finished(this);
  }

  #withHead(parts: (string | Buffer)[]): (string | Buffer)[] {
    const head = this.#head;
    if (head === null) return parts;
    this.#head = null;
    parts.unshift(head);
    return parts;
  }

  /** Calls `cb` once the client has read what was written. */
  onDrain(cb: () => void): void {
    this.#conn.socket.once("drain", cb);
  }

  /** Cuts the connection: the client sees the response end early. */
  destroy(): void {
    this.#conn.socket.destroy();
  }
}

/** Extra response header lines (debugging only: which worker answered). */
let responseTag = "";
/** The same as flat [name, value, ...] fields, for the HTTP/2 front end. */
let responseTagFields: readonly string[] = [];
export function setResponseTag(lines: string): void {
  responseTag = lines;
  responseTagFields = lines
    .split("\r\n")
    .filter((l) => l.includes(":"))
    .flatMap((l) => [l.slice(0, l.indexOf(":")).trim().toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]);
}
export const tagFields = (): readonly string[] => responseTagFields;

/** Set by drainHttp1(): every response closes its connection. */
let draining = false;
/** How long a draining keep-alive connection may stay idle: a client about to reuse it gets its answer, with `connection: close`. */
const DRAIN_IDLE_MS = 1_000;

/**
 * The process is stopping: each connection ends after its current response (`connection:
 * close`), and one idle between requests closes after at most DRAIN_IDLE_MS. Not at once: a
 * client may be writing its next request right now, and HTTP/1.1 has no GOAWAY to tell it.
 */
export function drainHttp1(): void {
  draining = true;
  const idleBy = Date.now() + DRAIN_IDLE_MS;
  for (const c of live) c.drain(idleBy);
}

// Header and request deadlines, checked for every connection on one timer (as node:http does),
// so that a request costs a number store rather than a timer.
const TICK_MS = 250;
const live = new Set<Http1Connection>();
/** Connections serving HTTP now (a metric). */
export const openConnections = (): number => live.size;
let ticker: NodeJS.Timeout | null = null;
function sweep(): void {
  const now = Date.now();
  for (const c of live) if (c.deadline !== 0 && now >= c.deadline) c.expire();
}

/** No deadline; receiving a request (408 when it passes); idle between requests (close quietly). */
const NONE = 0;
const RECEIVING = 1;
const IDLE = 2;

/**
 * null when a request's Transfer-Encoding is `chunked` alone; malformed (400) when chunked is
 * not the final coding (the body's length is unknowable, RFC 9112 §6.3); transfer_coding
 * (501) for codings before chunked: certgate removes Transfer-Encoding, so it cannot pass
 * them on (RFC 9112 §6.1).
 */
function transferCodingRefusal(te: string): RefusalReason | null {
  const codings = te.split(",").map((c) => c.trim()).filter((c) => c !== "");
  if (codings[codings.length - 1] !== "chunked") return "malformed";
  return codings.length === 1 ? null : "transfer_coding";
}

/** Serves HTTP/1.1 on a TLS socket that has completed its handshake. */
export function serveHttp1(socket: TLSSocket, limits: Http1Limits, handlers: Http1Handlers): void {
  new Http1Connection(socket, limits, handlers);
}

class Http1Connection {
  readonly socket: TLSSocket;
  readonly #parser: Parser;
  readonly #limits: Http1Limits;
  readonly #handlers: Http1Handlers;
  /** The dispatched request whose response is not finished. */
  #current: Response | null = null;
  /** Requests parsed while another's response was in flight (pipelining), in order. */
  readonly #queue: Request[] = [];
  /** The request whose body is being received. */
  #receiving: Request | null = null;
  /** Between a message's first byte and its end. */
  #inMessage = false;
  #messageStart = 0;
  #upgrade: Request | null = null;
  #upgradeHead: Buffer | null = null;
  /** An Upgrade request is being served as a plain one: the parser is reset once it ends. */
  #plainUpgrade = false;
  #bodyFull = false;
  #paused = false;
  /** A refusal of a pipelined request, sent once the response in flight finishes. */
  #refusal: (() => void) | null = null;
  /** No further requests are read: the connection ends after the responses in hand. */
  closing = false;
  #detached = false;
  /** Reads from the TLS handle straight into llhttp, or null: every read comes as 'data'. */
  #consumed: ConsumedReads | null;
  /** A head with Upgrade was parsed in this read: llhttp may have stopped before its end. */
  #sawUpgrade = false;
  deadline = 0;
  #deadlineKind = NONE;

  constructor(socket: TLSSocket, limits: Http1Limits, handlers: Http1Handlers) {
    this.socket = socket;
    this.#limits = limits;
    this.#handlers = handlers;
    this.#parser = createParser(HTTPParser.REQUEST, limits.maxHeaderBytes, {
      headersComplete: (_maj, minor, headers, method, url, _s, _m, upgrade, keepAlive) => this.#onHead(minor, headers ?? [], method ?? 0, url ?? "", upgrade, keepAlive),
      body: (chunk) => this.#onBody(chunk),
      trailers: (trailers) => this.#onTrailers(trailers),
      messageComplete: () => this.#onMessageComplete(),
    });
    this.#parser[HTTPParser.kOnMessageBegin] = () => {
      this.#inMessage = true;
      this.#messageStart = Date.now();
      this.#setDeadline(this.#messageStart + limits.headersTimeoutMs, RECEIVING);
    };
    this.#setDeadline(Date.now() + limits.headersTimeoutMs, RECEIVING);
    live.add(this);
    if (!ticker) (ticker = setInterval(sweep, TICK_MS)).unref();
    // What the socket read before it was handed over (with the end of the handshake) comes as
    // 'data'; every later read goes from the TLS handle straight into llhttp (as node:http
    // does), without the socket's Readable, a Buffer and a 'data' event per read.
    socket.on("data", this.#onData);
    this.#consumed = consumeReads(this.#parser, socket, this.#onExecute);
    socket.on("error", () => socket.destroy());
    socket.on("end", () => this.#onEnd());
    socket.on("close", () => this.#onClose());
  }

  #setDeadline(at: number, kind: number): void {
    this.deadline = at;
    this.#deadlineKind = kind;
  }

  readonly #onData = (data: Buffer): void => {
    let rest: Buffer | null = data;
    while (rest && !this.#halted && !this.#detached) rest = this.#parsed(this.#parser.execute(rest), rest);
  };

  /** llhttp parsed a read straight from the TLS handle. */
  readonly #onExecute = (ret: number | Error): void => {
    if (this.#detached) return;
    const rest = this.#parsed(ret, null);
    if (rest) this.#onData(rest);
  };

  /** After llhttp parsed `data` (null: the handle's read): what it left to parse, if anything. */
  #parsed(ret: number | (Error & { code?: string }), data: Buffer | null): Buffer | null {
    const sawUpgrade = this.#sawUpgrade;
    this.#sawUpgrade = false;
    if (typeof ret !== "number") return this.#parseError(ret.code ?? ""), null;
    if (ret < 0) return this.#parseError(""), null;
    if (this.#upgrade) {
      this.#upgradeHead = (data ?? this.#parser.getCurrentBuffer()).subarray(ret);
      // What follows belongs to the upgraded protocol: from now on reads go to the socket's
      // Readable (paused until the upgrade is dispatched), never to llhttp. A stopped handle
      // does not stop TLS from handing over what it has already decrypted.
      this.#consumed?.release();
      return this.#enqueue(this.#upgrade), null;
    }
    if (this.#plainUpgrade && !this.#inMessage) {
      this.#plainUpgrade = false;
      resetParser(this.#parser, HTTPParser.REQUEST, this.#limits.maxHeaderBytes);
    }
    // llhttp stops after a message with Upgrade and a body; that request was served as a plain
    // one. (Only then does a read from the handle end early: its bytes are copied only then.)
    if (ret === 0) return null;
    if (data === null) {
      if (!sawUpgrade) return null;
      data = this.#parser.getCurrentBuffer();
    }
    return ret >= data.length ? null : data.subarray(ret);
  }

  #onHead(minor: number, headers: string[], method: number, url: string, upgrade: boolean, keepAlive: boolean): number {
    if (upgrade) this.#sawUpgrade = true;
    if (this.#halted) return 1;
    const req = new Request(this.socket, METHODS[method] ?? "", url, headers, minor, keepAlive);
    // The rest of the request (its body) is due within the request timeout of its first byte.
    this.#setDeadline(this.#messageStart + this.#limits.requestTimeoutMs, RECEIVING);
    if (method === CONNECT) return this.#refuse("connect"), 1;
    // Counted here, not by llhttp: a head within max_header_bytes can still hold thousands of lines.
    if (headers.length > 2 * this.#limits.maxHeaderCount) return this.#refuse("too_many_headers"), 1;
    if (req.transferEncoding !== undefined) {
      const refusal = transferCodingRefusal(req.transferEncoding);
      // Refused before llhttp errors on the same header, so no body is ever started.
      if (refusal) return this.#refuse(refusal), 1;
    }
    if (req.expect !== undefined && req.expect !== "100-continue") return this.#refuse("expectation_failed"), 1;
    if (req.bodyLength === 0) req.complete = true;
    else {
      req.body = new RequestBody(this);
      this.#receiving = req;
    }
    // An allowed upgrade is handed over once llhttp returns with the bytes after the head; any
    // other is a plain request, and llhttp goes on to parse what follows as the next one.
    if (upgrade && req.bodyLength === 0 && this.#handlers.upgradeAllowed(req)) this.#upgrade = req;
    else {
      this.#plainUpgrade = upgrade;
      this.#enqueue(req);
    }
    return 0;
  }

  #onBody(chunk: Buffer): void {
    const req = this.#receiving;
    if (!req || req.discarding || !req.body || req.body.destroyed) return;
    if (!req.body.push(chunk)) {
      this.#bodyFull = true;
      this.#flow();
    }
  }

  /** Trailers are not forwarded, but a `Connection: close` among them ends the connection for llhttp as for a header. */
  #onTrailers(trailers: string[]): void {
    const req = this.#receiving;
    if (req && trailersClose(trailers)) req.keepAlive = false;
  }

  #onMessageComplete(): void {
    this.#inMessage = false;
    if (this.#deadlineKind === RECEIVING) this.#setDeadline(0, NONE);
    const req = this.#receiving;
    if (!req) return;
    this.#receiving = null;
    req.complete = true;
    this.#bodyFull = false;
    if (!req.discarding) req.body?.push(null);
    // A `Connection: close` trailer on a request already answered (a refusal does not wait for the body).
    if (!req.keepAlive && this.#current?.request !== req && !this.#queue.includes(req)) return this.#close();
    this.#flow();
  }

  /** The body's reader wants more. */
  bodyWanted(): void {
    if (!this.#bodyFull) return;
    this.#bodyFull = false;
    this.#flow();
  }

  #enqueue(req: Request): void {
    if (this.#current || this.#queue.length) {
      this.#queue.push(req);
      this.#flow();
    } else this.#dispatch(req);
  }

  #dispatch(req: Request): void {
    if (req === this.#upgrade) {
      const head = this.#upgradeHead ?? Buffer.alloc(0);
      this.#upgrade = this.#upgradeHead = null;
      this.#detach();
      return this.#handlers.upgrade(req, this.socket, head);
    }
    const res = new Response(this, req);
    this.#current = res;
    this.#handlers.request(req, res);
  }

  /** Reads only while nothing is queued, the body reader keeps up and the socket is still HTTP. */
  #flow(): void {
    const pause = this.#queue.length > 0 || this.#bodyFull || this.#upgrade !== null || this.#halted;
    if (pause === this.#paused || this.#detached) return;
    this.#paused = pause;
    if (pause) this.socket.pause();
    else this.socket.resume();
    if (this.#consumed) this.#consumed.reading = !pause;
  }

  /** Strings are protocol text (Latin-1, as llhttp reads header bytes). */
  write(data: string | Buffer): boolean {
    const s = this.socket;
    if (s.destroyed || s.writableEnded) return false;
    return typeof data === "string" ? s.write(data, "latin1") : s.write(data);
  }

  /** Parts written together: one TLS record and one write to the socket. */
  send(parts: readonly (string | Buffer)[]): boolean {
    if (parts.length <= 1) return parts.length === 0 || this.write(parts[0]!);
    const s = this.socket;
    s.cork();
    let ok = true;
    for (const p of parts) ok = this.write(p);
    s.uncork();
    return ok;
  }

  /** Called by Response.end(). */
  finished(res: Response): void {
    if (this.#current === res) this.#current = null;
    res.onFinish?.();
    // The requests received before a refusal are answered first; the refusal then takes its
    // own place in the pipeline, last, and closes the connection.
    if (this.#refusal && !this.#queue.length) return this.#refusal();
    const req = res.request;
    // res.keepAlive is false for a body neither read in full nor discarded when the head went
    // out (writeHead: it cannot be skipped safely); a `Connection: close` trailer or the
    // client's end may have come since.
    if (!res.keepAlive || !req.keepAlive || this.closing) return this.#close();
    const next = this.#queue.shift();
    // Later pipelined requests are dispatched from a fresh stack; reading resumes with the
    // queue shorter, or a dispatched request whose body is still arriving would wait forever.
    if (next)
      return void queueMicrotask(() => {
        if (this.#current || this.socket.destroyed) return;
        this.#dispatch(next);
        this.#flow();
      });
    if (!this.#inMessage) this.#setDeadline(Date.now() + (draining ? DRAIN_IDLE_MS : this.#limits.keepAliveTimeoutMs), IDLE);
    this.#flow();
  }

  #close(): void {
    this.closing = true;
    for (const r of this.#queue.splice(0)) r.body?.destroy();
    this.#setDeadline(0, NONE);
    // Not end(): with reads paused the client's FIN would never be read and the socket would linger.
    this.socket.destroySoon();
  }

  /** Nothing more is read: the connection is closing, or a refusal waits for the responses before it. */
  get #halted(): boolean {
    return this.closing || this.#refusal !== null;
  }

  /**
   * The HTTP layer answers by itself and closes; at once, or, pipelined, after the responses to
   * the requests received before the refused one (those keep their keep-alive answers).
   */
  #refuse(reason: RefusalReason): void {
    const answer = () => {
      this.#refusal = null;
      this.closing = true;
      this.#handlers.refused(this.socket, reason);
      this.write(closingResponse(REFUSALS[reason].status, REFUSALS[reason].body));
      this.#close();
    };
    if (this.#current) {
      this.#refusal = answer;
      this.#flow();
    } else answer();
  }

  #parseError(code: string): void {
    // Cut inside a body being forwarded: the origin must see an aborted request, not an ended one.
    if (this.#receiving && !this.#receiving.discarding) {
      this.#receiving.body?.destroy();
      return void this.socket.destroy();
    }
    // Already answered, or about to be (a refusal from the head this error is about): nothing more to say.
    if (this.#halted) return;
    // Bytes after a request that said `Connection: close` are ignored (RFC 9112 §9.6): the
    // connection closes after that request's response; the requests before it are still served.
    if (code === "HPE_CLOSED_CONNECTION") return;
    this.#refuse(code === "HPE_HEADER_OVERFLOW" ? "headers_too_large" : code === "HPE_CHUNK_EXTENSIONS_OVERFLOW" ? "chunk_extensions_too_large" : "malformed");
  }

  /** See drainHttp1(). */
  drain(idleBy: number): void {
    if (this.#deadlineKind === IDLE && this.deadline > idleBy) this.deadline = idleBy;
  }

  /** A deadline passed (called by the sweep). */
  expire(): void {
    if (this.#deadlineKind === IDLE) return void this.socket.destroy();
    const cur = this.#current;
    // Waiting on our own response to an earlier request does not count against the client.
    if (cur && cur.request !== this.#receiving) return;
    this.#setDeadline(0, NONE);
    if (cur) {
      this.#receiving?.body?.destroy();
      return void this.socket.destroy();
    }
    this.#refuse("request_timeout");
  }

  /** The socket leaves HTTP (upgrade): the handler owns it from here. */
  #detach(): void {
    this.#detached = true;
    live.delete(this);
    this.#consumed?.release();
    this.socket.off("data", this.#onData);
    this.socket.pause();
  }

  #onEnd(): void {
    // The client sent all it will; Node ends our side too (TLS sockets do not stay half-open).
    this.closing = true;
    if (!this.#detached) this.#parser.finish();
  }

  #onClose(): void {
    live.delete(this);
    this.#consumed?.release();
    if (!live.size && ticker) {
      clearInterval(ticker);
      ticker = null;
    }
    closeParser(this.#parser);
    this.#receiving?.body?.destroy();
    for (const r of this.#queue.splice(0)) r.body?.destroy();
    const cur = this.#current;
    this.#current = null;
    if (cur && !cur.finished) cur.onAbort?.();
  }
}
