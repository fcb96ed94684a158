// Each connection fact, as rules see it on a real connection, against values computed
// independently from the certificate (node:crypto and @peculiar/x509).
import "reflect-metadata";
import { X509Certificate, createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SubjectKeyIdentifierExtension } from "@peculiar/x509";
import { baseModel, connect, pki, rawRequest, startProxy, type Proxy } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("connection facts", () => {
  let proxy: Proxy;
  let p: DevPki;
  let expected: Record<string, string>;
  beforeAll(async () => {
    p = await pki();
    const leaf = new X509Certificate(p.clientViaIntermediate.certPem);
    const der = leaf.raw;
    const ski = (cert: typeof p.client) => cert.cert.getExtension(SubjectKeyIdentifierExtension)!.keyId.toUpperCase();
    expected = {
      cert_subject_dn: "CN=client via intermediate,O=certgate dev",
      cert_issuer_dn: "CN=certgate dev intermediate CA,O=certgate dev",
      cert_subject_dn_rfc2253: "CN=client via intermediate,O=certgate dev",
      cert_issuer_dn_legacy: "/O=certgate dev/CN=certgate dev intermediate CA",
      cert_serial: leaf.serialNumber.toUpperCase(),
      cert_fingerprint_sha256: createHash("sha256").update(der).digest("hex"),
      cert_fingerprint_sha1: createHash("sha1").update(der).digest("hex"),
      cert_ski: ski(p.clientViaIntermediate),
      cert_issuer_ski: ski(p.intermediate),
      cert_not_before: leaf.validFrom,
      cert_not_after: leaf.validTo,
      cert_rfc9440: `:${der.toString("base64")}:`,
      cert_chain_rfc9440: `:${new X509Certificate(p.intermediate.certPem).raw.toString("base64")}:`,
    };
    const rules = Object.entries(expected).map(([field, value]) => ({
      id: `fact-${field}`,
      expression: `http.request.uri.path eq "/fact/${field}" and cf.tls_client_auth.${field} eq ${JSON.stringify(value)}`,
      action: "block" as const,
      response: { status: 418, body: "match" },
    }));
    rules.push({ id: "verified", expression: 'http.request.uri.path eq "/fact/verified" and cf.tls_client_auth.cert_verified and cf.tls_client_auth.cert_presented and not cf.tls_client_auth.cert_revoked and cf.tls_version eq "TLSv1.3" and ip.src eq 127.0.0.1', action: "block", response: { status: 418, body: "match" } });
    proxy = await startProxy((pk, origin) => ({
      ...baseModel(pk, origin, [{ hostname: "a.test", mtls: { trust_bundle: "clients", mode: "fail_open" }, forward_client_cert: { rfc9440: true } }], { rules }),
      // The intermediate is in the bundle, so the chain through it is known to certgate.
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem + pk.intermediate.certPem }],
    }));
  });
  afterAll(() => proxy.close());

  it("match the certificate, all on one keep-alive connection", async () => {
    const { socket } = await connect(proxy.port, { servername: "a.test", cert: p.clientViaIntermediate });
    for (const field of [...Object.keys(expected), "verified"]) {
      const r = await rawRequest(socket, "a.test", `/fact/${field}`);
      expect(r.status, field).toBe(418);
    }
    socket.destroy();
  });

  it("are what the origin receives as RFC 9440 Client-Cert and Client-Cert-Chain", async () => {
    const { socket } = await connect(proxy.port, { servername: "a.test", cert: p.clientViaIntermediate });
    const echo = JSON.parse((await rawRequest(socket, "a.test", "/origin")).body) as { headers: Record<string, string> };
    expect(echo.headers["client-cert"]).toBe(expected.cert_rfc9440);
    expect(echo.headers["client-cert-chain"]).toBe(expected.cert_chain_rfc9440);
    socket.destroy();
  });

  it("are empty and false without a certificate", async () => {
    const { socket } = await connect(proxy.port, { servername: "a.test" });
    expect((await rawRequest(socket, "a.test", "/fact/verified")).status).toBe(200);
    expect((await rawRequest(socket, "a.test", "/fact/cert_serial")).status).toBe(200);
    socket.destroy();
  });
});
