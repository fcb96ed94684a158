// Contract tests of the native API (/v1/routes, /v1/config, /v1/tokens, /v1/audit), tokens and
// scopes across dialects, and persistence across a restart on the same data directory.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pki, request } from "../../helpers/harness.ts";
import type { DevPki } from "../../../src/pki/devpki.ts";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { resolveAdminToken } from "../../../src/control/auth.ts";
import { listenAdmin } from "../../../src/control/admin.ts";
import { MAX_BODY_BYTES } from "../../../src/control/http.ts";
import { startControl } from "../../../src/control/setup.ts";
import { createMetrics } from "../../../src/observability/metrics.ts";
import { api, cfError, echo, fastlyError, jsonapi, nativeError, rel, startCertgate, tmpData, TOKEN, type Certgate } from "../../control/helpers.ts";

describe("native API", () => {
  let cg: Certgate;
  let p: DevPki;
  let origin: string;
  beforeAll(async () => {
    p = await pki();
    origin = await echo();
    cg = await startCertgate();
  });
  afterAll(() => cg.close());

  describe("routes", () => {
    it("PUT creates (201) then replaces (200) a route, live on the next request", async () => {
      const before = await request(cg.port, { servername: "x.wild.test", path: "/svc/x" });
      expect(before.status).not.toBe(200);
      const r = await api(cg, "PUT", "/v1/routes/svc", { hostname: "x.wild.test", path_prefix: "/svc", origin });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({ id: "svc", hostname: "x.wild.test", path_prefix: "/svc", origin, connect_timeout_ms: 5000 });
      expect((await request(cg.port, { servername: "x.wild.test", path: "/svc/x" })).status).toBe(200);
      const again = await api(cg, "PUT", "/v1/routes/svc", { hostname: "x.wild.test", path_prefix: "/svc2", origin });
      expect(again.status).toBe(200);
      expect((await request(cg.port, { servername: "x.wild.test", path: "/svc/x" })).status).not.toBe(200);
    });
    it("GET lists and gets; 404 for unknown; DELETE removes (204)", async () => {
      const list = await api(cg, "GET", "/v1/routes?hostname=x.wild.test");
      expect(list.body.routes.map((r: { id: string }) => r.id)).toEqual(["svc"]);
      expect((await api(cg, "GET", "/v1/routes/svc")).body.path_prefix).toBe("/svc2");
      const nf = await api(cg, "GET", "/v1/routes/nope");
      expect(nf.status).toBe(404);
      expect(nativeError(nf).code).toBe("not_found");
      expect((await api(cg, "DELETE", "/v1/routes/svc")).status).toBe(204);
      expect((await api(cg, "GET", "/v1/routes/svc")).status).toBe(404);
      expect((await api(cg, "DELETE", "/v1/routes/svc")).status).toBe(404);
    });
    it("refuses invalid routes with 400 naming the field", async () => {
      const r = await api(cg, "PUT", "/v1/routes/bad", { hostname: "x.wild.test", origin: "ftp://x" });
      expect(r.status).toBe(400);
      expect(nativeError(r).message).toMatch(/routes\[\d+\]\.origin/);
      const u = await api(cg, "PUT", "/v1/routes/bad", { hostname: "x.wild.test", origin, colour: "red" });
      expect(u.status).toBe(400);
      const list = await api(cg, "PUT", "/v1/routes/bad", [{ hostname: "x.wild.test", origin }]);
      expect(list.status).toBe(400);
      expect(nativeError(list).message).toBe("the body must be a JSON object: {hostname, path_prefix, origin, ...}");
      const dup = await api(cg, "PUT", "/v1/routes/dup", { hostname: "a.test", path_prefix: "/", origin });
      expect(dup.status).toBe(400);
      expect(nativeError(dup).message).toMatch(/already routed/);
    });
  });

  describe("config", () => {
    it("GET exports the model as JSON, private keys redacted", async () => {
      const r = await api(cg, "GET", "/v1/config");
      expect(r.status).toBe(200);
      expect(r.body.certificates[0]).toMatchObject({ id: "srv", key: "<redacted>" });
      expect(r.text).not.toMatch(/PRIVATE KEY/);
      expect(r.body.limits).toBeDefined();
    });
    it("GET exports YAML with ?format=yaml or Accept: application/yaml", async () => {
      const a = await api(cg, "GET", "/v1/config?format=yaml");
      expect(a.headers.get("content-type")).toContain("yaml");
      expect(parseYaml(a.text).certificates[0].id).toBe("srv");
      const b = await api(cg, "GET", "/v1/config", undefined, { headers: { accept: "application/yaml" } });
      expect(parseYaml(b.text).routes.length).toBeGreaterThan(0);
      expect(a.text).not.toMatch(/PRIVATE KEY/);
    });
    it("PUT applies a whole model atomically (JSON and YAML); redacted keys keep the stored ones", async () => {
      const cfg = (await api(cg, "GET", "/v1/config")).body;
      cfg.trust_bundles = [{ id: "clients", ca: p.ca.certPem }];
      cfg.hosts = [{ hostname: "b.test", mtls: { trust_bundle: "clients" } }];
      const r = await api(cg, "PUT", "/v1/config", cfg);
      expect(r.status).toBe(200);
      await expect(request(cg.port, { servername: "b.test" })).rejects.toThrow();
      expect((await request(cg.port, { servername: "b.test", cert: p.client })).status).toBe(200);
      const yaml = (await api(cg, "GET", "/v1/config?format=yaml")).text.replace("trust_bundle: clients", "mode: off");
      const y = await api(cg, "PUT", "/v1/config", yaml, { headers: { "content-type": "application/yaml" } });
      expect(y.status).toBe(200);
      expect((await request(cg.port, { servername: "b.test" })).status).toBe(200);
    });
    it("PUT refuses a model that does not validate or compile: 400 naming the path, nothing changes", async () => {
      const version = cg.runtime.snapshot.version;
      const cfg = (await api(cg, "GET", "/v1/config")).body;
      const r = await api(cg, "PUT", "/v1/config", { ...cfg, hosts: [{ hostname: "b.test", mtls: { trust_bundle: "missing" } }] });
      expect(r.status).toBe(400);
      expect(nativeError(r).message).toMatch(/hosts\[0\]\.mtls\.trust_bundle: no trust bundle/);
      const yamlList = await api(cg, "PUT", "/v1/config", "- certificates: []\n", { headers: { "content-type": "application/yaml" } });
      expect(yamlList.status).toBe(400);
      expect(nativeError(yamlList).message).toBe("the body must be the whole model as a JSON or YAML object");
      const typo = await api(cg, "PUT", "/v1/config", { ...cfg, hostz: [] });
      expect(typo.status).toBe(400);
      expect(nativeError(typo).message).toMatch(/hostz/);
      const redacted = await api(cg, "PUT", "/v1/config", { ...cfg, certificates: [{ ...cfg.certificates[0], id: "new" }], default_certificate: "new" });
      expect(redacted.status).toBe(400);
      expect(nativeError(redacted).message).toMatch(/redacted/);
      expect(cg.runtime.snapshot.version).toBe(version);
    });
    it("PUT refuses two objects of one collection with the same id (the store keeps one row per id): 400, nothing stored", async () => {
      const cfg = (await api(cg, "GET", "/v1/config")).body;
      const revision = await cg.plane.store.revision();
      const cert = { id: "c1", zone_id: "z1", certificate: "pem", csr: "csr", serial: "01", status: "active", validity_days: 1, issued_on: "", expires_on: "", fingerprint_sha256: "", ski: "" };
      const r = await api(cg, "PUT", "/v1/config", { ...cfg, managed_client_certificates: [cert, { ...cert, serial: "02", status: "revoked" }] });
      expect(r.status).toBe(400);
      expect(nativeError(r).message).toBe('managed_client_certificates[1].id: duplicate id "c1"');
      expect(await cg.plane.store.revision()).toBe(revision);
      expect(cg.plane.model.managed_client_certificates).toEqual([]);
    });
  });

  describe("admin body limit", () => {
    it("answers a body over MAX_BODY_BYTES with 413 in the dialect's envelope, closes that connection, stores nothing", async () => {
      const revision = await cg.plane.store.revision();
      const r = await api(cg, "PUT", "/v1/config", "x".repeat(MAX_BODY_BYTES + 1));
      expect(r.status).toBe(413);
      expect(nativeError(r)).toEqual({ code: "payload_too_large", message: `the body exceeds ${MAX_BODY_BYTES} bytes` });
      expect(r.headers.get("connection")).toBe("close");
      const f = await api(cg, "POST", "/tls/private_keys", "x".repeat(MAX_BODY_BYTES + 1));
      expect(f.status).toBe(413);
      expect(fastlyError(f)).toMatch(/exceeds/);
      expect(await cg.plane.store.revision()).toBe(revision);
      expect((await api(cg, "GET", "/v1/config")).status).toBe(200);
    });
  });

  describe("tokens, scopes and audit", () => {
    let ro: string;
    let roId: string;
    it("creates a read-only token (its secret shown once); it reads but cannot write, in each dialect's envelope", async () => {
      const t = await api(cg, "POST", "/v1/tokens", { name: "dashboards", read_only: true });
      expect(t.status).toBe(201);
      expect(t.body).toMatchObject({ name: "dashboards", read_only: true, account_id: null });
      ro = t.body.token;
      roId = t.body.id;
      expect((await api(cg, "GET", "/v1/tokens")).body.tokens.find((x: { id: string }) => x.id === roId)).not.toHaveProperty("hash");
      expect((await api(cg, "GET", "/tls/activations", undefined, { token: ro })).status).toBe(200);
      const f = await api(cg, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem }), { token: ro });
      expect(f.status).toBe(403);
      expect(fastlyError(f)).toMatch(/read-only/);
      const c = await api(cg, "POST", "/zones", { name: "x.test" }, { token: ro });
      expect(c.status).toBe(403);
      expect(cfError(c)).toMatch(/read-only/);
      const n = await api(cg, "PUT", "/v1/routes/x", { hostname: "x.test", origin }, { token: ro });
      expect(n.status).toBe(403);
      expect(nativeError(n).code).toBe("forbidden");
      expect((await api(cg, "GET", "/v1/tokens", undefined, { token: ro })).status).toBe(403);
    });
    it("an account-limited token cannot use Fastly or native endpoints", async () => {
      const t = await api(cg, "POST", "/v1/tokens", { name: "acct", account_id: "acc1" });
      const tok = t.body.token;
      expect((await api(cg, "GET", "/tls/activations", undefined, { token: tok })).status).toBe(403);
      expect((await api(cg, "GET", "/v1/config", undefined, { token: tok })).status).toBe(403);
      expect((await api(cg, "GET", "/accounts/acc1/access/certificates", undefined, { token: tok })).status).toBe(200);
    });
    it("a deleted token stops working", async () => {
      expect((await api(cg, "DELETE", `/v1/tokens/${roId}`)).status).toBe(204);
      expect((await api(cg, "GET", "/tls/activations", undefined, { token: ro })).status).toBe(401);
      expect((await api(cg, "DELETE", `/v1/tokens/${roId}`)).status).toBe(404);
    });
    it("audit log: every write with token id, method, path, status and summary, newest first", async () => {
      const r = await api(cg, "GET", "/v1/audit?limit=200");
      expect(r.status).toBe(200);
      const e = r.body.entries as { id: number; token_id: string; method: string; path: string; status: number; summary: string; at: string }[];
      expect(e[0]!.id).toBeGreaterThan(e[e.length - 1]!.id);
      expect(e).toContainEqual(expect.objectContaining({ token_id: "admin", method: "PUT", path: "/v1/routes/svc", status: 200 }));
      // Token writes: recorded with the request's method and path and the status answered; the 404 delete is not a write.
      expect(e.filter((x) => x.path === "/v1/tokens")).toEqual(
        expect.arrayContaining([expect.objectContaining({ token_id: "admin", method: "POST", status: 201, summary: `create token ${roId} (dashboards, read-only)` })]),
      );
      expect(e.filter((x) => x.path === `/v1/tokens/${roId}`)).toEqual([expect.objectContaining({ token_id: "admin", method: "DELETE", status: 204, summary: `delete token ${roId}` })]);
      expect(e.some((x) => x.status === 400 && x.summary.startsWith("refused: replace config"))).toBe(true);
      const page = await api(cg, "GET", `/v1/audit?limit=1&before=${e[0]!.id}`);
      expect(page.body.entries).toEqual([e[1]]);
      expect((await api(cg, "GET", "/v1/audit?limit=0")).status).toBe(400);
    });
  });
});

