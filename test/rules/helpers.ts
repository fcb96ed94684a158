import { NO_CERT } from "../../src/rules/index.ts";
import type { ClientCertInput, RequestInput } from "../../src/rules/index.ts";

export const VALID_CERT: ClientCertInput = {
  presented: true,
  verified: true,
  revoked: false,
  issuerDn: "CN=Test CA,O=Example,C=US",
  subjectDn: "CN=client,O=Example,C=US",
  issuerDnRfc2253: "CN=Test CA,O=Example,C=US",
  subjectDnRfc2253: "CN=client,O=Example,C=US",
  issuerDnLegacy: "/C=US/O=Example/CN=Test CA",
  subjectDnLegacy: "/C=US/O=Example/CN=client",
  serial: "1A2B3C",
  fingerprintSha256: "ab".repeat(32),
  fingerprintSha1: "cd".repeat(20),
  ski: "0A0B0C",
  issuerSki: "0D0E0F",
  notBefore: "Mar 21 13:35:00 2022 GMT",
  notAfter: "Mar 21 13:35:00 2032 GMT",
  rfc9440: ":MIIB:",
  chainRfc9440: ":MIIC:, :MIID:",
  rfc9440TooLarge: false,
  chainRfc9440TooLarge: false,
  issuerSerial: "0F0E0D",
  sanDns: ["api.payments.example", "localhost"],
  sanUri: ["spiffe://prod.example/ns/payments/sa/api"],
  sanEmail: ["ops@example.com"],
  sanIp: ["10.0.0.7", "2001:db8::7"],
  spiffeId: "spiffe://prod.example/ns/payments/sa/api",
  notBeforeUnix: 1647869700,
  notAfterUnix: 1963402500,
};

export type InputPatch = Partial<Omit<RequestInput, "cert">> & { cert?: Partial<ClientCertInput> };

export function makeInput(patch: InputPatch = {}): RequestInput {
  const { cert, ...rest } = patch;
  return {
    host: "app.example.com",
    method: "GET",
    uri: "/index.html?q=1",
    path: "/index.html",
    query: "q=1",
    userAgent: "curl/8.5.0",
    headers: { host: ["app.example.com"], "user-agent": ["curl/8.5.0"] },
    srcIp: "203.0.113.7",
    ssl: true,
    tlsVersion: "TLSv1.3",
    ...rest,
    cert: { ...NO_CERT, ...cert },
  };
}

/** An input whose every property read is counted, as the data plane's lazy getters would be. */
export function countingInput(patch: InputPatch = {}): { input: RequestInput; reads: Map<string, number> } {
  const base = makeInput(patch);
  const reads = new Map<string, number>();
  const wrap = <T extends object>(o: T, prefix: string): T =>
    new Proxy(o, {
      get(target, prop, recv) {
        if (typeof prop === "string") reads.set(prefix + prop, (reads.get(prefix + prop) ?? 0) + 1);
        const v = Reflect.get(target, prop, recv) as unknown;
        return prop === "cert" && typeof v === "object" && v !== null ? wrap(v, "cert.") : v;
      },
    });
  return { input: wrap(base, ""), reads };
}
