// One non-listening TLS server per (SNI name, certificate, trust-policy version): Node
// cannot vary CertificateRequest per SNI inside one server, and this also scopes session
// tickets and the session id context to exactly one hostname and policy. A policy change
// yields a new key, hence new ticket keys: old tickets stop resuming, and resumption can
// never carry a verification made under one policy over to another.
import { createHash, hkdfSync, randomBytes } from "node:crypto";
import tls, { type TLSSocket } from "node:tls";
import { LRUCache } from "lru-cache";
import type { Model } from "../model/schema.ts";
import type { CompiledCert, HostPolicy } from "./snapshot.ts";

export interface ServerHooks {
  /** The handshake is complete: the connection is the caller's (HTTP) from here. */
  secure: (socket: TLSSocket, servername: string, policy: HostPolicy) => void;
  tlsError: (err: Error, policy: HostPolicy) => void;
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

export class TlsServers {
  readonly #hooks: ServerHooks;
  readonly #master: Buffer;
  // Servers never listen, so eviction just drops them; their open connections carry on.
  readonly #servers = new LRUCache<string, tls.Server>({ max: 20_000 });

  constructor(hooks: ServerHooks, ticketSecret: Buffer = randomBytes(32)) {
    this.#hooks = hooks;
    this.#master = ticketSecret;
  }

  get size(): number {
    return this.#servers.size;
  }

  get(servername: string, cert: CompiledCert, policy: HostPolicy, limits: Model["limits"]): tls.Server {
    const key = `${servername}\0${cert.fingerprint}\0${policy.version}\0${limits.handshake_timeout_ms}`;
    let server = this.#servers.get(key);
    if (!server) this.#servers.set(key, (server = this.#create(servername, cert, policy, limits)));
    return server;
  }

  #create(servername: string, cert: CompiledCert, policy: HostPolicy, limits: Model["limits"]): tls.Server {
    const scope = `${servername}\0${policy.version}`;
    const enforced = policy.mode === "enforced";
    const server = tls.createServer({
      key: cert.keyPem,
      cert: cert.certPem,
      ca: policy.bundle?.caPem,
      requestCert: policy.mode !== "off",
      rejectUnauthorized: enforced,
      SNICallback: enforced ? keepSocketForHttpError : undefined,
      minVersion: "TLSv1.2",
      ALPNProtocols: ["http/1.1"],
      sessionIdContext: createHash("sha256").update(scope).digest("hex").slice(0, 32),
      ticketKeys: Buffer.from(hkdfSync("sha256", this.#master, "certgate-ticket-keys", scope, 48)),
      handshakeTimeout: limits.handshake_timeout_ms,
    });
    const hooks = this.#hooks;
    server.on("secureConnection", (socket: TLSSocket) => hooks.secure(socket, servername, policy));
    // Never touch the socket here: Node can segfault on TLS getters after a client error.
    server.on("tlsClientError", (err) => hooks.tlsError(err, policy));
    return server;
  }
}
