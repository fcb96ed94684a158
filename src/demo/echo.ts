// A tiny origin that shows what it received: the demo's backend and the tests' origin.
// It also accepts WebSocket upgrades and echoes the raw bytes back.
import http from "node:http";
import { createHash } from "node:crypto";
import type { AddressInfo } from "node:net";

export interface EchoReply {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  bodyBytes: number;
}

function createEchoServer(): http.Server {
  const server = http.createServer((req, res) => {
    let bodyBytes = 0;
    req.on("data", (c: Buffer) => (bodyBytes += c.length));
    req.on("end", () => {
      const reply: EchoReply = { method: req.method ?? "", url: req.url ?? "", headers: req.headers, bodyBytes };
      const body = JSON.stringify(reply, null, 2) + "\n";
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.on("upgrade", (req, socket) => {
    const key = req.headers["sec-websocket-key"] ?? "";
    const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.pipe(socket);
  });
  return server;
}

export async function startEcho(host = "127.0.0.1", port = 0): Promise<{ server: http.Server; url: string }> {
  const server = createEchoServer();
  await new Promise<void>((r) => server.listen(port, host, r));
  return { server, url: `http://${host}:${(server.address() as AddressInfo).port}` };
}
