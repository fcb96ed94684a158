// The CRL fetcher on its own: refreshed before nextUpdate, last good CRL kept on failure.
import http from "node:http";
import { X509Certificate } from "node:crypto";
import type net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pki } from "../helpers/harness.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { CrlFetcher } from "../../src/revocation/fetcher.ts";
import { createLogger } from "../../src/observability/log.ts";
import { issue } from "../../src/pki/issue.ts";
import { serialKey } from "../../src/revocation/crl.ts";

describe("CRL fetcher", () => {
  let server: http.Server;
  let url: string;
  let body = "";
  let failing = false;
  let hits = 0;
  beforeAll(async () => {
    server = http.createServer((_q, res) => {
      hits++;
      if (failing) res.writeHead(503).end();
      else res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/crl`;
  });
  afterAll(() => server.close());

  it("a URL refused before any request is made (an ldap:// distribution point) answers its error, not a promise, once that fetch failed", async () => {
    const fetcher = new CrlFetcher(createLogger({ level: "silent" }), { fetched: () => {} });
    const ldap = "ldap://ldap.example/CN=CA?certificateRevocationList";
    try {
      const first = fetcher.lookup(ldap, []);
      expect(first).toBeInstanceOf(Promise);
      await first;
      // Each request would otherwise wait on the settled fetch again, forever.
      const again = fetcher.lookup(ldap, []);
      expect(again).toBeInstanceOf(Error);
      expect((again as Error).message).toMatch(/could not be fetched: .*protocol/);
    } finally {
      fetcher.close();
    }
  });

  it("refreshes in the background and keeps the last good CRL when a refresh fails", async () => {
    const p = await pki();
    const ca = new OpensslCa(p.ca);
    const victim = await issue({ subject: "O=certgate dev,CN=fetcher victim" }, p.ca);
    await ca.revoke(victim.certPem);
    body = await ca.gencrl(1); // nextUpdate in 1 s: refreshed at 80% of that
    const events: [boolean, number | undefined][] = [];
    const fetcher = new CrlFetcher(createLogger({ level: "silent" }), { fetched: (_u, ok, age) => events.push([ok, age]) }, { minRefreshMs: 100, retryMs: 100 });
    const cas = [new X509Certificate(p.ca.certPem)];
    try {
      const first = fetcher.lookup(url, cas);
      expect(first).toBeInstanceOf(Promise);
      await first;
      const crl = fetcher.lookup(url, cas);
      if (crl instanceof Promise || crl instanceof Error) throw new Error("expected a verified CRL");
      expect(crl.revoked.has(serialKey(new X509Certificate(victim.certPem).serialNumber))).toBe(true);
      failing = true;
      const before = hits;
      await new Promise((r) => setTimeout(r, 1_500));
      expect(hits - before).toBeGreaterThanOrEqual(2); // refreshed, and retried after failing
      const still = fetcher.lookup(url, cas);
      if (still instanceof Promise || still instanceof Error) throw new Error("the last good CRL must stay in use");
      expect(still.revoked.size).toBe(crl.revoked.size);
      expect(events.some(([ok, age]) => !ok && age !== undefined && age > 0)).toBe(true);
      // A CRL that does not verify against these CAs is never used.
      const other = fetcher.lookup(url, [new X509Certificate(p.otherCa.certPem)]);
      expect(other).toBeInstanceOf(Error);
    } finally {
      fetcher.close();
      failing = false;
    }
  });
});
