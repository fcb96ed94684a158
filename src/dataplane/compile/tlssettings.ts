// TLS settings (versions, TLS 1.2 ciphers, key-exchange groups): the model's global `tls`
// merged with a host's own, checked against this process's OpenSSL, turned into node:tls
// options. The model only checks their shape: which names OpenSSL knows is OpenSSL's answer.
import tls from "node:tls";
import type { TlsSettings } from "../../model/schema.ts";
import type { Fail } from "./memo.ts";

export interface CompiledTls {
  /** Equal settings, equal key: hosts sharing it may share a TLS server. */
  key: string;
  options: Pick<tls.SecureContextOptions, "minVersion" | "maxVersion" | "ciphers" | "ecdhCurve">;
}

const VERSION = { "1.2": "TLSv1.2", "1.3": "TLSv1.3" } as const;
// Node's default TLS 1.3 suites: a TLS 1.2 cipher list must not switch TLS 1.3 off (Node does when `ciphers` names none).
const TLS13_SUITES = tls.DEFAULT_CIPHERS.split(":").filter((c) => c.startsWith("TLS_"));
const KNOWN_CIPHERS = new Set(tls.getCiphers().map((c) => c.toUpperCase()));
// Per process: whether OpenSSL takes a group name (asked once per name; the list of names is the configuration's).
const groupKnown = new Map<string, boolean>();
// Settings OpenSSL took, by key: hosts with equal settings share one object and one probe.
const accepted = new Map<string, CompiledTls>();

export const DEFAULT_TLS: CompiledTls = { key: "default", options: { minVersion: "TLSv1.2" } };

/** `path`: where the host's own settings sit ("tls" for the global ones alone). */
export function compileTls(global: TlsSettings | undefined, own: TlsSettings | undefined, path: string, fail: Fail): CompiledTls {
  const s: TlsSettings = { ...global, ...own };
  if (!s.min_version && !s.max_version && !s.ciphers && !s.groups) return DEFAULT_TLS;
  const at = (field: keyof TlsSettings) => (own?.[field] !== undefined ? `${path}.${field}` : `tls.${field}`);
  const min = s.min_version ?? "1.2";
  const max = s.max_version ?? "1.3";
  let ok = true;
  const bad = (where: string, message: string) => {
    ok = false;
    fail(where, message);
  };
  // A host may move one bound past the global other: the merged pair is what must hold.
  if (min > max) bad(at(own?.min_version ? "min_version" : "max_version"), `min_version ${min} is above max_version ${max}`);
  s.ciphers?.forEach((c, i) => {
    if (c.toUpperCase().startsWith("TLS_")) bad(`${at("ciphers")}[${i}]`, `"${c}" is a TLS 1.3 suite: ciphers lists TLS 1.2 ciphers only`);
    else if (!KNOWN_CIPHERS.has(c.toUpperCase())) bad(`${at("ciphers")}[${i}]`, `unknown cipher "${c}" (OpenSSL names, e.g. ECDHE-ECDSA-AES128-GCM-SHA256)`);
  });
  s.groups?.forEach((g, i) => {
    if (!isKnownGroup(g)) bad(`${at("groups")}[${i}]`, `unknown key-exchange group "${g}" (OpenSSL names, e.g. X25519MLKEM768, X25519, P-256)`);
  });
  if (!ok) return DEFAULT_TLS;
  const options: CompiledTls["options"] = { minVersion: VERSION[min], maxVersion: VERSION[max] };
  if (s.ciphers) options.ciphers = [...TLS13_SUITES, ...s.ciphers].join(":");
  if (s.groups) options.ecdhCurve = s.groups.join(":");
  const key = JSON.stringify(options);
  let compiled = accepted.get(key);
  if (!compiled) {
    try {
      // What OpenSSL refuses only as a whole is refused here, not at the first handshake.
      tls.createSecureContext(options);
    } catch (e) {
      fail(path, `OpenSSL refuses these TLS settings: ${(e as Error).message}`);
      return DEFAULT_TLS;
    }
    compiled = { key, options };
    if (accepted.size < 256) accepted.set(key, compiled);
  }
  return compiled;
}

function isKnownGroup(name: string): boolean {
  let known = groupKnown.get(name);
  if (known === undefined) {
    try {
      tls.createSecureContext({ ecdhCurve: name });
      known = true;
    } catch {
      known = false;
    }
    if (groupKnown.size < 256) groupKnown.set(name, known);
  }
  return known;
}
