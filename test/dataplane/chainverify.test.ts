// The header-certificate chain verifier against OpenSSL itself: for each chain, the code a
// real TLS handshake (node:tls, OpenSSL 3.5) reports as authorizationError must be the code
// verifyChainCode gives for the same leaf, intermediates and trusted CAs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import tls from "node:tls";
import { X509Certificate } from "node:crypto";
import type { AddressInfo } from "node:net";
import { issue, pki, withUndecodableKey } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { verifyChainCode } from "../../src/dataplane/tls/chainverify.ts";
import { SIGN, type Issued } from "../../src/pki/issue.ts";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";
import type { DevPki } from "../../src/pki/devpki.ts";

const DAY = 86_400_000;

/** A certificate with exactly these extensions (issue() always writes its own), signed by `issuer`. */
async function custom(subject: string, issuer: Issued, extensions: x509.Extension[]): Promise<Issued> {
  const keys = (await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "0a" + Date.now().toString(16),
    subject,
    issuer: issuer.cert.subject,
    notBefore: new Date(Date.now() - DAY),
    notAfter: new Date(Date.now() + DAY),
    publicKey: keys.publicKey,
    signingKey: issuer.keys.privateKey,
    signingAlgorithm: SIGN,
    extensions: [...extensions, await x509.AuthorityKeyIdentifierExtension.create(issuer.keys.publicKey), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  return { cert, keys, certPem: cert.toString("pem") + "\n", keyPem: `-----BEGIN PRIVATE KEY-----\n${der.toString("base64")}\n-----END PRIVATE KEY-----\n` };
}

/** A client certificate for the handshake: its PEM chain (leaf first) and key. */
interface Case {
  name: string;
  chain: string[];
  key: string;
  /** The CAs the server trusts (PEM). */
  trusted: string[];
}

describe("chainverify mirrors OpenSSL's verdict on header certificates", () => {
  let p: DevPki;
  const cases: Case[] = [];
  const servers: tls.Server[] = [];

  const add = (name: string, leaf: Issued, intermediates: Issued[], trusted: Issued[]) =>
    cases.push({ name, chain: [leaf.certPem, ...intermediates.map((i) => i.certPem)], key: leaf.keyPem, trusted: trusted.map((t) => t.certPem) });

  beforeAll(async () => {
    p = await pki();
    const now = Date.now();
    add("valid", p.client, [], [p.ca]);
    add("intermediate supplied by the client", p.clientViaIntermediate, [p.intermediate], [p.ca]);
    add("intermediate missing", p.clientViaIntermediate, [], [p.ca]);
    add("intermediate in the bundle", p.clientViaIntermediate, [], [p.ca, p.intermediate]);
    add("intermediate alone in the bundle (no root)", p.clientViaIntermediate, [], [p.intermediate]);
    add("expired", p.expired, [], [p.ca]);
    add("not yet valid", p.notYetValid, [], [p.ca]);
    add("serverAuth EKU only", p.serverAuthOnly, [], [p.ca]);
    add("untrusted CA", p.untrusted, [], [p.ca]);
    add("untrusted CA sent along", p.untrusted, [p.otherCa], [p.ca]);
    const selfSigned = await issue({ subject: "CN=self signed client", eku: ["clientAuth"] });
    add("self-signed", selfSigned, [], [p.ca]);
    // pathLen 0 on the intermediate, yet another CA below it.
    const sub = await issue({ subject: "CN=sub CA", ca: true }, p.intermediate);
    const belowSub = await issue({ subject: "CN=below sub" }, sub);
    add("path length exceeded", belowSub, [sub, p.intermediate], [p.ca]);
    const notCa = await issue({ subject: "CN=not a CA", eku: [] }, p.ca);
    const belowNotCa = await issue({ subject: "CN=below not a CA" }, notCa);
    add("issuer is not a CA", belowNotCa, [notCa], [p.ca]);
    const oldInt = await issue({ subject: "CN=expired intermediate", ca: true, notBefore: new Date(now - 60 * DAY), notAfter: new Date(now - DAY) }, p.ca);
    const belowOld = await issue({ subject: "CN=below expired intermediate" }, oldInt);
    add("expired intermediate", belowOld, [oldInt], [p.ca]);
    const expiredUntrusted = await issue({ subject: "CN=expired untrusted", notBefore: new Date(now - 60 * DAY), notAfter: new Date(now - DAY) }, p.otherCa);
    add("expired and untrusted", expiredUntrusted, [], [p.ca]);
    const leafBits = (ku: number, critical = true) => [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(ku, critical)];
    add("leaf key usage keyEncipherment only", await custom("CN=ke only", p.ca, leafBits(x509.KeyUsageFlags.keyEncipherment)), [], [p.ca]);
    add("leaf key usage keyAgreement", await custom("CN=ka", p.ca, leafBits(x509.KeyUsageFlags.keyAgreement)), [], [p.ca]);
    add("leaf with an unknown critical extension", await custom("CN=crit", p.ca, [...leafBits(x509.KeyUsageFlags.digitalSignature), new x509.Extension("1.2.3.4.5", true, new Uint8Array([5, 0]))]), [], [p.ca]);
    const caNoCertSign = await custom("CN=CA without keyCertSign", p.ca, [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.cRLSign, true)]);
    add("issuer CA without keyCertSign", await custom("CN=below no certsign", caNoCertSign, leafBits(x509.KeyUsageFlags.digitalSignature)), [caNoCertSign], [p.ca]);
    const caServerEku = await custom("CN=CA for servers", p.ca, [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true), new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth])]);
    add("intermediate whose EKU lacks clientAuth", await custom("CN=below server CA", caServerEku, leafBits(x509.KeyUsageFlags.digitalSignature)), [caServerEku], [p.ca]);
  });
  afterAll(() => servers.forEach((s) => s.close()));

  /** The authorizationError (or OK) a node:tls server reports for this client chain. */
  async function opensslCode(c: Case): Promise<string> {
    const codes: string[] = [];
    const server = tls.createServer({ key: p.server.keyPem, cert: p.server.certPem, ca: c.trusted, requestCert: true, rejectUnauthorized: false }, (s) => {
      codes.push(s.authorized ? "OK" : String(s.authorizationError));
      s.end();
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ca: p.serverCa.certPem, cert: c.chain.join(""), key: c.key }, () => s.resume());
      s.on("close", () => resolve());
      s.on("error", reject);
    });
    server.close();
    return codes[0]!;
  }

  it("gives OpenSSL's code for every chain", async () => {
    const rows: [string, string, string][] = [];
    for (const c of cases) {
      const [leaf, ...rest] = c.chain.map((pem) => new X509Certificate(pem));
      const ours = verifyChainCode(leaf!, rest, c.trusted.map((pem) => new X509Certificate(pem)), Date.now());
      rows.push([c.name, await opensslCode(c), ours]);
    }
    expect(rows.map(([n, o]) => [n, o])).toEqual(rows.map(([n, , ours]) => [n, ours]));
    // The cases cover failures, not only successes.
    expect(new Set(rows.map((r) => r[1])).size).toBeGreaterThan(6);
  });

  it("a CA with name constraints: refused, since they are not evaluated (fail closed)", async () => {
    const dns = Buffer.from("example.com");
    const nc = Buffer.concat([Buffer.from([0x30, 0x11, 0xa0, 0x0f, 0x30, 0x0d, 0x82, 0x0b]), dns]);
    const constrained = await custom("CN=constrained CA", p.ca, [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true), new x509.Extension("2.5.29.30", true, nc)]);
    const leaf = await custom("CN=below constrained", constrained, [new x509.BasicConstraintsExtension(false, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true)]);
    const code = verifyChainCode(new X509Certificate(leaf.certPem), [new X509Certificate(constrained.certPem)], [new X509Certificate(p.ca.certPem)], Date.now());
    expect(code).toBe("NAME_CONSTRAINTS_NOT_EVALUATED");
  });

  it("the extension reader agrees with @peculiar/x509 on every certificate above, and on CRL distribution points of every shape", async () => {
    const { certExtensions } = await import("../../src/dataplane/tls/certextensions.ts");
    const pems = new Set(cases.flatMap((c) => [...c.chain, ...c.trusted]));
    expect(pems.size).toBeGreaterThan(15);
    // Distribution points: a full name of three kinds (URIs of two schemes and a DNS name), one with
    // only a cRLIssuer (its URI is no distribution point), one with reasons; and one from @peculiar/x509's own encoder.
    const tag = (t: number, ...parts: Buffer[]): Buffer => {
      const body = Buffer.concat(parts);
      const len = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x81, body.length]);
      return Buffer.concat([Buffer.from([t]), len, body]);
    };
    const ia5 = (t: number, v: string) => tag(t, Buffer.from(v, "latin1"));
    const dps = tag(
      0x30,
      tag(0x30, tag(0xa0, tag(0xa0, ia5(0x86, "http://a.example/ca.crl"), ia5(0x86, "ldap://ldap.example/cn=ca"), ia5(0x82, "crl.example")))),
      tag(0x30, tag(0xa2, ia5(0x86, "http://issuer-only.example/x.crl"))),
      tag(0x30, tag(0xa0, tag(0xa0, ia5(0x86, "https://b.example/2.crl"))), Buffer.from([0x81, 0x02, 0x06, 0x40])),
    );
    const handMade = await custom("CN=distribution points", p.ca, [new x509.Extension("2.5.29.31", false, dps)]);
    const encoded = await custom("CN=encoded distribution points", p.ca, [new x509.CRLDistributionPointsExtension(["http://c.example/1.crl", "http://c.example/2.crl"])]);
    expect(certExtensions(new X509Certificate(handMade.certPem).raw).crlUris).toEqual(["http://a.example/ca.crl", "ldap://ldap.example/cn=ca", "https://b.example/2.crl"]);
    pems.add(handMade.certPem).add(encoded.certPem);
    for (const pem of pems) {
      const pc = new x509.X509Certificate(pem);
      const bc = pc.getExtension(x509.BasicConstraintsExtension);
      const ours = certExtensions(new X509Certificate(pem).raw);
      expect(ours).toEqual({
        ku: pc.getExtension(x509.KeyUsagesExtension)?.usages,
        ca: bc?.ca ?? false,
        pathLen: bc?.pathLength,
        ski: pc.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId,
        akid: pc.getExtension(x509.AuthorityKeyIdentifierExtension)?.keyId,
        crlUris: (pc.getExtension(x509.CRLDistributionPointsExtension)?.distributionPoints ?? []).flatMap((dp) => dp.distributionPoint?.fullName ?? []).flatMap((n) => n.uniformResourceIdentifier ?? []),
        all: pc.extensions.map((e) => ({ oid: e.type, critical: e.critical })),
      });
    }
  });

  it("an intermediate whose public key does not decode is no issuer: the verdict of a missing intermediate, never an exception", async () => {
    // A node:tls client refuses to send such a chain, so OpenSSL's own verify command says what
    // chain building makes of it: no issuer for the leaf (it stops at that first error; a TLS
    // server goes on, and reports the last one, as "intermediate missing" above shows).
    const bad = withUndecodableKey(p.intermediate);
    expect(() => new X509Certificate(bad.certPem).publicKey).toThrow();
    const f = pemFiles({ "leaf.pem": p.clientViaIntermediate.certPem, "bad.pem": bad.certPem, "ca.pem": p.ca.certPem });
    const r = await run("openssl", ["verify", "-CAfile", f["ca.pem"]!, "-untrusted", f["bad.pem"]!, "-purpose", "sslclient", f["leaf.pem"]!]);
    expect(r.stdout + r.stderr).toMatch(/error 20 at 0 depth lookup: unable to get local issuer certificate/);
    const leaf = new X509Certificate(p.clientViaIntermediate.certPem);
    const ca = [new X509Certificate(p.ca.certPem)];
    expect(verifyChainCode(leaf, [new X509Certificate(bad.certPem)], ca, Date.now())).toBe(verifyChainCode(leaf, [], ca, Date.now()));
    expect(verifyChainCode(leaf, [], ca, Date.now())).toBe("UNABLE_TO_VERIFY_LEAF_SIGNATURE");
    // With the good intermediate the same leaf verifies: the broken key alone decides.
    expect(verifyChainCode(leaf, [new X509Certificate(p.intermediate.certPem)], ca, Date.now())).toBe("OK");
  });

  it("a leaf whose signature was tampered with: CERT_SIGNATURE_FAILURE", () => {
    const der = Buffer.from(p.client.cert.rawData);
    der[der.length - 5]! ^= 0x01; // inside the signature value
    const code = verifyChainCode(new X509Certificate(der), [], [new X509Certificate(p.ca.certPem)], Date.now());
    expect(code).toBe("CERT_SIGNATURE_FAILURE");
  });
});
