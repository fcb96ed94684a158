// Raw HTTP/1 on a client socket: write bytes, read back whole responses, parsed here
// independently of certgate (Content-Length, chunked, bodiless, or to the end).
import type tls from "node:tls";

export interface Parsed {
  status: number;
  head: string;
  body: string;
}

/** Splits a byte stream (Latin-1) into complete HTTP responses: Content-Length, chunked, bodiless, or to the end. */
export function parseResponses(buf: string, head = false): Parsed[] {
  const out: Parsed[] = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf("\r\n\r\n", at);
    if (end < 0) return out;
    const h = buf.slice(at, end);
    const status = Number(h.split(" ")[1]);
    let next = end + 4;
    const len = /\r\ncontent-length: *(\d+)/i.exec(h);
    let body = "";
    if (status < 200 || status === 204 || status === 304 || head) body = "";
    else if (len) {
      if (buf.length < next + Number(len[1])) return out;
      body = buf.slice(next, next + Number(len[1]));
      next += body.length;
    } else if (/\r\ntransfer-encoding: *chunked/i.test(h)) {
      for (;;) {
        const nl = buf.indexOf("\r\n", next);
        if (nl < 0) return out;
        const size = parseInt(buf.slice(next, nl), 16);
        if (buf.length < nl + 2 + size + 2) return out;
        if (size === 0) {
          next = nl + 4;
          break;
        }
        body += buf.slice(nl + 2, nl + 2 + size);
        next = nl + 2 + size + 2;
      }
    } else {
      body = buf.slice(next);
      next = buf.length;
    }
    out.push({ status, head: h, body });
    at = next;
  }
}

/** Writes `data` and collects what comes back until `done(text)` holds or the socket closes. */
export function exchange(socket: tls.TLSSocket, data: string | Buffer, done: (text: string) => boolean = () => false): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    let text = "";
    const finish = (closed: boolean) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve({ text, closed });
    };
    const onData = (d: Buffer) => {
      text += d.toString("latin1");
      if (done(text)) finish(false);
    };
    const onClose = () => finish(true);
    socket.on("data", onData);
    socket.on("close", onClose);
    if (data.length) socket.write(data);
  });
}

export const responses = (n: number, head = false) => (text: string) => parseResponses(text, head).length >= n;
