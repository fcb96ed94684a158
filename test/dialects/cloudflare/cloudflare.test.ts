// Contract tests of the Cloudflare dialect: Access mTLS certificates and hostname settings,
// zones, custom rules; and the one model seen through Fastly.
import { X509Certificate } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pki, request } from "../../helpers/harness.ts";
import type { DevPki } from "../../../src/pki/devpki.ts";
import { api, cfError, seedModel, startCertgate, type ApiReply, type Certgate } from "../../control/helpers.ts";

const ACC = "0123456789abcdef0123456789abcdef";
const OTHER = "fedcba9876543210fedcba9876543210";

function okEnvelope(r: ApiReply): void {
  expect(r.body).toMatchObject({ success: true, errors: [], messages: [] });
  expect("result" in r.body).toBe(true);
}

describe("Cloudflare dialect", () => {
  let cg: Certgate;
  let p: DevPki;
  beforeAll(async () => {
    p = await pki();
    cg = await startCertgate();
  });
  afterAll(() => cg.close());

  describe("auth and envelopes", () => {
    it("401 without a token, in Cloudflare's envelope", async () => {
      const r = await api(cg, "GET", `/accounts/${ACC}/access/certificates`, undefined, { token: null });
      expect(r.status).toBe(401);
      expect(cfError(r)).toMatch(/token/);
    });
    it("serves the same API under /client/v4", async () => {
      const r = await api(cg, "GET", `/client/v4/accounts/${ACC}/access/certificates`);
      expect(r.status).toBe(200);
      okEnvelope(r);
    });
  });

  describe("Access mTLS certificates", () => {
    let id: string;
    it("refuses a missing name, a non-CA certificate and malformed PEM with 400", async () => {
      const noName = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { certificate: p.ca.certPem });
      expect(noName.status).toBe(400);
      expect(cfError(noName)).toMatch(/name is required/);
      const leaf = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { name: "leaf", certificate: p.client.certPem });
      expect(leaf.status).toBe(400);
      expect(cfError(leaf)).toMatch(/not a CA certificate/);
      const junk = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { name: "junk", certificate: "hello" });
      expect(junk.status).toBe(400);
      cfError(junk);
      const json = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, "{not json");
      expect(json.status).toBe(400);
      expect(cfError(json)).toMatch(/invalid JSON/);
    });

    it("creates one with associated_hostnames; fingerprint and expires_on come from the certificate", async () => {
      const r = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { name: "clients", certificate: p.ca.certPem, associated_hostnames: ["a.test"] });
      expect(r.status).toBe(201);
      okEnvelope(r);
      const x = new X509Certificate(p.ca.certPem);
      expect(r.body.result).toMatchObject({ name: "clients", associated_hostnames: ["a.test"], fingerprint: x.fingerprint256, expires_on: new Date(x.validTo).toISOString() });
      expect(r.body.result.created_at).toMatch(/^\d{4}-/);
      id = r.body.result.id;
    });

    it("enforces mTLS on the associated hostname from the next connection", async () => {
      await expect(request(cg.port, { servername: "a.test" })).rejects.toThrow();
      expect((await request(cg.port, { servername: "a.test", cert: p.client })).status).toBe(200);
      expect((await request(cg.port, { servername: "b.test" })).status).toBe(200);
    });

    it("is one object: Fastly's GET /tls/activations and /tls/mutual_authentications show it", async () => {
      const acts = await api(cg, "GET", "/tls/activations?filter[tls_domain.id]=a.test");
      expect(acts.body.data).toHaveLength(1);
      expect(acts.body.data[0].relationships.mutual_authentication.data).toEqual({ type: "mutual_authentication", id });
      const ma = await api(cg, "GET", `/tls/mutual_authentications/${id}`);
      expect(ma.body.data.attributes).toMatchObject({ name: "clients", enforced: true });
    });

    it("lists (with result_info) and gets; another account does not see it; unknown id is 404", async () => {
      const list = await api(cg, "GET", `/accounts/${ACC}/access/certificates`);
      okEnvelope(list);
      expect(list.body.result.map((c: { id: string }) => c.id)).toEqual([id]);
      expect(list.body.result_info).toMatchObject({ page: 1, count: 1, total_count: 1 });
      expect((await api(cg, "GET", `/accounts/${ACC}/access/certificates/${id}`)).body.result.id).toBe(id);
      expect((await api(cg, "GET", `/accounts/${OTHER}/access/certificates`)).body.result).toEqual([]);
      const other = await api(cg, "GET", `/accounts/${OTHER}/access/certificates/${id}`);
      expect(other.status).toBe(404);
      cfError(other);
      expect((await api(cg, "GET", `/accounts/${ACC}/access/certificates/nope`)).status).toBe(404);
    });

    it("hostname settings: PUT requires all three fields, stores china_network, maps forwarding to Cf-Client-Cert headers", async () => {
      const bad = await api(cg, "PUT", `/accounts/${ACC}/access/certificates/settings`, { settings: [{ hostname: "a.test", china_network: false }] });
      expect(bad.status).toBe(400);
      expect(cfError(bad)).toMatch(/client_certificate_forwarding is required/);
      const r = await api(cg, "PUT", `/accounts/${ACC}/access/certificates/settings`, { settings: [{ hostname: "a.test", china_network: true, client_certificate_forwarding: true }] });
      expect(r.status).toBe(202);
      okEnvelope(r);
      expect(r.body.result).toContainEqual({ hostname: "a.test", china_network: true, client_certificate_forwarding: true });
      const get = await api(cg, "GET", `/accounts/${ACC}/access/certificates/settings`);
      expect(get.body.result).toContainEqual({ hostname: "a.test", china_network: true, client_certificate_forwarding: true });
      const res = await request(cg.port, { servername: "a.test", cert: p.client });
      expect(res.json().headers["cf-client-cert-sha256"]).toMatch(/^[0-9a-f]{64}$/);
    });

    it("refuses a hostname already associated with another certificate", async () => {
      const r = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { name: "second", certificate: p.intermediate.certPem, associated_hostnames: ["a.test"] });
      expect(r.status).toBe(400);
      expect(cfError(r)).toMatch(/already associated/);
    });

    it("update: renames and moves hostnames; delete refused while hostnames remain, then works", async () => {
      const del1 = await api(cg, "DELETE", `/accounts/${ACC}/access/certificates/${id}`);
      expect(del1.status).toBe(400);
      expect(cfError(del1)).toMatch(/associated hostnames/);
      const u = await api(cg, "PUT", `/accounts/${ACC}/access/certificates/${id}`, { name: "renamed", associated_hostnames: [] });
      expect(u.status).toBe(200);
      expect(u.body.result).toMatchObject({ name: "renamed", associated_hostnames: [] });
      expect((await request(cg.port, { servername: "a.test" })).status).toBe(200);
      const del = await api(cg, "DELETE", `/accounts/${ACC}/access/certificates/${id}`);
      expect(del.status).toBe(200);
      expect(del.body.result).toEqual({ id });
      expect((await api(cg, "GET", `/accounts/${ACC}/access/certificates/${id}`)).status).toBe(404);
    });
  });

  describe("zones and custom rules", () => {
    let zone: string;
    let ruleset: string;
    let ruleId: string;

    it("creates and lists zones; per_page out of range is 400; unknown zone 404", async () => {
      const r = await api(cg, "POST", "/zones", { name: "b.test", account: { id: ACC } });
      expect(r.status).toBe(200);
      expect(r.body.result).toMatchObject({ name: "b.test", status: "active", account: { id: ACC } });
      zone = r.body.result.id;
      const list = await api(cg, "GET", "/zones?name=b.test");
      expect(list.body.result.map((z: { id: string }) => z.id)).toEqual([zone]);
      expect(list.body.result_info).toMatchObject({ page: 1, per_page: 20, count: 1, total_count: 1 });
      expect((await api(cg, "GET", `/zones?account.id=${OTHER}`)).body.result).toEqual([]);
      const pp = await api(cg, "GET", "/zones?per_page=1000");
      expect(pp.status).toBe(400);
      expect(cfError(pp)).toMatch(/per_page/);
      expect((await api(cg, "GET", "/zones/nope")).status).toBe(404);
      expect((await api(cg, "POST", "/zones", { name: "b.test" })).status).toBe(409);
    });

    it("GET entrypoint before any PUT is 404; an unsupported phase is 404", async () => {
      const r = await api(cg, "GET", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`);
      expect(r.status).toBe(404);
      cfError(r);
      expect((await api(cg, "GET", `/zones/${zone}/rulesets/phases/http_request_late_transform/entrypoint`)).status).toBe(404);
    });

    it("PUT entrypoint: a block rule with a custom response blocks a real request", async () => {
      const r = await api(cg, "PUT", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`, {
        rules: [
          {
            action: "block",
            expression: 'http.request.uri.path in {"/admin"} and not cf.tls_client_auth.cert_verified',
            description: "mTLS rule",
            action_parameters: { response: { status_code: 403, content_type: "text/plain", content: "client certificate required\n" } },
          },
        ],
      });
      expect(r.status).toBe(200);
      okEnvelope(r);
      expect(r.body.result).toMatchObject({ kind: "zone", phase: "http_request_firewall_custom", version: "1" });
      expect(r.body.result.rules[0]).toMatchObject({
        action: "block",
        enabled: true,
        description: "mTLS rule",
        version: "1",
        action_parameters: { response: { status_code: 403, content_type: "text/plain", content: "client certificate required\n" } },
      });
      ruleset = r.body.result.id;
      ruleId = r.body.result.rules[0].id;
      const blocked = await request(cg.port, { servername: "b.test", path: "/admin" });
      expect(blocked.status).toBe(403);
      expect(blocked.body).toBe("client certificate required\n");
      expect((await request(cg.port, { servername: "b.test", path: "/public" })).status).toBe(200);
      const get = await api(cg, "GET", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`);
      expect(get.body.result.rules.map((x: { id: string }) => x.id)).toEqual([ruleId]);
      expect((await api(cg, "GET", `/zones/${zone}/rulesets/${ruleset}`)).body.result.id).toBe(ruleset);
      expect((await api(cg, "GET", `/zones/${zone}/rulesets`)).body.result).toEqual([expect.objectContaining({ id: ruleset, phase: "http_request_firewall_custom" })]);
    });

    it("an invalid expression is refused with 400 and the parse error's position; nothing changes", async () => {
      const version = cg.runtime.snapshot.version;
      const r = await api(cg, "PUT", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`, {
        rules: [{ action: "block", expression: 'http.request.uri.path eq "/x" and and' }],
      });
      expect(r.status).toBe(400);
      expect(cfError(r)).toMatch(/position \d+/);
      expect(r.body.errors[0].code).toBe(20021);
      expect(cg.runtime.snapshot.version).toBe(version);
      const get = await api(cg, "GET", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`);
      expect(get.body.result.version).toBe("1");
      expect((await request(cg.port, { servername: "b.test", path: "/admin" })).status).toBe(403);
    });

    it("refuses an unsupported action and unknown fields with 400", async () => {
      const r = await api(cg, "POST", `/zones/${zone}/rulesets/${ruleset}/rules`, { action: "challenge", expression: "true" });
      expect(r.status).toBe(400);
      expect(cfError(r)).toMatch(/action must be one of/);
      const f = await api(cg, "POST", `/zones/${zone}/rulesets/${ruleset}/rules`, { action: "block", expression: "true", colour: "red" });
      expect(f.status).toBe(400);
    });

    it("POST adds a rule (position), PATCH disables it, DELETE removes it, each live", async () => {
      const add = await api(cg, "POST", `/zones/${zone}/rulesets/${ruleset}/rules`, { action: "block", expression: 'http.request.uri.path eq "/two"', position: { before: ruleId } });
      expect(add.status).toBe(200);
      expect(add.body.result.rules).toHaveLength(2);
      expect(add.body.result.version).toBe("2");
      const two = add.body.result.rules[0].id;
      expect(add.body.result.rules[1].id).toBe(ruleId);
      expect((await request(cg.port, { servername: "b.test", path: "/two" })).status).toBe(403);

      const patch = await api(cg, "PATCH", `/zones/${zone}/rulesets/${ruleset}/rules/${two}`, { enabled: false });
      expect(patch.status).toBe(200);
      expect(patch.body.result.rules[0]).toMatchObject({ id: two, enabled: false, version: "2" });
      expect((await request(cg.port, { servername: "b.test", path: "/two" })).status).toBe(200);

      const bad = await api(cg, "PATCH", `/zones/${zone}/rulesets/${ruleset}/rules/${two}`, { expression: "http.request.uri.path eq" });
      expect(bad.status).toBe(400);
      expect(cfError(bad)).toMatch(/position/);

      const del = await api(cg, "DELETE", `/zones/${zone}/rulesets/${ruleset}/rules/${two}`);
      expect(del.status).toBe(200);
      expect(del.body.result.rules.map((x: { id: string }) => x.id)).toEqual([ruleId]);
      expect((await api(cg, "DELETE", `/zones/${zone}/rulesets/${ruleset}/rules/${two}`)).status).toBe(404);
      expect((await api(cg, "POST", `/zones/${zone}/rulesets/nope/rules`, { action: "block", expression: "true" })).status).toBe(404);
    });

    it("an account-limited token sees only its account's zones and certificates", async () => {
      const t = await api(cg, "POST", "/v1/tokens", { name: "other account", account_id: OTHER });
      expect(t.status).toBe(201);
      const tok = t.body.token as string;
      expect((await api(cg, "GET", "/zones", undefined, { token: tok })).body.result).toEqual([]);
      const z = await api(cg, "GET", `/zones/${zone}`, undefined, { token: tok });
      expect(z.status).toBe(403);
      expect(cfError(z)).toMatch(/not in account/);
      expect((await api(cg, "GET", "/zones/0000000000000000000000000000dead", undefined, { token: tok })).status).toBe(404);
      const a = await api(cg, "GET", `/accounts/${ACC}/access/certificates`, undefined, { token: tok });
      expect(a.status).toBe(403);
      cfError(a);
      expect((await api(cg, "GET", `/accounts/${OTHER}/access/certificates`, undefined, { token: tok })).status).toBe(200);
    });

    it("deletes a zone: its rules stop applying", async () => {
      const r = await api(cg, "DELETE", `/zones/${zone}`);
      expect(r.status).toBe(200);
      expect(r.body.result).toEqual({ id: zone });
      expect((await request(cg.port, { servername: "b.test", path: "/admin" })).status).toBe(200);
    });
  });
});

describe("Cloudflare dialect: a zone whose rules were written outside it (bootstrap file, /v1/config)", () => {
  let cg: Certgate;
  const ZONE = "z-file";
  const EP = `/zones/${ZONE}/rulesets/phases/http_request_firewall_custom/entrypoint`;
  beforeAll(async () => {
    cg = await startCertgate(undefined, (p, origin) => ({
      ...seedModel(p, origin),
      zones: [{ id: ZONE, name: "b.test", rules: [{ id: "from-file", expression: 'http.request.uri.path eq "/one"', action: "block" }] }],
    }));
  });
  afterAll(() => cg.close());

  it("has one entrypoint ruleset, with the same id on every read, that the rule endpoints accept", async () => {
    const first = await api(cg, "GET", EP);
    expect(first.status).toBe(200);
    expect(first.body.result.rules.map((r: { id: string }) => r.id)).toEqual(["from-file"]);
    const id = first.body.result.id as string;
    expect((await api(cg, "GET", EP)).body.result.id).toBe(id);
    expect((await api(cg, "GET", `/zones/${ZONE}/rulesets`)).body.result).toEqual([expect.objectContaining({ id })]);
    expect((await api(cg, "GET", `/zones/${ZONE}/rulesets/${id}`)).status).toBe(200);
    const add = await api(cg, "POST", `/zones/${ZONE}/rulesets/${id}/rules`, { action: "block", expression: 'http.request.uri.path eq "/two"' });
    expect(add.status).toBe(200);
    expect(add.body.result).toMatchObject({ id, version: "2" });
    expect(add.body.result.rules.map((r: { id: string }) => r.id)[0]).toBe("from-file");
    expect((await request(cg.port, { servername: "b.test", path: "/two" })).status).toBe(403);
    expect((await request(cg.port, { servername: "b.test", path: "/one" })).status).toBe(403);
    expect((await api(cg, "GET", EP)).body.result.id).toBe(id);
  });
});
