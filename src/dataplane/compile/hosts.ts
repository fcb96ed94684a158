// Host policies: each hostname's mTLS mode, bundle, forwarding and policy version (what a
// connection was verified under), and the certificates hosts pin.
import { createHash } from "node:crypto";
import type { Forwarding, Model, MtlsMode, UpstreamClientCert } from "../../model/schema.ts";
import { IpPrefixSet, parseCidr, parseIp } from "../../rules/ip.ts";
import { NameTable } from "../names.ts";
import { changedPositions } from "../../model/positions.ts";
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

/** What every host's compile reads besides the host entry. */
interface HostInputs {
  model: Model;
  bundles: Map<string, CompiledBundle>;
  certs: Map<string, CompiledCert>;
  globalTls: CompiledTls;
  managedBundles: Set<string>;
  issuedTo: Map<string, Set<string>>;
}

/**
 * A clean compile of a hosts list, with what it read: the next compile of a list that replaced
 * or appended a few entries under the same inputs starts from it (a write to one of 10,000
 * hosts compiles that host, not 10,000).
 */
export interface HostsCompile {
  readonly hosts: Model["hosts"];
  readonly same: readonly unknown[];
  readonly certs: Map<string, CompiledCert>;
  readonly bundles: Map<string, CompiledBundle>;
  /** Each host entry's policy, by index. */
  readonly policies: HostPolicy[];
  readonly out: CompiledHosts;
  /** How many hosts use each policy version and each TLS settings key. */
  readonly versions: Map<string, number>;
  readonly tlsKeys: Map<string, number>;
}

/** `prev`: the compile of the model in force, to start from; the result's `compile` is the next one's (absent when a host had a problem). */
export function compileHosts(model: Model, bundles: Map<string, CompiledBundle>, certs: Map<string, CompiledCert>, fail: Fail, prev?: HostsCompile): CompiledHosts & { compile?: HostsCompile } {
  const globalTls = compileTls(model.tls, undefined, "tls", fail);
  const inputs: HostInputs = { model, bundles, certs, globalTls, managedBundles: managedOf(model), issuedTo: issuedByOwner(model) };
  // What the per-host compile reads from the model besides its host entry, by identity.
  const same = [model.tls, model.zones, model.managed_client_certificates, model.trust_bundles, model.certificates];
  if (prev && same.every((x, i) => x === prev.same[i]) && sameValues(certs, prev.certs) && sameValues(bundles, prev.bundles)) {
    const at = changedPositions(prev.hosts, model.hosts);
    const compile = at && changedHosts(prev, model, at, inputs);
    if (compile) return { ...compile.out, compile };
  }
  const off = globalTls === DEFAULT_TLS ? OFF_POLICY : { ...OFF_POLICY, tls: globalTls };
  const out: CompiledHosts = { policies: new NameTable(), pinned: new NameTable(), versions: new Set(), off, tlsKeys: new Set() };
  const policies: HostPolicy[] = [];
  let failed = false;
  const failHere: Fail = (path, message) => {
    failed = true;
    fail(path, message);
  };
  model.hosts.forEach((h, i) => {
    const c = compileHost(h, i, inputs, failHere);
    if (!c) return;
    if (!out.policies.add(h.hostname, c.policy)) failHere(`hosts[${i}].hostname`, `duplicate hostname "${h.hostname}"`);
    if (c.pinned) out.pinned.add(h.hostname, c.pinned);
    policies[i] = c.policy;
  });
  const versions = countBy(policies, (p) => p.version);
  const tlsKeys = countBy(policies, (p) => p.tls.key);
  out.versions = keysWith(versions, OFF_POLICY.version);
  out.tlsKeys = keysWith(tlsKeys, globalTls.key);
  // Only a clean compile is a starting point: every host of it compiled.
  return failed ? out : { ...out, compile: { hosts: model.hosts, same, certs, bundles, policies, out, versions, tlsKeys } };
}

