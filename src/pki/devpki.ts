// The development PKI: what `certgate certs dev` writes, what the demo serves, and what the
// tests generate fresh for every run. Covers each verification outcome an operator meets.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { issue, type Issued } from "./issue.ts";

const DAY = 86_400_000;

export interface DevPki {
  ca: Issued; // root CA trusted for client certificates
  intermediate: Issued; // issued by ca; issues clientViaIntermediate
  otherCa: Issued; // a CA nobody trusts
  serverCa: Issued; // issues the server certificate
  server: Issued; // localhost, 127.0.0.1, ::1 and *.localhost; certPem holds the chain
  client: Issued;
  clientViaIntermediate: Issued;
  expired: Issued;
  notYetValid: Issued;
  serverAuthOnly: Issued; // EKU without clientAuth: wrong purpose
  untrusted: Issued; // issued by otherCa
}

export async function createDevPki(opts: { serverNames?: string[] } = {}): Promise<DevPki> {
  const now = Date.now();
  const ca = await issue({ subject: "O=certgate dev,CN=certgate dev client CA", ca: true, days: 3650 });
  const intermediate = await issue(
    { subject: "O=certgate dev,CN=certgate dev intermediate CA", ca: true, pathLength: 0, days: 1825 },
    ca,
  );
  const otherCa = await issue({ subject: "O=elsewhere,CN=some other CA", ca: true, days: 3650 });
  const serverCa = await issue({ subject: "O=certgate dev,CN=certgate dev server CA", ca: true, days: 3650 });
  const serverNames = opts.serverNames ?? ["localhost", "*.localhost"];
  const server = await issue(
    { subject: `O=certgate dev,CN=${serverNames[0]}`, dnsNames: serverNames, ipAddresses: ["127.0.0.1", "::1"], eku: ["serverAuth"], days: 825 },
    serverCa,
  );
  // Serve the full chain so clients can trust the server CA alone.
  server.certPem += serverCa.certPem;
  const client = await issue({ subject: "O=certgate dev,OU=dev,CN=client", days: 825 }, ca);
  const clientViaIntermediate = await issue({ subject: "O=certgate dev,CN=client via intermediate" }, intermediate);
  const expired = await issue(
    { subject: "O=certgate dev,CN=expired client", notBefore: new Date(now - 30 * DAY), notAfter: new Date(now - DAY) },
    ca,
  );
  const notYetValid = await issue(
    { subject: "O=certgate dev,CN=future client", notBefore: new Date(now + DAY), notAfter: new Date(now + 30 * DAY) },
    ca,
  );
  const serverAuthOnly = await issue({ subject: "O=certgate dev,CN=server-auth-only", eku: ["serverAuth"] }, ca);
  const untrusted = await issue({ subject: "O=elsewhere,CN=untrusted client" }, otherCa);
  return { ca, intermediate, otherCa, serverCa, server, client, clientViaIntermediate, expired, notYetValid, serverAuthOnly, untrusted };
}

/** File names written by `certgate certs dev`; the demo and the README refer to these. */
export const DEV_FILES = {
  clientCa: "client-ca.pem",
  serverCa: "server-ca.pem",
  serverCert: "server.pem",
  serverKey: "server.key",
} as const;

export async function writeDevPki(dir: string, pki: DevPki): Promise<string[]> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files: [string, string, number][] = [
    [DEV_FILES.clientCa, pki.ca.certPem, 0o644],
    [DEV_FILES.serverCa, pki.serverCa.certPem, 0o644],
    [DEV_FILES.serverCert, pki.server.certPem, 0o644],
    [DEV_FILES.serverKey, pki.server.keyPem, 0o600],
  ];
  const clients: [string, Issued][] = [
    ["client", pki.client],
    ["client-via-intermediate", pki.clientViaIntermediate],
    ["expired", pki.expired],
    ["not-yet-valid", pki.notYetValid],
    ["untrusted", pki.untrusted],
  ];
  for (const [name, c] of clients) {
    const chain = name === "client-via-intermediate" ? c.certPem + pki.intermediate.certPem : c.certPem;
    files.push([`${name}.pem`, chain, 0o644], [`${name}.key`, c.keyPem, 0o600]);
  }
  for (const [name, body, mode] of files) await writeFile(join(dir, name), body, { mode });
  return files.map(([n]) => join(dir, n));
}
