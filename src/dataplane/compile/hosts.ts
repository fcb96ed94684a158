// Host policies: each hostname's mTLS mode, bundle, forwarding and policy version (what a
// connection was verified under), and the certificates hosts pin.
import { createHash } from "node:crypto";
import type { Forwarding, Model, MtlsMode, UpstreamClientCert } from "../../model/schema.ts";
import { IpPrefixSet, parseCidr, parseIp } from "../../rules/ip.ts";
import { NameTable } from "../names.ts";
import type { CompiledBundle } from "./bundles.ts";
import type { CompiledCert } from "./certs.ts";
import type { Fail } from "./memo.ts";
import { compileTls, DEFAULT_TLS, type CompiledTls } from "./tlssettings.ts";

export interface HostPolicy {
  pattern: string;
  mode: MtlsMode;
  bundle: CompiledBundle | null;
  forwarding: Forwarding;
  /** ALPN offers `h2` besides `http/1.1`. Not part of `version`: the verification does not depend on it. */
  http2: boolean;
  /** TLS versions, ciphers and groups. Not part of `version` either; part of the TLS server's key. */
  tls: CompiledTls;
  /** Changes whenever anything that decides client verification changes; scopes tickets. */
  version: string;
  /**
   * On a host that trusts the managed CA: the serials it issued for this host's owner. The CA
   * is one per node, shared by every owner, so a certificate issued in one account's zone
   * must not verify on another owner's host (Cloudflare gives each account its own CA).
   */
  managedIssuedTo?: ReadonlySet<string>;
  /** A trusted front forwards client certificates in a header (`upstream_client_cert`). */
  front?: FrontPolicy;
}

export interface FrontPolicy {
  /** TCP peers whose connections skip the CertificateRequest and bring the certificate in `header`. */
  peers: IpPrefixSet;
  /** Lower-cased header name. */
  header: "cf-client-cert-der-base64" | "client-cert" | "x-amzn-mtls-clientcert";
}

const NO_FORWARDING: Forwarding = { rfc9440: false, cloudflare: false, xfcc: false };
/** The policy of a name no host entry covers. */
export const OFF_POLICY: HostPolicy = { pattern: "", mode: "off", bundle: null, forwarding: NO_FORWARDING, http2: true, tls: DEFAULT_TLS, version: "off" };

export interface CompiledHosts {
  policies: NameTable<HostPolicy>;
  /** Certificates pinned by a host entry (a Fastly activation); they win over SAN matching. */
  pinned: NameTable<CompiledCert>;
  /** Every host policy version (and "off"): with the certificates, the TLS servers worth keeping. */
  versions: Set<string>;
  /** The policy of names no host entry covers: OFF_POLICY with the global TLS settings. */
  off: HostPolicy;
  /** Every TLS settings key in use: the TLS servers worth keeping. */
  tlsKeys: Set<string>;
}

export function compileHosts(model: Model, bundles: Map<string, CompiledBundle>, certs: Map<string, CompiledCert>, fail: Fail): CompiledHosts {
  // Managed-CA serials by the owner of the zone they were issued in ("" is the operator); a
  // certificate whose zone is gone belongs to nobody.
  const zoneOwner = new Map(model.zones.map((z) => [z.id, z.account_id ?? ""]));
  const issuedTo = new Map<string, Set<string>>();
  for (const c of model.managed_client_certificates) {
    const owner = zoneOwner.get(c.zone_id);
    if (owner === undefined) continue;
    let set = issuedTo.get(owner);
    if (!set) issuedTo.set(owner, (set = new Set()));
    set.add(c.serial);
  }
  const managedBundles = new Set(model.trust_bundles.filter((b) => b.managed_ca).map((b) => b.id));

  const globalTls = compileTls(model.tls, undefined, "tls", fail);
  const off = globalTls === DEFAULT_TLS ? OFF_POLICY : { ...OFF_POLICY, tls: globalTls };
  const out: CompiledHosts = { policies: new NameTable(), pinned: new NameTable(), versions: new Set([OFF_POLICY.version]), off, tlsKeys: new Set([globalTls.key]) };
  model.hosts.forEach((h, i) => {
    const bundleId = h.mtls.trust_bundle;
    const bundle = bundleId ? bundles.get(bundleId) : undefined;
    if (bundleId && !bundle) return fail(`hosts[${i}].mtls.trust_bundle`, `no trust bundle with id "${bundleId}"`);
    const mode: MtlsMode = !bundle ? "off" : (h.mtls.mode ?? (bundle.enforced ? "enforced" : "fail_open"));
    const policy: HostPolicy = {
      pattern: h.hostname,
      mode,
      bundle: mode === "off" ? null : bundle!,
      forwarding: h.forward_client_cert,
      http2: h.http2 ?? true,
      // The global settings' own problems were reported above, once.
      tls: h.tls ? compileTls(model.tls, h.tls, `hosts[${i}].tls`, (p, m) => void (p.startsWith("tls.") || fail(p, m))) : globalTls,
      version: policyVersion(mode, mode === "off" ? null : bundle!),
    };
    if (mode !== "off" && h.upstream_client_cert) {
      // Who may skip the handshake's verification decides verification: part of the version.
      policy.front = compileFront(h.upstream_client_cert);
      policy.version += `:front=${createHash("sha256").update(JSON.stringify(h.upstream_client_cert)).digest("base64url").slice(0, 16)}`;
    }
    if (mode !== "off" && managedBundles.has(bundleId!)) {
      const owner = h.account_id ?? "";
      policy.managedIssuedTo = issuedTo.get(owner) ?? new Set();
      policy.version += `:owner=${owner}`; // tickets never cross owners either
    }
    if (!out.policies.add(h.hostname, policy)) fail(`hosts[${i}].hostname`, `duplicate hostname "${h.hostname}"`);
    out.versions.add(policy.version);
    out.tlsKeys.add(policy.tls.key);
    if (h.certificate) {
      const cert = certs.get(h.certificate);
      if (!cert) fail(`hosts[${i}].certificate`, `no certificate with id "${h.certificate}"`);
      else out.pinned.add(h.hostname, cert);
    }
  });
  return out;
}

function policyVersion(mode: MtlsMode, bundle: CompiledBundle | null): string {
  return mode === "off" ? "off" : `${mode}:${bundle!.digest}`;
}

function compileFront(u: UpstreamClientCert): FrontPolicy {
  const peers = new IpPrefixSet();
  for (const c of u.trusted_peers) {
    const net = parseCidr(c);
    const one = net ? undefined : parseIp(c);
    if (net) peers.add(net.addr, net.bits);
    else if (one) peers.add(one, one.v === 4 ? 32 : 128);
  }
  return { peers, header: u.header.toLowerCase() as FrontPolicy["header"] };
}
