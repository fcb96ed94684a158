// Client-certificate trust bundles: CAs parsed once, chains and depths precomputed, and
// revocation settings compiled by revocation/ (uploaded CRLs verified against these CAs).
import { createHash, type X509Certificate } from "node:crypto";
import { PemError, parseCaBundle } from "../../pki/pem.ts";
import { managedRevokedAt } from "../../model/derived.ts";
import type { Model, TrustBundle } from "../../model/schema.ts";
import { compileRevocationPolicy, type RevocationPolicy } from "../../revocation/policy.ts";
import { memo, UNREAD, type Fail } from "./memo.ts";

export interface CompiledBundle {
  id: string;
  /** Hash of everything that decides chain verification; hosts' policy versions build on it. */
  digest: string;
  /** Mode of hosts that name this bundle without their own. */
  enforced: boolean;
  caPem: string;
  cas: X509Certificate[];
  verifyDepth: number;
  /** Subject DN → number of CA certificates from it up to the root, itself included. */
  depthOf: Map<string, number>;
  /** Subject DN → the CA and the bundle CAs above it, for Client-Cert-Chain (roots left out). */
  chainOf: Map<string, X509Certificate[]>;
  /** The bundle CA that issued `leaf`, for OCSP. */
  issuerOf(leaf: X509Certificate): X509Certificate | undefined;
  revocation: RevocationPolicy | null;
}

const bundleMemo = new WeakMap<object, CompiledBundle>();

export function compileBundles(model: Model, fail: Fail): Map<string, CompiledBundle> {
  const bundles = new Map<string, CompiledBundle>();
  const managedRevoked = new Set(model.managed_client_certificates.filter((c) => managedRevokedAt(c)).map((c) => c.serial));
  model.trust_bundles.forEach((b, i) => {
    let cb = memo(bundleMemo, b, () => compileBundle(b, (m, field = "ca") => fail(`trust_bundles[${i}].${field}`, m)));
    // The managed CA's revocations live in another collection: joined here, not memoised.
    if (cb && b.managed_ca) cb = { ...cb, revocation: { uploaded: new Map(), ...cb.revocation, managedRevoked } };
    if (bundles.has(b.id)) fail(`trust_bundles[${i}].id`, `duplicate id "${b.id}"`);
    else if (cb) bundles.set(b.id, cb);
  });
  return bundles;
}

function compileBundle(b: TrustBundle, fail: (m: string, field?: string) => void): CompiledBundle | undefined {
  if (b.ca === undefined) return void fail(UNREAD, "ca_file");
  if (b.revocation?.crl?.crl_file && b.revocation.crl.pem === undefined) return void fail(UNREAD, "revocation.crl.crl_file");
  let cas: X509Certificate[];
  try {
    cas = parseCaBundle(b.ca);
  } catch (e) {
    if (e instanceof PemError) return void fail(e.message);
    throw e;
  }
  const bySubject = new Map(cas.map((c) => [c.subject, c]));
  const issuers = new WeakMap<X509Certificate, X509Certificate | undefined>();
  const chainOf = new Map<string, X509Certificate[]>();
  const depthOf = new Map<string, number>();
  for (const c of cas) {
    const chain: X509Certificate[] = [];
    let depth = 0;
    for (let x: X509Certificate | undefined = c; x && depth < 17; depth++) {
      if (x.subject !== x.issuer) chain.push(x); // roots stay out of Client-Cert-Chain
      x = x.subject === x.issuer ? undefined : bySubject.get(x.issuer);
    }
    chainOf.set(c.subject, chain);
    depthOf.set(c.subject, depth);
  }
  const revocation = compileRevocationPolicy(b.revocation, cas, fail);
  if (revocation === undefined) return undefined;
  const caPem = cas.map((c) => c.toString()).join("");
  return {
    id: b.id,
    enforced: b.enforced,
    digest: createHash("sha256").update(`${b.id}\0${b.verify_depth}\0${caPem}`).digest("base64url").slice(0, 22),
    caPem,
    cas,
    verifyDepth: b.verify_depth,
    depthOf,
    chainOf,
    issuerOf: (leaf) => {
      // Asked on every request of a connection (OCSP), always with the same leaf object.
      if (issuers.has(leaf)) return issuers.get(leaf);
      const ca = bySubject.get(leaf.issuer);
      const issuer = ca && leaf.checkIssued(ca) ? ca : undefined;
      issuers.set(leaf, issuer);
      return issuer;
    },
    revocation,
  };
}