/** `prev`'s tables with the hosts at `at` compiled anew; null (compile everything) on any problem or duplicate. */
function changedHosts(prev: HostsCompile, model: Model, at: number[], inputs: HostInputs): HostsCompile | null {
  const policies = prev.policies.slice(0, model.hosts.length);
  const versions = new Map(prev.versions);
  const tlsKeys = new Map(prev.tlsKeys);
  const removed: string[] = [];
  const unpinned: string[] = [];
  for (const i of at) {
    if (i >= prev.hosts.length) continue;
    const old = prev.hosts[i]!;
    removed.push(old.hostname);
    if (old.certificate) unpinned.push(old.hostname);
    count(versions, prev.policies[i]!.version, -1);
    count(tlsKeys, prev.policies[i]!.tls.key, -1);
  }
  const added: [string, HostPolicy][] = [];
  const pinned: [string, CompiledCert][] = [];
  let failed = false;
  for (const i of at) {
    const h = model.hosts[i]!;
    const c = compileHost(h, i, inputs, () => void (failed = true));
    if (!c || failed) return null;
    added.push([h.hostname, c.policy]);
    if (c.pinned) pinned.push([h.hostname, c.pinned]);
    policies[i] = c.policy;
    count(versions, c.policy.version, 1);
    count(tlsKeys, c.policy.tls.key, 1);
  }
  const table = prev.out.policies.with(removed, added);
  const pins = prev.out.pinned.with(unpinned, pinned);
  if (!table || !pins) return null;
  const out: CompiledHosts = { policies: table, pinned: pins, versions: keysWith(versions, OFF_POLICY.version), off: prev.out.off, tlsKeys: keysWith(tlsKeys, inputs.globalTls.key) };
  return { ...prev, hosts: model.hosts, policies, out, versions, tlsKeys };
}

/** One host entry's policy and pinned certificate; problems go to `fail` (without its bundle there is no policy). */
function compileHost(h: Model["hosts"][number], i: number, x: HostInputs, fail: Fail): { policy: HostPolicy; pinned?: CompiledCert } | undefined {
  const bundleId = h.mtls.trust_bundle;
  const bundle = bundleId ? x.bundles.get(bundleId) : undefined;
  if (bundleId && !bundle) return void fail(`hosts[${i}].mtls.trust_bundle`, `no trust bundle with id "${bundleId}"`);
  const mode: MtlsMode = !bundle ? "off" : (h.mtls.mode ?? (bundle.enforced ? "enforced" : "fail_open"));
  const policy: HostPolicy = {
    pattern: h.hostname,
    mode,
    bundle: mode === "off" ? null : bundle!,
    forwarding: h.forward_client_cert,
    http2: h.http2 ?? true,
    // The global settings' own problems are reported once, by compileHosts.
    tls: h.tls ? compileTls(x.model.tls, h.tls, `hosts[${i}].tls`, (p, m) => void (p.startsWith("tls.") || fail(p, m))) : x.globalTls,
    version: policyVersion(mode, mode === "off" ? null : bundle!),
  };
  if (mode !== "off" && h.upstream_client_cert) {
    // Who may skip the handshake's verification decides verification: part of the version.
    policy.front = compileFront(h.upstream_client_cert);
    policy.version += `:front=${createHash("sha256").update(JSON.stringify(h.upstream_client_cert)).digest("base64url").slice(0, 16)}`;
  }
  if (mode !== "off" && x.managedBundles.has(bundleId!)) {
    const owner = h.account_id ?? "";
    policy.managedIssuedTo = x.issuedTo.get(owner) ?? new Set();
    policy.version += `:owner=${owner}`; // tickets never cross owners either
  }
  const pinned = h.certificate ? x.certs.get(h.certificate) : undefined;
  if (h.certificate && !pinned) fail(`hosts[${i}].certificate`, `no certificate with id "${h.certificate}"`);
  return { policy, pinned };
}

/** Managed-CA serials by the owner of the zone they were issued in ("" is the operator); a certificate whose zone is gone belongs to nobody. */
function issuedByOwner(model: Model): Map<string, Set<string>> {
  const zoneOwner = new Map(model.zones.map((z) => [z.id, z.account_id ?? ""]));
  const issuedTo = new Map<string, Set<string>>();
  for (const c of model.managed_client_certificates) {
    const owner = zoneOwner.get(c.zone_id);
    if (owner === undefined) continue;
    let set = issuedTo.get(owner);
    if (!set) issuedTo.set(owner, (set = new Set()));
    set.add(c.serial);
  }
  return issuedTo;
}

const managedOf = (model: Model): Set<string> => new Set(model.trust_bundles.filter((b) => b.managed_ca).map((b) => b.id));

function sameValues<K, V>(a: Map<K, V>, b: Map<K, V>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function count(m: Map<string, number>, key: string, by: number): void {
  const n = (m.get(key) ?? 0) + by;
  if (n) m.set(key, n);
  else m.delete(key);
}

function countBy(policies: readonly HostPolicy[], key: (p: HostPolicy) => string): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of policies) if (p) count(m, key(p), 1);
  return m;
}

/** The keys in use, plus the one always kept ("off"; the global TLS settings). */
const keysWith = (counts: Map<string, number>, always: string): Set<string> => new Set([always, ...counts.keys()]);

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
