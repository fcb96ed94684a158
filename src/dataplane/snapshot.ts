// Compiles the model into an immutable snapshot: everything the data plane needs, checked
// and precomputed, so a request does lookups and nothing else. Compilation either succeeds
// whole or throws ModelError naming the offending path: the caller keeps the old snapshot.
import { createHash, createPrivateKey, type X509Certificate } from "node:crypto";
import { PemError, dnsNames, parseCaBundle, parseCertificates } from "../pki/pem.ts";
import { compileRuleset, type RuleProgram } from "../rules/index.ts";
import { ModelError, managedRevokedAt, toRuleSpec, type Forwarding, type Model, type MtlsMode, type Rule, type TrustBundle } from "../model/schema.ts";
import { DEFAULT_ENVIRONMENT, apinizerRules } from "../dialects/apinizer/rules.ts";
import { CrlError, crlDers, verifyCrl, type VerifiedCrl } from "../revocation/crl.ts";
import type { RevocationPolicy } from "../revocation/checker.ts";
import { NameTable } from "./names.ts";
import type { Http1Limits } from "./http1.ts";

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

export interface HostPolicy {
  pattern: string;
  mode: MtlsMode;
  bundle: CompiledBundle | null;
  forwarding: Forwarding;
  /** Changes whenever anything that decides client verification changes; scopes tickets. */
  version: string;
  /**
   * On a host that trusts the managed CA: the serials it issued for this host's owner. The CA
   * is one per node, shared by every owner, so a certificate issued in one account's zone
   * must not verify on another owner's host (Cloudflare gives each account its own CA).
   */
  managedIssuedTo?: ReadonlySet<string>;
}

/** Everything a request needs to know about its hostname in one snapshot. */
export interface HostView {
  host: string;
  policy: HostPolicy;
  rules: RuleProgram | null;
  routes: CompiledRoute[] | undefined;
}

export interface CompiledRoute {
  id: string;
  pathPrefix: string;
  origin: URL;
  originKey: string;
  /** Origin TLS; serverName is what the origin's certificate is checked against (never the client's Host). */
  tls: { ca?: string; cert?: string; key?: string; serverName: string; verify: boolean } | undefined;
  connectTimeoutMs: number;
  readTimeoutMs: number;
  /** Upgrade protocols (lower case) the origin may be asked for; anything else is stripped. */
  upgrades: readonly string[];
}

const DEFAULT_UPGRADES: readonly string[] = ["websocket"];
const NO_FORWARDING: Forwarding = { rfc9440: false, cloudflare: false, xfcc: false };
const OFF: HostPolicy = { pattern: "", mode: "off", bundle: null, forwarding: NO_FORWARDING, version: "off" };

export class Snapshot {
  readonly version: number;
  readonly model: Model;
  readonly certs: Map<string, CompiledCert>;
  readonly defaultCert: CompiledCert | null;
  /** What the HTTP/1.1 front end enforces on connections accepted under this snapshot. */
  readonly http: Http1Limits;
  /** Every origin configuration routes use: the pools worth keeping. */
  readonly originKeys = new Set<string>();
  /** Every host policy version (and "off"): with the certificates, the TLS servers worth keeping. */
  readonly policyVersions = new Set<string>([OFF.version]);
  readonly #certByName: NameTable<CompiledCert>;
  /** Certificates pinned by a host entry (a Fastly activation); they win over SAN matching. */
  readonly #hostCerts: NameTable<CompiledCert>;
  readonly #hosts: NameTable<HostPolicy>;
  readonly #routes: NameTable<CompiledRoute[]>;
  readonly #zoneRules: Map<string, RuleProgram>;
  readonly #globalRules: RuleProgram | null;

