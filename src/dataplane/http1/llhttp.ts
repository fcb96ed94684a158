// Node's own native HTTP/1 parser (llhttp), the one node:http runs: strict (no lenient
// flags: Content-Length with Transfer-Encoding, bad chunk sizes and bare LFs are errors),
// in C, and already in the process. `_http_common` is not documented API, so everything
// certgate relies on is declared here and pinned by tests.
import { createRequire } from "node:module";

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
