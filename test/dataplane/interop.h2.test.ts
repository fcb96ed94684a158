// HTTP/2 with independent clients (nghttp from nghttp2-client, curl --http2) presenting client
// certificates; ALPN per host (hosts[].http2); the protocol in metrics and the access log;
// WebSockets still on HTTP/1.1 next to HTTP/2.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { h2connect, h2once, h2request } from "../helpers/h2client.ts";
import { startH2Origin } from "../helpers/h2origin.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { parseModel } from "../../src/model/schema.ts";
import { Runtime } from "../../src/dataplane/runtime.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { createLogger } from "../../src/observability/log.ts";
import { REFUSAL_LABELS } from "../../src/dataplane/request/refusals.ts";
import { startEcho } from "../../src/demo/echo.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("HTTP/2 interop: nghttp, curl, ALPN per host, metrics and logs", () => {
  let proxy: Proxy;
  let p: DevPki;
  let f: Record<string, string>;

  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [
        { hostname: "localhost", mtls: { mode: "enforced", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true } },
        { hostname: "a.test", http2: false },
        { hostname: "b.test" },
      ]),
    );
    f = pemFiles({ "ca.pem": p.serverCa.certPem, "client.pem": p.client.certPem, "client.key": p.client.keyPem, "untrusted.pem": p.untrusted.certPem, "untrusted.key": p.untrusted.keyPem, "body.txt": "z".repeat(100_000) });
  });
  afterAll(() => proxy.close());

  const alpn = (servername: string) =>
    new Promise<string | false | null>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port: proxy.port, servername, ca: p.serverCa.certPem, ALPNProtocols: ["h2", "http/1.1"] }, () => {
        resolve(s.alpnProtocol);
        s.destroy();
      });
      s.on("error", reject);
    });

  it("ALPN: h2 by default, http/1.1 only where the host says http2: false", async () => {
    expect(await alpn("b.test")).toBe("h2");
    expect(await alpn("localhost")).toBe("h2");
    expect(await alpn("a.test")).toBe("http/1.1");
    // curl --http2 falls back to HTTP/1.1 there, and is served.
    const r = await run("curl", ["-s", "--http2", "--cacert", f["ca.pem"]!, "--resolve", `a.test:${proxy.port}:127.0.0.1`, "-o", "/dev/null", "-w", "%{http_code} %{http_version}", `https://a.test:${proxy.port}/`]);
    expect(r.stdout).toBe("200 1.1");
  });

  it("nghttp with a client certificate: several streams on one connection, each answered; a body forwarded whole", async () => {
    const base = `https://localhost:${proxy.port}`;
    const r = await run("nghttp", ["-v", `--cert=${f["client.pem"]}`, `--key=${f["client.key"]}`, `${base}/one`, `${base}/two`, `${base}/three`]);
    expect(r.code).toBe(0);
    expect(r.stdout.match(/:status: 200/g)?.length).toBe(3);
    expect(r.stdout).toMatch(/"url": "\/two"/);
    expect(r.stdout).toMatch(/"client-cert": ":[A-Za-z0-9+/=]+:"/);
    // One TLS connection: one handshake line.
    expect(r.stdout.match(/negotiated protocol: h2/gi)?.length, r.stdout.slice(0, 400)).toBe(1);
    const post = await run("nghttp", [`--cert=${f["client.pem"]}`, `--key=${f["client.key"]}`, `--data=${f["body.txt"]}`, `${base}/upload`]);
    expect(post.stdout).toMatch(/"bodyBytes": 100000/);
    expect(post.stdout).toMatch(/"method": "POST"/);
  });

  it("nghttp with an untrusted certificate: 403 naming the class, then GOAWAY", async () => {
    const r = await run("nghttp", ["-v", `--cert=${f["untrusted.pem"]}`, `--key=${f["untrusted.key"]}`, `https://localhost:${proxy.port}/`]);
    expect(r.stdout).toMatch(/:status: 403/);
    expect(r.stdout).toMatch(/Client certificate error: untrusted/);
    expect(r.stdout).toMatch(/recv GOAWAY frame/);
  });

  it("curl --http2 with a client certificate reuses one connection for several requests", async () => {
    const url = `https://localhost:${proxy.port}`;
    const r = await run("curl", ["-s", "--http2", "--cacert", f["ca.pem"]!, "--cert", f["client.pem"]!, "--key", f["client.key"]!, "-o", "/dev/null", "-o", "/dev/null", "-w", "%{http_code} %{http_version} %{num_connects}\n", `${url}/a`, `${url}/b`]);
    expect(r.stdout.trim().split("\n")).toEqual(["200 2 1", "200 2 0"]);
  });

  it("expect: 100-continue: the 100 comes once the request is going to the origin, then the body is forwarded", async () => {
    const s = await h2connect(proxy.port, { servername: "b.test" });
    try {
      const stream = s.request({ ":method": "POST", ":path": "/continue", ":authority": "b.test", expect: "100-continue", "content-length": "5" }, { endStream: false });
      let continued = false;
      stream.on("continue", () => {
        continued = true;
        stream.end("hello");
      });
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      const status = await new Promise<number>((r) => stream.on("response", (h) => r(Number(h[":status"]))));
      await new Promise((r) => stream.on("close", r));
      expect(continued).toBe(true);
      expect(status).toBe(200);
      expect(JSON.parse(Buffer.concat(chunks).toString())).toMatchObject({ method: "POST", url: "/continue", bodyBytes: 5 });
    } finally {
      s.close();
    }
  });

  it("certgate_requests_total carries the protocol", async () => {
    expect((await h2once(proxy.port, { servername: "b.test" })).status).toBe(200);
    const text = await proxy.metrics.registry.metrics();
    expect(text).toMatch(/^certgate_requests_total\{host="b\.test",status="200",protocol="h2"\} \d+$/m);
    expect(text).toMatch(/^certgate_requests_total\{host="a\.test",status="200",protocol="http\/1\.1"\} \d+$/m);
  });

  it("the access log line carries the protocol", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-log-"));
    const file = join(dir, "access.log");
    const echo = await startEcho();
    const log = createLogger({ level: "info", destination: file });
    const runtime = new Runtime(parseModel(baseModel(p, echo.url, [{ hostname: "b.test" }])), { log, metrics: createMetrics({ refusalReasons: REFUSAL_LABELS }) });
    const { port } = await runtime.listen("127.0.0.1", 0);
    try {
      expect((await h2once(port, { servername: "b.test" }, { path: "/logged" })).status).toBe(200);
      log.flush();
      await new Promise((r) => setTimeout(r, 100));
      const line = readFileSync(file, "utf8").split("\n").find((l) => l.includes('"path":"/logged"'));
      expect(JSON.parse(line!)).toMatchObject({ msg: "request", protocol: "h2", status: 200, host: "b.test" });
    } finally {
      await runtime.close();
      echo.server.closeAllConnections();
      await new Promise((r) => echo.server.close(r));
    }
  });
});

