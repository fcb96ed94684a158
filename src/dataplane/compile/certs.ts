// Server certificates: each chain parsed and its key checked once, then a table by SAN DNS
// name in precedence order.
import { createHash, createPrivateKey, type X509Certificate } from "node:crypto";
import { PemError, dnsNames, parseCertificates } from "../../pki/pem.ts";
import type { Model } from "../../model/schema.ts";
import { NameTable } from "../names.ts";
import { memo, UNREAD, type Fail } from "./memo.ts";

export interface CompiledCert {
  id: string;
  certPem: string;
  keyPem: string;
  leaf: X509Certificate;
  /** DNS names from the SAN extension, lower-cased. */
  names: string[];
  /** The leaf's not_after, ms since the epoch. */
  notAfter: number;
  /** Hash of the chain served (the key follows from the leaf): what a TLS server built for it depends on. */
  digest: string;
}

export interface CompiledCerts {
  byId: Map<string, CompiledCert>;
  /** By SAN DNS name; the first added for a name wins. */
  byName: NameTable<CompiledCert>;
  defaultCert: CompiledCert | null;
}

const certMemo = new WeakMap<object, CompiledCert>();

export function compileCerts(model: Model, fail: Fail): CompiledCerts {
  const byId = new Map<string, CompiledCert>();
  const byName = new NameTable<CompiledCert>();
  model.certificates.forEach((c, i) => {
    const cc = memo(certMemo, c, () => {
      // File-backed: the control plane fills the contents in beside the path before compiling.
      if (c.cert === undefined || c.key === undefined) return void fail(`certificates[${i}].${c.cert === undefined ? "cert_file" : "key_file"}`, UNREAD);
      return compileCert(c.id, c.cert, c.key, (m, f = "cert") => fail(`certificates[${i}].${f}`, m));
    });
    if (!cc) return;
    if (byId.has(c.id)) return fail(`certificates[${i}].id`, `duplicate id "${c.id}"`);
    byId.set(c.id, cc);
  });
  // The first certificate added for a name wins: add them in precedence order, never in
  // the model's (which the store does not promise to keep across a restart).
  for (const cc of [...byId.values()].sort(byPrecedence)) for (const n of cc.names) byName.add(n, cc);
  const defaultCert = model.default_certificate ? (byId.get(model.default_certificate) ?? null) : null;
  if (model.default_certificate && !defaultCert) fail("default_certificate", `no certificate with id "${model.default_certificate}"`);
  return { byId, byName, defaultCert };
}

/** Latest not_after first (a renewal wins as soon as it is added), then the smaller id (code-unit order). */
function byPrecedence(a: CompiledCert, b: CompiledCert): number {
  return b.notAfter - a.notAfter || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

function compileCert(id: string, certPem: string, keyPem: string, fail: (m: string, field?: string) => void): CompiledCert | undefined {
  let chain: X509Certificate[];
  try {
    chain = parseCertificates(certPem);
  } catch (e) {
    if (e instanceof PemError) return void fail(e.message);
    throw e;
  }
  const leaf = chain[0]!;
  try {
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) return void fail("the private key does not match the certificate", "key");
  } catch {
    return void fail("malformed private key (PEM PKCS#8, PKCS#1 or SEC1 expected)", "key");
  }
  // No DNS names is fine: such a certificate is served only where a host pins it, or presented to origins.
  const names = dnsNames(leaf);
  const served = chain.map((c) => c.toString()).join("");
  return { id, certPem: served, keyPem, leaf, names, notAfter: leaf.validToDate.getTime(), digest: createHash("sha256").update(served).digest("base64url").slice(0, 22) };
}
