// The managed CA through the Cloudflare client-certificates API, end to end: issue from an
// openssl CSR, trust the CA on a hostname, use the certificate, revoke it, and see the next
// request refused; CRL and OCSP from the public listener agree (openssl verify, openssl ocsp).
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, startCertgate, type Certgate } from "../control/helpers.ts";
import { connect, rawRequest, request } from "../helpers/harness.ts";
import { run } from "../helpers/tools.ts";

describe("managed CA via the Cloudflare API", () => {
  let cg: Certgate;
  let zone: string;
  let dir: string;
  let client: { certPem: string; keyPem: string };
  let certId: string;

  beforeAll(async () => {
    cg = await startCertgate();
    dir = mkdtempSync(join(tmpdir(), "certgate-mca-api-"));
    zone = (await api(cg, "POST", "/zones", { name: "a.test" })).body.result.id;
    const r = await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(dir, "k.pem"), "-out", join(dir, "c.csr"), "-subj", "/O=Example/CN=device-7"]);
    expect(r.code).toBe(0);
  });
  afterAll(() => cg.close());

  it("issues a certificate from a CSR with the documented fields", async () => {
    const r = await api(cg, "POST", `/zones/${zone}/client_certificates`, { csr: readFileSync(join(dir, "c.csr"), "utf8"), validity_days: 30 });
    expect(r.status).toBe(200);
    const c = r.body.result;
    expect(c).toMatchObject({ common_name: "device-7", organization: "Example", status: "active", validity_days: 30, certificate_authority: { id: "managed-ca" } });
    for (const f of ["id", "certificate", "csr", "expires_on", "issued_on", "fingerprint_sha256", "serial_number", "ski", "signature"]) expect(c[f], f).toBeTruthy();
    expect(JSON.stringify(r.body)).not.toContain("PRIVATE KEY");
    certId = c.id;
    client = { certPem: c.certificate, keyPem: readFileSync(join(dir, "k.pem"), "utf8") };
    const list = await api(cg, "GET", `/zones/${zone}/client_certificates?status=active&per_page=5`);
    expect(list.body.result.map((x: { id: string }) => x.id)).toEqual([certId]);
    expect(list.body.result_info).toMatchObject({ page: 1, per_page: 5, total_count: 1 });
    expect((await api(cg, "GET", `/zones/${zone}/client_certificates/${certId}`)).body.result.id).toBe(certId);
  });

  it("refuses a bad CSR and a bad validity with Cloudflare's envelope", async () => {
    const bad = await api(cg, "POST", `/zones/${zone}/client_certificates`, { csr: "not a csr", validity_days: 30 });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ success: false, result: null });
    expect((await api(cg, "POST", `/zones/${zone}/client_certificates`, { csr: readFileSync(join(dir, "c.csr"), "utf8"), validity_days: 0 })).status).toBe(400);
    expect((await api(cg, "GET", `/zones/${zone}/client_certificates?status=bogus`)).status).toBe(400);
  });

  it("trusts the managed CA on a hostname; a rule requires a valid, unrevoked certificate", async () => {
    const assoc = await api(cg, "PUT", `/zones/${zone}/certificate_authorities/hostname_associations`, { hostnames: ["a.test"] });
    expect(assoc.body.result.hostnames).toEqual(["a.test"]);
    const rule = await api(cg, "PUT", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`, {
      rules: [{ action: "block", expression: "not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked", description: "mTLS" }],
    });
    expect(rule.status).toBe(200);
    expect((await request(cg.port, { servername: "a.test", cert: client })).status).toBe(200);
    expect((await request(cg.port, { servername: "a.test" })).status).toBe(403);
  });

  it("DELETE revokes: the very next request, even on an open keep-alive connection, is refused", async () => {
    const { socket } = await connect(cg.port, { servername: "a.test", cert: client });
    expect((await rawRequest(socket, "a.test")).status).toBe(200);
    const del = await api(cg, "DELETE", `/zones/${zone}/client_certificates/${certId}`);
    expect(del.body.result.status).toBe("pending_revocation");
    expect((await rawRequest(socket, "a.test")).status).toBe(403);
    socket.destroy();
    expect((await request(cg.port, { servername: "a.test", cert: client })).status).toBe(403);
  });

  it("the public CRL lists it (openssl verify -crl_check) and the public OCSP says revoked (openssl ocsp)", async () => {
    const crl = Buffer.from(await (await fetch(`${cg.publicUrl}/managed-ca/crl`)).arrayBuffer());
    const caPem = await (await fetch(`${cg.publicUrl}/managed-ca/ca.pem`)).text();
    const files = { ca: join(dir, "ca.pem"), cert: join(dir, "cert.pem"), crl: join(dir, "crl.der") };
    writeFileSync(files.ca, caPem);
    writeFileSync(files.cert, client.certPem);
    writeFileSync(files.crl, crl);
    await run("openssl", ["crl", "-inform", "DER", "-in", files.crl, "-out", `${files.crl}.pem`]);
    const v = await run("openssl", ["verify", "-crl_check", "-CAfile", files.ca, "-CRLfile", `${files.crl}.pem`, files.cert]);
    expect(v.stdout + v.stderr).toContain("certificate revoked");
    const o = await run("openssl", ["ocsp", "-issuer", files.ca, "-cert", files.cert, "-url", `${cg.publicUrl}/managed-ca/ocsp`, "-CAfile", files.ca]);
    expect(o.stdout).toContain(": revoked");
  });

  it("the OCSP GET form (RFC 6960 A.1: base64 of the request in the path) answers the same, verified by openssl", async () => {
    const files = { ca: join(dir, "get-ca.pem"), cert: join(dir, "get-cert.pem"), req: join(dir, "get-req.der"), resp: join(dir, "get-resp.der") };
    writeFileSync(files.ca, await (await fetch(`${cg.publicUrl}/managed-ca/ca.pem`)).text());
    writeFileSync(files.cert, client.certPem);
    expect((await run("openssl", ["ocsp", "-issuer", files.ca, "-cert", files.cert, "-no_nonce", "-reqout", files.req])).code).toBe(0);
    const res = await fetch(`${cg.publicUrl}/managed-ca/ocsp/${encodeURIComponent(readFileSync(files.req).toString("base64"))}`);
    expect([res.status, res.headers.get("content-type")]).toEqual([200, "application/ocsp-response"]);
    writeFileSync(files.resp, Buffer.from(await res.arrayBuffer()));
    const o = await run("openssl", ["ocsp", "-respin", files.resp, "-issuer", files.ca, "-cert", files.cert, "-CAfile", files.ca]);
    expect(o.stderr).toContain("Response verify OK");
    expect(o.stdout).toContain(": revoked");
  });

  it("PATCH reactivate brings it back while pending revocation", async () => {
    const r = await api(cg, "PATCH", `/zones/${zone}/client_certificates/${certId}`, { reactivate: true });
    expect(r.body.result.status).toBe("active");
    expect((await request(cg.port, { servername: "a.test", cert: client })).status).toBe(200);
    expect((await api(cg, "PATCH", `/zones/${zone}/client_certificates/${certId}`, { reactivate: true })).status).toBe(400);
  });
});

describe("managed CA across owners", () => {
  let cg: Certgate;
  let dir: string;
  beforeAll(async () => {
    cg = await startCertgate();
    dir = mkdtempSync(join(tmpdir(), "certgate-mca-owners-"));
  });
  afterAll(() => cg.close());

  /** A zone of `account` whose host trusts the managed CA and blocks what it does not verify; a certificate issued in it. */
  async function tenant(account: string, name: string): Promise<{ zone: string; client: { certPem: string; keyPem: string } }> {
    const zone = (await api(cg, "POST", "/zones", { name, account: { id: account } })).body.result.id as string;
    expect((await api(cg, "PUT", `/zones/${zone}/certificate_authorities/hostname_associations`, { hostnames: [name] })).status).toBe(200);
    const rules = [{ action: "block", expression: "not cf.tls_client_auth.cert_verified", description: "mTLS" }];
    expect((await api(cg, "PUT", `/zones/${zone}/rulesets/phases/http_request_firewall_custom/entrypoint`, { rules })).status).toBe(200);
    const key = join(dir, `${account}.key`);
    const csr = join(dir, `${account}.csr`);
    expect((await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", `/CN=${account}`])).code).toBe(0);
    const issued = await api(cg, "POST", `/zones/${zone}/client_certificates`, { csr: readFileSync(csr, "utf8"), validity_days: 30 });
    expect(issued.status).toBe(200);
    return { zone, client: { certPem: issued.body.result.certificate, keyPem: readFileSync(key, "utf8") } };
  }

  it("a certificate issued in one account's zone does not verify on another account's host", async () => {
    const a = await tenant("acc-a", "a.test");
    const b = await tenant("acc-b", "b.test");
    expect((await request(cg.port, { servername: "a.test", cert: a.client })).status).toBe(200);
    expect((await request(cg.port, { servername: "b.test", cert: b.client })).status).toBe(200);
    // The CA is shared; the certificate chains to it, but it was issued for the other owner.
    expect((await request(cg.port, { servername: "b.test", cert: a.client })).status).toBe(403);
    expect((await request(cg.port, { servername: "a.test", cert: b.client })).status).toBe(403);
    const metrics = await (await fetch(`${cg.admin}/metrics`)).text();
    expect(metrics).toMatch(/certgate_verify_failures_total\{[^}]*reason="issued_to_another_owner"[^}]*\} [1-9]/);
  });
});
