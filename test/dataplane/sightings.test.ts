// The inventory table's bounds and merge arithmetic, on real certificates: the LRU keeps at
// most `max` entries, an entry at most MAX_HOSTNAMES hostnames, and the pending changes at most
// `max` entries however many certificates a client cycles through; deltas merge as counts.
import { X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ClientCertFacts } from "../../src/dataplane/tls/facts.ts";
import { MAX_HOSTNAMES, Sightings } from "../../src/dataplane/tls/sightings.ts";
import { VERIFIED } from "../../src/dataplane/tls/verify.ts";
import { issue } from "../../src/pki/issue.ts";
import { pki } from "../helpers/harness.ts";

const facts = (pem: string) => new ClientCertFacts(new X509Certificate(pem), VERIFIED);

describe("Sightings", () => {
  it("stays bounded under a flood of new certificates and of hostnames", async () => {
    const p = await pki();
    const certs = await Promise.all(Array.from({ length: 12 }, (_, i) => issue({ subject: `CN=flood ${i}` }, p.ca)));
    const t = new Sightings(5);
    certs.forEach((c, i) => t.record(facts(c.certPem), `h${i}.test`, 1000 + i));
    expect(t.size).toBe(5);
    // The 5 most recent; the pending changes are bounded too.
    expect(t.entries().map((e) => e.subject)).toEqual([11, 10, 9, 8, 7].map((i) => `CN=flood ${i}`));
    expect(t.drain().length).toBeLessThanOrEqual(5);
    const one = facts(certs[11]!.certPem);
    for (let i = 0; i < 100; i++) t.record(one, `n${i}.wild.test`, 5000 + i);
    const e = t.entries()[0]!;
    expect(e.hostnames).toHaveLength(MAX_HOSTNAMES);
    expect(e.connections).toBe(101);
  });

  it("merges deltas: summed counts, min first seen, max last seen, hostnames united; drains only changes", async () => {
    const p = await pki();
    const f = facts(p.client.certPem);
    const worker0 = new Sightings(10);
    const worker1 = new Sightings(10);
    const primary = new Sightings(10);
    worker0.record(f, "a.test", 200);
    worker0.record(f, "a.test", 300);
    worker1.record(f, "b.test", 100);
    primary.merge(worker0.drain());
    primary.merge(worker1.drain());
    worker0.record(f, "a.test", 400);
    primary.merge(worker0.drain());
    primary.merge(worker1.drain()); // nothing new there
    const [e] = primary.entries();
    expect(e).toMatchObject({ connections: 4, firstSeen: 100, lastSeen: 400, hostnames: ["a.test", "b.test"], result: "verified", revoked: null });
    // The primary's own delta for the store: everything since its last drain, once.
    expect(primary.drain().map((d) => d.connections)).toEqual([4]);
    expect(primary.drain()).toEqual([]);
    // A revocation verdict reaches the entry of the connection's certificate.
    worker0.record(f, "a.test", 500);
    worker0.drain();
    worker0.revoked(f, true);
    expect(worker0.drain()).toEqual([expect.objectContaining({ connections: 0, revoked: true })]);
    expect(e!.fingerprint).toBe(new X509Certificate(p.client.certPem).fingerprint256);
  });
});
