// A raw HTTP/2 client for hostile tests: frames built by hand (RFC 9113 §4, §6), HPACK as
// literals without indexing or Huffman (RFC 7541 §6.2.2), over TLS with ALPN h2. Nothing of
// node:http2 is used, so it can send what a well-behaved client never would.
import tls from "node:tls";
import { pki } from "./harness.ts";

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 } as const;
export const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** HPACK integer with an n-bit prefix (RFC 7541 §5.1). */
function hpackInt(value: number, prefixBits: number, first = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([first | value]);
  const out = [first | max];
  value -= max;
  while (value >= 128) {
    out.push((value % 128) + 128);
    value = Math.floor(value / 128);
  }
  out.push(value);
  return Buffer.from(out);
}

/** A header block of literals without indexing, new names (RFC 7541 §6.2.2). */
export function hpack(headers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const [n, v] of headers) {
    const name = Buffer.from(n, "latin1");
    const value = Buffer.from(v, "latin1");
    parts.push(Buffer.from([0]), hpackInt(name.length, 7), name, hpackInt(value.length, 7), value);
  }
  return Buffer.concat(parts);
}

export function requestBlock(authority: string, path = "/", method = "GET", extra: [string, string][] = []): Buffer {
  return hpack([[":method", method], [":scheme", "https"], [":authority", authority], [":path", path], ...extra]);
}

export function rst(stream: number, code = 8 /* CANCEL */): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FRAME.RST_STREAM, 0, stream, p);
}

export interface RawH2 {
  socket: tls.TLSSocket;
  frames: Frame[];
  /** The GOAWAY error code, once one arrived. */
  goaway: number | null;
  closed: Promise<void>;
  isClosed(): boolean;
  send(...bufs: Buffer[]): boolean;
  /** Resolves when a frame matching `pred` has arrived (or rejects when the connection closes first). */
  waitFor(pred: (f: Frame) => boolean): Promise<Frame>;
  /** RST_STREAM error codes by stream. */
  rstCodes: Map<number, number>;
  /** Streams on which a HEADERS frame arrived. */
  headersOn: Set<number>;
}

/** Opens TLS with ALPN h2, sends the preface and an empty SETTINGS, and ACKs the server's. */
export async function rawH2(port: number, o: { servername?: string; cert?: { certPem: string; keyPem: string }; read?: boolean } = {}): Promise<RawH2> {
  const p = await pki();
  const socket = tls.connect({ host: "127.0.0.1", port, servername: o.servername ?? "localhost", ca: p.serverCa.certPem, ALPNProtocols: ["h2"], cert: o.cert?.certPem, key: o.cert?.keyPem });
  await new Promise<void>((res, rej) => {
    socket.once("secureConnect", () => res());
    socket.once("error", rej);
  });
  if (socket.alpnProtocol !== "h2") throw new Error(`ALPN chose ${String(socket.alpnProtocol)}`);
  let buf = Buffer.alloc(0);
  let closedFlag = false;
  const waiters: { pred: (f: Frame) => boolean; res: (f: Frame) => void; rej: (e: Error) => void }[] = [];
  const c: RawH2 = {
    socket,
    frames: [],
    goaway: null,
    rstCodes: new Map(),
    headersOn: new Set(),
    closed: new Promise((r) => socket.once("close", () => r())),
    isClosed: () => closedFlag,
    send: (...bufs) => (socket.destroyed ? false : socket.write(Buffer.concat(bufs))),
    waitFor: (pred) =>
      new Promise((res, rej) => {
        const found = c.frames.find(pred);
        if (found) return res(found);
        if (closedFlag) return rej(new Error("connection closed"));
        waiters.push({ pred, res, rej });
      }),
  };
  socket.on("error", () => {});
  socket.once("close", () => {
    closedFlag = true;
    for (const w of waiters.splice(0)) w.rej(new Error("connection closed"));
  });
  socket.on("data", (d: Buffer) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 9) {
      const len = buf.readUIntBE(0, 3);
      if (buf.length < 9 + len) break;
      const f: Frame = { type: buf[3]!, flags: buf[4]!, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
      buf = buf.subarray(9 + len);
      // Keep only what tests look at, so a long flood does not fill the test's own memory.
      if (f.type !== FRAME.DATA && c.frames.length < 10_000) c.frames.push(f);
      if (f.type === FRAME.GOAWAY) c.goaway = f.payload.readUInt32BE(4);
      if (f.type === FRAME.RST_STREAM) c.rstCodes.set(f.stream, f.payload.readUInt32BE(0));
      if (f.type === FRAME.HEADERS) c.headersOn.add(f.stream);
      if (f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK)) c.send(frame(FRAME.SETTINGS, FLAG.ACK, 0));
      for (let i = waiters.length - 1; i >= 0; i--)
        if (waiters[i]!.pred(f)) {
          waiters[i]!.res(f);
          waiters.splice(i, 1);
        }
    }
  });
  if (o.read === false) socket.pause();
  c.send(PREFACE, frame(FRAME.SETTINGS, 0, 0));
  return c;
}
