// Contract tests of the Fastly dialect against a started certgate, and the end-to-end path an
// operator follows: upload key + certificate, activate, create a mutual authentication, attach
// it enforced (a client without a certificate is refused), then fail-open (it passes).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, issue, pki, rawRequest, request } from "../../helpers/harness.ts";
import type { DevPki } from "../../../src/pki/devpki.ts";
import type { Issued } from "../../../src/pki/issue.ts";
import type { SqliteStore } from "../../../src/control/store.ts";
import { api, fastlyError, jsonapi, rel, startCertgate, usingPostgres, type ApiReply, type Certgate } from "../../control/helpers.ts";

describe("Fastly dialect", () => {
  let cg: Certgate;
  let p: DevPki;
  let up: Issued;
  let up2: Issued;
  let upNext: Issued; // up.test again, same key: a rotation
  let elsewhere: Issued; // same key, does not cover up.test
  let spare: Issued;
  const seen: ApiReply[] = [];
  const call = async (method: string, path: string, body?: unknown, opts?: Parameters<typeof api>[4]) => {
    const r = await api(cg, method, path, body, opts);
    seen.push(r);
    return r;
  };
  let keyId: string;
  let certId: string;
  let activationId: string;
  let maId: string;

  beforeAll(async () => {
    p = await pki();
    up = await issue({ subject: "O=certgate test,CN=up.test", dnsNames: ["up.test", "*.up.test"], eku: ["serverAuth"] }, p.serverCa);
    up2 = await issue({ subject: "O=certgate test,CN=other.test", dnsNames: ["other.test"], eku: ["serverAuth"] }, p.serverCa);
    upNext = await issue({ subject: "O=certgate test,CN=up.test", dnsNames: ["up.test", "*.up.test"], eku: ["serverAuth"] }, p.serverCa, up.keys);
    elsewhere = await issue({ subject: "O=certgate test,CN=elsewhere.test", dnsNames: ["elsewhere.test"], eku: ["serverAuth"] }, p.serverCa, up.keys);
    spare = await issue({ subject: "O=certgate test,CN=spare.test", dnsNames: ["spare.test"], eku: ["serverAuth"] }, p.serverCa);
    cg = await startCertgate();
  });
  afterAll(async () => {
    // Private keys are write-only: no response of the whole suite may contain one.
    for (const r of seen) expect(r.text).not.toMatch(/PRIVATE KEY/);
    await cg.close();
  });

  describe("auth and envelopes", () => {
    it("refuses a request without a token with 401 in the JSON:API error envelope", async () => {
      const r = await call("GET", "/tls/activations", undefined, { token: null });
      expect(r.status).toBe(401);
      expect(fastlyError(r)).toMatch(/token/);
      expect(r.headers.get("content-type")).toContain("application/vnd.api+json");
    });
    it("refuses a wrong token, accepts Fastly-Key and Authorization: Bearer", async () => {
      expect((await call("GET", "/tls/activations", undefined, { token: "nope" })).status).toBe(401);
      expect((await call("GET", "/tls/activations", undefined, { header: "fastly" })).status).toBe(200);
      expect((await call("GET", "/tls/activations", undefined, { header: "bearer" })).status).toBe(200);
    });
    it("answers 404 for unknown endpoints and 405 for a wrong method, as JSON:API errors", async () => {
      const r = await call("GET", "/tls/nothing");
      expect(r.status).toBe(404);
      fastlyError(r);
      const m = await call("PUT", "/tls/activations");
      expect(m.status).toBe(405);
      fastlyError(m);
    });
  });

  describe("private keys", () => {
    it("refuses a malformed key with 400", async () => {
      const r = await call("POST", "/tls/private_keys", jsonapi("tls_private_key", { key: "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", name: "bad" }));
      expect(r.status).toBe(400);
      expect(fastlyError(r)).toMatch(/malformed private key/);
    });
    it("refuses a wrong JSON:API type with 409", async () => {
      const r = await call("POST", "/tls/private_keys", jsonapi("tls_certificate", { key: up.keyPem }));
      expect(r.status).toBe(409);
      expect(fastlyError(r)).toMatch(/data.type must be "tls_private_key"/);
    });
    it("stores a key (write-only) and reads back its type, length and public key hash", async () => {
      const r = await call("POST", "/tls/private_keys", jsonapi("tls_private_key", { key: up.keyPem, name: "up key" }));
      expect(r.status).toBe(201);
      expect(r.body.data).toMatchObject({ type: "tls_private_key", attributes: { name: "up key", key_type: "ECDSA", key_length: 256, replace: false } });
      expect(r.body.data.attributes.public_key_sha1).toMatch(/^[0-9a-f]{40}$/);
      expect(r.body.data.attributes.key).toBeUndefined();
      keyId = r.body.data.id;
      const list = await call("GET", "/tls/private_keys?filter[in_use]=false");
      expect(list.body.data.map((d: { id: string }) => d.id)).toContain(keyId);
      const one = await call("GET", `/tls/private_keys/${keyId}`);
      expect(one.status).toBe(200);
    });
    it("refuses the same key twice with 409", async () => {
      const r = await call("POST", "/tls/private_keys", jsonapi("tls_private_key", { key: up.keyPem }));
      expect(r.status).toBe(409);
      fastlyError(r);
    });
    it("deletes a pending key (204): gone from the list and 404 after", async () => {
      const r = await call("POST", "/tls/private_keys", jsonapi("tls_private_key", { key: spare.keyPem, name: "spare" }));
      expect(r.status).toBe(201);
      const id = r.body.data.id;
      expect((await call("DELETE", `/tls/private_keys/${id}`)).status).toBe(204);
      expect((await call("GET", `/tls/private_keys/${id}`)).status).toBe(404);
      expect((await call("GET", "/tls/private_keys")).body.data.map((d: { id: string }) => d.id)).not.toContain(id);
      expect(cg.plane.model.dialects.fastly.pending_private_keys.map((k) => k.id)).not.toContain(id);
      expect((await call("DELETE", `/tls/private_keys/${id}`)).status).toBe(404);
    });
  });

  describe("certificates and domains", () => {
    it("refuses a malformed cert_blob with 400", async () => {
      const r = await call("POST", "/tls/certificates", jsonapi("tls_certificate", { cert_blob: "not a pem" }));
      expect(r.status).toBe(400);
      expect(fastlyError(r)).toMatch(/no PEM certificate/);
    });
    it("refuses a certificate whose key was never uploaded with 400", async () => {
      const r = await call("POST", "/tls/certificates", jsonapi("tls_certificate", { cert_blob: up2.certPem }));
      expect(r.status).toBe(400);
      expect(fastlyError(r)).toMatch(/no uploaded private key matches/);
    });
    it("stores a certificate with its uploaded key; issued_to, issuer, serial and validity read back", async () => {
      const r = await call("POST", "/tls/certificates", jsonapi("tls_certificate", { cert_blob: up.certPem, name: "up cert" }));
      expect(r.status).toBe(201);
      const a = r.body.data.attributes;
      expect(r.body.data.type).toBe("tls_certificate");
      expect(a).toMatchObject({ name: "up cert", issued_to: "up.test", issuer: "certgate dev server CA", signature_algorithm: "ecdsa-with-SHA256" });
      expect(a.serial_number).toBe(BigInt("0x" + up.cert.serialNumber).toString(10));
      expect(new Date(a.not_before).getTime()).toBe(up.cert.notBefore.getTime());
      expect(new Date(a.not_after).getTime()).toBe(up.cert.notAfter.getTime());
      expect(r.body.data.relationships.tls_domains.data).toEqual([
        { type: "tls_domain", id: "up.test" },
        { type: "tls_domain", id: "*.up.test" },
      ]);
      certId = r.body.data.id;
      const keys = await call("GET", "/tls/private_keys?filter[in_use]=true");
      expect(keys.body.data.map((d: { id: string }) => d.id)).toContain(keyId);
    });
    it("lists and gets certificates; unknown id is 404", async () => {
      const list = await call("GET", "/tls/certificates");
      expect(list.body.data.map((d: { id: string }) => d.id)).toEqual(["srv", certId]);
      expect(list.body.meta).toEqual({ current_page: 1, per_page: 20, record_count: 2, total_pages: 1 });
      expect((await call("GET", `/tls/certificates/${certId}`)).body.data.id).toBe(certId);
      const nf = await call("GET", "/tls/certificates/nope");
      expect(nf.status).toBe(404);
      expect(fastlyError(nf)).toMatch(/tls_certificate "nope" not found/);
    });
    it("lists domains from certificate SANs, filterable by certificate", async () => {
      const r = await call("GET", `/tls/domains?filter[tls_certificates.id]=${certId}`);
      expect(r.status).toBe(200);
      expect(r.body.data.map((d: { id: string }) => d.id).sort()).toEqual(["*.up.test", "up.test"]);
      expect(r.body.data[0].relationships.tls_certificates.data).toEqual([{ type: "tls_certificate", id: certId }]);
      const all = await call("GET", "/tls/domains?page[size]=100");
      expect(all.body.data.map((d: { id: string }) => d.id)).toEqual(expect.arrayContaining(["a.test", "localhost", "up.test"]));
    });
    it("lists the default TLS configuration, renames it, 404 on unknown", async () => {
      const list = await call("GET", "/tls/configurations");
      expect(list.body.data).toHaveLength(1);
      expect(list.body.data[0]).toMatchObject({ type: "tls_configuration", attributes: { default: true, tls_protocols: ["1.2", "1.3"] } });
      const id = list.body.data[0].id;
      const r = await call("PATCH", `/tls/configurations/${id}`, jsonapi("tls_configuration", { name: "edge" }, undefined, id));
      expect(r.status).toBe(200);
      expect(r.body.data.attributes.name).toBe("edge");
      expect((await call("GET", `/tls/configurations/${id}`)).body.data.attributes.name).toBe("edge");
      expect((await call("GET", "/tls/configurations/nope")).status).toBe(404);
    });
  });

  describe("activations and mutual authentications", () => {
    it("refuses activations with a wrong type (409), unknown certificate (400), uncovered domain (400)", async () => {
      const t = await call("POST", "/tls/activations", jsonapi("tls_activations", undefined, { tls_certificate: rel("tls_certificate", certId), tls_domain: rel("tls_domain", "up.test") }));
      expect(t.status).toBe(409);
      const u = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", "nope"), tls_domain: rel("tls_domain", "up.test") }));
      expect(u.status).toBe(400);
      expect(fastlyError(u)).toMatch(/tls_certificate "nope" not found/);
      const d = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", certId), tls_domain: rel("tls_domain", "a.test") }));
      expect(d.status).toBe(400);
      expect(fastlyError(d)).toMatch(/not among the certificate's names/);
    });

    it("activates a domain pinning the uploaded certificate, served on the next connection", async () => {
      const r = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", certId), tls_domain: rel("tls_domain", "up.test") }));
      expect(r.status).toBe(201);
      expect(r.body.data).toMatchObject({
        type: "tls_activation",
        relationships: {
          tls_certificate: { data: { type: "tls_certificate", id: certId } },
          tls_domain: { data: { type: "tls_domain", id: "up.test" } },
          tls_configuration: { data: { type: "tls_configuration" } },
          mutual_authentication: { data: null },
        },
      });
      expect(r.body.data.attributes.created_at).toMatch(/^\d{4}-\d\d-\d\dT/);
      activationId = r.body.data.id;
      const res = await request(cg.port, { servername: "up.test" });
      expect(res.status).toBe(200);
      expect(res.socket.getPeerX509Certificate()?.serialNumber).toBe(up.cert.serialNumber.toUpperCase());
      const dup = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", certId), tls_domain: rel("tls_domain", "up.test") }));
      expect(dup.status).toBe(409);
    });

    it("PATCH activation: a certificate not covering the domain and an unknown configuration are 400; a configuration is set, and unset with null", async () => {
      const patch = (rels: Record<string, unknown>) => call("PATCH", `/tls/activations/${activationId}`, jsonapi("tls_activation", undefined, rels, activationId));
      const host = () => cg.plane.model.hosts.find((h) => h.hostname === "up.test")!;
      const activation = () => cg.plane.model.dialects.fastly.activations["up.test"]!;
      const uncovered = await patch({ tls_certificate: rel("tls_certificate", "srv") });
      expect(uncovered.status).toBe(400);
      expect(fastlyError(uncovered)).toMatch(/tls_domain "up.test" is not among the certificate's names/);
      expect(uncovered.body.errors[0].source).toEqual({ pointer: "/data/relationships/tls_certificate/data/id" });
      const unknown = await patch({ tls_configuration: rel("tls_configuration", "nope") });
      expect(unknown.status).toBe(400);
      expect(fastlyError(unknown)).toMatch(/tls_configuration "nope" not found/);
      expect(host().certificate).toBe(certId);
      const conf = (await call("GET", "/tls/configurations")).body.data[0].id;
      const set = await patch({ tls_configuration: rel("tls_configuration", conf) });
      expect(set.status).toBe(200);
      expect(activation().tls_configuration).toBe(conf);
      const unset = await patch({ tls_configuration: { data: null } });
      expect(unset.status).toBe(200);
      expect(unset.body.data.relationships.tls_configuration.data).toEqual({ type: "tls_configuration", id: conf });
      expect(activation()).not.toHaveProperty("tls_configuration");
    });

    it("refuses a non-CA or malformed cert_bundle with 400, and nothing is stored", async () => {
      const before = (await call("GET", "/tls/mutual_authentications")).body.meta.record_count;
      const leaf = await call("POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.client.certPem }));
      expect(leaf.status).toBe(400);
      expect(fastlyError(leaf)).toMatch(/not a CA certificate/);
      const junk = await call("POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" }));
      expect(junk.status).toBe(400);
      expect(fastlyError(junk)).toMatch(/malformed/);
      expect((await call("GET", "/tls/mutual_authentications")).body.meta.record_count).toBe(before);
    });

    it("creates a mutual authentication: enforced defaults to true, a name is generated", async () => {
      const r = await call("POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem }));
      expect(r.status).toBe(201);
      expect(r.body.data).toMatchObject({ type: "mutual_authentication", attributes: { enforced: true }, relationships: { tls_activations: { data: [] } } });
      expect(r.body.data.attributes.name).toMatch(/\S/);
      maId = r.body.data.id;
    });

    it("PATCH activation attaches it enforced: no client certificate → refused; a valid one → 200", async () => {
      const r = await call("PATCH", `/tls/activations/${activationId}`, jsonapi("tls_activation", undefined, { mutual_authentication: rel("mutual_authentication", maId) }, activationId));
      expect(r.status).toBe(200);
      expect(r.body.data.relationships.mutual_authentication.data).toEqual({ type: "mutual_authentication", id: maId });
      await expect(request(cg.port, { servername: "up.test" })).rejects.toThrow();
      expect((await request(cg.port, { servername: "up.test", cert: p.client })).status).toBe(200);
      const ma = await call("GET", `/tls/mutual_authentications/${maId}?include=tls_activations`);
      expect(ma.body.data.relationships.tls_activations.data).toEqual([{ type: "tls_activation", id: activationId }]);
      expect(ma.body.included).toEqual([expect.objectContaining({ type: "tls_activation", id: activationId })]);
    });

    it("PATCH mutual authentication enforced=false: fail open, a client without a certificate passes", async () => {
      const r = await call("PATCH", `/tls/mutual_authentications/${maId}`, jsonapi("mutual_authentication", { enforced: false }, undefined, maId));
      expect(r.status).toBe(200);
      expect(r.body.data.attributes.enforced).toBe(false);
      expect((await request(cg.port, { servername: "up.test" })).status).toBe(200);
    });

    it("an existing connection to another host keeps working across writes", async () => {
      const { socket } = await connect(cg.port, { servername: "localhost" });
      expect((await rawRequest(socket, "localhost")).status).toBe(200);
      await call("PATCH", `/tls/mutual_authentications/${maId}`, jsonapi("mutual_authentication", { enforced: true }, undefined, maId));
      expect((await rawRequest(socket, "localhost")).status).toBe(200);
      socket.destroy();
      await expect(request(cg.port, { servername: "up.test" })).rejects.toThrow();
    });

    it("lists activations with filters (including a null mutual authentication), includes and pagination", async () => {
      // A second activation, without mTLS, for the filters to tell apart.
      const second = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", "srv"), tls_domain: rel("tls_domain", "a.test") }));
      expect(second.status).toBe(201);
      const withMa = await call("GET", `/tls/activations?filter[mutual_authentication.id]=${maId}`);
      expect(withMa.body.data.map((d: { id: string }) => d.id)).toEqual([activationId]);
      const without = await call("GET", "/tls/activations?filter[mutual_authentication.id]=null");
      expect(without.body.data.map((d: { id: string }) => d.id)).toEqual([second.body.data.id]);
      const byCert = await call("GET", `/tls/activations?filter[tls_certificate.id]=${certId}`);
      expect(byCert.body.data.map((d: { id: string }) => d.id)).toEqual([activationId]);
      const byDomain = await call("GET", "/tls/activations?filter[tls_domain.id]=a.test");
      expect(byDomain.body.data.map((d: { id: string }) => d.id)).toEqual([second.body.data.id]);
      const conf = byDomain.body.data[0].relationships.tls_configuration.data.id;
      expect((await call("GET", `/tls/activations?filter[tls_configuration.id]=${conf}`)).body.data).toHaveLength(2);
      expect((await call("GET", "/tls/activations?filter[tls_configuration.id]=nope")).body.data).toHaveLength(0);

      const inc = await call("GET", "/tls/activations?include=tls_certificate,tls_configuration,tls_domain");
      const types = inc.body.included.map((x: { type: string; id: string }) => `${x.type}/${x.id}`).sort();
      expect(types).toEqual([`tls_certificate/${certId}`, "tls_certificate/srv", `tls_configuration/${conf}`, "tls_domain/a.test", "tls_domain/up.test"].sort());
      expect(inc.text).not.toMatch(/PRIVATE KEY/);

      const p1 = await call("GET", "/tls/activations?page[number]=1&page[size]=1");
      expect(p1.body.data).toHaveLength(1);
      expect(p1.body.meta).toEqual({ current_page: 1, per_page: 1, record_count: 2, total_pages: 2 });
      expect(p1.body.links.next).toContain("page%5Bnumber%5D=2");
      expect(p1.body.links.prev).toBeUndefined();
      const p2 = await call("GET", "/tls/activations?page[number]=2&page[size]=1");
      expect(p2.body.data[0].id).not.toBe(p1.body.data[0].id);
      expect(p2.body.links.prev).toContain("page%5Bnumber%5D=1");
      expect(p2.body.links.next).toBeUndefined();
    });

    it("refuses page sizes out of range and unknown includes with 400", async () => {
      for (const q of ["page[size]=0", "page[size]=101", "page[size]=x", "page[number]=0"]) {
        const r = await call("GET", `/tls/activations?${q}`);
        expect(r.status, q).toBe(400);
        fastlyError(r);
      }
      const i = await call("GET", "/tls/activations?include=everything");
      expect(i.status).toBe(400);
      expect(fastlyError(i)).toMatch(/include "everything"/);
      expect((await call("GET", "/tls/mutual_authentications?include=tls_certificate")).status).toBe(400);
    });

    it("GET activation with include; unknown activation and unknown mutual authentication are 404 / 400", async () => {
      const r = await call("GET", `/tls/activations/${activationId}?include=tls_certificate`);
      expect(r.body.included).toEqual([expect.objectContaining({ type: "tls_certificate", id: certId })]);
      expect((await call("GET", "/tls/activations/nope")).status).toBe(404);
      const bad = await call("PATCH", `/tls/activations/${activationId}`, jsonapi("tls_activation", undefined, { mutual_authentication: rel("mutual_authentication", "nope") }));
      expect(bad.status).toBe(400);
      expect(fastlyError(bad)).toMatch(/mutual_authentication "nope" not found/);
      const wrongRel = await call("PATCH", `/tls/activations/${activationId}`, jsonapi("tls_activation", undefined, { mutual_authentication: rel("tls_certificate", certId) }));
      expect(wrongRel.status).toBe(409);
      expect((await call("PATCH", "/tls/mutual_authentications/nope", jsonapi("mutual_authentication", { enforced: true }))).status).toBe(404);
    });

    it("PATCH tls_certificate rotates an activated certificate (same key), served on the next connection; refuses one that does not cover its domains", async () => {
      const bad = await call("PATCH", `/tls/certificates/${certId}`, jsonapi("tls_certificate", { cert_blob: elsewhere.certPem }, undefined, certId));
      expect(bad.status).toBe(400);
      expect(fastlyError(bad)).toBe("the new certificate does not cover activated domain(s) up.test");
      expect(bad.body.errors[0].source).toEqual({ pointer: "/data/attributes/cert_blob" });
      expect((await request(cg.port, { servername: "up.test", cert: p.client })).socket.getPeerX509Certificate()?.serialNumber).toBe(up.cert.serialNumber.toUpperCase());

      const r = await call("PATCH", `/tls/certificates/${certId}`, jsonapi("tls_certificate", { cert_blob: upNext.certPem, name: "up cert, rotated" }, undefined, certId));
      expect(r.status).toBe(200);
      expect(r.body.data).toMatchObject({ id: certId, attributes: { name: "up cert, rotated", serial_number: BigInt("0x" + upNext.cert.serialNumber).toString(10) } });
      const res = await request(cg.port, { servername: "up.test", cert: p.client });
      expect(res.status).toBe(200);
      expect(res.socket.getPeerX509Certificate()?.serialNumber).toBe(upNext.cert.serialNumber.toUpperCase());
      // The key is the one already in use: still one key, in use.
      expect((await call("GET", "/tls/private_keys?filter[in_use]=true")).body.data.map((d: { id: string }) => d.id)).toContain(keyId);
      expect((await call("PATCH", "/tls/certificates/nope", jsonapi("tls_certificate", { name: "x" }, undefined, "nope"))).status).toBe(404);
    });

    it("refuses to delete a mutual authentication, certificate or key still in use (409)", async () => {
      expect((await call("DELETE", `/tls/mutual_authentications/${maId}`)).status).toBe(409);
      expect((await call("DELETE", `/tls/certificates/${certId}`)).status).toBe(409);
      expect((await call("DELETE", `/tls/private_keys/${keyId}`)).status).toBe(409);
    });

    it("PATCH activation with a null mutual authentication turns mTLS off", async () => {
      const r = await call("PATCH", `/tls/activations/${activationId}`, jsonapi("tls_activation", undefined, { mutual_authentication: { data: null } }));
      expect(r.status).toBe(200);
      expect(r.body.data.relationships.mutual_authentication.data).toBeNull();
      expect((await request(cg.port, { servername: "up.test" })).status).toBe(200);
    });

    it("deletes: mutual authentication (204, then 404), activation, certificate, then the key is pending again... and gone", async () => {
      expect((await call("DELETE", `/tls/mutual_authentications/${maId}`)).status).toBe(204);
      expect((await call("GET", `/tls/mutual_authentications/${maId}`)).status).toBe(404);
      expect((await call("DELETE", `/tls/activations/${activationId}`)).status).toBe(204);
      expect((await call("GET", `/tls/activations/${activationId}`)).status).toBe(404);
      expect((await call("DELETE", `/tls/certificates/${certId}`)).status).toBe(204);
      expect((await call("GET", `/tls/private_keys/${keyId}`)).status).toBe(404);
    });

    it("what Fastly keeps beside the model goes with its object: the deleted activation's and certificate's records are gone", () => {
      expect(cg.plane.model.hosts.some((h) => h.hostname === "up.test")).toBe(false);
      expect(cg.plane.model.dialects.fastly.activations).not.toHaveProperty("up.test");
      expect(cg.plane.model.dialects.fastly.certificates).not.toHaveProperty(certId);
    });

    it("POST activation with a mutual authentication for a hostname another bundle holds: 400 naming it, never moved (the one association operation)", async () => {
      const held = await api(cg, "POST", "/accounts/acc9/access/certificates", { name: "held", certificate: p.ca.certPem, associated_hostnames: ["held.wild.test"] });
      expect(held.status).toBe(201);
      const ma = await call("POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { cert_bundle: p.ca.certPem }));
      const rels = { tls_certificate: rel("tls_certificate", "srv"), tls_domain: rel("tls_domain", "held.wild.test"), mutual_authentication: rel("mutual_authentication", ma.body.data.id) };
      const r = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, rels));
      expect(r.status).toBe(400);
      expect(fastlyError(r)).toMatch(/hostname "held.wild.test" is already associated with certificate/);
      expect(cg.plane.model.hosts.find((h) => h.hostname === "held.wild.test")).toMatchObject({ mtls: { trust_bundle: held.body.result.id } });
      expect(cg.plane.model.hosts.find((h) => h.hostname === "held.wild.test")).not.toHaveProperty("certificate");
    });

    // Reads the SQLite file behind the cache (SqliteStore.check); the Store contract suite covers rollback on PostgreSQL.
    describe.skipIf(usingPostgres())("a write refused inside the store transaction leaves the snapshot, the store and the audit log as they were (plus the refusal)", () => {
      const store = () => cg.plane.store as SqliteStore;
      async function state() {
        const { revision, model } = store().check(); // read back from the database, not the cache
        return { version: cg.runtime.snapshot.version, revision, model: JSON.stringify(model), audit: (await store().listAudit({ limit: 1 }))[0]?.id ?? 0 };
      }
      async function unchanged(before: Awaited<ReturnType<typeof state>>, refusal: { method: string; path: string; summary: RegExp }) {
        const after = await state();
        expect(after.version).toBe(before.version);
        expect(after.revision).toBe(before.revision);
        expect(after.model).toBe(before.model);
        expect(JSON.stringify(cg.plane.model)).toBe(before.model);
        // Exactly one new audit entry: the refusal (the write's own entry was rolled back with it).
        const fresh = (await store().listAudit({ limit: 10 })).filter((e) => e.id > before.audit);
        expect(fresh).toHaveLength(1);
        expect(fresh[0]).toMatchObject({ method: refusal.method, path: refusal.path, status: 400 });
        expect(fresh[0]!.summary).toMatch(refusal.summary);
      }

      it("refused by the model's schema: a domain the certificate covers (by wildcard) that is no valid hostname", async () => {
        const before = await state();
        const r = await call("POST", "/tls/activations", jsonapi("tls_activation", undefined, { tls_certificate: rel("tls_certificate", "srv"), tls_domain: rel("tls_domain", "bad_name.wild.test") }));
        expect(r.status).toBe(400);
        expect(fastlyError(r)).toMatch(/^hosts\[\d+\]\.hostname: a DNS name/);
        await unchanged(before, { method: "POST", path: "/tls/activations", summary: /^refused: create tls_activation bad_name\.wild\.test/ });
      });

      it("refused by the data plane's compiler, after the rows were written: rolled back", async () => {
        const before = await state();
        // The compiler refuses the next model (as it would a certificate whose key does not match).
        const apply = cg.runtime.apply;
        cg.runtime.apply = (m) => apply.call(cg.runtime, { ...m, default_certificate: "gone" });
        let r: ApiReply;
        try {
          r = await call("POST", "/tls/private_keys", jsonapi("tls_private_key", { key: up2.keyPem, name: "never stored" }));
        } finally {
          cg.runtime.apply = apply;
        }
        expect(r.status).toBe(400);
        expect(fastlyError(r)).toMatch(/default_certificate: no certificate with id "gone"/);
        await unchanged(before, { method: "POST", path: "/tls/private_keys", summary: /^refused: create tls_private_key never stored/ });
        expect((await call("GET", "/tls/private_keys")).body.data.map((k: { attributes: { name: string } }) => k.attributes.name)).not.toContain("never stored");
        // The same write goes through once the compiler accepts it.
        const ok = await call("POST", "/tls/private_keys", jsonapi("tls_private_key", { key: up2.keyPem, name: "stored" }));
        expect(ok.status).toBe(201);
        expect((await state()).revision).toBe(before.revision + 1);
      });
    });
  });
});
