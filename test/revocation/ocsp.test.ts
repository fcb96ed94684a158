// OCSP against `openssl ocsp -index` as the responder: good, revoked, unknown, unreachable, slow.
import type { ChildProcess } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, rawRequest, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { OpensslCa, freePort } from "../helpers/opensslca.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { Model } from "../../src/model/schema.ts";

describe("OCSP for client certificates", () => {
  let proxy: Proxy;
  let ca: OpensslCa;
  let responder: { url: string; child: ChildProcess };
  let model: Model;
  let good: Issued; // in the index as valid; names the responder in its AIA
  let revoked: Issued;
  let unknown: Issued; // not in the index
  let slow: net.Server;
  let slowUrl: string;

  beforeAll(async () => {
    const p = await pki();
    ca = new OpensslCa(p.ca);
    // The index must be complete before the responder starts: it re-reads it only when its
    // mtime (in whole seconds) changes.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    good = await issue({ subject: "O=certgate dev,CN=ocsp good", ocspUrls: [url] }, p.ca);
    revoked = await issue({ subject: "O=certgate dev,CN=ocsp revoked", ocspUrls: [url] }, p.ca);
    unknown = await issue({ subject: "O=certgate dev,CN=ocsp unknown", ocspUrls: [url] }, p.ca);
    ca.markValid(good.certPem);
    ca.markValid(revoked.certPem);
    await ca.revoke(revoked.certPem);
    responder = await ca.startOcsp(port);
    slow = net.createServer(() => {}); // accepts, never answers
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", r));
    slowUrl = `http://127.0.0.1:${(slow.address() as net.AddressInfo).port}`;
    proxy = await startProxy((pk, origin) => baseModel(pk, origin, [{ hostname: "b.test", mtls: { trust_bundle: "clients", mode: "enforced" } }]));
    model = proxy.runtime.snapshot.model;
  });
  afterAll(async () => {
    responder?.child.kill();
    slow?.close();
    await proxy?.close();
  });

  const ocsp = (mode: "soft_fail" | "hard_fail", extra: { responder_url?: string; timeout_ms?: number; nonce?: boolean } = {}) =>
    proxy.runtime.apply({ ...model, trust_bundles: [{ ...model.trust_bundles[0]!, revocation: { ocsp: { mode, timeout_ms: 3_000, nonce: false, ...extra } } }] });
  const status = async (cert: Issued) => (await request(proxy.port, { servername: "b.test", cert })).status;

  it("good passes, revoked is refused (responder from the certificate's AIA)", async () => {
    ocsp("hard_fail");
    expect(await status(good)).toBe(200);
    const r = await request(proxy.port, { servername: "b.test", cert: revoked });
    expect(r.status).toBe(403);
    expect(r.body).toContain("revoked");
  });

  it("verifies a nonce when asked to: a replayed response is refused under hard-fail", async () => {
    // Relays the first request to the real responder and replays that answer ever after.
    let recorded: Buffer | undefined;
    const replay = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (recorded) return void res.end(recorded);
        const up = http.request(responder.url, { method: "POST", headers: { "content-type": "application/ocsp-request" } }, (r) => {
          const body: Buffer[] = [];
          r.on("data", (c: Buffer) => body.push(c));
          r.on("end", () => res.end((recorded = Buffer.concat(body))));
        });
        up.end(Buffer.concat(chunks));
      });
    });
    await new Promise<void>((r) => replay.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(replay.address() as net.AddressInfo).port}`;
    try {
      ocsp("hard_fail", { nonce: true, responder_url: `${url}/fresh` });
      expect(await status(good)).toBe(200);
      expect(recorded).toBeDefined();
      // The same signed "good" answer, replayed: valid without a nonce check, refused with one.
      ocsp("hard_fail", { nonce: false, responder_url: `${url}/replayed-no-nonce` });
      expect(await status(good)).toBe(200);
      ocsp("hard_fail", { nonce: true, responder_url: `${url}/replayed` });
      expect(await status(good)).toBe(403);
    } finally {
      replay.close();
    }
  });

  it("unknown: soft-fail passes, hard-fail refuses", async () => {
    ocsp("soft_fail", { responder_url: `${responder.url}/soft` });
    expect(await status(unknown)).toBe(200);
    ocsp("hard_fail", { responder_url: `${responder.url}/hard` });
    expect(await status(unknown)).toBe(403);
  });

  it("unreachable responder: soft-fail passes, hard-fail refuses", async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    ocsp("soft_fail", { responder_url: dead });
    expect(await status(good)).toBe(200);
    ocsp("hard_fail", { responder_url: `${dead}/h` });
    expect(await status(good)).toBe(403);
  });

  it("a responder that never answers is cut off at timeout_ms: soft-fail passes, hard-fail refuses", async () => {
    const errors = async () => Number(/status="error"} (\d+)/.exec(await proxy.metrics.registry.getSingleMetricAsString("certgate_ocsp_answers_total"))?.[1] ?? 0);
    const before = await errors();
    ocsp("soft_fail", { responder_url: slowUrl, timeout_ms: 300 });
    expect(await status(good)).toBe(200);
    ocsp("hard_fail", { responder_url: `${slowUrl}/h`, timeout_ms: 300 });
    expect(await status(good)).toBe(403);
    expect((await errors()) - before).toBe(2); // both look-ups ended in an error (the timeout), not an answer
  });

  it("on a keep-alive connection, each request follows the bundle's current OCSP settings", async () => {
    ocsp("hard_fail", { responder_url: `${responder.url}/keep-alive` });
    const { socket } = await connect(proxy.port, { servername: "b.test", cert: good });
    try {
      expect((await rawRequest(socket, "b.test")).status).toBe(200);
      expect((await rawRequest(socket, "b.test")).status).toBe(200); // answered from the cache
      // Revocation settings are not part of the policy version: the connection stays, and its
      // next request asks the new responder (unreachable, so hard-fail refuses).
      ocsp("hard_fail", { responder_url: `http://127.0.0.1:${await freePort()}/gone` });
      expect((await rawRequest(socket, "b.test")).status).toBe(403);
    } finally {
      socket.destroy();
    }
  });

  it("a certificate issued by a client-supplied intermediate gets an error without asking: soft-fail passes, hard-fail refuses", async () => {
    const p = await pki();
    let asked = 0;
    const counting = http.createServer((_req, res) => {
      asked++;
      res.writeHead(500).end();
    });
    await new Promise<void>((r) => counting.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(counting.address() as net.AddressInfo).port}`;
    const via = { ...p.clientViaIntermediate, chain: p.intermediate.certPem };
    try {
      ocsp("soft_fail", { responder_url: `${url}/soft` });
      expect((await request(proxy.port, { servername: "b.test", cert: via })).status).toBe(200);
      ocsp("hard_fail", { responder_url: `${url}/hard` });
      expect((await request(proxy.port, { servername: "b.test", cert: via })).status).toBe(403);
      expect(asked).toBe(0); // the bundle holds only the root: there is no issuer to ask about
    } finally {
      counting.close();
    }
  });

  it("caches answers and coalesces concurrent look-ups for one certificate into one request", async () => {
    ocsp("hard_fail", { responder_url: `${responder.url}/coalesce` });
    const before = await answersTotal();
    const results = await Promise.all(Array.from({ length: 8 }, () => status(good)));
    expect(results.every((s) => s === 200)).toBe(true);
    expect(await status(good)).toBe(200);
    expect((await answersTotal()) - before).toBe(1);
  });

  it("an error answer is kept for 5 s only: a responder that comes back is asked again after that", async () => {
    const port = await freePort();
    ocsp("hard_fail", { responder_url: `http://127.0.0.1:${port}` });
    const t0 = Date.now();
    expect(await status(good)).toBe(403); // nothing listens there yet: hard-fail
    const t1 = Date.now(); // the error was cached between t0 and t1: it expires by t1 + 5 s
    const back = await ca.startOcsp(port);
    try {
      // Still the cached error, unless starting the responder took most of those 5 s.
      if (Date.now() - t0 < 4_000) expect(await status(good)).toBe(403);
      await new Promise((r) => setTimeout(r, Math.max(0, t1 + 5_200 - Date.now())));
      expect(await status(good)).toBe(200);
    } finally {
      back.child.kill();
    }
  });

  async function answersTotal(): Promise<number> {
    const m = await proxy.metrics.registry.getSingleMetricAsString("certgate_ocsp_answers_total");
    return [...m.matchAll(/} (\d+)/g)].reduce((a, x) => a + Number(x[1]), 0);
  }
});

