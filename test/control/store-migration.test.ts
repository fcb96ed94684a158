// A store written before per-dialect records (schema version 1: Fastly, Cloudflare and Apinizer
// fields on the core objects and at the top of the model) opens, is migrated once (migration 2,
// model/upgrade.ts) and serves what it served: every dialect shows the same ids, names and
// bookkeeping, the core objects hold no vendor field any more, and writes go on from there.
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pki } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { SCHEMA_VERSION } from "../../src/control/store.ts";
import { api, echo, jsonapi, startCertgate, tmpData, type Certgate } from "./helpers.ts";

// Schema version 1, as certgate created it (frozen here: the store's own list may change).
const V1 = `
  CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL);
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE objects (kind TEXT NOT NULL, key TEXT NOT NULL, pos INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key)) WITHOUT ROWID;
  CREATE INDEX objects_pos ON objects (kind, pos);
  CREATE TABLE scalars (name TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, read_only INTEGER NOT NULL, account_id TEXT, created_at TEXT NOT NULL);
  CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, token_id TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, status INTEGER NOT NULL, summary TEXT NOT NULL);
  INSERT INTO meta (key, value) VALUES ('revision', '7'), ('commits', '8');
  INSERT INTO schema_migrations (version, name, applied_at) VALUES (1, 'model objects, scalars, tokens, audit', '2026-01-01T00:00:00.000Z');
`;

const AT = "2026-01-02T03:04:05.000Z";
const ACC = "acc1";

/** The rows a version-1 store held for a model written through every dialect. */
function v1Rows(p: DevPki, origin: string): { objects: [string, string, unknown][]; scalars: [string, unknown][] } {
  const forwarding = { rfc9440: false, cloudflare: true, xfcc: false };
  return {
    objects: [
      ["certificates", "srv", { id: "srv", name: "server", cert: p.server.certPem, key: p.server.keyPem, private_key_id: "KEY1", private_key_name: "main key", created_at: AT, updated_at: AT }],
      ["trust_bundles", "tb1", { id: "tb1", name: "clients", ca: p.ca.certPem, verify_depth: 4, enforced: true, account_id: ACC, created_at: AT, updated_at: AT }],
      ["hosts", "a.test", { hostname: "a.test", certificate: "srv", mtls: { trust_bundle: "tb1" }, forward_client_cert: forwarding, id: "ACT1", tls_configuration: "conf1", china_network: true, account_id: ACC, created_at: AT, updated_at: AT }],
      ["routes", "r0", { id: "r0", hostname: "a.test", path_prefix: "/", origin, connect_timeout_ms: 5000, read_timeout_ms: 30000 }],
      ["routes", "apinizer.P.X", { id: "apinizer.P.X", hostname: "api.test", path_prefix: "/x", origin, connect_timeout_ms: 5000, read_timeout_ms: 30000 }],
      [
        "zones",
        "zone1",
        {
          id: "zone1",
          name: "a.test",
          account_id: ACC,
          rules: [{ id: "rule1", expression: 'http.request.uri.path eq "/blocked"', action: "block", description: "no", enabled: true, version: "3", ref: "my-ref", last_updated: AT }],
          ruleset: { id: "rs1", name: "default", description: "mine", version: "5", last_updated: AT },
          created_at: AT,
          updated_at: AT,
        },
      ],
      ["tls_configurations", "conf1", { id: "conf1", name: "edge", default: false, created_at: AT, updated_at: AT }],
      ["pending_private_keys", "KEY2", { id: "KEY2", name: "spare", key: p.client.keyPem, created_at: AT }],
    ],
    scalars: [
      ["default_certificate", "srv"],
      ["trust_forwarded_for", false],
      [
        "apinizer",
        {
          environments: [{ name: "production", description: "" }],
          projects: [{ name: "P", description: "", issuer_acl: [], api_proxies: [{ name: "X", description: "", hostname: "api.test", relative_path: "/x", backend_urls: [origin], route_id: "apinizer.P.X", issuer_acl: [], policies: [], deployments: [] }] }],
        },
      ],
    ],
  };
}

