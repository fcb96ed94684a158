// The inventory of client certificates seen, in one process: real mTLS connections (Node and
// curl) on 127.0.0.1 are recorded by fingerprint, GET /v1/client_certificates/seen filters and
// pages them (400 on bad parameters), revocation verdicts land on the entry, and a restart on
// the same SQLite file keeps every entry without counting anything twice.
import { createHash, X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki, request } from "../helpers/harness.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { api, startCertgate, tmpData, type Certgate } from "./helpers.ts";
import type { ModelInput } from "../../src/model/schema.ts";

const fp = (c: Issued): string => createHash("sha256").update(new X509Certificate(c.certPem).raw).digest("hex");
const DAY = 86_400_000;

function model(p: DevPki, origin: string): ModelInput {
  return {
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: p.ca.certPem }],
    hosts: [
      { hostname: "a.test", mtls: { trust_bundle: "clients", mode: "enforced" } },
      { hostname: "b.test", mtls: { trust_bundle: "clients", mode: "fail_open" } },
      { hostname: "*.wild.test", mtls: { trust_bundle: "clients", mode: "enforced" } },
    ],
    routes: ["a.test", "b.test", "x.wild.test", "y.wild.test"].map((h, i) => ({ id: `r${i}`, hostname: h, origin })),
    default_certificate: "srv",
  };
}

