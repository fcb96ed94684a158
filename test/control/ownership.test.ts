// Issue 12, findings 1 and 2, as an attacker holding an account token would try them, over real
// sockets: the victim hosts keep refusing requests without a client certificate, the refused
// write stores nothing and is in the audit log.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pki, request } from "../helpers/harness.ts";
import { issue } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { parseModel, type ModelInput } from "../../src/model/schema.ts";
import { ownershipProblems } from "../../src/control/ownership.ts";
import { api, apinizerError, cfError, fastlyError, jsonapi, seedModel, startCertgate, type ApiReply, type Certgate } from "./helpers.ts";

/** The operator's enforced host a.test (explicit mode on a fail-open bundle, as a file or /v1/config writes it); routes for the names below. */
function seed(p: DevPki, origin: string) {
  const base = seedModel(p, origin);
  return {
    ...base,
    routes: ["localhost", "a.test", "b.test", "x.localhost", "shop.wild.test"].map((h, i) => ({ id: `r${i}`, hostname: h, origin })),
    trust_bundles: [{ id: "ops-ca", ca: p.ca.certPem, enforced: false }],
    hosts: [{ hostname: "a.test", mtls: { mode: "enforced" as const, trust_bundle: "ops-ca" } }],
  };
}

describe("account tokens stay inside their account (finding 1)", () => {
  let cg: Certgate;
  let p: DevPki;
  let attacker: { certPem: string; keyPem: string };
  let attackerCa: string;
  let acc1: { token: string; id: string };
  let acc2: { token: string; id: string };
  let acc1Bundle: string;
  let acc1Zone: string;

  const token = async (account: string) => {
    const t = await api(cg, "POST", "/v1/tokens", { name: account, account_id: account });
    expect(t.status).toBe(201);
    return { token: t.body.token as string, id: t.body.id as string };
  };
  const config = async () => (await api(cg, "GET", "/v1/config")).text;
  /**
   * The request is refused with 403 in Cloudflare's envelope, nothing changed, and the audit log
   * has the refusal. `victims` (hostnames) are checked first: they still refuse a request without
   * a client certificate (on the old code the attack got a 200 there).
   */
  async function refused(send: () => Promise<ApiReply>, who: { id: string }, victims: string[] = []): Promise<string> {
    const before = await config();
    const r = await send();
    for (const v of victims) await noCertRefused(v);
    expect(r.status, r.text).toBe(403);
    const message = cfError(r);
    expect(await config()).toBe(before);
    const audit = (await api(cg, "GET", "/v1/audit?limit=1")).body.entries[0];
    expect(audit).toMatchObject({ token_id: who.id, status: 403 });
    expect(audit.summary).toMatch(/^refused: /);
    return message;
  }
  const noCertRefused = async (servername: string) => {
    const r = await request(cg.port, { servername }).then((x) => x.status, () => "handshake refused");
    expect(r, `${servername} without a client certificate`).toBe("handshake refused");
  };
  /** The attacker's certificate gets nothing from the host: the handshake fails or the request is refused. */
  const attackerRefused = async (servername: string) => {
    const r = await request(cg.port, { servername, cert: attacker }).then((x) => x.status, () => "handshake refused");
    expect(r === "handshake refused" || r === 403, String(r)).toBe(true);
  };

  beforeAll(async () => {
    p = await pki();
    cg = await startCertgate(undefined, seed);
    const ca = await issue({ subject: "CN=attacker CA", ca: true, pathLength: 0 });
    attackerCa = ca.certPem;
    attacker = await issue({ subject: "CN=attacker", eku: ["clientAuth"] }, ca);
    acc1 = await token("acc1");
    acc2 = await token("acc2");
    // The operator gives acc2 the hostname b.test and the zone wild.test (names it routes are its own until then).
    const settings = { settings: [{ hostname: "b.test", china_network: false, client_certificate_forwarding: false }] };
    expect((await api(cg, "PUT", "/accounts/acc2/access/certificates/settings", settings)).status).toBe(202);
    const z = await api(cg, "POST", "/zones", { name: "wild.test", account: { id: "acc2" } });
    expect(z.status, z.text).toBe(200);
    // The victim account: b.test enforced with its Access certificate; zone wild.test blocks /admin.
    const v = await api(cg, "POST", "/accounts/acc2/access/certificates", { name: "acc2 clients", certificate: p.ca.certPem, associated_hostnames: ["b.test"] }, { token: acc2.token });
    expect(v.status, v.text).toBe(201);
    const rules = await api(cg, "PUT", `/zones/${z.body.result.id}/rulesets/phases/http_request_firewall_custom/entrypoint`, { rules: [{ action: "block", expression: 'http.request.uri.path eq "/admin"' }] }, { token: acc2.token });
    expect(rules.status, rules.text).toBe(200);
    // The attacker's own objects.
    const b = await api(cg, "POST", "/accounts/acc1/access/certificates", { name: "mine", certificate: attackerCa }, { token: acc1.token });
    expect(b.status, b.text).toBe(201);
    acc1Bundle = b.body.result.id;
    const own = await api(cg, "POST", "/zones", { name: "acc1.example", account: { id: "acc1" } }, { token: acc1.token });
    expect(own.status, own.text).toBe(200);
    acc1Zone = own.body.result.id;
  });
  afterAll(() => cg.close());

  it("the victims are enforced to start with", async () => {
    await noCertRefused("a.test");
    await noCertRefused("b.test");
    expect((await request(cg.port, { servername: "b.test", cert: p.client })).status).toBe(200);
    expect((await request(cg.port, { servername: "shop.wild.test", path: "/admin" })).status).toBe(403);
  });

  it("cannot detach or replace the CA of the operator's bundle through the Access API", async () => {
    const msg = await refused(() => api(cg, "PUT", "/accounts/acc1/access/certificates/ops-ca", { associated_hostnames: [] }, { token: acc1.token }), acc1, ["a.test"]);
    expect(msg).toMatch(/not in account acc1/);
    await refused(() => api(cg, "PUT", "/accounts/acc1/access/certificates/ops-ca", { certificate: attackerCa }, { token: acc1.token }), acc1);
    await noCertRefused("a.test");
    await attackerRefused("a.test");
  });

  it("cannot see the operator's or another account's bundles", async () => {
    const list = await api(cg, "GET", "/accounts/acc1/access/certificates", undefined, { token: acc1.token });
    expect(list.body.result.map((c: { id: string }) => c.id)).toEqual([acc1Bundle]);
    expect((await api(cg, "GET", "/accounts/acc1/access/certificates/ops-ca", undefined, { token: acc1.token })).status).toBe(403);
  });

  it("cannot name another owner's hostname in associated_hostnames", async () => {
    for (const host of ["b.test", "a.test", "x.localhost"]) {
      const msg = await refused(() => api(cg, "PUT", `/accounts/acc1/access/certificates/${acc1Bundle}`, { associated_hostnames: [host] }, { token: acc1.token }), acc1);
      expect(msg).toMatch(/not this account's|is already associated/);
    }
    await noCertRefused("b.test");
  });

  it("cannot move another owner's hostname onto its bundle or the fail-open managed CA with hostname_associations", async () => {
    const path = `/zones/${acc1Zone}/certificate_authorities/hostname_associations`;
    await refused(() => api(cg, "PUT", path, { hostnames: ["b.test"], mtls_certificate_id: acc1Bundle }, { token: acc1.token }), acc1);
    await refused(() => api(cg, "PUT", path, { hostnames: ["b.test"] }, { token: acc1.token }), acc1, ["b.test"]);
    await refused(() => api(cg, "PUT", path, { hostnames: ["a.test"] }, { token: acc1.token }), acc1, ["a.test"]);
    await noCertRefused("b.test");
    await noCertRefused("a.test");
    await attackerRefused("b.test");
    // Another account's bundle cannot even be named.
    const b2 = (await api(cg, "GET", "/accounts/acc2/access/certificates", undefined, { token: acc2.token })).body.result[0].id;
    await refused(() => api(cg, "PUT", path, { hostnames: ["free.acc1.example"], mtls_certificate_id: b2 }, { token: acc1.token }), acc1);
  });

  it("cannot change the hostname settings of a hostname it does not own, nor read them", async () => {
    await refused(() => api(cg, "PUT", "/accounts/acc1/access/certificates/settings", { settings: [{ hostname: "b.test", china_network: false, client_certificate_forwarding: true }] }, { token: acc1.token }), acc1);
    await refused(() => api(cg, "PUT", "/accounts/acc1/access/certificates/settings", { settings: [{ hostname: "a.test", china_network: true, client_certificate_forwarding: true }] }, { token: acc1.token }), acc1);
    const seen = await api(cg, "GET", "/accounts/acc1/access/certificates/settings", undefined, { token: acc1.token });
    expect(seen.body.result.map((s: { hostname: string }) => s.hostname)).toEqual([]);
    const fwd = await request(cg.port, { servername: "b.test", cert: p.client });
    expect(fwd.json().headers["cf-client-cert-sha256"]).toBeUndefined();
  });

  it("cannot create a zone equal to, inside or around another owner's zone or hostname", async () => {
    for (const name of ["shop.wild.test", "wild.test", "test", "b.test", "a.test", "localhost"]) {
      const r = await api(cg, "POST", "/zones", { name, account: { id: "acc1" } }, { token: acc1.token });
      if (r.status === 200) {
        // The old code: a rule in the attacker's zone shadows the victim zone's block rule.
        await api(cg, "PUT", `/zones/${r.body.result.id}/rulesets/phases/http_request_firewall_custom/entrypoint`, { rules: [{ action: "log", expression: "true" }] }, { token: acc1.token });
        expect((await request(cg.port, { servername: "shop.wild.test", path: "/admin" })).status, `zone ${name}: /admin on shop.wild.test`).toBe(403);
      }
      expect(r.status, r.text).toBe(403);
      expect(cfError(r)).toMatch(/overlaps/);
    }
    await refused(() => api(cg, "POST", "/zones", { name: "x.wild.test", account: { id: "acc1" } }, { token: acc1.token }), acc1);
    expect((await request(cg.port, { servername: "shop.wild.test", path: "/admin" })).status).toBe(403);
  });

  it("can still do all of it to its own objects and to hostnames nobody holds", async () => {
    const put = await api(cg, "PUT", `/accounts/acc1/access/certificates/${acc1Bundle}`, { associated_hostnames: ["www.acc1.example"] }, { token: acc1.token });
    expect(put.status, put.text).toBe(200);
    expect(put.body.result.associated_hostnames).toEqual(["www.acc1.example"]);
    const s = await api(cg, "PUT", "/accounts/acc1/access/certificates/settings", { settings: [{ hostname: "www.acc1.example", china_network: false, client_certificate_forwarding: true }] }, { token: acc1.token });
    expect(s.status, s.text).toBe(202);
    expect(s.body.result).toEqual([{ hostname: "www.acc1.example", china_network: false, client_certificate_forwarding: true }]);
    const host = (await api(cg, "GET", "/v1/config")).body.hosts.find((h: { hostname: string }) => h.hostname === "www.acc1.example");
    expect(host).toMatchObject({ account_id: "acc1", mtls: { trust_bundle: acc1Bundle } });
  });

  it("a global token keeps full power; it too cannot make two owners share a hostname (400)", async () => {
    const r = await api(cg, "POST", "/zones", { name: "shop.wild.test", account: { id: "acc1" } });
    expect(r.status).toBe(400);
    expect(cfError(r)).toMatch(/overlap/);
    const ok = await api(cg, "PUT", "/accounts/acc2/access/certificates/settings", { settings: [{ hostname: "b.test", china_network: false, client_certificate_forwarding: false }] });
    expect(ok.status).toBe(202);
  });
});

describe("hostname associations never move a hostname off another bundle (finding 2)", () => {
  let cg: Certgate;
  beforeAll(async () => {
    cg = await startCertgate(undefined, seed);
  });
  afterAll(() => cg.close());

  it("PUT hostname_associations naming a host of another bundle is 400 naming that bundle; the host stays enforced", async () => {
    await expect(request(cg.port, { servername: "a.test" })).rejects.toThrow();
    const zone = (await api(cg, "POST", "/zones", { name: "ops.example" })).body.result.id;
    const before = (await api(cg, "GET", "/v1/config")).text;
    const r = await api(cg, "PUT", `/zones/${zone}/certificate_authorities/hostname_associations`, { hostnames: ["a.test"] });
    const noCert = await request(cg.port, { servername: "a.test" }).then((x) => x.status, () => "handshake refused");
    expect(noCert, "a.test without a client certificate").toBe("handshake refused");
    expect(r.status, r.text).toBe(400);
    expect(cfError(r)).toMatch(/"a\.test" is already associated with certificate "ops-ca"/);
    expect((await api(cg, "GET", "/v1/config")).text).toBe(before);
    await expect(request(cg.port, { servername: "a.test" })).rejects.toThrow();
    const audit = (await api(cg, "GET", "/v1/audit?limit=1")).body.entries[0];
    expect(audit).toMatchObject({ status: 400, method: "PUT" });
  });

  it("the same operation refuses it through Fastly (mutual_authentication tls_activations, 400) and Apinizer (API proxy, 409)", async () => {
    const p = await pki();
    const act = (await api(cg, "GET", "/tls/activations?filter[tls_domain.id]=a.test")).body.data[0].id;
    const before = (await api(cg, "GET", "/v1/config")).text;
    const f = await api(cg, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem, enforced: false }, { tls_activations: { data: [{ type: "tls_activation", id: act }] } }));
    const noCert = await request(cg.port, { servername: "a.test" }).then((x) => x.status, () => "handshake refused");
    expect(noCert, "a.test without a client certificate").toBe("handshake refused");
    expect(f.status, f.text).toBe(400);
    expect(fastlyError(f)).toMatch(/"a\.test" is already associated with certificate "ops-ca"/);
    const x = await api(cg, "POST", "/apiops/projects/proj", {});
    expect(x.status).toBe(200);
    const proxy = await api(cg, "POST", "/apiops/projects/proj/apiProxies/api", { hostname: "a.test", relativePath: "/api", backendUrl: "http://127.0.0.1:1", clientCaCertificate: p.ca.certPem });
    expect(proxy.status, proxy.text).toBe(409);
    expect(apinizerError(proxy)).toMatch(/"a\.test" is already associated with certificate "ops-ca"/);
    const after = JSON.parse((await api(cg, "GET", "/v1/config")).text);
    expect(after.hosts).toEqual(JSON.parse(before).hosts);
    expect(after.trust_bundles).toEqual(JSON.parse(before).trust_bundles);
  });
});

