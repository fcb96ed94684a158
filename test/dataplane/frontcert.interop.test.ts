// A real front: HAProxy (Debian's) terminates the client's mTLS, accepts any certificate, and
// forwards it as RFC 9440 Client-Cert (`:%[ssl_c_der,base64]:`) to certgate, which trusts
// HAProxy's address (127.0.0.1) and verifies the certificate itself. curl is the client, through
// HAProxy and directly from 127.0.0.2 (another peer: the host's own mTLS).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { freePort } from "../helpers/opensslca.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("HAProxy as the trusted front, curl as the client", () => {
  let proxy: Proxy;
  let p: DevPki;
  let haproxy: ChildProcess;
  let hport: number;
  let f: Record<string, string>;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [
        { hostname: "a.test", mtls: { mode: "enforced", trust_bundle: "clients" }, upstream_client_cert: { trusted_peers: ["127.0.0.1/32"], header: "Client-Cert" }, forward_client_cert: { rfc9440: true } },
      ]),
    );
    hport = await freePort();
    f = pemFiles({
      haproxyCrt: p.server.certPem + p.server.keyPem,
      clientCa: p.ca.certPem + p.otherCa.certPem,
      serverCa: p.serverCa.certPem,
      client: p.client.certPem,
      clientKey: p.client.keyPem,
      untrusted: p.untrusted.certPem,
      untrustedKey: p.untrusted.keyPem,
      expired: p.expired.certPem,
      expiredKey: p.expired.keyPem,
    });
    const cfg = `${f.haproxyCrt}.cfg`;
    // Fail-open at the front (any certificate, verified or not, is forwarded): certgate decides.
    const conf = [
      "global",
      "  maxconn 100",
      "defaults",
      "  mode http",
      "  timeout connect 5s",
      "  timeout client 10s",
      "  timeout server 10s",
      "frontend fe",
      `  bind 127.0.0.1:${hport} ssl crt ${f.haproxyCrt} ca-file ${f.clientCa} verify optional crt-ignore-err all ca-ignore-err all`,
      "  http-request del-header Client-Cert",
      "  http-request set-header Client-Cert :%[ssl_c_der,base64]: if { ssl_c_used }",
      "  default_backend be",
      "backend be",
      `  server certgate 127.0.0.1:${proxy.port} ssl verify none sni str(a.test)`,
    ].join("\n");
    (await import("node:fs")).writeFileSync(cfg, conf + "\n");
    haproxy = spawn("haproxy", ["-db", "-f", cfg], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    haproxy.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
    // Ready when it accepts connections.
    for (let i = 0; ; i++) {
      const up = await new Promise<boolean>((r) => net.connect(hport, "127.0.0.1").once("connect", function (this: net.Socket) { this.destroy(); r(true); }).once("error", () => r(false)));
      if (up) break;
      if (i > 100 || haproxy.exitCode !== null) throw new Error(`haproxy did not start: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });
  afterAll(async () => {
    haproxy?.kill();
    await proxy.close();
  });

  const curl = (port: number, extra: string[]) =>
    run("curl", ["-sS", "--resolve", `a.test:${port}:127.0.0.1`, "--cacert", f.serverCa!, "-o", "-", "-w", "\n%{http_code}", ...extra, `https://a.test:${port}/`]);
  const status = (r: { stdout: string }) => Number(r.stdout.trim().split("\n").pop());

  it("a valid certificate through HAProxy → 200, forwarded to the origin by certgate", async () => {
    const r = await curl(hport, ["--cert", f.client!, "--key", f.clientKey!]);
    expect(status(r)).toBe(200);
    expect(r.stdout).toContain(`:${Buffer.from(p.client.cert.rawData).toString("base64")}:`);
  });

  it.each([
    ["untrusted", "untrusted"],
    ["expired", "expired"],
  ])("%s certificate through HAProxy → 403 %s from certgate", async (name, failure) => {
    const r = await curl(hport, ["--cert", f[name]!, "--key", f[`${name}Key`]!]);
    expect(status(r)).toBe(403);
    expect(r.stdout).toContain(`Client certificate error: ${failure}.`);
  });

  it("no certificate through HAProxy → 403 missing (over HTTP: the front's handshake is done)", async () => {
    const r = await curl(hport, []);
    expect(status(r)).toBe(403);
    expect(r.stdout).toContain("Client certificate error: missing.");
  });

  it("curl straight to certgate from 127.0.0.2: the host's mTLS, a spoofed Client-Cert ignored", async () => {
    const spoof = ["-H", `Client-Cert: :${Buffer.from(p.client.cert.rawData).toString("base64")}:`];
    const none = await curl(proxy.port, ["--interface", "127.0.0.2", ...spoof]);
    // Refused in the handshake (curl reports the alert, or the closed connection when it loses the race to read it).
    expect(none.code).not.toBe(0);
    expect(none.stdout).not.toContain("200");
    const ok = await curl(proxy.port, ["--interface", "127.0.0.2", "--cert", f.client!, "--key", f.clientKey!]);
    expect(status(ok)).toBe(200);
    const expired = await curl(proxy.port, ["--interface", "127.0.0.2", "--cert", f.expired!, "--key", f.expiredKey!, ...spoof]);
    expect(status(expired)).toBe(403);
    expect(expired.stdout).toContain("Client certificate error: expired.");
  });
});
