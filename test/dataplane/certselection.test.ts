// Which server certificate a name gets depends on the configured certificates only, never on
// the order they were written or stored in: the same before and after a restart.
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, pki } from "../helpers/harness.ts";
import { api, jsonapi, startCertgate, type Certgate } from "../control/helpers.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("server certificate precedence", () => {
  let p: DevPki;
  let cg: Certgate;
  beforeAll(async () => {
    p = await pki();
    cg = await startCertgate();
  });
  afterAll(() => cg.close());

  /** The serial number of the certificate certgate serves for `servername`. */
  const servedSerial = (servername: string) =>
    new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: "127.0.0.1", port: cg.port, servername, ca: p.serverCa.certPem }, () => {
        resolve(s.getPeerX509Certificate()!.serialNumber.toLowerCase());
        s.end();
      });
      s.on("error", reject);
    });

  const dupCert = (serial: string, notAfter: Date) =>
    issue({ subject: `CN=dup ${serial}`, dnsNames: ["dup.test"], eku: ["serverAuth"], serialNumber: serial, notBefore: new Date(Date.now() - 3_600_000), notAfter }, p.serverCa);

  /** Uploads a certificate and its key through the Fastly dialect; returns its (random) id. */
  const upload = async (c: Awaited<ReturnType<typeof dupCert>>): Promise<string> => {
    expect((await api(cg, "POST", "/tls/private_keys", jsonapi("tls_private_key", { key: c.keyPem }))).status).toBe(201);
    const r = await api(cg, "POST", "/tls/certificates", jsonapi("tls_certificate", { cert_blob: c.certPem }));
    expect(r.status, r.text).toBe(201);
    return r.body.data.id;
  };

  it("is the same after a restart on the same data directory, after deleting one certificate and adding another", async () => {
    const year = 365 * 86_400_000;
    const [a, b, c] = await Promise.all([dupCert("0a", new Date(Date.now() + 3 * year)), dupCert("0b", new Date(Date.now() + year)), dupCert("0c", new Date(Date.now() + 2 * year))]);
    const idA = await upload(a);
    await upload(b);
    expect(await servedSerial("dup.test")).toBe("0a"); // the latest not_after
    expect((await api(cg, "DELETE", `/tls/certificates/${idA}`)).status).toBe(204);
    expect(await servedSerial("dup.test")).toBe("0b");
    await upload(c);
    expect(await servedSerial("dup.test")).toBe("0c"); // added last, expires after b
    await cg.close();
    cg = await startCertgate(cg.dataDir);
    expect(await servedSerial("dup.test")).toBe("0c");
    // The default certificate still serves everything else.
    expect(await servedSerial("localhost")).toBe(p.server.cert.serialNumber.toLowerCase());
  });
});
