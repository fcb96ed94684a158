// The shared origin when nginx is not installed: a fixed small response, keep-alive.
// Usage: node bench/origin.ts PORT
import http from "node:http";
import { ORIGIN_BODY } from "./lib/body.ts";

const body = Buffer.from(ORIGIN_BODY);
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
    res.end(body);
  });
});
server.listen(Number(process.argv[2]), "127.0.0.1");
const stop = () => server.close(() => process.exit(0)) && server.closeAllConnections();
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
