import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("per-hostname mTLS: off, fail_open, enforced", () => {
  let proxy: Proxy;
  let p: DevPki;
  let files: Record<string, string>;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [
        { hostname: "localhost" },
        { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true, cloudflare: true, xfcc: true } },
        { hostname: "b.test", mtls: { mode: "enforced", trust_bundle: "clients" }, forward_client_cert: { rfc9440: true } },
      ]),
    );
    files = pemFiles({
      serverCa: p.serverCa.certPem,
      client: p.client.certPem,
      clientKey: p.client.keyPem,
      expired: p.expired.certPem,
      expiredKey: p.expired.keyPem,
    });
  });
  afterAll(() => proxy.close());

  const sClient = (servername: string) =>
    run("openssl", ["s_client", "-connect", `127.0.0.1:${proxy.port}`, "-servername", servername, "-CAfile", files.serverCa!], "");

  it("off: sends no CertificateRequest (openssl s_client)", async () => {
    const r = await sClient("localhost");
    expect(r.stdout).toContain("No client certificate CA names sent");
  });

  it("fail_open and enforced: request the certificate with the host's CA names (openssl s_client)", async () => {
    for (const host of ["a.test", "b.test"]) {
      const r = await sClient(host);
      expect(r.stdout).toContain("Acceptable client certificate CA names");
      expect(r.stdout).toContain("certgate dev client CA");
    }
  });

  it("fail_open: a request without a certificate reaches the origin, with no certificate asserted", async () => {
    const r = await request(proxy.port, { servername: "a.test", headers: { "client-cert": ":Zm9v:", "cf-client-cert-sha256": "spoof" } });
    expect(r.status).toBe(200);
    const h = r.json().headers;
    expect(h["client-cert"]).toBeUndefined();
    expect(h["cf-client-cert-sha256"]).toBeUndefined();
  });

  it("fail_open: an untrusted certificate still reaches the origin, but is never forwarded", async () => {
    const r = await request(proxy.port, { servername: "a.test", cert: p.untrusted });
    expect(r.status).toBe(200);
    expect(r.json().headers["client-cert"]).toBeUndefined();
  });

  it("fail_open: a valid certificate is forwarded as RFC 9440, Cloudflare and XFCC headers", async () => {
    const r = await request(proxy.port, { servername: "a.test", cert: p.client });
    expect(r.status).toBe(200);
    const h = r.json().headers;
    const der = p.client.cert.rawData;
    expect(h["client-cert"]).toBe(`:${Buffer.from(der).toString("base64")}:`);
    expect(h["cf-client-cert-der-base64"]).toBe(Buffer.from(der).toString("base64"));
    const { createHash } = await import("node:crypto");
    const sha = createHash("sha256").update(Buffer.from(der)).digest("hex");
    expect(h["cf-client-cert-sha256"]).toBe(sha);
    expect(h["x-forwarded-client-cert"]).toContain(`Hash=${sha}`);
    expect(h["x-forwarded-client-cert"]).toContain('Subject="CN=client,OU=dev,O=certgate dev"');
  });

  it("enforced: a missing certificate gets a TLS alert (certificate_required)", async () => {
    await expect(request(proxy.port, { servername: "b.test" })).rejects.toThrow(/certificate required|alert/i);
  });

  it.each([
    ["untrusted", "untrusted"],
    ["expired", "expired"],
    ["notYetValid", "not_yet_valid"],
    ["serverAuthOnly", "untrusted"],
  ] as const)("enforced: a %s certificate gets one HTTP 403 naming the class, then the connection closes", async (which, cls) => {
    const r = await request(proxy.port, { servername: "b.test", cert: p[which] });
    expect(r.status).toBe(403);
    expect(r.body).toContain(`Client certificate error: ${cls}.`);
    expect(r.headers.connection).toBe("close");
  });

  it("enforced: valid certificates, direct and via a client-supplied intermediate, reach the origin", async () => {
    const direct = await request(proxy.port, { servername: "b.test", cert: p.client });
    expect(direct.status).toBe(200);
    expect(direct.json().headers["client-cert"]).toMatch(/^:[A-Za-z0-9+/=]+:$/);
    const via = await request(proxy.port, { servername: "b.test", cert: { ...p.clientViaIntermediate, chain: p.intermediate.certPem } });
    expect(via.status).toBe(200);
  });

  it("enforced: a depth limit below the chain's depth refuses it", async () => {
    const model = proxy.runtime.snapshot.model;
    proxy.runtime.apply({ ...model, trust_bundles: [{ ...model.trust_bundles[0]!, verify_depth: 1 }] });
    try {
      const via = await request(proxy.port, { servername: "b.test", cert: { ...p.clientViaIntermediate, chain: p.intermediate.certPem } });
      expect(via.status).toBe(403);
      expect((await request(proxy.port, { servername: "b.test", cert: p.client })).status).toBe(200);
    } finally {
      proxy.runtime.apply(model);
    }
  });

  it("enforced: several CAs in one bundle are each trusted", async () => {
    const model = proxy.runtime.snapshot.model;
    proxy.runtime.apply({ ...model, trust_bundles: [{ ...model.trust_bundles[0]!, ca: p.ca.certPem + p.otherCa.certPem }] });
    try {
      expect((await request(proxy.port, { servername: "b.test", cert: p.untrusted })).status).toBe(200);
      expect((await request(proxy.port, { servername: "b.test", cert: p.client })).status).toBe(200);
    } finally {
      proxy.runtime.apply(model);
    }
  });

  it("WebSocket upgrades pass the same checks: refused with a bad certificate or a foreign Host, through with a valid one", async () => {
    const upgrade = async (opts: Parameters<typeof connect>[1], host: string) => {
      const { socket } = await connect(proxy.port, opts);
      const head = await new Promise<string>((resolve) => {
        let b = "";
        socket.on("data", (d: Buffer) => {
          b += d.toString("latin1");
          if (b.includes("\r\n\r\n")) resolve(b.slice(0, b.indexOf("\r\n")));
        });
        socket.on("close", () => resolve(b.slice(0, b.indexOf("\r\n"))));
        socket.write(`GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`);
      });
      socket.destroy();
      return head;
    };
    expect(await upgrade({ servername: "b.test", cert: p.untrusted }, "b.test")).toBe("HTTP/1.1 403 Forbidden");
    expect(await upgrade({ servername: "b.test", cert: p.client }, "a.test")).toBe("HTTP/1.1 421 Misdirected Request");
    expect(await upgrade({ servername: "b.test", cert: p.client }, "b.test")).toMatch(/^HTTP\/1.1 101/);
  });

  it("interop: curl --cert gets 200 with a valid certificate, 403 with an expired one, and the TLS alert with none", async () => {
    const base = ["-sS", "--resolve", `b.test:${proxy.port}:127.0.0.1`, "--cacert", files.serverCa!, "-w", "\n%{http_code}"];
    const ok = await run("curl", [...base, "--cert", files.client!, "--key", files.clientKey!, `https://b.test:${proxy.port}/x`]);
    expect(ok.stdout.split("\n").pop()).toBe("200");
    const expired = await run("curl", [...base, "--cert", files.expired!, "--key", files.expiredKey!, `https://b.test:${proxy.port}/x`]);
    expect(expired.stdout.split("\n").pop()).toBe("403");
    expect(expired.stdout).toContain("Client certificate error: expired.");
    // As the README shows it: over HTTP/1.1 curl reads the TLS alert (over HTTP/2 it may lose the race with the close, exit 55).
    const none = await run("curl", [...base, "--http1.1", `https://b.test:${proxy.port}/x`]);
    expect(none.code).toBe(56);
    expect(none.stderr).toMatch(/alert certificate required/);
  });

  it("counts handshakes and verification failures by host and reason", async () => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_verify_failures_total");
    expect(text).toMatch(/host="b.test",reason="cert_has_expired"} [1-9]/);
    expect(text).toMatch(/host="b.test",reason="no_certificate"} [1-9]/);
    const hs = await proxy.metrics.registry.getSingleMetricAsString("certgate_handshakes_total");
    expect(hs).toMatch(/host="b.test",result="verified"/);
  });
});
