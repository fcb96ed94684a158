// An HTTP/2 origin for the tests (h2c, or h2 over TLS), speaking gRPC's framing by hand:
// 5-byte message prefix (flag, big-endian length), status in trailers. Independent of
// certgate's code; each test installs its own handler.
import http2, { type Http2Server, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from "node:http2";
import type { AddressInfo } from "node:net";

export type H2Handler = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void;

export interface H2Origin {
  url: string;
  /** Every request's headers, in order of arrival. */
  seen: IncomingHttpHeaders[];
  handler: H2Handler;
  /** Sessions accepted so far (one per client connection). */
  sessions(): number;
  /** GOAWAY on every open session (an origin restarting or shedding connections); resolves once they are closed. */
  goaway(): Promise<void>;
  close(): Promise<void>;
}

/** One gRPC message: uncompressed flag, 4-byte length, payload. */
export function grpcFrame(payload: Buffer | string): Buffer {
  const p = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(p.length, 1);
  return Buffer.concat([head, p]);
}

/** Splits a byte stream into gRPC messages as they complete. */
export class GrpcReader {
  #buf = Buffer.alloc(0);
  push(chunk: Buffer): Buffer[] {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    while (this.#buf.length >= 5) {
      const len = this.#buf.readUInt32BE(1);
      if (this.#buf.length < 5 + len) break;
      out.push(this.#buf.subarray(5, 5 + len));
      this.#buf = this.#buf.subarray(5 + len);
    }
    return out;
  }
}

/** Echo: each request message back, uppercased, then grpc-status 0. */
export const grpcEcho: H2Handler = (stream) => {
  const reader = new GrpcReader();
  stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
  stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "grpc-message": "ok" }));
  stream.on("data", (c: Buffer) => {
    for (const m of reader.push(c)) stream.write(grpcFrame(m.toString().toUpperCase()));
  });
  stream.on("end", () => stream.end());
};

export async function startH2Origin(tls?: { key: string; cert: string }): Promise<H2Origin> {
  const server: Http2Server | Http2SecureServer = tls ? http2.createSecureServer({ key: tls.key, cert: tls.cert, allowHTTP1: false }) : http2.createServer();
  const origin: H2Origin = {
    url: "",
    seen: [],
    handler: grpcEcho,
    sessions: () => accepted,
    goaway: () => Promise.all([...sessions].map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => undefined),
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        for (const s of sessions) s.destroy();
      }),
  };
  const sessions = new Set<http2.ServerHttp2Session>();
  let accepted = 0;
  server.on("session", (s: http2.ServerHttp2Session) => {
    accepted++;
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  server.on("stream", (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    origin.seen.push(headers);
    stream.on("error", () => {});
    origin.handler(stream, headers);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  origin.url = `${tls ? "https" : "http"}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return origin;
}
