// A raw-TCP HTTP/1.1 origin the test scripts request by request: it can answer, hold an
// answer, close, reset or stall at any point, which node:http would not let a test do.
import net from "node:net";

export interface OriginRequest {
  method: string;
  path: string;
  head: string;
  body: Buffer;
  /** The connection it came on; `served` counts the requests before it on that connection. */
  socket: net.Socket;
  served: number;
}

export type Handler = (r: OriginRequest) => void;

export interface RawOrigin {
  url: string;
  port: number;
  /** Every request received, in order. */
  seen: OriginRequest[];
  accepted: number;
  sockets: Set<net.Socket>;
  handler: Handler;
  /** Sees every read before it is parsed, with the count of requests served on that connection. */
  onBytes: ((socket: net.Socket, served: number) => void) | null;
  close(): Promise<void>;
  /** Stops listening and drops every connection; `listen()` starts again on the same port. */
  stop(): Promise<void>;
  listen(): Promise<void>;
}

/** A plain keep-alive answer carrying the path (as body and x-path), so a mix-up shows. */
export function answer(r: OriginRequest, extra = ""): void {
  r.socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${Buffer.byteLength(r.path)}\r\nx-path: ${r.path}\r\n${extra}\r\n${r.path}`);
}

export async function startRawOrigin(handler: Handler = answer, port = 0): Promise<RawOrigin> {
  const o: RawOrigin = {
    url: "",
    port,
    seen: [],
    accepted: 0,
    sockets: new Set(),
    handler,
    onBytes: null,
    async close() {
      await o.stop();
    },
    stop() {
      for (const s of o.sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
    listen() {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(o.port, "127.0.0.1", () => {
          server.off("error", reject);
          o.port = (server.address() as net.AddressInfo).port;
          o.url = `http://127.0.0.1:${o.port}`;
          resolve();
        });
      });
    },
  };
  const server = net.createServer((s) => {
    o.accepted++;
    o.sockets.add(s);
    s.on("close", () => o.sockets.delete(s));
    s.on("error", () => {});
    let buf = Buffer.alloc(0);
    let served = 0;
    s.on("data", (d: Buffer) => {
      o.onBytes?.(s, served);
      if (s.destroyed) return;
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.toString("latin1", 0, end);
        const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const body = buf.subarray(end + 4, end + 4 + length);
        buf = buf.subarray(end + 4 + length);
        // After the origin closed its side, a request is never seen (no server would answer it).
        if (s.destroyed || s.writableEnded) return;
        const [method = "", path = ""] = head.split(" ");
        const r: OriginRequest = { method, path, head, body, socket: s, served: served++ };
        o.seen.push(r);
        o.handler(r);
      }
    });
  });
  await o.listen();
  return o;
}
