// HTTP/2 clients for the tests: node:http2 sessions to certgate (with or without a client
// certificate), and one request at a time on them.
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";
import { pki } from "./harness.ts";

export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  trailers: IncomingHttpHeaders;
  /** The RST_STREAM code when the stream was reset instead of answered. */
  rstCode?: number;
}

export interface H2ConnectOpts {
  servername?: string;
  cert?: { certPem: string; keyPem: string; chain?: string };
  settings?: http2.Settings;
  localAddress?: string;
}

/** An HTTP/2 session over TLS (ALPN h2) to certgate on 127.0.0.1. */
export async function h2connect(port: number, o: H2ConnectOpts = {}): Promise<ClientHttp2Session> {
  const p = await pki();
  return new Promise((resolve, reject) => {
    const s = http2.connect(`https://127.0.0.1:${port}`, {
      servername: o.servername ?? "localhost",
      ca: p.serverCa.certPem,
      cert: o.cert ? o.cert.certPem + (o.cert.chain ?? "") : undefined,
      key: o.cert?.keyPem,
      settings: o.settings,
      ...({ localAddress: o.localAddress } as object), // passed on to net.connect; not in the TLS option types
    });
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

export interface H2RequestOpts {
  authority?: string;
  path?: string;
  method?: string;
  headers?: Record<string, string | string[]>;
  body?: string | Buffer;
}

/** One request on an open session; resolves with the answer, or with the RST code of a reset stream. */
export function h2request(session: ClientHttp2Session, o: H2RequestOpts = {}): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const headers: http2.OutgoingHttpHeaders = { ":method": o.method ?? "GET", ":path": o.path ?? "/", ...o.headers };
    if (o.authority !== undefined) headers[":authority"] = o.authority;
    const stream = session.request(headers, { endStream: o.body === undefined });
    let status = 0;
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      head = h;
    });
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {});
    stream.on("close", () => {
      if (!status && stream.rstCode === undefined) return reject(new Error("stream closed without an answer"));
      resolve({ status, headers: head, body: Buffer.concat(chunks).toString(), trailers, rstCode: status ? undefined : stream.rstCode });
    });
    if (o.body !== undefined) stream.end(o.body);
  });
}

/** One request on a new session, closed afterwards. */
export async function h2once(port: number, c: H2ConnectOpts, r: H2RequestOpts = {}): Promise<H2Reply> {
  const s = await h2connect(port, c);
  try {
    return await h2request(s, { authority: c.servername ?? "localhost", ...r });
  } finally {
    s.close();
  }
}