describe("a store from before per-dialect records", () => {
  let cg: Certgate;
  let dir: string;

  beforeAll(async () => {
    const p = await pki();
    dir = tmpData();
    const db = new DatabaseSync(join(dir, "certgate.db"));
    db.exec(V1);
    const { objects, scalars } = v1Rows(p, await echo());
    objects.forEach(([kind, key, body], i) => db.prepare("INSERT INTO objects (kind, key, pos, body) VALUES (?, ?, ?, ?)").run(kind, key, i, JSON.stringify(body)));
    for (const [name, value] of scalars) db.prepare("INSERT INTO scalars (name, value) VALUES (?, ?)").run(name, JSON.stringify(value));
    db.close();
    cg = await startCertgate(dir);
  });
  afterAll(() => cg.close());

  it("is migrated once: rows in the current layout, vendor fields in dialects, schema version recorded", () => {
    const db = new DatabaseSync(join(dir, "certgate.db"), { readOnly: true });
    const kinds = (db.prepare("SELECT DISTINCT kind FROM objects ORDER BY kind").all() as { kind: string }[]).map((r) => r.kind);
    expect(kinds).toEqual(["certificates", "hosts", "routes", "trust_bundles", "zones"]);
    const host = JSON.parse((db.prepare("SELECT body FROM objects WHERE kind = 'hosts'").get() as { body: string }).body);
    expect(host).not.toHaveProperty("china_network");
    expect(host).not.toHaveProperty("tls_configuration");
    const scalars = (db.prepare("SELECT name FROM scalars ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    expect(scalars).toEqual(["default_certificate", "dialects", "trust_forwarded_for"]);
    expect((db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number }).v).toBe(SCHEMA_VERSION);
    expect((db.prepare("SELECT value FROM meta WHERE key = 'revision'").get() as { value: string }).value).toBe("7");
    db.close();
    const m = cg.plane.model;
    expect(m.dialects.fastly).toMatchObject({ certificates: { srv: { private_key_id: "KEY1", private_key_name: "main key" } }, activations: { "a.test": { id: "ACT1", tls_configuration: "conf1" } } });
    expect(m.dialects.cloudflare.hostnames["a.test"]).toEqual({ china_network: true });
    expect(m.dialects.apinizer.projects.map((x) => x.name)).toEqual(["P"]);
  });

  it("Fastly shows the same activation, configuration and keys", async () => {
    const act = await api(cg, "GET", "/tls/activations/ACT1");
    expect(act.status).toBe(200);
    expect(act.body.data.relationships).toMatchObject({ tls_certificate: { data: { id: "srv" } }, tls_configuration: { data: { id: "conf1" } }, mutual_authentication: { data: { id: "tb1" } } });
    expect((await api(cg, "GET", "/tls/configurations/conf1")).body.data.attributes.name).toBe("edge");
    const keys = (await api(cg, "GET", "/tls/private_keys")).body.data.map((k: { id: string; attributes: { name: string } }) => [k.id, k.attributes.name]);
    expect(keys).toEqual([["KEY1", "main key"], ["KEY2", "spare"]]);
  });

  it("Cloudflare shows the same hostname settings and ruleset bookkeeping", async () => {
    const settings = await api(cg, "GET", `/accounts/${ACC}/access/certificates/settings`);
    expect(settings.body.result).toEqual([{ hostname: "a.test", china_network: true, client_certificate_forwarding: true }]);
    const rs = await api(cg, "GET", "/zones/zone1/rulesets/rs1");
    expect(rs.status).toBe(200);
    expect(rs.body.result).toMatchObject({ id: "rs1", description: "mine", version: "5", rules: [{ id: "rule1", version: "3", ref: "my-ref", last_updated: AT }] });
  });

  it("Apinizer shows the same project and proxy; the rule the data plane compiles carries no vendor bookkeeping", async () => {
    const proxy = await api(cg, "GET", "/apiops/projects/P/apiProxies/X");
    expect(proxy.body.result).toMatchObject({ name: "X", hostname: "api.test", routeId: "apinizer.P.X", routePresent: true });
    expect(cg.runtime.snapshot.model.zones[0]!.rules[0]).not.toHaveProperty("version");
  });

  it("PUT /v1/config of an export in the old layout (keys redacted) applies and changes nothing", async () => {
    const cfg = (await api(cg, "GET", "/v1/config")).body;
    const { dialects: d, ...core } = cfg;
    const legacy = {
      ...core,
      certificates: core.certificates.map((c: { id: string }) => ({ ...c, ...d.fastly.certificates[c.id] })),
      hosts: core.hosts.map((h: { hostname: string }) => ({ ...h, ...d.fastly.activations[h.hostname], ...d.cloudflare.hostnames[h.hostname] })),
      zones: core.zones.map((z: { id: string; rules: { id: string }[] }) => ({ ...z, ruleset: d.cloudflare.zones[z.id].ruleset, rules: z.rules.map((r) => ({ ...r, ...d.cloudflare.zones[z.id].rules[r.id] })) })),
      tls_configurations: d.fastly.tls_configurations,
      pending_private_keys: d.fastly.pending_private_keys,
      apinizer: d.apinizer,
    };
    expect(JSON.stringify(legacy)).toContain('"key":"<redacted>"');
    const r = await api(cg, "PUT", "/v1/config", legacy);
    expect(r.status).toBe(200);
    expect((await api(cg, "GET", "/v1/config")).body).toEqual(cfg);
    // The redacted keys kept the stored ones.
    expect(cg.plane.model.dialects.fastly.pending_private_keys[0]!.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(cg.plane.model.certificates[0]!.key).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });

  it("writes go on in the new layout, and survive a restart", async () => {
    const unset = await api(cg, "PATCH", "/tls/activations/ACT1", jsonapi("tls_activation", undefined, { tls_configuration: { data: null } }, "ACT1"));
    expect(unset.status).toBe(200);
    await cg.close();
    cg = await startCertgate(dir);
    expect(cg.plane.model.dialects.fastly.activations["a.test"]).toEqual({ id: "ACT1" });
    expect((await api(cg, "GET", "/tls/activations/ACT1")).body.data.relationships.tls_configuration.data.id).toBe("default");
  });
});