describe("graceful stop (Runtime.drain) on HTTP/2", () => {
  it("GOAWAY NO_ERROR to every session: the stream in flight finishes, the connection then closes", async () => {
    const origin = await startH2Origin();
    let release: (() => void) | null = null;
    origin.handler = (stream) => {
      release = () => {
        stream.respond({ ":status": 200 });
        stream.end("finished");
      };
    };
    const proxy = await startProxy((pk) => ({ ...baseModel(pk, origin.url, [{ hostname: "b.test" }]), routes: [{ id: "b", hostname: "b.test", origin: origin.url, origin_protocol: "h2c" }] }));
    const s = await h2connect(proxy.port, { servername: "b.test" });
    try {
      const inFlight = h2request(s, { authority: "b.test", path: "/slow" });
      while (!release) await new Promise((r) => setTimeout(r, 10));
      const goaway = new Promise<number>((r) => s.once("goaway", (code: number) => r(code)));
      const drained = proxy.runtime.drain(10_000);
      expect(await goaway).toBe(0);
      (release as () => void)();
      expect(await inFlight).toMatchObject({ status: 200, body: "finished" });
      await drained;
      await new Promise<void>((r) => (s.closed ? r() : s.once("close", () => r())));
    } finally {
      s.destroy();
      await proxy.close();
      await origin.close();
    }
  });
});
