// The admin listener: health and metrics now; the vendor dialects mount here.
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { Metrics } from "../observability/metrics.ts";
import type { Runtime } from "../dataplane/runtime.ts";

export function createAdminServer(runtime: Runtime, metrics: Metrics): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") {
      const body = JSON.stringify({ status: "ok", config_version: runtime.snapshot.version }) + "\n";
      res.writeHead(200, { "content-type": "application/json" });
      return void res.end(body);
    }
    if (req.method === "GET" && path === "/metrics") {
      void metrics.registry.metrics().then((text) => {
        res.writeHead(200, { "content-type": metrics.registry.contentType });
        res.end(text);
      });
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: "not_found", message: `no admin endpoint ${req.method} ${path}` }) + "\n");
  });
}

export function listenAdmin(server: http.Server, host: string, port: number): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve(server.address() as AddressInfo));
  });
}
