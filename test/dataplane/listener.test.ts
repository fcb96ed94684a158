import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { issue } from "../../src/pki/issue.ts";
import { parseModel } from "../../src/model/schema.ts";
import { captureClientHello } from "./hellos.ts";

describe("listener: one TLS port, many hostnames", () => {
  let proxy: Proxy;
  let other: Awaited<ReturnType<typeof issue>>;
  beforeAll(async () => {
    const p = await pki();
    const ca = p.ca;
    other = await issue({ subject: "CN=exact.wild.test", dnsNames: ["exact.wild.test"], eku: ["serverAuth"] }, ca);
    proxy = await startProxy((pk, origin) => ({
      ...baseModel(pk, origin, [{ hostname: "localhost" }, { hostname: "exact.wild.test" }, { hostname: "x.wild.test" }]),
      certificates: [
        { id: "srv", cert: pk.server.certPem, key: pk.server.keyPem },
        { id: "exact", cert: other.certPem, key: other.keyPem },
      ],
    }));
  });
  afterAll(() => proxy.close());

  const servedCert = async (servername?: string) => {
    const p = await pki();
    return new Promise<tls.PeerCertificate>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port: proxy.port, servername, ca: [p.serverCa.certPem], rejectUnauthorized: false }, () => {
        resolve(s.getPeerCertificate());
        s.end();
      });
      s.on("error", reject);
    });
  };

  it("chooses the server certificate by SNI: exact name before wildcard", async () => {
    expect((await servedCert("exact.wild.test")).subject.CN).toBe("exact.wild.test");
    expect((await servedCert("x.wild.test")).subjectaltname).toContain("DNS:*.wild.test");
    expect((await servedCert("localhost")).subjectaltname).toContain("DNS:localhost");
  });

  it("serves the default certificate without SNI or for an unknown name", async () => {
    expect((await servedCert(undefined)).subjectaltname).toContain("DNS:localhost");
    expect((await servedCert("unknown.example")).subjectaltname).toContain("DNS:localhost");
  });

  it("refuses the handshake for an unknown name when there is no default certificate", async () => {
    const model = parseModel({ ...proxy.runtime.snapshot.model, default_certificate: null });
    proxy.runtime.apply(model);
    try {
      await expect(servedCert("unknown.example")).rejects.toThrow(/unrecognized name|alert/i);
      expect((await servedCert("localhost")).subjectaltname).toContain("DNS:localhost");
    } finally {
      proxy.runtime.apply(parseModel({ ...model, default_certificate: "srv" }));
    }
  });

  it("proxies a request end to end", async () => {
    const r = await request(proxy.port, { path: "/hello?x=1" });
    expect(r.status).toBe(200);
    expect(r.json().url).toBe("/hello?x=1");
  });

  it("answers plaintext HTTP on the TLS port with a clear 400", async () => {
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(proxy.port, "127.0.0.1", () => s.write("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      let b = "";
      s.on("data", (d) => (b += d));
      s.on("close", () => resolve(b));
    });
    expect(reply).toMatch(/^HTTP\/1.1 400/);
    expect(reply).toContain("HTTPS only");
  });

  it("closes on garbage and keeps serving", async () => {
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(proxy.port, "127.0.0.1", () => s.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0, 0, 1, 0])));
      s.on("close", () => resolve(true));
      s.on("error", () => {});
    });
    expect(closed).toBe(true);
    expect((await request(proxy.port)).status).toBe(200);
  });

  it("reassembles a ClientHello that arrives a few bytes at a time", async () => {
    // A pass-through relay that forwards the client's bytes in 7-byte pieces.
    const relay = net.createServer((c) => {
      const up = net.connect(proxy.port, "127.0.0.1");
      c.on("data", (d: Buffer) => {
        for (let i = 0; i < d.length; i += 7) up.write(d.subarray(i, i + 7));
      });
      up.pipe(c);
      c.on("error", () => up.destroy());
      up.on("error", () => c.destroy());
    });
    await new Promise<void>((r) => relay.listen(0, "127.0.0.1", r));
    const port = (relay.address() as net.AddressInfo).port;
    const { socket } = await connect(port, { servername: "localhost" });
    expect(socket.getPeerCertificate().subjectaltname).toContain("DNS:localhost");
    socket.destroy();
    relay.close();
  });

  it("drops a client that never sends a ClientHello, after the handshake timeout", async () => {
    proxy.runtime.apply(parseModel({ ...proxy.runtime.snapshot.model, limits: { ...proxy.runtime.snapshot.model.limits, handshake_timeout_ms: 300 } }));
    const started = Date.now();
    const closed = await new Promise<number>((resolve) => {
      const s = net.connect(proxy.port, "127.0.0.1");
      s.on("close", () => resolve(Date.now() - started));
      s.on("error", () => {});
    });
    expect(closed).toBeGreaterThanOrEqual(250);
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_handshake_errors_total");
    expect(text).toMatch(/reason="hello_timeout"} [1-9]/);
    expect(text).toMatch(/reason="plaintext_http"} [1-9]/);
  });

  it("disconnects a client that sends a ClientHello and nothing more, at the handshake timeout", async () => {
    // The TLS server has answered and waits for the client's next flight: Node only reports the timeout.
    const hello = await captureClientHello({ servername: "localhost" });
    const model = proxy.runtime.snapshot.model;
    proxy.runtime.apply(parseModel({ ...model, limits: { ...model.limits, handshake_timeout_ms: 300 } }));
    const closed = await new Promise<boolean>((resolve) => {
      const s = net.connect(proxy.port, "127.0.0.1", () => s.write(hello));
      const hung = setTimeout(() => {
        resolve(false);
        s.destroy();
      }, 5000);
      s.on("data", () => {});
      s.on("error", () => {});
      s.on("close", () => {
        clearTimeout(hung);
        resolve(true);
      });
    });
    proxy.runtime.apply(model);
    expect(closed).toBe(true);
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_handshake_errors_total");
    expect(text).toMatch(/reason="tls_error"} [1-9]/);
  });

  it("answers plaintext HTTP sent a byte at a time with the 400 too", async () => {
    const reply = await new Promise<string>((resolve) => {
      const s = net.connect(proxy.port, "127.0.0.1", async () => {
        s.setNoDelay(true);
        for (const c of "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n") {
          if (s.destroyed) break;
          s.write(c);
          await new Promise((r) => setTimeout(r, 2));
        }
      });
      let b = "";
      s.on("data", (d) => (b += d));
      s.on("close", () => resolve(b));
      s.on("error", () => {});
    });
    expect(reply).toMatch(/^HTTP\/1.1 400/);
  });

  it("disconnects a peer that keeps its side open after a refusal, at the handshake timeout", async () => {
    const model = proxy.runtime.snapshot.model;
    proxy.runtime.apply(parseModel({ ...model, default_certificate: null, limits: { ...model.limits, handshake_timeout_ms: 300 } }));
    try {
      // Plaintext HTTP (answered 400), and a ClientHello for a name nobody serves (answered with an alert).
      for (const opening of ["GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", await captureClientHello({ servername: "nobody.example" })]) {
        const closed = await new Promise<boolean>((resolve) => {
          // allowHalfOpen: the server's FIN does not close our side; we keep sending until it is gone.
          const s = net.connect({ port: proxy.port, host: "127.0.0.1", allowHalfOpen: true }, async () => {
            s.write(opening);
            for (let i = 0; i < 100 && !s.destroyed; i++) {
              await new Promise((r) => setTimeout(r, 50));
              if (!s.destroyed) s.write("x");
            }
            resolve(s.destroyed);
            s.destroy();
          });
          s.on("error", () => s.destroy());
          s.on("data", () => {});
        });
        expect(closed).toBe(true);
      }
    } finally {
      proxy.runtime.apply(model);
    }
  });
});
