// The data plane's one mutable thing: the current snapshot, behind a single reference.
// apply() compiles a model fully before swapping; on failure the old snapshot stays.
import type net from "node:net";
import { randomBytes } from "node:crypto";
import type { TLSSocket } from "node:tls";
import type { Model, Rule } from "../model/schema.ts";
import type { Logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import { RateLimitedLog } from "../observability/ratelimit.ts";
import { ClientCertFacts, NO_CLIENT_CERT } from "./tls/facts.ts";
import { createFrontServer, type Dispatcher, type FrontRefusal } from "./tls/listener.ts";
import type { ProxiedPeer } from "./tls/proxyprotocol.ts";
import { negotiatedGroup } from "./tls/kexgroup.ts";
import { parseIp } from "../rules/ip.ts";
import { Origins } from "./origins/origins.ts";
import { CLIENT_CONN, clientConnOf, handleRequest, handleUpgrade, upgradeAllowed, type ClientConn, type RequestDeps } from "./request/requests.ts";
import { drainHttp1, openConnections, serveHttp1, setResponseTag, type Http1Handlers } from "./http1/http1.ts";
import { drainHttp2, openSessions, serveHttp2, type Http2Handlers } from "./http2/session.ts";
import { Snapshot, type DerivedRules, type HostPolicy } from "./snapshot.ts";
import { TlsServers, type Dispatched } from "./tls/tlsservers.ts";
import { FrontCerts } from "./tls/frontcerts.ts";
import { countRefusal } from "./request/refusals.ts";
import { RevocationChecker, type CrlSource, type OcspSource } from "../revocation/checker.ts";
import { CrlFetcher, type FetcherHooks } from "../revocation/fetcher.ts";
import { OcspClient, type OcspHooks } from "../revocation/ocsp.ts";
import { classify, hostVerdict, MISSING, type ChainVerdict } from "./tls/verify.ts";
import type { Sightings } from "./tls/sightings.ts";

export interface RuntimeOptions {
  log: Logger;
  metrics: Metrics;
  /** Shared by every node and worker that must resume each other's sessions. */
  ticketSecret?: Buffer;
  /** The Apinizer environment this node serves: handed to `derivedRules`, shown by the Apinizer API. */
  environment?: string;
  /** Rules this node derives from each model for `environment` (Apinizer policies); none when absent. */
  derivedRules?: (model: Model, environment: string) => readonly Rule[];
  /**
   * Where CRLs and OCSP answers come from. By default this process fetches them itself; a
   * worker process gets them from its primary (src/workers/), which fetches each URL once.
   */
  revocation?: { crls: CrlSource; ocsp: OcspSource };
  /** The inventory of client certificates seen (tls/sightings.ts); none when off. */
  seen?: Sightings;
  /** Debugging only (`serve --debug-worker-id`): every response says which process served it, as `certgate-worker`. */
  debugWorkerId?: string;
}

/** Failed handshakes logged per second and process; the rest are counted in one line per second. */
export const HANDSHAKE_FAILURE_LOG_PER_SECOND = 10;

export class Runtime implements Dispatcher {
  #snapshot: Snapshot;
  readonly #log: Logger;
  readonly #handshakeLog: RateLimitedLog;
  readonly #metrics: Metrics;
  readonly #origins = new Origins();
  readonly #servers: TlsServers;
  readonly #front: net.Server;
  readonly #sockets = new Set<net.Socket>();
  readonly #deps: RequestDeps;
  readonly #http: Http1Handlers;
  readonly #http2: Http2Handlers = { request: (req, res) => handleRequest(this.#deps, req, res), refused: (s, r) => this.#http.refused(s, r) };
  readonly #crls: CrlSource;
  readonly environment: string;
  readonly #derivedRules: DerivedRules | undefined;
  readonly #seen: Sightings | undefined;

  constructor(model: Model, opts: RuntimeOptions) {
    this.#log = opts.log;
    this.#handshakeLog = new RateLimitedLog(opts.log, "handshake failed", HANDSHAKE_FAILURE_LOG_PER_SECOND);
    this.#metrics = opts.metrics;
    const environment = (this.environment = opts.environment ?? "");
    const derive = opts.derivedRules;
    this.#derivedRules = derive && ((m) => derive(m, environment));
    this.#snapshot = new Snapshot(model, 1, this.#derivedRules);
    this.#metrics.configVersion.set(1);
    this.#metrics.collectHttpConnections(() => openConnections() + openSessions());
    if (opts.debugWorkerId !== undefined) setResponseTag(`certgate-worker: ${opts.debugWorkerId}\r\n`);
    const own = opts.revocation ?? ownRevocationSources(this.#log, this.#metrics);
    this.#crls = own.crls;
    const ocsp = own.ocsp;
    this.#deps = {
      snapshot: () => this.#snapshot,
      origins: this.#origins,
      metrics: this.#metrics,
      log: this.#log,
      revocation: new RevocationChecker(this.#crls, ocsp),
      frontCerts: new FrontCerts(),
      seen: (this.#seen = opts.seen),
    };
    this.#prefetchCrls(model);
    const deps = this.#deps;
    this.#http = {
      request: (req, res) => handleRequest(deps, req, res),
      upgradeAllowed: (req) => upgradeAllowed(deps, req),
      upgrade: (req, socket, head) => handleUpgrade(deps, req, socket, head),
      refused: (socket, reason) => countRefusal(this.#metrics, clientConnOf(socket)?.policy.pattern || "_default", reason),
    };
    this.#servers = new TlsServers(
      {
        secure: (socket, d) => this.#secure(socket, d),
        tlsError: (err, policy, servername, remote) => this.#tlsError(err, policy, servername, remote),
      },
      opts.ticketSecret ?? randomBytes(32),
    );
    this.#front = createFrontServer(this);
    this.#front.on("connection", (s: net.Socket) => {
      this.#sockets.add(s);
      s.once("close", () => this.#sockets.delete(s));
    });
  }

  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /**
   * Compiles a model without putting it in force; throws ModelError if it does not compile.
   * `version`: the one its primary gave it (a worker), else the next.
   */
  compile(model: Model, version = this.#snapshot.version + 1): Snapshot {
    try {
      return new Snapshot(model, version, this.#derivedRules, this.#snapshot);
    } catch (e) {
      this.#metrics.configApplies.inc({ result: "rejected" });
      throw e;
    }
  }

  /** Puts a compiled snapshot in force: new connections and requests see it at once. */
  swap(next: Snapshot): void {
    this.#snapshot = next;
    this.#origins.retain(next.originKeys);
    this.#servers.retain(new Set(Array.from(next.certs.values(), (c) => c.digest)), next.policyVersions, next.model.limits.handshake_timeout_ms, next.tlsKeys);
    this.#metrics.tlsServers.set(this.#servers.size);
    this.#prefetchCrls(next.model);
    this.#metrics.configApplies.inc({ result: "ok" });
    this.#metrics.configVersion.set(next.version);
    this.#log.info({ msg: "config applied", version: next.version, hosts: next.model.hosts.length, routes: next.model.routes.length });
  }

  /** compile() then swap(); on failure the old snapshot stays. */
  apply(model: Model, version?: number): Snapshot {
    const next = this.compile(model, version);
    this.swap(next);
    return next;
  }

  /** In one process, a swapped snapshot is in force at once. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  /** Listens on HOST:PORT, or on a bound socket handed over by a primary process (`handle`). */
  listen(host: string, port: number): Promise<net.AddressInfo>;
  listen(handle: object): Promise<net.AddressInfo>;
  listen(target: string | object, port?: number): Promise<net.AddressInfo> {
    const how = typeof target === "string" ? { host: target, port, backlog: 1024 } : { handle: target, backlog: 1024 };
    return new Promise((resolve, reject) => {
      this.#front.once("error", reject);
      this.#front.listen(how, () => {
        this.#front.off("error", reject);
        resolve(this.#front.address() as net.AddressInfo);
      });
    });
  }

  /**
   * Graceful stop: accept nothing new, let requests in flight finish (each answered with
   * `connection: close`), close keep-alive connections once idle, and cut whatever is left
   * after `timeoutMs`. Resolves when no client connection is left.
   */
  async drain(timeoutMs: number): Promise<void> {
    const closed = new Promise<void>((r) => this.#front.close(() => r()));
    drainHttp1();
    drainHttp2();
    const deadline = Date.now() + timeoutMs;
    while (this.#sockets.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    for (const s of this.#sockets) s.destroy();
    await closed;
    this.#crls.close();
    await this.#origins.close();
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((r) => this.#front.close(() => r()));
    for (const s of this.#sockets) s.destroy();
    await closed;
    this.#crls.close();
    await this.#origins.close();
  }

  /** Configured CRL URLs are fetched as soon as they are configured, not on first use. */
  #prefetchCrls(model: Model): void {
    for (const b of model.trust_bundles) for (const url of b.revocation?.crl?.urls ?? []) this.#crls.prefetch(url);
  }

  // Dispatcher
  dispatch(socket: net.Socket, servername: string | null, peer: ProxiedPeer | undefined): boolean {
    const snap = this.#snapshot;
    const cert = snap.certFor(servername);
    if (!cert) return false;
    const policy = snap.hostPolicy(servername ?? "");
    // The TCP peer, never an address a PROXY header declares: the front itself must be trusted.
    const tcpPeer = policy.front && socket.remoteAddress ? parseIp(socket.remoteAddress) : undefined;
    this.#servers.accept(socket, servername ?? "", cert, policy, snap.model.limits, tcpPeer !== undefined && policy.front!.peers.has(tcpPeer), peer);
    this.#metrics.tlsServers.set(this.#servers.size);
    return true;
  }
  helloTimeoutMs(): number {
    return this.#snapshot.model.limits.handshake_timeout_ms;
  }
  proxyTrusted(address: string): boolean {
    const trusted = this.#snapshot.proxyTrusted;
    const a = trusted && parseIp(address);
    return !!a && trusted.has(a);
  }
  rejected(reason: FrontRefusal, socket: net.Socket, servername?: string | null, peer?: ProxiedPeer): void {
    this.#metrics.handshakeErrors.inc(reason);
    this.#handshakeLog.info({ sni: servername ?? undefined, client: clientAddress(peer?.source?.address ?? socket.remoteAddress), reason });
  }

  /** Captures everything about the connection now: Node's TLS getters are unsafe after close. */
  #secure(socket: TLSSocket, { servername, policy, viaFront, peer, client }: Dispatched): void {
    let facts = NO_CLIENT_CERT;
    let result = "not_requested";
    const resumed = socket.isSessionReused();
    // From a trusted front each request brings its certificate in a header (requests.ts).
    if (viaFront) result = "via_front";
    else if (policy.mode !== "off") {
      const leaf = socket.getPeerX509Certificate();
      const bundle = policy.bundle!;
      let verdict: ChainVerdict;
      if (!leaf) verdict = MISSING;
      else if (!socket.authorized) verdict = classify(String(socket.authorizationError ?? "UNABLE_TO_GET_ISSUER_CERT"));
      else verdict = hostVerdict(leaf, policy);
      facts = new ClientCertFacts(leaf, verdict, leaf && verdict.ok ? bundle.chainOf.get(leaf.issuer) : undefined, verdict.ok ? bundle.issuerOf : undefined);
      result = verdict.ok ? "verified" : verdict.reason;
      // The configured host (a wildcard's pattern), never a client-chosen name: no entry grows with SNIs.
      this.#seen?.record(facts, policy.pattern);
      if (!verdict.ok) this.#metrics.verifyFailures.inc(policy.pattern || "_default", verdict.reason);
      // Certificates of this bundle's clients (verified, or expired: observed as 0), once per full
      // handshake: a resumed session presents nothing new, and would weigh clients by how often they reconnect.
      if (leaf && !resumed && (verdict.ok || verdict.failure === "expired"))
        this.#metrics.clientCertRemaining.observe(Math.max(0, (leaf.validToDate.getTime() - Date.now()) / 1000), bundle.id);
    }
    // Behind a trusted balancer, the client is the one its PROXY header names (LOCAL/UNKNOWN: the balancer itself).
    const remoteAddress = clientAddress(client);
    // A certificate that failed verification is a failed handshake for the log; no certificate on a fail-open host is not.
    if (facts.presented && !facts.verified) this.#handshakeLog.info({ sni: servername || undefined, client: remoteAddress, reason: facts.verdict.reason });
    const tlsVersion = socket.getProtocol() ?? "";
    const state: ClientConn = {
      servername,
      policy,
      facts,
      tlsVersion,
      cipher: socket.getCipher()?.name ?? "",
      remoteAddress,
      resumed,
      viaFront,
      group: negotiatedGroup(socket.getSession(), tlsVersion, resumed),
      awsVpceId: peer?.awsVpceId ?? "",
    };
    (socket as TLSSocket & { [CLIENT_CONN]?: ClientConn })[CLIENT_CONN] = state;
    this.#metrics.handshakes.inc(policy.pattern || "_default", result, resumed ? "true" : "false", state.group);
    if (socket.alpnProtocol === "h2") serveHttp2(socket, this.#snapshot.http, this.#http2);
    else serveHttp1(socket, this.#snapshot.http, this.#http);
  }

  #tlsError(err: Error, policy: HostPolicy, servername: string, remote: string): void {
    const code = (err as { code?: string }).code ?? "";
    const reason = /PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/i.test(code + err.message) ? "no_certificate" : "tls_error";
    if (reason === "no_certificate") this.#metrics.verifyFailures.inc(policy.pattern || "_default", "no_certificate");
    this.#metrics.handshakeErrors.inc(reason);
    // OpenSSL's code says what went wrong (ERR_SSL_NO_SHARED_CIPHER, ECONNRESET, ERR_TLS_HANDSHAKE_TIMEOUT...).
    this.#handshakeLog.info({ sni: servername || undefined, client: clientAddress(remote), reason, ...(reason === "tls_error" && { error: code || err.message }) });
  }
}

/** The client's address as logs and rules show it: IPv4-mapped IPv6 as plain IPv4. */
function clientAddress(remote: string | undefined): string {
  return remote?.startsWith("::ffff:") ? remote.slice(7) : (remote ?? "");
}

/**
 * The process that fetches CRLs and asks OCSP responders itself (one process, or a group's
 * primary), counting both; `share` hears of each new CRL copy and cached answer.
 */
export function ownRevocationSources(log: Logger, metrics: Metrics, share: Pick<FetcherHooks, "updated"> & Pick<OcspHooks, "cached"> = {}): { crls: CrlFetcher; ocsp: OcspClient } {
  const crls = new CrlFetcher(log, {
    fetched: (url, ok, age) => {
      metrics.crlFetches.inc({ result: ok ? "ok" : "error" });
      if (age !== undefined) metrics.crlAge.set({ url }, age);
    },
    updated: share.updated,
  });
  return { crls, ocsp: new OcspClient({ answered: (status) => metrics.ocspAnswers.inc({ status }), cached: share.cached }) };
}
