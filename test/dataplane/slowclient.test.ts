// Slow clients are cut off, and the access log is JSON without key material.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, request } from "../helpers/harness.ts";
import { Runtime } from "../../src/dataplane/runtime.ts";
import { parseModel } from "../../src/model/schema.ts";
import { createLogger } from "../../src/observability/log.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { startEcho } from "../../src/demo/echo.ts";

describe("slow clients and logs", () => {
  let runtime: Runtime;
  let port: number;
  let logFile: string;
  let echo: Awaited<ReturnType<typeof startEcho>>;
  beforeAll(async () => {
    const p = await pki();
    echo = await startEcho();
    logFile = join(mkdtempSync(join(tmpdir(), "certgate-log-")), "access.log");
    const model = parseModel(
      baseModel(p, echo.url, [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "fail_open" } }], { limits: { request_timeout_ms: 600 } }),
    );
    runtime = new Runtime(model, { log: createLogger({ level: "info", destination: logFile }), metrics: createMetrics() });
    port = (await runtime.listen("127.0.0.1", 0)).port;
  });
  afterAll(async () => {
    await runtime.close();
    echo.server.close();
  });

  it("a client that never finishes its request headers gets 408 and is disconnected", async () => {
    const { socket } = await connect(port);
    socket.write("GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ");
    const reply = await new Promise<string>((resolve) => {
      let b = "";
      socket.on("data", (d) => (b += d));
      socket.on("close", () => resolve(b));
    });
    expect(reply).toMatch(/^HTTP\/1.1 408/);
  });

  it("writes one JSON access-log line per request, with no private key material", async () => {
    const p = await pki();
    await request(port, { path: "/logged", cert: p.client });
    await new Promise((r) => setTimeout(r, 300)); // pino writes asynchronously
    const lines = readFileSync(logFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const entry = lines.find((l) => l.msg === "request" && l.path === "/logged");
    expect(entry).toMatchObject({ status: 200, method: "GET", sni: "localhost", cert: { verified: true } });
    const text = readFileSync(logFile, "utf8");
    expect(text).not.toContain("PRIVATE KEY");
    expect(text).not.toContain(p.server.keyPem.split("\n")[1]!);
  });
});
