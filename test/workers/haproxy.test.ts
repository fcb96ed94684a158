// HAProxy from Debian in TCP mode in front of `serve --workers 2`, sending PROXY v2 and v1 from
// 127.0.0.9 (the only trusted peer); curl (HTTP/1.1 and HTTP/2) and openssl s_client connect to
// HAProxy from other loopback addresses. The origin, the rules, the access log and the metrics
// must see each client's own address, whichever worker accepted the connection.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { pki } from "../helpers/harness.ts";
import { freePort } from "../helpers/opensslca.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { sample, startGroup, untilTrue, type Group } from "./group.ts";

describe("HAProxy send-proxy-v2 / send-proxy in front of serve --workers 2", () => {
  let g: Group;
  let haproxy: ChildProcess;
  let haproxyLog = "";
  let v2Port: number;
  let v1Port: number;
  let caFile: string;
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    const echo = await startEcho();
    closers.push(() => echo.server.close());
    g = await startGroup((pk) => ({
      certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
      hosts: [{ hostname: "localhost" }],
      routes: [{ id: "r", hostname: "localhost", origin: echo.url }],
      default_certificate: "srv",
      proxy_protocol: { trusted: ["127.0.0.9/32"] },
      rules: [{ id: "net", expression: 'ip.src eq 127.0.0.6 and http.request.uri.path eq "/deny"', action: "block" }],
    }));
    [v2Port, v1Port] = [await freePort(), await freePort()];
    const dir = mkdtempSync(join(tmpdir(), "certgate-haproxy-"));
    const cfg = join(dir, "haproxy.cfg");
    writeFileSync(
      cfg,
      [
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 30s",
        "  timeout server 30s",
        "frontend v2",
        `  bind 127.0.0.1:${v2Port}`,
        "  default_backend certgate_v2",
        "frontend v1",
        `  bind 127.0.0.1:${v1Port}`,
        "  default_backend certgate_v1",
        "backend certgate_v2",
        `  server cg 127.0.0.1:${g.port} send-proxy-v2 source 127.0.0.9`,
        "backend certgate_v1",
        `  server cg 127.0.0.1:${g.port} send-proxy source 127.0.0.9`,
        "",
      ].join("\n"),
    );
    haproxy = spawn(existsSync("/usr/sbin/haproxy") ? "/usr/sbin/haproxy" : "haproxy", ["-db", "-f", cfg], { stdio: ["ignore", "pipe", "pipe"] });
    haproxy.stdout!.on("data", (d) => (haproxyLog += d));
    haproxy.stderr!.on("data", (d) => (haproxyLog += d));
    const listening = (port: number) =>
      new Promise<boolean>((r) => {
        const s = net.connect(port, "127.0.0.1", () => (s.destroy(), r(true)));
        s.on("error", () => r(false));
      });
    await untilTrue(async () => (await listening(v2Port)) && (await listening(v1Port)), 15_000, `haproxy listening (${haproxyLog})`);
    caFile = pemFiles({ "ca.pem": (await pki()).serverCa.certPem })["ca.pem"]!;
  }, 60_000);
  afterAll(async () => {
    haproxy?.kill();
    await g?.stop();
    closers.forEach((c) => c());
  });

  const curl = (port: number, from: string, path = "/", ...extra: string[]) =>
    run("curl", ["-sS", "--cacert", caFile, "--resolve", `localhost:${port}:127.0.0.1`, "--interface", from, "-D", "-", ...(extra.length ? extra : ["--http1.1"]), `https://localhost:${port}${path}`]);
  const xff = (out: string) => /"x-forwarded-for": *"([^"]*)"/.exec(out)?.[1];

  it("PROXY v2: the origin sees each client's own address, on both workers, over HTTP/1.1 and HTTP/2", async () => {
    const workers = new Set<string>();
    for (let i = 0; i < 40 && workers.size < 2; i++) {
      const r = await curl(v2Port, "127.0.0.5");
      expect(r.code, r.stderr + haproxyLog).toBe(0);
      expect(r.stdout).toMatch(/^HTTP\/1.1 200/);
      expect(xff(r.stdout)).toBe("127.0.0.5");
      workers.add(/certgate-worker: (\S+)/i.exec(r.stdout)![1]!);
    }
    expect(workers.size).toBe(2);
    const h2 = await curl(v2Port, "127.0.0.7", "/", "--http2");
    expect(h2.stdout).toMatch(/^HTTP\/2 200/);
    expect(xff(h2.stdout)).toBe("127.0.0.7");
  });

  it("PROXY v1 (send-proxy) as well", async () => {
    const r = await curl(v1Port, "127.0.0.8");
    expect(r.stdout).toMatch(/^HTTP\/1.1 200/);
    expect(xff(r.stdout)).toBe("127.0.0.8");
  });

  it("rules on ip.src use the client's address, not HAProxy's", async () => {
    expect((await curl(v2Port, "127.0.0.6", "/deny")).stdout).toMatch(/^HTTP\/1.1 403/);
    expect((await curl(v1Port, "127.0.0.6", "/deny")).stdout).toMatch(/^HTTP\/1.1 403/);
    expect((await curl(v2Port, "127.0.0.5", "/deny")).stdout).toMatch(/^HTTP\/1.1 200/);
    expect((await curl(v2Port, "127.0.0.6", "/deny", "--http2")).stdout).toMatch(/^HTTP\/2 403/);
  });

  it("openssl s_client behind HAProxy: the group it used is the one counted, and the access log names the client", async () => {
    const before = sample(await g.metrics(), 'certgate_handshakes_total{host="localhost",result="not_requested",resumed="false",group="P-384"}') ?? 0;
    const r = await run("openssl", ["s_client", "-connect", `127.0.0.1:${v2Port}`, "-servername", "localhost", "-CAfile", caFile, "-groups", "P-384", "-ign_eof", "-quiet"], "GET /sclient HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    expect(r.stdout).toMatch(/^HTTP\/1.1 200/);
    expect(xff(r.stdout), r.stdout).toBe("127.0.0.1"); // s_client cannot choose its source: 127.0.0.1, not HAProxy's 127.0.0.9
    await untilTrue(async () => (sample(await g.metrics(), 'certgate_handshakes_total{host="localhost",result="not_requested",resumed="false",group="P-384"}') ?? 0) === before + 1, 10_000, "the P-384 handshake counted");
    await untilTrue(async () => g.log().includes('"path":"/sclient"'), 10_000, "the access log line");
    const line = JSON.parse(g.log().split("\n").find((l) => l.includes('"path":"/sclient"'))!) as Record<string, unknown>;
    expect(line).toMatchObject({ client: "127.0.0.1", tls: { group: "P-384" }, status: 200 });
  });

  it("a direct client that is not the trusted balancer connects without a header; one that sends a header is refused", async () => {
    const direct = await curl(g.port, "127.0.0.5");
    expect(direct.stdout).toMatch(/^HTTP\/1.1 200/);
    expect(xff(direct.stdout)).toBe("127.0.0.5");
    const forged = await new Promise<string>((resolve) => {
      const s = net.connect({ port: g.port, host: "127.0.0.1", localAddress: "127.0.0.5" }, () => s.write("PROXY TCP4 10.1.2.3 127.0.0.1 1 443\r\n"));
      s.on("error", () => {});
      s.on("close", () => resolve("closed"));
    });
    expect(forged).toBe("closed");
    await untilTrue(async () => (sample(await g.metrics(), 'certgate_handshake_errors_total{reason="proxy_untrusted"}') ?? 0) >= 1, 10_000, "proxy_untrusted counted");
  });

  it("trusting nobody any more, written through the admin API, reaches every worker: HAProxy's headers are refused, then trusted again", async () => {
    const config = (await g.api("GET", "/v1/config")).body as { proxy_protocol: { trusted: string[] } };
    expect(config.proxy_protocol).toEqual({ trusted: ["127.0.0.9/32"] });
    expect((await g.api("PUT", "/v1/config", { ...config, proxy_protocol: { trusted: [] } })).status).toBe(200);
    for (let i = 0; i < 10; i++) expect((await curl(v2Port, "127.0.0.5")).code).not.toBe(0); // both workers refuse
    expect((await g.api("PUT", "/v1/config", config)).status).toBe(200);
    for (let i = 0; i < 10; i++) expect(xff((await curl(v2Port, "127.0.0.5")).stdout)).toBe("127.0.0.5");
  });
});
