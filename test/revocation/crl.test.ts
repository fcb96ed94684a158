// CRLs made by `openssl ca -gencrl`: uploaded, fetched from a distribution point, missing.
import http from "node:http";
import type net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, connect, pki, rawRequest, request, startProxy, type Proxy } from "../helpers/harness.ts";
import { OpensslCa, freePort } from "../helpers/opensslca.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { ModelError, type Model } from "../../src/model/schema.ts";

describe("CRLs", () => {
  let proxy: Proxy;
  let p: DevPki;
  let ca: OpensslCa;
  let model: Model;
  let crlServer: http.Server;
  let crlUrl: string;
  let crlPem = "";
  let crlHits = 0;
  let victim: Issued; // revoked, names the CDP
  let bystander: Issued; // valid, names the CDP
  let deadCdp: Issued; // names a CDP nobody serves

  beforeAll(async () => {
    p = await pki();
    ca = new OpensslCa(p.ca);
    crlServer = http.createServer((_req, res) => {
      crlHits++;
      res.end(crlPem);
    });
    await new Promise<void>((r) => crlServer.listen(0, "127.0.0.1", r));
    crlUrl = `http://127.0.0.1:${(crlServer.address() as net.AddressInfo).port}/ca.crl`;
    victim = await issue({ subject: "O=certgate dev,CN=victim", crlUrls: [crlUrl] }, p.ca);
    bystander = await issue({ subject: "O=certgate dev,CN=bystander", crlUrls: [crlUrl] }, p.ca);
    deadCdp = await issue({ subject: "O=certgate dev,CN=dead cdp", crlUrls: [`http://127.0.0.1:${await freePort()}/none.crl`] }, p.ca);
    await ca.revoke(victim.certPem);
    crlPem = await ca.gencrl();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [
        { hostname: "a.test", mtls: { trust_bundle: "clients", mode: "fail_open" } },
        { hostname: "b.test", mtls: { trust_bundle: "clients", mode: "enforced" } },
      ], {
        rules: [{ id: "revoked", expression: 'cf.tls_client_auth.cert_revoked and http.request.uri.path eq "/admin"', action: "block", response: { status: 403, body: "revoked by rule\n" } }],
      }),
    );
    model = proxy.runtime.snapshot.model;
  });
  afterAll(async () => {
    await proxy.close();
    crlServer.close();
  });

  const withBundle = (revocation: NonNullable<Model["trust_bundles"][0]["revocation"]>) =>
    proxy.runtime.apply({ ...model, trust_bundles: [{ ...model.trust_bundles[0]!, revocation }] });

  it("an uploaded CRL refuses a revoked certificate on an enforced host and passes others", async () => {
    withBundle({ crl: { pem: crlPem, urls: [], fetch_distribution_points: false, when_missing: "ignore" } });
    const r = await request(proxy.port, { servername: "b.test", cert: victim });
    expect(r.status).toBe(403);
    expect(r.body).toContain("Client certificate error: revoked.");
    expect((await request(proxy.port, { servername: "b.test", cert: bystander })).status).toBe(200);
  });

  it("on a fail-open host, cert_revoked is set for rules and cert_verified stays true", async () => {
    withBundle({ crl: { pem: crlPem, urls: [], fetch_distribution_points: false, when_missing: "ignore" } });
    expect((await request(proxy.port, { servername: "a.test", path: "/admin", cert: victim })).body).toBe("revoked by rule\n");
    expect((await request(proxy.port, { servername: "a.test", path: "/public", cert: victim })).status).toBe(200);
    expect((await request(proxy.port, { servername: "a.test", path: "/admin", cert: bystander })).status).toBe(200);
  });

  it("on a keep-alive connection, revocation settings removed from the bundle stop counting the certificate revoked", async () => {
    withBundle({ crl: { pem: crlPem, urls: [], fetch_distribution_points: false, when_missing: "ignore" } });
    const { socket } = await connect(proxy.port, { servername: "a.test", cert: victim });
    expect((await rawRequest(socket, "a.test", "/admin")).body).toBe("revoked by rule\n");
    // The same CAs, so the host's policy version (and the connection) stays.
    proxy.runtime.apply({ ...model, trust_bundles: [{ ...model.trust_bundles[0]!, revocation: undefined }] });
    expect((await rawRequest(socket, "a.test", "/admin")).status).toBe(200);
    socket.destroy();
  });

  it("a revocation published while a keep-alive connection is open applies to its next request", async () => {
    withBundle({ crl: { pem: crlPem, urls: [], fetch_distribution_points: false, when_missing: "ignore" } });
    const { socket } = await connect(proxy.port, { servername: "b.test", cert: bystander });
    expect((await rawRequest(socket, "b.test")).status).toBe(200);
    await ca.revoke(bystander.certPem);
    const newer = await ca.gencrl();
    withBundle({ crl: { pem: newer, urls: [], fetch_distribution_points: false, when_missing: "ignore" } });
    const r = await rawRequest(socket, "b.test");
    expect(r.status).toBe(403);
    expect(r.body).toContain("revoked");
    socket.destroy();
    crlPem = newer;
  });

  it("fetches the CRL named in the certificate's distribution point, once, and enforces it", async () => {
    withBundle({ crl: { urls: [], fetch_distribution_points: true, when_missing: "ignore" } });
    const hits = crlHits;
    expect((await request(proxy.port, { servername: "b.test", cert: victim })).status).toBe(403);
    expect((await request(proxy.port, { servername: "b.test", cert: victim })).status).toBe(403);
    expect(crlHits - hits).toBe(1); // cached until nextUpdate
    expect((await request(proxy.port, { servername: "b.test", cert: p.client })).status).toBe(200); // no CDP: nothing to check
  });

  it("fetches a CRL configured by URL as soon as it is configured, and enforces it for certificates that name no CDP", async () => {
    const noCdp = await issue({ subject: "O=certgate dev,CN=no cdp victim" }, p.ca);
    await ca.revoke(noCdp.certPem);
    crlPem = await ca.gencrl();
    const hits = crlHits;
    withBundle({ crl: { urls: [`${crlUrl}?configured`], fetch_distribution_points: false, when_missing: "ignore" } });
    for (let i = 0; i < 250 && crlHits === hits; i++) await new Promise((r) => setTimeout(r, 20));
    expect(crlHits - hits).toBe(1); // fetched on apply, before any client asked
    expect((await request(proxy.port, { servername: "b.test", cert: noCdp })).status).toBe(403);
    expect((await request(proxy.port, { servername: "b.test", cert: p.client })).status).toBe(200);
  });

  it("no usable CRL: ignored, or treated as revoked, as the bundle says", async () => {
    withBundle({ crl: { urls: [], fetch_distribution_points: true, when_missing: "ignore" } });
    expect((await request(proxy.port, { servername: "b.test", cert: deadCdp })).status).toBe(200);
    withBundle({ crl: { urls: [], fetch_distribution_points: true, when_missing: "revoked" } });
    const r = await request(proxy.port, { servername: "b.test", cert: deadCdp });
    expect(r.status).toBe(403);
    expect(r.body).toContain("revoked");
  });

  it("refuses a CRL not signed by the bundle's CAs, or malformed, naming the field", async () => {
    const other = new OpensslCa(p.otherCa);
    const foreign = await other.gencrl();
    for (const pem of [foreign, "-----BEGIN X509 CRL-----\nMIIB\n-----END X509 CRL-----\n"]) {
      let err: unknown;
      try {
        withBundle({ crl: { pem, urls: [], fetch_distribution_points: false, when_missing: "ignore" } });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ModelError);
      expect((err as ModelError).issues[0]!.path).toBe("trust_bundles[0].revocation.crl.pem");
    }
  });

  it("exports CRL fetches and revocation decisions as metrics", async () => {
    const fetches = await proxy.metrics.registry.getSingleMetricAsString("certgate_crl_fetches_total");
    expect(fetches).toMatch(/result="ok"} [1-9]/);
    expect(fetches).toMatch(/result="error"} [1-9]/);
    const checks = await proxy.metrics.registry.getSingleMetricAsString("certgate_revocation_checks_total");
    expect(checks).toMatch(/source="crl",result="revoked"} [1-9]/);
  });
});