describe("ownershipProblems: the model's invariants", () => {
  const model = (hosts: ModelInput["hosts"], zones: ModelInput["zones"] = [], bundles: ModelInput["trust_bundles"] = []) =>
    parseModel({ hosts, zones, trust_bundles: bundles });

  it("one owner per hostname: overlapping zones, hosts in zones and wildcard/exact hosts of different owners are problems", () => {
    const m = model(
      [{ hostname: "api.b.example", account_id: "acc1" }, { hostname: "*.w.example", account_id: "acc1" }, { hostname: "x.w.example" }, { hostname: "ok.c.example", account_id: "acc2" }],
      [{ id: "zb", name: "b.example", account_id: "acc2" }, { id: "zsub", name: "sub.b.example", account_id: "acc1" }, { id: "zc", name: "c.example", account_id: "acc2" }],
    );
    const messages = ownershipProblems(m).map((p) => p.message);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/zones "b\.example" and "sub\.b\.example" overlap/),
        expect.stringMatching(/hostname "api\.b\.example" is in zone "b\.example"/),
        expect.stringMatching(/hostnames "(\*\.w|x\.w)\.example" and "(\*\.w|x\.w)\.example" overlap/),
      ]),
    );
    expect(messages.some((s) => s.includes("ok.c.example"))).toBe(false);
  });

  it("a host never trusts another account's bundle; the operator's bundles are shared", () => {
    const bundles = [{ id: "theirs", ca: "x", account_id: "acc2" }, { id: "ops", ca: "x" }];
    expect(ownershipProblems(model([{ hostname: "a.example", account_id: "acc1", mtls: { trust_bundle: "theirs" } }], [], bundles))).toHaveLength(1);
    expect(ownershipProblems(model([{ hostname: "a.example", mtls: { trust_bundle: "theirs" } }], [], bundles))).toHaveLength(1);
    expect(ownershipProblems(model([{ hostname: "a.example", account_id: "acc1", mtls: { trust_bundle: "ops" } }], [], bundles))).toEqual([]);
  });

  it("data stored before owners existed stays writable: only what a write changes is judged", () => {
    // Made by the Access API before hosts had owners: a global host on an account's bundle.
    const legacy = model([{ hostname: "old.example", mtls: { trust_bundle: "acc" } }, { hostname: "other.example" }], [], [{ id: "acc", ca: "x", account_id: "acc1" }]);
    const touchOther = { ...legacy, hosts: [legacy.hosts[0]!, { ...legacy.hosts[1]!, china_network: true }] };
    expect(ownershipProblems(touchOther, legacy)).toEqual([]);
    const reparsed = parseModel(JSON.parse(JSON.stringify(touchOther)));
    expect(ownershipProblems(reparsed, legacy)).toEqual([]); // PUT /v1/config of the same data
    const touchOld = { ...legacy, hosts: [{ ...legacy.hosts[0]!, china_network: true }, legacy.hosts[1]!] };
    expect(ownershipProblems(touchOld, legacy)).toHaveLength(1);
  });
});