describe("OCSP responder authorisation", () => {
  it("accepts a delegated responder (id-kp-OCSPSigning, issued by the CA) and refuses one without that EKU", async () => {
    const p = await pki();
    const cert = await issue({ subject: "O=certgate dev,CN=delegated check" }, p.ca);
    const delegated = await issue({ subject: "O=certgate dev,CN=ocsp responder", eku: ["ocspSigning"] }, p.ca);
    const impostor = await issue({ subject: "O=certgate dev,CN=not a responder", eku: ["clientAuth"] }, p.ca);
    const results: number[] = [];
    for (const signer of [delegated, impostor]) {
      const ca = new OpensslCa(p.ca);
      ca.markValid(cert.certPem);
      const responder = await ca.startOcsp(undefined, signer);
      const proxy = await startProxy((pk, origin) => ({
        ...baseModel(pk, origin, [{ hostname: "b.test", mtls: { trust_bundle: "clients", mode: "enforced" } }]),
        trust_bundles: [{ id: "clients", ca: pk.ca.certPem, revocation: { ocsp: { mode: "hard_fail", responder_url: responder.url } } }],
      }));
      try {
        results.push((await request(proxy.port, { servername: "b.test", cert })).status);
      } finally {
        responder.child.kill();
        await proxy.close();
      }
    }
    expect(results).toEqual([200, 403]);
  });
});
