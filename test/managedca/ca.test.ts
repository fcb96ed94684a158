// The managed CA against independent peers: a CSR from `openssl req`, `openssl verify
// -crl_check` against certgate's CRL, `openssl ocsp` against certgate's responder.
import { X509Certificate } from "node:crypto";
import http from "node:http";
import { mkdtempSync, statSync, writeFileSync } from "node:fs";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ManagedCa, CsrError, type SerialStatus } from "../../src/managedca/ca.ts";
import { run } from "../helpers/tools.ts";

describe("managed CA", () => {
  let dir: string;
  let ca: ManagedCa;
  let responder: http.Server;
  let ocspUrl: string;
  const statuses = new Map<string, SerialStatus>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "certgate-mca-"));
    ca = await ManagedCa.open(join(dir, "data"));
    responder = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", async () => {
        const der = await ca.ocsp(Buffer.concat(chunks), (s) => statuses.get(s) ?? { status: "unknown" });
        res.writeHead(200, { "content-type": "application/ocsp-response", "content-length": der.length });
        res.end(der);
      });
    });
    await new Promise<void>((r) => responder.listen(0, "127.0.0.1", r));
    ocspUrl = `http://127.0.0.1:${(responder.address() as net.AddressInfo).port}/ocsp`;
  });
  afterAll(() => responder.close());

  async function csr(cn: string): Promise<{ csr: string; key: string }> {
    const key = join(dir, `${cn}.key`);
    const out = join(dir, `${cn}.csr`);
    const r = await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", out, "-subj", `/C=US/O=Example/OU=Ops/CN=${cn}`]);
    expect(r.code).toBe(0);
    return { csr: (await import("node:fs")).readFileSync(out, "utf8"), key };
  }

  it("keeps its key in the data directory with mode 0600, and reopens the same CA", async () => {
    expect(statSync(join(dir, "data", "managed-ca.key")).mode & 0o777).toBe(0o600);
    const again = await ManagedCa.open(join(dir, "data"));
    expect(again.certPem).toBe(ca.certPem);
  });

  it("issues from an openssl CSR; openssl verifies the chain, then refuses it once the CRL lists it", async () => {
    const { csr: pem } = await csr("device-1");
    const issued = await ca.issue(pem, 30, { crl: "http://127.0.0.1:1/crl", ocsp: ocspUrl });
    expect(issued.commonName).toBe("device-1");
    expect(issued.subject).toMatchObject({ country: "US", organization: "Example", organizationalUnit: "Ops" });
    // Read off the issued certificate itself, not the CA's own bookkeeping.
    const cert = new X509Certificate(issued.certificate);
    expect(Date.parse(cert.validTo) - Date.parse(cert.validFrom)).toBe(30 * 86_400_000);
    expect([Date.parse(cert.validFrom), Date.parse(cert.validTo)]).toEqual([issued.issuedOn.getTime(), issued.expiresOn.getTime()]);
    const files = { ca: join(dir, "ca.pem"), cert: join(dir, "device-1.pem"), crl: join(dir, "crl.pem") };
    writeFileSync(files.ca, ca.certPem);
    writeFileSync(files.cert, issued.certificate);
    const pemCrl = (der: Buffer) => `-----BEGIN X509 CRL-----\n${der.toString("base64").replace(/.{64}/g, "$&\n")}\n-----END X509 CRL-----\n`;
    writeFileSync(files.crl, pemCrl(await ca.crl([])));
    const ok = await run("openssl", ["verify", "-crl_check", "-purpose", "sslclient", "-CAfile", files.ca, "-CRLfile", files.crl, files.cert]);
    expect(ok.stdout).toContain(": OK");
    writeFileSync(files.crl, pemCrl(await ca.crl([{ serial: issued.serial, revokedAt: new Date() }])));
    const revoked = await run("openssl", ["verify", "-crl_check", "-CAfile", files.ca, "-CRLfile", files.crl, files.cert]);
    expect(revoked.code).not.toBe(0);
    expect(revoked.stdout + revoked.stderr).toContain("certificate revoked");
    const text = await run("openssl", ["x509", "-in", files.cert, "-noout", "-text"]);
    expect(text.stdout).toContain("http://127.0.0.1:1/crl");
    expect(text.stdout).toContain(`OCSP - URI:${ocspUrl}`);
    expect(text.stdout).toContain("TLS Web Client Authentication");
  });

  it("answers openssl ocsp: good, revoked, unknown, with a nonce", async () => {
    const { csr: pem } = await csr("device-2");
    const issued = await ca.issue(pem, 10, { crl: "http://127.0.0.1:1/crl", ocsp: ocspUrl });
    const certFile = join(dir, "device-2.pem");
    const caFile = join(dir, "ca2.pem");
    writeFileSync(certFile, issued.certificate);
    writeFileSync(caFile, ca.certPem);
    const ask = () => run("openssl", ["ocsp", "-issuer", caFile, "-cert", certFile, "-url", ocspUrl, "-CAfile", caFile, "-nonce"]);
    const unknown = await ask();
    expect(unknown.stdout).toContain(": unknown");
    statuses.set(issued.serial, { status: "good" });
    const good = await ask();
    expect(good.stdout).toContain(": good");
    expect(good.stderr).toContain("Response verify OK");
    statuses.set(issued.serial, { status: "revoked", revokedAt: new Date() });
    expect((await ask()).stdout).toContain(": revoked");
  });

  it("refuses a malformed CSR and one whose signature does not verify", async () => {
    await expect(ca.issue("-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----", 10, { crl: "", ocsp: "" })).rejects.toThrow(CsrError);
    const { csr: pem } = await csr("tampered");
    const b64 = pem.replace(/-----[^-]+-----|\s/g, "");
    const der = Buffer.from(b64, "base64");
    der[der.length - 5]! ^= 0xff; // flip a bit in the signature
    const bad = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(ca.issue(bad, 10, { crl: "", ocsp: "" })).rejects.toThrow(new CsrError("the CSR's signature does not verify"));
  });
});
