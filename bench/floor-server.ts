// Minimal Node servers that bound what any proxy written on Node's TLS stack can reach on
// this machine, each doing strictly less than certgate (mTLS, same certificates):
//
//   tls-direct     TLS server answering each request's bytes with a fixed response (no HTTP parsing)
//   https-direct   node:https answering with a fixed response (no origin)
//   node-direct    node:http2's secure server with HTTP/1.1 allowed (ALPN h2 and http/1.1; HTTP/1.1
//                  connections run node:http's own server code), answering with a fixed response
//   tls-pipe       TLS bytes piped to one origin connection per client (no HTTP at all)
//   https-undici   node:https proxying with undici stream() (what certgate did before)
//   https-llhttp   node:https proxying with certgate's origin client
//   tls-http1      certgate's HTTP/1.1 front end and origin client, without its policy layer
//
// Usage: node bench/floor-server.ts VARIANT PORT ORIGIN_PORT PKI_DIR
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { Pool } from "undici";
import { ORIGIN_BODY } from "./lib/body.ts";
import { Origins, type BodySink } from "../src/dataplane/origins/origins.ts";
import { serveHttp1, type Http1Handlers } from "../src/dataplane/http1/http1.ts";
import type { OriginRoute } from "../src/dataplane/snapshot.ts";

const [variant, portArg, originPortArg, dir] = process.argv.slice(2);
const port = Number(portArg);
const originPort = Number(originPortArg);
const file = (name: string) => readFileSync(`${dir}/${name}`);
const options: tls.TlsOptions = {
  key: file("server.key"),
  cert: file("server.pem"),
  ca: file("client-ca.pem"),
  requestCert: true,
  rejectUnauthorized: true,
  minVersion: "TLSv1.3",
};
const FIXED = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${ORIGIN_BODY.length}\r\n\r\n${ORIGIN_BODY}`);
const target = (url: string | undefined) => url ?? "/";
// Typed in full (no cast): a field the pool reads, such as the protocol, cannot go missing unnoticed.
const route: OriginRoute = {
  id: "floor",
  pathPrefix: "/",
  origin: new URL(`http://127.0.0.1:${originPort}`),
  originKey: "floor",
  tls: undefined,
  protocol: "http1",
  connectTimeoutMs: 5_000,
  readTimeoutMs: 30_000,
  upgrades: [],
};

let server: net.Server;
switch (variant) {
  case "tls-direct":
    server = tls.createServer(options, (s) => {
      s.on("data", () => s.write(FIXED));
      s.on("error", () => s.destroy());
    });
    break;
  case "https-direct":
    server = https.createServer(options, (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": ORIGIN_BODY.length });
      res.end(ORIGIN_BODY);
    });
    break;
  case "node-direct":
    server = http2.createSecureServer({ ...options, allowHTTP1: true }, (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain", "content-length": ORIGIN_BODY.length });
      res.end(ORIGIN_BODY);
    });
    break;
  case "tls-pipe":
    server = tls.createServer(options, (s) => {
      const o = net.connect({ port: originPort, host: "127.0.0.1", noDelay: true });
      s.on("data", (d: Buffer) => o.write(d));
      o.on("data", (d: Buffer) => s.write(d));
      s.on("error", () => o.destroy());
      o.on("error", () => s.destroy());
      s.on("close", () => o.destroy());
    });
    break;
  case "https-undici": {
    const pool = new Pool(`http://127.0.0.1:${originPort}`);
    server = https.createServer(options, (req, res) => {
      pool
        .stream({ method: "GET", path: target(req.url), headers: { host: "localhost" } }, ({ statusCode, headers }) => {
          res.writeHead(statusCode, headers as Record<string, string>);
          return res;
        })
        .catch(() => res.destroy());
    });
    break;
  }
  case "https-llhttp": {
    const origins = new Origins();
    server = https.createServer(options, (req, res) => {
      const x = origins.get(route).exchange({ method: "GET", target: target(req.url), headers: ["host", "localhost"], body: null, bodyLength: 0, maxBodyBytes: 0 }, (status, headers) => {
        res.writeHead(status, headers);
        return { write: (c) => res.write(c), end: () => res.end(), destroy: () => res.destroy(), onDrain: (cb) => res.once("drain", cb) } satisfies BodySink;
      });
      x.done.catch(() => res.destroy());
    });
    break;
  }
  case "tls-http1": {
    const origins = new Origins();
    const limits = { maxHeaderBytes: 16_384, maxHeaderCount: 100, headersTimeoutMs: 30_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5_000 };
    const handlers: Http1Handlers = {
      request: (req, res) => {
        const x = origins.get(route).exchange({ method: "GET", target: req.url, headers: ["host", "localhost"], body: null, bodyLength: 0, maxBodyBytes: 0 }, (status, headers) => {
          res.writeHead(status, headers);
          return res;
        });
        x.done.catch(() => res.destroy());
      },
      upgradeAllowed: () => false,
      upgrade: (_req, socket) => socket.destroy(),
      refused: () => {},
    };
    server = tls.createServer(options, (s) => serveHttp1(s, limits, handlers));
    break;
  }
  default:
    throw new Error(`unknown variant ${variant}`);
}
// Idle keep-alive connections stay open this long (bench/idle.bench.ts); node:https's own default is 5 s.
const keepAliveMs = Number(process.env.BENCH_KEEPALIVE_MS ?? 5_000);
// node:http2's server runs node:http's connection code for HTTP/1.1, which reads this too.
if (server instanceof https.Server || variant === "node-direct") (server as { keepAliveTimeout?: number }).keepAliveTimeout = keepAliveMs;
server.listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