describe("revocation settings through the native API", () => {
  it("PUT /v1/trust_bundles/:id/revocation applies a CRL live; a foreign CRL is refused and nothing changes", async () => {
    const { api, startCertgate } = await import("../control/helpers.ts");
    const p = await pki();
    const cg = await startCertgate(undefined, (pk, origin) => ({
      certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
      hosts: [{ hostname: "b.test", mtls: { trust_bundle: "clients", mode: "enforced" } }],
      routes: [{ id: "b", hostname: "b.test", origin }],
      default_certificate: "srv",
    }));
    try {
      const ca = new OpensslCa(p.ca);
      const victim = await issue({ subject: "O=certgate dev,CN=api victim" }, p.ca);
      await ca.revoke(victim.certPem);
      const crl = await ca.gencrl();
      expect((await request(cg.port, { servername: "b.test", cert: victim })).status).toBe(200);
      const put = await api(cg, "PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: crl }, ocsp: { mode: "off" } });
      expect(put.status).toBe(200);
      expect(put.body.crl).toMatchObject({ when_missing: "ignore", urls: [] });
      expect((await request(cg.port, { servername: "b.test", cert: victim })).status).toBe(403);
      const foreign = await new OpensslCa(p.otherCa).gencrl();
      const bad = await api(cg, "PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: foreign } });
      expect(bad.status).toBe(400);
      expect(bad.body.error.message).toContain("not signed by any CA of the trust bundle");
      expect((await api(cg, "GET", "/v1/trust_bundles/clients/revocation")).body.crl.pem).toBe(crl);
      expect((await api(cg, "PUT", "/v1/trust_bundles/clients/revocation", { ocsp: { mode: "sometimes" } })).status).toBe(400);
      expect((await api(cg, "GET", "/v1/trust_bundles/nope/revocation")).status).toBe(404);
    } finally {
      await cg.close();
    }
  });
});
