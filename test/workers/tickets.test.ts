// One TLS 1.3 session ticket per full handshake (src/dataplane/tls/openssl.cnf): in worker
// processes whatever the primary was started with, in one process when started as `npm start`
// starts it; a bare `node src/cli.js serve --workers 1` keeps OpenSSL's two, and says so.
// Resumption with that one ticket works on another worker.
import tls from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { OPENSSL_CONFIG } from "../../src/dataplane/tls/opensslconfig.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { ModelInput } from "../../src/model/schema.ts";
import { pki } from "../helpers/harness.ts";
import { startGroup, type Group } from "./group.ts";

interface Visit {
  tickets: Buffer[];
  resumed: boolean;
  worker: string;
}

/** One GET with a client certificate; the tickets received until the server closes. */
async function visit(port: number, p: DevPki, session?: Buffer): Promise<Visit> {
  return new Promise((resolve, reject) => {
    const tickets: Buffer[] = [];
    let body = "";
    let resumed = false;
    const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: p.serverCa.certPem, cert: p.client.certPem, key: p.client.keyPem, minVersion: "TLSv1.3", session });
    s.on("session", (t: Buffer) => tickets.push(t));
    s.once("secureConnect", () => {
      resumed = s.isSessionReused(); // TLS getters only while the socket is open
      s.write("GET /t HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n");
    });
    s.on("data", (d: Buffer) => (body += d.toString()));
    s.once("error", reject);
    s.once("close", () => {
      if (!body.startsWith("HTTP/1.1 200")) return reject(new Error(`unexpected answer: ${body.slice(0, 80)}`));
      resolve({ tickets, resumed, worker: /certgate-worker: (\d+)/i.exec(body)?.[1] ?? "" });
    });
  });
}

describe("TLS 1.3 session tickets per full handshake", () => {
  let g: Group | undefined;
  let stopEcho: (() => void) | undefined;
  afterEach(async () => {
    await g?.stop();
    stopEcho?.();
    g = undefined;
  });

  async function start(args: string[], nodeArgs: string[] = []): Promise<{ g: Group; p: DevPki }> {
    const p = await pki();
    const echo = await startEcho();
    stopEcho = () => echo.server.close();
    const model = (pk: DevPki): ModelInput => ({
      certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
      hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } }],
      routes: [{ id: "r", hostname: "localhost", origin: echo.url }],
      default_certificate: "srv",
    });
    g = await startGroup(model, args, nodeArgs);
    return { g, p };
  }

  it("workers send one, whatever the primary was started with, and it resumes on any worker", async () => {
    const { g, p } = await start([]);
    expect(g.log()).toContain('"tls13_tickets_per_handshake":"1"');
    const seen = new Set<string>();
    let resumedElsewhere = false;
    for (let i = 0; i < 30 && !(seen.size === 2 && resumedElsewhere); i++) {
      const full = await visit(g.port, p);
      expect(full.resumed).toBe(false);
      expect(full.tickets).toHaveLength(1);
      seen.add(full.worker);
      const again = await visit(g.port, p, full.tickets[0]);
      expect(again.resumed).toBe(true);
      if (again.worker !== full.worker) resumedElsewhere = true;
    }
    expect(seen.size).toBe(2);
    expect(resumedElsewhere).toBe(true);
  }, 60_000);

  it("one process started as `npm start` starts it sends one; a bare `node src/cli.js` keeps OpenSSL's two and logs it", async () => {
    const tuned = await start(["--workers", "1"], [`--openssl-config=${OPENSSL_CONFIG}`]);
    expect(tuned.g.log()).toContain('"tls13_tickets_per_handshake":"1"');
    expect((await visit(tuned.g.port, tuned.p)).tickets).toHaveLength(1);
    await tuned.g.stop();
    stopEcho?.();

    const bare = await start(["--workers", "1"]);
    expect(bare.g.log()).toContain('"tls13_tickets_per_handshake":"2 (OpenSSL');
    expect((await visit(bare.g.port, bare.p)).tickets).toHaveLength(2);
  }, 60_000);
});