  /** `environment`: the Apinizer environment this node serves; its deployed policies become rules. */
  constructor(model: Model, version: number, environment: string = DEFAULT_ENVIRONMENT) {
    const problems: { path: string; message: string }[] = [];
    const fail = (path: string, message: string): void => void problems.push({ path, message });
    this.version = version;
    this.model = model;
    const l = model.limits;
    this.http = {
      maxHeaderBytes: l.max_header_bytes,
      maxHeaderCount: l.max_header_count,
      headersTimeoutMs: Math.min(l.request_timeout_ms, 30_000),
      requestTimeoutMs: l.request_timeout_ms,
      keepAliveTimeoutMs: l.keep_alive_timeout_ms,
    };

    this.certs = new Map();
    this.#certByName = new NameTable();
    model.certificates.forEach((c, i) => {
      const cc = memo(certMemo, c, () => compileCert(c.id, c.cert, c.key, (m, f = "cert") => fail(`certificates[${i}].${f}`, m)));
      if (!cc) return;
      if (this.certs.has(c.id)) return fail(`certificates[${i}].id`, `duplicate id "${c.id}"`);
      this.certs.set(c.id, cc);
    });
    // The first certificate added for a name wins: add them in precedence order, never in
    // the model's (which the store does not promise to keep across a restart).
    for (const cc of [...this.certs.values()].sort(byPrecedence)) for (const n of cc.names) this.#certByName.add(n, cc);
    this.defaultCert = model.default_certificate ? (this.certs.get(model.default_certificate) ?? null) : null;
    if (model.default_certificate && !this.defaultCert)
      fail("default_certificate", `no certificate with id "${model.default_certificate}"`);

    const bundles = new Map<string, CompiledBundle>();
    const managedRevoked = new Set(model.managed_client_certificates.filter((c) => managedRevokedAt(c)).map((c) => c.serial));
    model.trust_bundles.forEach((b, i) => {
      let cb = memo(bundleMemo, b, () => compileBundle(b, (m, field = "ca") => fail(`trust_bundles[${i}].${field}`, m)));
      // The managed CA's revocations live in another collection: joined here, not memoised.
      if (cb && b.managed_ca) cb = { ...cb, revocation: { uploaded: new Map(), ...cb.revocation, managedRevoked } };
      if (bundles.has(b.id)) fail(`trust_bundles[${i}].id`, `duplicate id "${b.id}"`);
      else if (cb) bundles.set(b.id, cb);
    });

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

    this.#hosts = new NameTable();
    this.#hostCerts = new NameTable();
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
        version: policyVersion(mode, mode === "off" ? null : bundle!),
      };
      if (mode !== "off" && managedBundles.has(bundleId!)) {
        const owner = h.account_id ?? "";
        policy.managedIssuedTo = issuedTo.get(owner) ?? new Set();
        policy.version += `:owner=${owner}`; // tickets never cross owners either
      }
      if (!this.#hosts.add(h.hostname, policy)) fail(`hosts[${i}].hostname`, `duplicate hostname "${h.hostname}"`);
      this.policyVersions.add(policy.version);
      if (h.certificate) {
        const cert = this.certs.get(h.certificate);
        if (!cert) fail(`hosts[${i}].certificate`, `no certificate with id "${h.certificate}"`);
        else this.#hostCerts.add(h.hostname, cert);
      }
    });

    this.#routes = new NameTable();
    const byHost = new Map<string, CompiledRoute[]>();
    const routeIds = new Set<string>();
    model.routes.forEach((r, i) => {
      if (routeIds.has(r.id)) return fail(`routes[${i}].id`, `duplicate id "${r.id}"`);
      routeIds.add(r.id);
      const clientCert = r.origin_tls?.client_certificate;
      const cc = clientCert ? this.certs.get(clientCert) : undefined;
      if (clientCert && !cc) return fail(`routes[${i}].origin_tls.client_certificate`, `no certificate with id "${clientCert}"`);
      const origin = new URL(r.origin);
      if (origin.pathname !== "/" || origin.search) return fail(`routes[${i}].origin`, "an origin is scheme://host[:port] with no path or query");
      const tls =
        origin.protocol === "https:"
          ? { ca: r.origin_tls?.ca, cert: cc?.certPem, key: cc?.keyPem, serverName: r.origin_tls?.server_name ?? origin.hostname.replace(/^\[|\]$/g, ""), verify: r.origin_tls?.verify ?? true }
          : undefined;
      const list = byHost.get(r.hostname) ?? [];
      if (list.some((x) => x.pathPrefix === r.path_prefix)) return fail(`routes[${i}].path_prefix`, `"${r.hostname}${r.path_prefix}" is already routed`);
      list.push({
        id: r.id,
        pathPrefix: r.path_prefix,
        origin,
        originKey: JSON.stringify([origin.origin, tls, r.connect_timeout_ms, r.read_timeout_ms]),
        tls,
        connectTimeoutMs: r.connect_timeout_ms,
        readTimeoutMs: r.read_timeout_ms,
        upgrades: r.upgrades ?? DEFAULT_UPGRADES,
      });
      byHost.set(r.hostname, list);
      this.originKeys.add(list[list.length - 1]!.originKey);
    });
    for (const [host, list] of byHost) this.#routes.add(host, list.sort((a, b) => b.pathPrefix.length - a.pathPrefix.length));

    // Rules: the ones derived from Apinizer policies, then global ones, then the zone's,
    // compiled once per zone. Derived rules are never stored: each node derives its own.
    // A zone's program is reused while the zone object and the global rules are the same.
    const derived = apinizerRules(model, environment);
    const global = derived.length ? [...derived, ...model.rules] : model.rules;
    this.#globalRules = global.length ? compileRules(global, "rules", fail, 0, derived.length) : null;
    this.#zoneRules = new Map();
    model.zones.forEach((z, i) => {
      const hit = zoneMemo.get(z);
      const program =
        hit?.global === global ? hit.program : compileRules([...global, ...z.rules], `zones[${i}].rules`, fail, global.length, derived.length);
      if (program) zoneMemo.set(z, { global, program });
      if (this.#zoneRules.has(z.name)) fail(`zones[${i}].name`, `duplicate zone "${z.name}"`);
      else if (program) this.#zoneRules.set(z.name, program);
    });

    if (problems.length) throw new ModelError(problems);
  }

  /**
   * The certificate to serve for an SNI name, or null to refuse the handshake. Precedence:
   * the one pinned by the host entry for the name (exact, else wildcard), then a SAN equal
   * to the name, then a wildcard SAN covering it, then the default. Among several SAN
   * matches of one kind, byPrecedence decides: the result depends on the set of
   * certificates only, so it is the same after a restart.
   */
  certFor(servername: string | null): CompiledCert | null {
    if (!servername) return this.defaultCert;
    return this.#hostCerts.get(servername) ?? this.#certByName.get(servername) ?? this.defaultCert;
  }

  hostPolicy(name: string): HostPolicy {
    return this.#hosts.get(name) ?? OFF;
  }

  routes(name: string): CompiledRoute[] | undefined {
    return this.#routes.get(name);
  }

  view(host: string): HostView {
    return { host, policy: this.hostPolicy(host), rules: this.rules(host), routes: this.routes(host) };
  }

  /** The rules of the zone holding `name` (the longest zone name that is a suffix), else global. */
  rules(name: string): RuleProgram | null {
    for (let n = name; ; ) {
      const p = this.#zoneRules.get(n);
      if (p) return p;
      const dot = n.indexOf(".");
      if (dot < 0) return this.#globalRules;
      n = n.slice(dot + 1);
    }
  }
}