describe("client certificate inventory (one process)", () => {
  const dir = tmpData();
  let cg: Certgate;
  let p: DevPki;
  let alice: Issued;
  let bob: Issued;
  const seen = async (query = "") => api(cg, "GET", `/v1/client_certificates/seen${query}`);
  const entry = async (c: Issued) => (await seen()).body.client_certificates.find((e: { fingerprint_sha256: string }) => e.fingerprint_sha256 === fp(c));

  beforeAll(async () => {
    p = await pki();
    alice = await issue({ subject: "O=certgate dev,CN=alice", dnsNames: ["alice.example"], uris: ["spiffe://example.org/alice"], notAfter: new Date(Date.now() + 10 * DAY) }, p.ca);
    bob = await issue({ subject: "O=certgate dev,CN=bob", days: 365 }, p.ca);
    cg = await startCertgate(dir, model);
  }, 30_000);
  afterAll(async () => {
    await cg?.close();
  });

  it("records each certificate once by fingerprint: counts, hostnames, verification result, summary", async () => {
    expect((await request(cg.port, { servername: "a.test", cert: alice })).status).toBe(200);
    expect((await request(cg.port, { servername: "a.test", cert: alice })).status).toBe(200);
    expect((await request(cg.port, { servername: "b.test", cert: alice })).status).toBe(200);
    // A wildcard host is recorded as its pattern, whatever name the client chose under it.
    expect((await request(cg.port, { servername: "x.wild.test", cert: alice })).status).toBe(200);
    expect((await request(cg.port, { servername: "y.wild.test", cert: alice })).status).toBe(200);
    expect((await request(cg.port, { servername: "a.test", cert: bob })).status).toBe(200);
    // A real peer: curl presents the untrusted certificate on the fail-open host.
    const f = pemFiles({ "c.pem": p.untrusted.certPem, "c.key": p.untrusted.keyPem, "ca.pem": p.serverCa.certPem });
    const curl = await run("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", f["ca.pem"]!, "--cert", f["c.pem"]!, "--key", f["c.key"]!, "--resolve", `b.test:${cg.port}:127.0.0.1`, `https://b.test:${cg.port}/`]);
    expect(curl.stdout).toBe("200");

    const r = await seen();
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ page: 1, per_page: 100, total_count: 3, total_pages: 1, max_entries: 1000 });
    // Most recently seen first.
    expect(r.body.client_certificates.map((e: { subject: string }) => e.subject)).toEqual(["CN=untrusted client,O=elsewhere", "CN=bob,O=certgate dev", "CN=alice,O=certgate dev"]);
    const a = await entry(alice);
    const leaf = new X509Certificate(alice.certPem);
    expect(a).toMatchObject({
      subject: "CN=alice,O=certgate dev",
      issuer: "CN=certgate dev client CA,O=certgate dev",
      serial: leaf.serialNumber.toUpperCase(),
      sans: [
        { type: "DNS", value: "alice.example" },
        { type: "URI", value: "spiffe://example.org/alice" },
      ],
      not_after: new Date(leaf.validTo).toISOString(),
      verification: "verified",
      revoked: null,
      hostnames: ["a.test", "b.test", "*.wild.test"],
      connections: 5,
    });
    expect(Date.parse(a.first_seen)).toBeLessThanOrEqual(Date.parse(a.last_seen));
    const u = await entry(p.untrusted);
    expect(u).toMatchObject({ verification: "unable_to_verify_leaf_signature", hostnames: ["b.test"], connections: 1 });
    expect(u.issuer).toContain("CN=some other CA");
  });

  it("filters by host, issuer and expiry window, and pages like the other lists", async () => {
    const subjects = async (q: string) => (await seen(q)).body.client_certificates.map((e: { subject: string }) => e.subject.split(",")[0]).sort();
    expect(await subjects("?host=b.test")).toEqual(["CN=alice", "CN=untrusted client"]);
    expect(await subjects("?host=B.TEST&issuer=certgate%20DEV")).toEqual(["CN=alice"]);
    expect(await subjects("?issuer=some%20other")).toEqual(["CN=untrusted client"]);
    expect(await subjects("?expiring_within=30d")).toEqual(["CN=alice"]);
    expect(await subjects("?expiring_within=9d")).toEqual([]);
    expect(await subjects("?host=nowhere.test")).toEqual([]);
    expect(await subjects("?host=*.wild.test")).toEqual(["CN=alice"]);
    expect(await subjects("?host=x.wild.test")).toEqual([]);
    const page2 = await seen("?per_page=1&page=2");
    expect(page2.body).toMatchObject({ page: 2, per_page: 1, total_count: 3, total_pages: 3 });
    expect(page2.body.client_certificates).toHaveLength(1);
    expect(page2.body.client_certificates[0].subject).toContain("CN=bob");
    expect((await seen("?page=4&per_page=1")).body.client_certificates).toEqual([]);
  });

  it("answers 400 with the parameter's name for bad parameters", async () => {
    for (const [q, code, pointer] of [
      ["?page=0", "invalid_pagination", "page"],
      ["?per_page=1001", "invalid_pagination", "per_page"],
      ["?per_page=ten", "invalid_pagination", "per_page"],
      ["?expiring_within=30", "bad_request", "expiring_within"],
      ["?expiring_within=3651d", "bad_request", "expiring_within"],
      ["?expiring_within=-1d", "bad_request", "expiring_within"],
      ["?host=", "bad_request", "host"],
      [`?issuer=${"x".repeat(1025)}`, "bad_request", "issuer"],
      ["?expires_within=30d", "bad_request", "expires_within"],
    ]) {
      const r = await seen(q);
      expect(r.status, q).toBe(400);
      expect(r.body.error, q).toMatchObject({ code });
      expect(r.body.error.message, q).toContain(pointer);
    }
  });

  it("keeps the last revocation verdict of each certificate", async () => {
    const ca = new OpensslCa(p.ca);
    await ca.revoke(bob.certPem);
    expect((await api(cg, "PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: await ca.gencrl() }, ocsp: { mode: "off" } })).status).toBe(200);
    expect((await request(cg.port, { servername: "a.test", cert: bob })).status).toBe(403);
    expect((await request(cg.port, { servername: "a.test", cert: alice })).status).toBe(200);
    expect(await entry(bob)).toMatchObject({ revoked: true, verification: "verified", connections: 2 });
    expect(await entry(alice)).toMatchObject({ revoked: false, connections: 6 });
  });

  it("keeps every entry across a restart on the same SQLite file, counting nothing twice", async () => {
    const before = (await seen()).body.client_certificates;
    await cg.close();
    cg = await startCertgate(dir, model);
    expect((await seen()).body.client_certificates).toEqual(before);
    expect((await request(cg.port, { servername: "a.test", cert: alice })).status).toBe(200);
    await cg.close();
    cg = await startCertgate(dir, model);
    const a = await entry(alice);
    expect(a.connections).toBe(7);
    expect(a.first_seen).toBe(before.find((e: { subject: string }) => e.subject.startsWith("CN=alice")).first_seen);
    expect((await seen()).body.total_count).toBe(3);
  });
});
