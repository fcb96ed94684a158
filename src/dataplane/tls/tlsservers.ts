// One non-listening TLS server per (served certificate chain, trust-policy version,
// handshake timeout): exactly what a server's configuration depends on, never the client's
// SNI name, so distinct names cost nothing (one server per name let anyone fill memory
// without credentials). Node cannot vary CertificateRequest per SNI inside one server,
// hence one server per policy. Session tickets and the session id context are
// scoped to one (certificate, policy version): a ticket resumes only where the same CAs and
// the same mode would verify again, so resumption never carries a verification from a
// host without mTLS to one with it, nor across bundles or policy changes (a policy change
// yields a new version, hence new ticket keys). Hostnames sharing a policy version share a
// server and may resume each other's sessions: the verification would be the same.
// A host behind a trusted front (`upstream_client_cert`) has a second server for that front's
// connections: no CertificateRequest (the front terminated the client's mTLS and has no
// certificate to give), and its own session context and ticket keys, so a session from the
// front can never be resumed by anyone else to skip the CertificateRequest.
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import type net from "node:net";
import tls, { type TLSSocket } from "node:tls";
import type { Model } from "../../model/schema.ts";
import type { CompiledCert, HostPolicy } from "../snapshot.ts";
import type { ProxiedPeer } from "./proxyprotocol.ts";

export interface ServerHooks {
  /** The handshake is complete: the connection is the caller's (HTTP) from here. */
  secure: (socket: TLSSocket, d: Dispatched) => void;
  /** `remoteAddress`: the PROXY header's client, else read from the TCP socket before it is destroyed ("" when the peer is gone). */
  tlsError: (err: Error, policy: HostPolicy, servername: string, remoteAddress: string) => void;
}

/** What the listener decided for one connection, before any TLS state existed. */
export interface Dispatched {
  servername: string;
  policy: HostPolicy;
  /** The TCP peer is a trusted front of this host, which brings certificates in a header. */
  viaFront: boolean;
  /** What the connection's PROXY header said. */
  peer: ProxiedPeer | undefined;
  /** The client: the PROXY header's source, else the TCP peer as the listener read it ("" when gone). */
  client: string;
}

/**
 * On an enforced host the server sets rejectUnauthorized so that OpenSSL fails a handshake
 * without a certificate with a TLS alert (certificate_required). A present but bad
 * certificate would then be dropped silently after the handshake; instead we turn Node's
 * post-handshake rejection off for this socket and answer one HTTP error naming the reason.
 * Node calls SNICallback with the TLSSocket as `this` (lib/internal/tls/wrap.js loadSNI),
 * before verification; tests pin both behaviours.
 */
function keepSocketForHttpError(this: TLSSocket, _name: string, cb: (err: Error | null, ctx?: undefined) => void): void {
  (this as unknown as { _rejectUnauthorized: boolean })._rejectUnauthorized = false;
  cb(null);
}

/**
 * The TCP socket a server-side TLSSocket wraps: Node's tls.Server keeps it as `_parent`
 * (lib/internal/tls/wrap.js); every socket test depends on it, and a missing one fails closed.
 */
function rawOf(socket: TLSSocket): net.Socket | undefined {
  return (socket as unknown as { _parent?: net.Socket })._parent;
}

export class TlsServers {
  readonly #hooks: ServerHooks;
  readonly #master: Buffer;
  // Bounded by the configuration, not by clients; retain() drops what a new snapshot cannot use.
  readonly #servers = new Map<string, { server: tls.Server; cert: string; policy: string; tls: string; timeout: number }>();
  // The servername and host policy of each connection handed to a shared server.
  readonly #dispatched = new WeakMap<net.Socket, Dispatched>();

  constructor(hooks: ServerHooks, ticketSecret: Buffer = randomBytes(32)) {
    this.#hooks = hooks;
    this.#master = ticketSecret;
  }

  get size(): number {
    return this.#servers.size;
  }

  /**
   * Hands a TCP socket (ClientHello put back) to the server for its certificate and policy.
   * `viaFront`: the TCP peer is one of the host's trusted fronts, which brings certificates in a
   * header; `peer`: what the connection's PROXY header said.
   */
  accept(socket: net.Socket, servername: string, cert: CompiledCert, policy: HostPolicy, limits: Model["limits"], viaFront = false, peer?: ProxiedPeer): void {
    const timeout = limits.handshake_timeout_ms;
    // ALPN and TLS settings are per server: hosts sharing a policy but not these get distinct servers.
    const key = `${cert.digest}\0${policy.version}\0${timeout}\0${policy.http2}\0${policy.tls.key}\0${viaFront}`;
    let entry = this.#servers.get(key);
    if (!entry) this.#servers.set(key, (entry = { server: this.#create(cert, policy, timeout, viaFront), cert: cert.digest, policy: policy.version, tls: policy.tls.key, timeout }));
    this.#dispatched.set(socket, { servername, policy, viaFront, peer, client: peer?.source?.address ?? socket.remoteAddress ?? "" });
    entry.server.emit("connection", socket);
  }

  /** Drops servers no connection under the current configuration can use (open connections carry on). */
  retain(certDigests: ReadonlySet<string>, policyVersions: ReadonlySet<string>, handshakeTimeoutMs: number, tlsKeys: ReadonlySet<string>): void {
    for (const [key, e] of this.#servers)
      if (!certDigests.has(e.cert) || !policyVersions.has(e.policy) || e.timeout !== handshakeTimeoutMs || !tlsKeys.has(e.tls)) this.#servers.delete(key);
  }

  #create(cert: CompiledCert, policy: HostPolicy, handshakeTimeoutMs: number, viaFront: boolean): tls.Server {
    // TLS settings too: a session must never resume where the versions or ciphers it used are no longer offered.
    const scope = `${cert.digest}\0${policy.version}\0${policy.tls.key}${viaFront ? "\0front" : ""}`;
    const requestCert = policy.mode !== "off" && !viaFront;
    const enforced = requestCert && policy.mode === "enforced";
    const server = tls.createServer({
      key: cert.keyPem,
      cert: cert.certPem,
      ca: policy.bundle?.caPem,
      requestCert,
      rejectUnauthorized: enforced,
      SNICallback: enforced ? keepSocketForHttpError : undefined,
      ...policy.tls.options,
      // h2 first: OpenSSL picks in the server's order among those the client offers.
      ALPNProtocols: policy.http2 ? ["h2", "http/1.1"] : ["http/1.1"],
      sessionIdContext: createHash("sha256").update(scope).digest("hex").slice(0, 32),
      ticketKeys: Buffer.from(hkdfSync("sha256", this.#master, "certgate-ticket-keys", scope, 48)),
      handshakeTimeout: handshakeTimeoutMs,
    });
    const hooks = this.#hooks;
    const dispatched = this.#dispatched;
    server.on("secureConnection", (socket: TLSSocket) => {
      const d = dispatched.get(rawOf(socket)!);
      if (d) hooks.secure(socket, d);
      else socket.destroy();
    });
    // Never call TLS getters here: Node can segfault on them after a client error.
    // Reading the wrapped TCP socket is a plain property. Node leaves the socket open after
    // a handshake timeout (it only emits this event): destroy it, or a client that sends a
    // ClientHello and nothing more holds it for ever.
    server.on("tlsClientError", (err, socket) => {
      const raw = rawOf(socket);
      const d = raw && dispatched.get(raw);
      const remoteAddress = d?.client ?? raw?.remoteAddress ?? "";
      socket.destroy();
      hooks.tlsError(err, d?.policy ?? policy, d?.servername ?? "", remoteAddress);
    });
    return server;
  }
}