describe("admin listener with mTLS", () => {
  it("refuses a client without a certificate; with one (and the token) it answers", async () => {
    const p = await pki();
    const cg = await startCertgate();
    const { server } = startControl(cg.runtime, createMetrics(), { store: cg.plane.store, model: cg.plane.model, seeded: false }, TOKEN, {
      tls: { cert: p.server.certPem, key: p.server.keyPem, clientCa: p.ca.certPem },
    });
    const { port } = (await listenAdmin(server, "127.0.0.1", 0)) as AddressInfo;
    const get = (cert?: { certPem: string; keyPem: string }) =>
      new Promise<number>((resolve, reject) => {
        const req = https.get(
          { host: "127.0.0.1", port, path: "/v1/routes", servername: "localhost", ca: p.serverCa.certPem, cert: cert?.certPem, key: cert?.keyPem, agent: false, headers: { authorization: `Bearer ${TOKEN}` } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on("error", reject);
      });
    try {
      await expect(get()).rejects.toThrow();
      await expect(get(p.untrusted)).rejects.toThrow();
      expect(await get(p.client)).toBe(200);
    } finally {
      server.close();
      await cg.close();
    }
  });
});

describe("admin token", () => {
  it("is generated at first start into DATA/admin-token (0600), announced once, then reused", () => {
    const dir = tmpData();
    const said: string[] = [];
    const a = resolveAdminToken(dir, {}, (m) => said.push(m));
    expect(a.source).toBe("generated");
    const file = join(dir, "admin-token");
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(said.join("")).toContain(a.token);
    const b = resolveAdminToken(dir, {}, (m) => said.push(m));
    expect(b).toEqual({ token: a.token, source: "file" });
    expect(said).toHaveLength(1);
    expect(readFileSync(file, "utf8").trim()).toBe(a.token);
    expect(resolveAdminToken(dir, { CERTGATE_ADMIN_TOKEN: "from-env" })).toEqual({ token: "from-env", source: "env" });
  });
});

describe("restart", () => {
  it("keeps every change made through every dialect (new Runtime on the same data dir)", async () => {
    const p = await pki();
    const dir = tmpData();
    const first = await startCertgate(dir);
    const ma = await api(first, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem, name: "kept" }));
    expect(ma.status).toBe(201);
    const act = await api(first, "POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", "srv"), tls_domain: rel("tls_domain", "a.test"), mutual_authentication: rel("mutual_authentication", ma.body.data.id) }));
    expect(act.status).toBe(201);
    const zone = await api(first, "POST", "/zones", { name: "b.test" });
    const rs = await api(first, "PUT", `/zones/${zone.body.result.id}/rulesets/phases/http_request_firewall_custom/entrypoint`, { rules: [{ action: "block", expression: 'http.request.uri.path eq "/no"' }] });
    expect(rs.status).toBe(200);
    const tok = await api(first, "POST", "/v1/tokens", { name: "kept", read_only: true });
    const before = (await api(first, "GET", "/v1/config")).body;
    await first.close();

    const second = await startCertgate(dir, () => {
      throw new Error("the seed must not run on a non-empty store");
    });
    try {
      expect((await api(second, "GET", "/v1/config")).body).toEqual(before);
      const acts = await api(second, "GET", `/tls/activations/${act.body.data.id}`);
      expect(acts.body.data.relationships.mutual_authentication.data.id).toBe(ma.body.data.id);
      await expect(request(second.port, { servername: "a.test" })).rejects.toThrow();
      expect((await request(second.port, { servername: "a.test", cert: p.client })).status).toBe(200);
      expect((await request(second.port, { servername: "b.test", path: "/no" })).status).toBe(403);
      expect((await api(second, "GET", "/tls/activations", undefined, { token: tok.body.token })).status).toBe(200);
    } finally {
      await second.close();
    }
  });
});