/** `offset`: rules before the list at `path`; the first `derived` of them come from Apinizer policies. */
function compileRules(
  rules: Rule[],
  path: string,
  fail: (path: string, message: string) => void,
  offset = 0,
  derived = 0,
): RuleProgram | null {
  try {
    return compileRuleset(rules.map(toRuleSpec));
  } catch (e) {
    const err = e as { ruleId?: string; index?: number; message: string; cause?: unknown };
    // The index, not the id: with a duplicate id, the second rule is the one at fault.
    const idx = err.index ?? rules.findIndex((r) => r.id === err.ruleId);
    // Only an expression error is the expression's; anything else is the rule's.
    const at = err.cause ? ".expression" : "";
    const where = idx < 0 ? path : idx < derived ? `apinizer (rule ${err.ruleId})` : idx < offset ? `rules[${idx - derived}]${at}` : `${path}[${idx - offset}]${at}`;
    fail(where, err.message);
    return null;
  }
}

// Compiled certificates and bundles, by the (immutable) model object they came from. The
// control plane shares unchanged objects between models, so a write to one host does not
// re-parse every PEM. Failures are not cached: they must be reported again.
const certMemo = new WeakMap<object, CompiledCert>();
const bundleMemo = new WeakMap<object, CompiledBundle>();
const zoneMemo = new WeakMap<object, { global: readonly Rule[]; program: RuleProgram }>();
function memo<K extends object, V>(cache: WeakMap<K, V>, key: K, build: () => V | undefined): V | undefined {
  const hit = cache.get(key);
  if (hit) return hit;
  const v = build();
  if (v !== undefined) cache.set(key, v);
  return v;
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

function compileBundle(b: TrustBundle, fail: (m: string, field?: string) => void): CompiledBundle | undefined {
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
  const revocation = compileRevocation(b, cas, fail);
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

/** null: no revocation checks; undefined: an error was reported. */
function compileRevocation(b: TrustBundle, cas: X509Certificate[], fail: (m: string, field?: string) => void): RevocationPolicy | null | undefined {
  const r = b.revocation;
  if (!r || (!r.crl && (!r.ocsp || r.ocsp.mode === "off"))) return null;
  const uploaded = new Map<string, VerifiedCrl[]>();
  if (r.crl?.pem) {
    try {
      for (const der of crlDers(r.crl.pem)) {
        const crl = verifyCrl(der, cas);
        uploaded.set(crl.issuer, [...(uploaded.get(crl.issuer) ?? []), crl]);
      }
    } catch (e) {
      if (!(e instanceof CrlError)) throw e;
      return void fail(e.message, "revocation.crl.pem");
    }
  }
  return {
    uploaded,
    crl: r.crl && { urls: r.crl.urls, fetchDistributionPoints: r.crl.fetch_distribution_points, whenMissing: r.crl.when_missing },
    ocsp:
      r.ocsp && r.ocsp.mode !== "off"
        ? { mode: r.ocsp.mode, responderUrl: r.ocsp.responder_url, timeoutMs: r.ocsp.timeout_ms, nonce: r.ocsp.nonce }
        : undefined,
  };
}

function policyVersion(mode: MtlsMode, bundle: CompiledBundle | null): string {
  return mode === "off" ? "off" : `${mode}:${bundle!.digest}`;
}
