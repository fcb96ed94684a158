// Node's own native HTTP/1 parser (llhttp), the one node:http runs: strict (no lenient
// flags: Content-Length with Transfer-Encoding, bad chunk sizes and bare LFs are errors),
// in C, and already in the process. `_http_common` is not documented API, so everything
// certgate relies on is declared here and pinned by tests.
import { createRequire } from "node:module";
import type { Socket } from "node:net";

export interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  /** Bytes parsed, or an Error with `code` (HPE_*) and `bytesParsed`. */
  execute(data: Buffer): number | (Error & { code?: string; bytesParsed?: number });
  /** End of input: completes a close-delimited body, else an Error if a message is cut. */
  finish(): undefined | Error;
  pause(): void;
  resume(): void;
  /** Deletes the native parser; until then it and everything its callbacks hold stay alive. */
  close(): void;
  /**
   * Reads a native stream (a TLS socket's handle) directly, as node:http does: each read is
   * parsed without passing through the socket's Readable, and kOnExecute gets the result.
   */
  consume(handle: object): void;
  unconsume(): void;
  /** A copy of the read being parsed (inside kOnExecute only). */
  getCurrentBuffer(): Buffer;
  [key: number]: unknown;
}

/** Called with raw [name, value, ...] headers; return 1 to skip the body (HEAD, 1xx). */
export type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[] | undefined,
  method: number | undefined,
  url: string | undefined,
  statusCode: number | undefined,
  statusMessage: string | undefined,
  upgrade: boolean,
  shouldKeepAlive: boolean,
) => number | undefined;

interface ParserClass {
  new (): Parser;
  REQUEST: number;
  RESPONSE: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

const common = createRequire(import.meta.url)("_http_common") as { HTTPParser: ParserClass; methods: string[] };
export const HTTPParser = common.HTTPParser;
/** llhttp's method numbers to names. */
export const METHODS: readonly string[] = common.methods;

/** A `Connection: close` among trailer lines: llhttp then ends the connection after the message, as for a header. */
export function trailersClose(trailers: string[]): boolean {
  for (let i = 0; i < trailers.length; i += 2)
    if (trailers[i]!.toLowerCase() === "connection" && trailers[i + 1]!.toLowerCase().split(",").some((t) => t.trim() === "close")) return true;
  return false;
}

export interface ParserHooks {
  headersComplete: OnHeadersComplete;
  body: (chunk: Buffer) => void;
  /** Trailer lines of a chunked message, raw [name, value, ...], before its messageComplete. */
  trailers?: (headers: string[]) => void;
  messageComplete: () => void;
}

/**
 * Starts a parser afresh between messages. After a message with an Upgrade that was served
 * as a plain request, llhttp resumes in a state where Node's execute() swallows the next
 * parse error (it checks the previous message's upgrade flag) and returns odd byte counts.
 */
export function resetParser(p: Parser, type: number, maxHeaderSize: number): void {
  p.initialize(type, {}, maxHeaderSize, 0);
}

/**
 * Deletes a parser's native half: it is not garbage-collected (node:http closes its parsers
 * the same way). Call from a socket's 'close' handler, never from inside execute().
 */
export function closeParser(p: Parser): void {
  p[HTTPParser.kOnHeaders] = p[HTTPParser.kOnHeadersComplete] = p[HTTPParser.kOnBody] = p[HTTPParser.kOnMessageComplete] = p[HTTPParser.kOnMessageBegin] = null;
  p.close();
}

/**
 * A strict parser. Heads over 32 header lines arrive in parts through kOnHeaders; they are
 * gathered here so `headersComplete` always sees the whole head. llhttp also flushes a
 * chunked message's trailer section through kOnHeaders, after the head and before
 * messageComplete: those lines belong to the finished message and go to `trailers` only, so
 * they can never be read as the next message's URL or headers (certgate forwards no trailers).
 */
export function createParser(type: number, maxHeaderSize: number, hooks: ParserHooks): Parser {
  const p = new HTTPParser();
  resetParser(p, type, maxHeaderSize);
  let partial: string[] | null = null;
  let partialUrl = "";
  /** Between headersComplete and messageComplete: kOnHeaders now carries trailers. */
  let inBody = false;
  p[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
    if (inBody) return void hooks.trailers?.(headers);
    partial = partial ? partial.concat(headers) : headers;
    partialUrl += url;
  };
  p[HTTPParser.kOnHeadersComplete] = ((maj, min, headers, method, url, status, message, upgrade, keepAlive) => {
    if (partial) {
      headers = headers ? partial.concat(headers) : partial;
      url = partialUrl + (url ?? "");
      partial = null;
      partialUrl = "";
    }
    inBody = true;
    return hooks.headersComplete(maj, min, headers ?? [], method, url, status, message, upgrade, keepAlive);
  }) satisfies OnHeadersComplete;
  p[HTTPParser.kOnBody] = hooks.body;
  p[HTTPParser.kOnMessageComplete] = () => {
    inBody = false;
    hooks.messageComplete();
  };
  return p;
}

/** A socket's native stream handle (TCP or TLSWrap), as node:net keeps it. */
interface StreamHandle {
  isStreamBase?: boolean;
  reading: boolean;
  readStart(): number;
  readStop(): number;
}

/**
 * Reads a socket through `parser` straight from its native handle, as node:http does: each
 * read is parsed without the socket's Readable, a Buffer and a 'data' event per read, and
 * `onExecute` gets what execute() would have returned. Anything already in the Readable still
 * comes as 'data' (keep that listener: it also lets 'end' be emitted). Returns the reads'
 * controls, or null when the socket has no such handle (then 'data' carries everything).
 */
export function consumeReads(parser: Parser, socket: Socket, onExecute: (ret: number | (Error & { code?: string })) => void): ConsumedReads | null {
  const handle = (socket as unknown as { _handle?: StreamHandle | null })._handle;
  if (!handle?.isStreamBase) return null;
  // A read refreshes the socket's timeout (setTimeout is an inactivity timeout) as a read
  // through the Readable does; node:http's onParserExecute does the same. Without it a
  // response still streaming when the read timeout comes round was cut.
  const timed = socket as unknown as { _unrefTimer(): void };
  parser[HTTPParser.kOnExecute] = (ret: number | (Error & { code?: string })) => {
    timed._unrefTimer();
    onExecute(ret);
  };
  parser.consume(handle);
  return new ConsumedReads(parser, socket, handle);
}

export class ConsumedReads {
  readonly #parser: Parser;
  readonly #socket: Socket;
  readonly #handle: StreamHandle;
  #done = false;

  constructor(parser: Parser, socket: Socket, handle: StreamHandle) {
    this.#parser = parser;
    this.#socket = socket;
    this.#handle = handle;
  }

  /** A consumed handle is not stopped by the socket's pause(): it is told directly. */
  set reading(on: boolean) {
    const h = this.#handle;
    if (this.#done || this.#socket.destroyed || h.reading === on) return;
    h.reading = on;
    if (on) h.readStart();
    else h.readStop();
  }

  /**
   * The socket's reads go back through its Readable (node:http unconsumes the same way), and
   * the handle reads again: the Readable's own backpressure (pause(), its high-water mark)
   * takes over from here, and its read state, left waiting while llhttp had the reads, could
   * not restart a handle stopped here.
   */
  release(): void {
    if (this.#done) return;
    this.reading = true;
    this.#done = true;
    this.#parser.unconsume();
  }
}