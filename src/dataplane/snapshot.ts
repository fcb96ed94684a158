// The immutable snapshot: everything the data plane needs, checked and precomputed by the
// compile steps (compile/: certificates, bundles, hosts, routes, rules), so a request does
// lookups and nothing else. Compilation either succeeds whole or throws ModelError naming
// every offending path: the caller keeps the old snapshot.
import type { RuleProgram } from "../rules/index.ts";
import { ModelError } from "../model/error.ts";
import type { Model, Rule } from "../model/schema.ts";
import type { NameTable } from "./names.ts";
import type { Http1Limits } from "./http1/http1.ts";
import { compileBundles, type CompiledBundle } from "./compile/bundles.ts";
import { compileCerts, type CompiledCert } from "./compile/certs.ts";
import { compileHosts, type HostPolicy, type HostsCompile } from "./compile/hosts.ts";
import { compileRoutes, type OriginRoute } from "./compile/routes.ts";
import { compileRules } from "./compile/rules.ts";
import type { Fail } from "./compile/memo.ts";
import { IpPrefixSet, parseCidr, parseIp } from "../rules/ip.ts";

export type { CompiledBundle, CompiledCert, HostPolicy, OriginRoute };

/** Everything a request needs to know about its hostname in one snapshot. */
export interface HostView {
  host: string;
  policy: HostPolicy;
  rules: RuleProgram | null;
  routes: OriginRoute[] | undefined;
}

/** Rules a node derives from the model for itself, put before the global rules and never stored (Apinizer policies deployed to its environment). */
export type DerivedRules = (model: Model) => readonly Rule[];
const NO_DERIVED_RULES: DerivedRules = () => [];

export class Snapshot {
  readonly version: number;
  readonly model: Model;
  readonly certs: Map<string, CompiledCert>;
  readonly defaultCert: CompiledCert | null;
  /** Trust bundles by id, their CAs parsed (the control plane reads their expiry from here). */
  readonly bundles: Map<string, CompiledBundle>;
  /** What the HTTP/1.1 front end enforces on connections accepted under this snapshot. */
  readonly http: Http1Limits;
  /** Every origin configuration routes use: the pools worth keeping. */
  readonly originKeys: Set<string>;
  /** Every host policy version (and "off"): with the certificates, the TLS servers worth keeping. */
  readonly policyVersions: Set<string>;
  /** Every TLS settings key hosts use: also part of what decides the TLS servers worth keeping. */
  readonly tlsKeys: Set<string>;
  /** Peers whose connections start with a PROXY header; null when none is trusted. */
  readonly proxyTrusted: IpPrefixSet | null;
  readonly #certByName: NameTable<CompiledCert>;
  /** Certificates pinned by a host entry (a Fastly activation); they win over SAN matching. */
  readonly #hostCerts: NameTable<CompiledCert>;
  readonly #hosts: NameTable<HostPolicy>;
  readonly #offPolicy: HostPolicy;
  readonly #routes: NameTable<OriginRoute[]>;
  readonly #zoneRules: Map<string, RuleProgram>;
  readonly #globalRules: RuleProgram | null;
  /** Where the next compile's hosts start from (compile/hosts.ts). */
  readonly #hostsCompile: HostsCompile | undefined;

  /**
   * `derivedRules`: injected by whoever wires the node (the data plane knows no dialect).
   * `prev`: the snapshot in force; the hosts this model left alone are not compiled again.
   */
  constructor(model: Model, version: number, derivedRules: DerivedRules = NO_DERIVED_RULES, prev?: Snapshot) {
    const problems: { path: string; message: string }[] = [];
    const fail: Fail = (path, message) => void problems.push({ path, message });
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
    const certs = compileCerts(model, fail);
    this.certs = certs.byId;
    this.defaultCert = certs.defaultCert;
    this.#certByName = certs.byName;
    this.bundles = compileBundles(model, fail);
    const hosts = compileHosts(model, this.bundles, certs.byId, fail, prev && prev.#hostsCompile);
    this.#hostsCompile = hosts.compile;
    this.#hosts = hosts.policies;
    this.#hostCerts = hosts.pinned;
    this.policyVersions = hosts.versions;
    this.#offPolicy = hosts.off;
    this.tlsKeys = hosts.tlsKeys;
    this.proxyTrusted = trustedPeers(model.proxy_protocol?.trusted);
    const routes = compileRoutes(model, certs.byId, fail);
    this.#routes = routes.byHost;
    this.originKeys = routes.originKeys;
    // Derived rules are never stored: each node derives its own.
    const rules = compileRules(model, derivedRules(model), fail);
    this.#globalRules = rules.global;
    this.#zoneRules = rules.zones;
    if (problems.length) throw new ModelError(problems);
  }

  /**
   * The certificate to serve for an SNI name, or null to refuse the handshake. Precedence:
   * the one pinned by the host entry for the name (exact, else wildcard), then a SAN equal
   * to the name, then a wildcard SAN covering it, then the default. Among several SAN
   * matches of one kind, the certificates' precedence decides (compile/certs.ts): the
   * result depends on the set of certificates only, so it is the same after a restart.
   */
  certFor(servername: string | null): CompiledCert | null {
    if (!servername) return this.defaultCert;
    return this.#hostCerts.get(servername) ?? this.#certByName.get(servername) ?? this.defaultCert;
  }

  hostPolicy(name: string): HostPolicy {
    return this.#hosts.get(name) ?? this.#offPolicy;
  }

  routes(name: string): OriginRoute[] | undefined {
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

/** The model checked every entry: an address alone is its own /32 or /128. */
function trustedPeers(list: readonly string[] | undefined): IpPrefixSet | null {
  if (!list?.length) return null;
  const set = new IpPrefixSet();
  for (const entry of list) {
    const c = parseCidr(entry);
    const a = c ? undefined : parseIp(entry);
    if (c) set.add(c.addr, c.bits);
    else if (a) set.add(a, a.v === 4 ? 32 : 128);
  }
  return set;
}
