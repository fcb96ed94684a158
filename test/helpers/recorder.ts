// A recording raw origin: a net server that parses what it receives with its own small,
// strict HTTP/1.1 request parser (independent of llhttp and of certgate) and logs each message
// exactly, so tests can prove what did, and what did not, reach an origin.
import net from "node:net";

export interface Recorded {
  /** Which origin connection it came on (1, 2, ...). */
  conn: number;
  method: string;
  target: string;
  /** [name, value] as received, in order (names keep their case). */
  headers: [string, string][];
  /** Latin-1. */
  body: string;
  /** Trailer lines of a chunked body, if any. */
  trailers: string[];
  /** How the body was framed. */
  framing: "none" | "length" | "chunked";
}

/** What the origin writes for a message; `tunnel` switches the connection to raw recording after it. */
export type Reply = (m: Recorded) => { data: string; tunnel?: boolean; close?: boolean };

export interface Recorder {
  url: string;
  messages: Recorded[];
  /** Bytes received on connections after a `tunnel` reply, or unparseable ones. */
  raw: string[];
  /** Per connection (Recorded.conn) switched by a `tunnel` reply: every byte received after it. */
  tunnels: Map<number, string>;
  /** Connections on which the parser met bytes that are not a well-formed request. */
  errors: string[];
  reply: Reply;
  header(m: Recorded, name: string): string[];
  close(): Promise<void>;
}

export const echoReply: Reply = (m) => {
  const body = `${m.method} ${m.target} ${m.body.length}`;
  return { data: `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}` };
};

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** Parses one request at the start of `buf`: the message and its length, null if incomplete; throws if malformed. */
export function parseRequest(buf: string, conn = 0): { message: Recorded; length: number } | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end < 0) {
    if (buf.length > 1 << 20) throw new Error("head too long");
    return null;
  }
  const lines = buf.slice(0, end).split("\r\n");
  const line = /^([A-Z]+) (\S+) HTTP\/1\.1$/.exec(lines[0]!);
  if (!line) throw new Error(`bad request line ${JSON.stringify(lines[0])}`);
  const headers: [string, string][] = [];
  for (const l of lines.slice(1)) {
    const colon = l.indexOf(":");
    if (colon <= 0 || !TOKEN.test(l.slice(0, colon))) throw new Error(`bad header line ${JSON.stringify(l)}`);
    headers.push([l.slice(0, colon), l.slice(colon + 1).trim()]);
  }
  const get = (n: string) => headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
  const te = get("transfer-encoding");
  const cl = get("content-length");
  if (te.length && cl.length) throw new Error("both Transfer-Encoding and Content-Length");
  if (cl.length > 1) throw new Error("several Content-Length");
  let at = end + 4;
  const message: Recorded = { conn, method: line[1]!, target: line[2]!, headers, body: "", trailers: [], framing: "none" };
  if (te.length) {
    if (te.join(",").toLowerCase() !== "chunked") throw new Error(`transfer-encoding ${te.join(",")}`);
    message.framing = "chunked";
    for (;;) {
      const nl = buf.indexOf("\r\n", at);
      if (nl < 0) return null;
      const size = /^([0-9a-fA-F]+)(;.*)?$/.exec(buf.slice(at, nl));
      if (!size) throw new Error(`bad chunk size ${JSON.stringify(buf.slice(at, nl))}`);
      const n = parseInt(size[1]!, 16);
      at = nl + 2;
      if (n === 0) break;
      if (buf.length < at + n + 2) return null;
      if (buf.slice(at + n, at + n + 2) !== "\r\n") throw new Error("chunk not followed by CRLF");
      message.body += buf.slice(at, at + n);
      at += n + 2;
    }
    for (;;) {
      const nl = buf.indexOf("\r\n", at);
      if (nl < 0) return null;
      const l = buf.slice(at, nl);
      at = nl + 2;
      if (l === "") break;
      message.trailers.push(l);
    }
  } else if (cl.length) {
    if (!/^\d+$/.test(cl[0]!)) throw new Error("bad content-length");
    const n = Number(cl[0]);
    message.framing = "length";
    if (buf.length < at + n) return null;
    message.body = buf.slice(at, at + n);
    at += n;
  }
  return { message, length: at };
}

export async function startRecorder(reply: Reply = echoReply): Promise<Recorder> {
  const sockets = new Set<net.Socket>();
  let conns = 0;
  const rec: Recorder = {
    url: "",
    messages: [],
    raw: [],
    tunnels: new Map(),
    errors: [],
    reply,
    header: (m, name) => m.headers.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v),
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
  const server = net.createServer((s) => {
    const conn = ++conns;
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
    s.on("error", () => s.destroy());
    let buf = "";
    let tunnel = false;
    s.on("data", (d: Buffer) => {
      if (tunnel) {
        rec.tunnels.set(conn, rec.tunnels.get(conn)! + d.toString("latin1"));
        return void rec.raw.push(d.toString("latin1"));
      }
      buf += d.toString("latin1");
      while (buf.length && !tunnel && !s.destroyed) {
        let parsed: ReturnType<typeof parseRequest>;
        try {
          parsed = parseRequest(buf, conn);
        } catch (e) {
          rec.errors.push((e as Error).message);
          rec.raw.push(buf);
          return void s.destroy();
        }
        if (!parsed) return;
        buf = buf.slice(parsed.length);
        rec.messages.push(parsed.message);
        const out = rec.reply(parsed.message);
        s.write(out.data, "latin1");
        if (out.close) return void s.end();
        if (out.tunnel) {
          tunnel = true;
          rec.tunnels.set(conn, buf);
          if (buf) rec.raw.push(buf);
        }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  rec.url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  return rec;
}
