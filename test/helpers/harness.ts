// Test harness: a fresh PKI per run, a real certgate Runtime on 127.0.0.1, real clients.
import https from "node:https";
import tls from "node:tls";
import type http from "node:http";
import "reflect-metadata"; // @peculiar/x509 needs it loaded first
import { PemConverter } from "@peculiar/x509";
import { createDevPki, type DevPki } from "../../src/pki/devpki.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import { parseModel, type ModelInput } from "../../src/model/schema.ts";
import { Runtime } from "../../src/dataplane/runtime.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { REFUSAL_LABELS } from "../../src/dataplane/request/refusals.ts";
import { createLogger, type Logger } from "../../src/observability/log.ts";
import { startEcho } from "../../src/demo/echo.ts";

export const SERVER_NAMES = ["localhost", "*.localhost", "a.test", "b.test", "*.wild.test"];

let pkiPromise: Promise<DevPki> | undefined;
/** One PKI per test file (vitest isolates files), generated in-process. */
export function pki(): Promise<DevPki> {
  return (pkiPromise ??= createDevPki({ serverNames: SERVER_NAMES }));
}

export interface Proxy {
  runtime: Runtime;
  port: number;
  metrics: ReturnType<typeof createMetrics>;
  origin: string;
  close(): Promise<void>;
}

/** Starts certgate with `build(pki, originUrl)` as its model, plus an echo origin; `log` to read its access log. */
export async function startProxy(build: (p: DevPki, origin: string) => ModelInput, log?: Logger): Promise<Proxy> {
  const p = await pki();
  const echo = await startEcho();
  const metrics = createMetrics({ refusalReasons: REFUSAL_LABELS });
  const runtime = new Runtime(parseModel(build(p, echo.url)), { log: log ?? createLogger({ level: process.env.TEST_LOG ?? "silent" }), metrics });
  const { port } = await runtime.listen("127.0.0.1", 0);
  return {
    runtime,
    port,
    metrics,
    origin: echo.url,
    async close() {
      await runtime.close();
      echo.server.closeAllConnections();
      await new Promise((r) => echo.server.close(r));
    },
  };
}

/** The common model: one server certificate, the dev client CA, hosts given per test. */
export function baseModel(p: DevPki, origin: string, hosts: ModelInput["hosts"], extra: Partial<ModelInput> = {}): ModelInput {
  return {
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: p.ca.certPem }],
    hosts,
    routes: (hosts ?? []).map((h, i) => ({ id: `r${i}`, hostname: h.hostname, origin })),
    default_certificate: "srv",
    ...extra,
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = { method: string; url: string; headers: Record<string, string>; bodyBytes: number }>(): T;
  socket: tls.TLSSocket;
}

export interface ClientOpts {
  servername?: string;
  host?: string; // Host header; defaults to servername
  path?: string;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  cert?: { certPem: string; keyPem: string; chain?: string };
  session?: Buffer;
  agent?: https.Agent | false;
  /** Source address of the connection (127.0.0.2 is another peer than 127.0.0.1 on one machine). */
  localAddress?: string;
}

/** One HTTPS request on a new connection (unless an agent is given). */
export async function request(port: number, o: ClientOpts = {}): Promise<Reply> {
  const p = await pki();
  const servername = o.servername ?? "localhost";
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        path: o.path ?? "/",
        method: o.method ?? "GET",
        servername,
        ca: p.serverCa.certPem,
        headers: { host: o.host ?? servername, ...o.headers },
        cert: o.cert ? o.cert.certPem + (o.cert.chain ?? "") : undefined,
        key: o.cert?.keyPem,
        agent: o.agent ?? false,
        localAddress: o.localAddress,
      },
      (res) => {
        const chunks: Buffer[] = [];
        // A response cut short fails the request at once rather than leaving it waiting.
        res.on("error", reject);
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const body = Buffer.concat(chunks).toString();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body), socket: res.socket as tls.TLSSocket });
        });
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

/** Opens a TLS connection and resolves once the handshake is done (and tickets arrived). */
export function connect(port: number, o: ClientOpts = {}): Promise<{ socket: tls.TLSSocket; session: Promise<Buffer> }> {
  return pki().then(
    (p) =>
      new Promise((resolve, reject) => {
        let gotSession: (b: Buffer) => void = () => {};
        const session = new Promise<Buffer>((r) => (gotSession = r));
        const socket = tls.connect({
          host: "127.0.0.1",
          port,
          servername: o.servername ?? "localhost",
          ca: p.serverCa.certPem,
          cert: o.cert ? o.cert.certPem + (o.cert.chain ?? "") : undefined,
          key: o.cert?.keyPem,
          session: o.session,
          ...({ localAddress: o.localAddress } as object), // passed on to net.connect; not in the TLS option types
        });
        socket.once("session", gotSession);
        socket.once("secureConnect", () => resolve({ socket, session }));
        socket.once("error", reject);
      }),
  );
}

/** Sends one raw HTTP/1.1 GET on an open socket and reads one response (Content-Length framed). */
export function rawRequest(socket: tls.TLSSocket, host: string, path = "/"): Promise<{ status: number; head: string; body: string }> {
  return rawExchange(socket, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
}

/** Writes raw request bytes on an open socket and reads one response (Content-Length framed). */
export function rawExchange(socket: tls.TLSSocket, data: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = buf.slice(0, end);
      const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      socket.off("data", onData);
      socket.off("error", reject);
      resolve({ status: Number(head.split(" ")[1]), head, body: buf.slice(end + 4, end + 4 + len) });
    };
    socket.on("data", onData);
    socket.once("error", reject);
    socket.write(data);
  });
}

/** What a socket receives, as Latin-1 text; `until(text)` resolves once `text` has arrived. */
export function received(socket: tls.TLSSocket): { text(): string; until(text: string): Promise<void> } {
  let got = "";
  const waiting = new Set<() => void>();
  socket.on("data", (d: Buffer) => {
    got += d.toString("latin1");
    for (const check of waiting) check();
  });
  return {
    text: () => got,
    until: (text) =>
      new Promise((resolve) => {
        const check = () => got.includes(text) && (waiting.delete(check), resolve());
        waiting.add(check);
        check();
      }),
  };
}

export { issue };

/**
 * `c` with its EC public key broken (the point's format byte 0x04 → 0x05) and nothing else:
 * the certificate still parses, but node:crypto throws when its key is read (it decodes keys
 * lazily), and OpenSSL's chain building does not take it as anyone's issuer.
 */
export function withUndecodableKey(c: Issued): Issued {
  const der = Buffer.from(c.cert.rawData.slice(0)); // a copy: Buffer.from(ArrayBuffer) shares its memory
  const spki = Buffer.from(c.cert.publicKey.rawData);
  der[der.indexOf(spki) + spki.length - 65] = 0x05;
  return { ...c, certPem: PemConverter.encode(der, "CERTIFICATE") + "\n" };
}
