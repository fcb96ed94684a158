// The per-request pipeline: Host vs SNI, the connection's policy vs the current one,
// enforcement, rules, route, then the origin. Every refusal is decided here, in one place.
import type { TLSSocket } from "node:tls";
import type { RequestInput } from "../../rules/input.ts";
import type { Logger } from "../../observability/log.ts";
import type { Metrics } from "../../observability/metrics.ts";
import { RequestCert, type ClientCertFacts } from "../tls/facts.ts";
import { downstreamHeaders, upstreamHeaders, type ForwardContext } from "./headers.ts";
import { closingResponse, rawHeader, type Request } from "../http1/http1.ts";
import type { ClientRequest, ClientResponse } from "./exchange.ts";
import { grpcTimeoutMs, isGrpc, sendGrpc } from "./grpc.ts";
import { hostOfHeader } from "../names.ts";
import { OriginError, type Origins } from "../origins/origins.ts";
import { normalizeTarget, originForm, type Target } from "./path.ts";
import type { OriginRoute, HostPolicy, HostView, Snapshot } from "../snapshot.ts";
import { countRefusal, REFUSALS, type RefusalReason, type RefusalSpec } from "./refusals.ts";
import type { RevocationChecker, RevocationVerdict } from "../../revocation/checker.ts";
import type { FrontCerts } from "../tls/frontcerts.ts";
import type { Sightings } from "../tls/sightings.ts";

export const CLIENT_CONN = Symbol("certgate.connection");

/** What certgate knows about a connection, fixed when it became secure. */
export interface ClientConn {
  servername: string;
  policy: HostPolicy;
  facts: ClientCertFacts;
  tlsVersion: string;
  /** OpenSSL's name of the negotiated cipher suite, for the access log. */
  cipher: string;
  /** The client's address: the socket's peer, or the one a trusted PROXY header named. */
  remoteAddress: string;
  resumed: boolean;
  /** The TCP peer is a trusted front of this host: each request brings its certificate in a header, and `facts` are that request's. */
  viaFront: boolean;
  /** The negotiated key-exchange group (tls/kexgroup.ts): "X25519MLKEM768", "X25519", "P-256"..., "none". */
  group: string;
  /** The AWS VPC endpoint id a trusted PROXY v2 header carried, else "". */
  awsVpceId: string;
  /** The access log's TLS object, built on the connection's first logged request. */
  tlsLog?: { version: string; cipher: string; group: string; resumed: boolean };
  /** The last Host this connection asked for, resolved in one snapshot: keep-alive requests reuse it. */
  view?: CachedView;
}

interface CachedView extends HostView {
  snapshot: Snapshot;
  /** The Host header as sent. */
  header: string;
}

/** The request's one Host header; null when repeated (RFC 9112 §3.2 demands a 400), so no later reader can pick another. */
function hostHeader(req: ClientRequest): string | undefined | null {
  const raw = req.rawHeaders;
  let found: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 4 || raw[i]!.toLowerCase() !== "host") continue;
    if (found !== undefined) return null;
    found = raw[i + 1]!;
  }
  return found;
}

/** The Host header's view in the current snapshot, from the connection's memo when unchanged; null if malformed or repeated. */
function hostView(conn: ClientConn, header: string | undefined | null, snapshot: Snapshot): CachedView | null {
  if (!header) return null;
  const m = conn.view;
  if (m && m.snapshot === snapshot && m.header === header) return m;
  const host = hostOfHeader(header);
  return host ? (conn.view = { snapshot, header, ...snapshot.view(host) }) : null;
}

export interface RequestDeps {
  snapshot(): Snapshot;
  origins: Origins;
  metrics: Metrics;
  log: Logger;
  revocation: RevocationChecker;
  frontCerts: FrontCerts;
  /** The inventory of client certificates seen (tls/sightings.ts): it keeps each one's last revocation verdict. */
  seen?: Sightings;
}

interface Refusal {
  kind: "refuse";
  status: number;
  reason: RefusalReason;
  body: string;
  contentType: string;
  close: boolean;
  /** HTTP/2: GOAWAY after the answer (REFUSALS' goaway, unless the failure was the request's own). */
  goaway: boolean;
}
interface Pass {
  kind: "pass";
  host: string;
  hostHeader: string;
  target: Target;
  policy: HostPolicy;
  route: OriginRoute;
  snapshot: Snapshot;
  revoked: boolean;
}

const TEXT = "text/plain; charset=utf-8";
/** The catalog's answer for `reason`; a blocking rule may give its own status, body and type. */
const refuse = (reason: RefusalReason, own?: { status: number; body: string; contentType: string }): Refusal => ({
  kind: "refuse",
  reason,
  status: own?.status ?? REFUSALS[reason].status,
  body: own?.body ?? REFUSALS[reason].body,
  contentType: own?.contentType ?? TEXT,
  close: REFUSALS[reason].close,
  goaway: (REFUSALS[reason] as RefusalSpec).goaway ?? false,
});

/** The connection's state, set once its handshake completed. */
export function clientConnOf(socket: TLSSocket): ClientConn | undefined {
  return (socket as TLSSocket & { [CLIENT_CONN]?: ClientConn })[CLIENT_CONN];
}

/**
 * Decides what happens to a request; pure apart from metrics and logs. `revoked`: the
 * revocation checker's verdict on the connection's certificate for this request.
 */
export function decide(req: ClientRequest, conn: ClientConn, view: CachedView | null, revoked: boolean, deps: RequestDeps): Refusal | Pass {
  const target = targetOf(req, view?.snapshot ?? deps.snapshot());
  if (!target) return refuse("bad_target");
  if (!view) return refuse("bad_host");
  const { host, policy, snapshot } = view;

  // A connection is only good for the hostname and the trust policy it was verified under.
  if (conn.policy.mode !== "off" ? host !== conn.servername : policy.mode !== "off")
    return refuse("misdirected");
  if (policy.version !== conn.policy.version) return refuse("policy_changed");

  const facts = conn.facts;
  if (policy.mode === "enforced" && (!facts.verified || revoked)) {
    const r = refuse(`cert_${revoked ? "revoked" : (facts.verdict.failure ?? "untrusted")}`);
    // Through a front the certificate was this request's: the connection carries other clients' requests and goes on.
    return conn.viaFront ? { ...r, close: false, goaway: false } : r;
  }

  const program = view.rules;
  if (program) {
    const decision = program.evaluate(new RequestView(req, host, target, conn, revoked));
    for (const r of decision.logged) {
      deps.metrics.ruleMatches.inc(r.id, "log");
      deps.log.info({ msg: "rule matched", rule: r.id, action: "log", host, path: target.path });
    }
    if (decision.action !== "pass" && decision.rule) deps.metrics.ruleMatches.inc(decision.rule.id, decision.action);
    if (decision.action === "block") {
      const r = decision.response;
      return refuse("rule", r && { status: r.status ?? REFUSALS.rule.status, body: r.body ?? REFUSALS.rule.body, contentType: r.contentType ?? TEXT });
    }
  }

  const route = view.routes?.find((r) => target.path.startsWith(r.pathPrefix));
  if (!route) return refuse("no_route");
  return { kind: "pass", host, hostHeader: view.header, target, policy, route, snapshot, revoked };
}

function targetOf(req: ClientRequest, snapshot: Snapshot): Target | null {
  return normalizeTarget(req.url, { mergeSlashes: snapshot.model.url_normalization.merge_slashes });
}

/**
 * Whether an Upgrade request's route lets one of its protocols through; if not, it is served
 * as a plain request, without Upgrade. Decided again, with everything else, when handled.
 */
export function upgradeAllowed(deps: RequestDeps, req: Request): boolean {
  const conn = clientConnOf(req.socket);
  if (!conn) return false;
  const view = hostView(conn, hostHeader(req), deps.snapshot());
  const target = view && targetOf(req, view.snapshot);
  const route = target && view.routes?.find((r) => target.path.startsWith(r.pathPrefix));
  return route ? allowedUpgrades(req, route) !== null : false;
}

/** The route's protocols among those the request offers, comma-separated, or null. */
function allowedUpgrades(req: Request, route: OriginRoute): string | null {
  const offered = req.headersDistinct["upgrade"];
  if (!offered) return null;
  const allowed: string[] = [];
  for (const v of offered) for (const t of v.split(",")) {
    const p = t.trim().toLowerCase();
    if (route.upgrades.includes(p) && !allowed.includes(p)) allowed.push(p);
  }
  return allowed.length ? allowed.join(", ") : null;
}

/**
 * Checks the certificate's revocation status for this request, against the current
 * snapshot's bundle (revocation data changes without a policy change), then calls `next`
 * with the verdict: at once, or after the first CRL fetch or OCSP answer for this
 * certificate. A Host other than the SNI is refused later (421), so only the SNI's own
 * bundle matters; an unverified certificate has nothing to revoke.
 */
function withRevocation(deps: RequestDeps, conn: ClientConn, view: CachedView | null, next: (revoked: boolean) => void): void {
  const facts = conn.facts;
  const bundle = facts.verified && view?.host === conn.servername ? view.policy.bundle : null;
  if (!bundle) return next(false);
  const judged = (v: RevocationVerdict): boolean => {
    deps.metrics.revocationChecks.inc(v.source, v.revoked ? "revoked" : "good");
    if (v.revoked) deps.log.info({ msg: "client certificate revoked", sni: conn.servername, serial: facts.serial, source: v.source, detail: v.detail });
    deps.seen?.revoked(facts, v.revoked);
    return v.revoked;
  };
  const v = deps.revocation.check(facts, bundle);
  if (v === null) return next(false);
  if (!(v instanceof Promise)) return next(judged(v));
  // The checker's promises never reject; were one to, no proof of good standing: judged revoked.
  void v.then(judged, () => true).then(next);
}

export function handleRequest(deps: RequestDeps, req: ClientRequest, res: ClientResponse): void {
  const conn = clientConnOf(req.socket);
  if (!conn) return void req.socket.destroy();
  guarded(deps, req, res, conn, () => {
    const view = hostView(conn, hostHeader(req), deps.snapshot());
    const rc = requestConn(deps, req, conn);
    withRevocation(deps, rc, view, (revoked) => guarded(deps, req, res, conn, () => respond(deps, req, res, rc, view, revoked)));
  });
}

/**
 * A step of the pipeline up to the origin request. An exception there is a bug (or input that
 * defeats a parser): it is logged and answered with 500, closing the connection, rather than
 * leaving the request unanswered or, thrown out of llhttp's callback, ending the process.
 */
function guarded(deps: RequestDeps, req: ClientRequest, res: ClientResponse, conn: ClientConn, step: () => void): void {
  try {
    step();
  } catch (err) {
    const r = failedInside(deps, req, conn, err);
    if (res.headersSent) return void res.destroy();
    req.discardBody();
    reply(req, res, r);
  }
}

/** Logs and counts an exception inside certgate's own pipeline (a bug); the answer is internal_error's. */
function failedInside(deps: RequestDeps, req: Request | ClientRequest, conn: ClientConn, err: unknown): RefusalSpec {
  deps.log.error({ msg: "request failed inside certgate", sni: conn.servername, method: req.method, err: err instanceof Error ? (err.stack ?? err.message) : String(err) });
  countRefusal(deps.metrics, conn.policy.pattern || "_default", "internal_error");
  return REFUSALS.internal_error;
}

/**
 * The connection as this request sees it. Through a trusted front the certificate is the one
 * in this request's header, verified against the bundle of the policy the connection was
 * accepted under (any other policy is refused with 421 by decide()).
 */
function requestConn(deps: RequestDeps, req: ClientRequest, conn: ClientConn): ClientConn {
  if (!conn.viaFront) return conn;
  const facts = deps.frontCerts.facts(req.rawHeaders, conn.policy);
  if (!facts.verified) deps.metrics.verifyFailures.inc(conn.policy.pattern || "_default", facts.verdict.reason);
  return { ...conn, facts };
}

function respond(deps: RequestDeps, req: ClientRequest, res: ClientResponse, conn: ClientConn, view: CachedView | null, revoked: boolean): void {
  const logged = deps.log.isLevelEnabled("info"); // no clock read nor access-log object when the log is off
  const started = logged ? process.hrtime.bigint() : 0n;
  const outcome = decide(req, conn, view, revoked, deps);
  const label = outcome.kind === "pass" ? outcome.policy.pattern || "_default" : conn.policy.pattern || "_default";
  res.onFinish = () => {
    deps.metrics.requests.inc(label, res.statusCode, req.protocol);
    if (!logged) return;
    deps.log.info({
      msg: "request",
      protocol: req.protocol,
      host: view?.header,
      sni: conn.servername,
      method: req.method,
      path: outcome.kind === "pass" ? outcome.target.path : req.url,
      status: res.statusCode,
      ms: Number(process.hrtime.bigint() - started) / 1e6,
      client: conn.remoteAddress,
      aws_vpce_id: conn.awsVpceId || undefined,
      tls: (conn.tlsLog ??= { version: conn.tlsVersion, cipher: conn.cipher, group: conn.group, resumed: conn.resumed }),
      // Built once per connection (and revocation verdict) in the facts: subject, issuer, serial, sha256, SANs...
      cert: conn.facts.logFields(revoked),
      route: outcome.kind === "pass" ? outcome.route.id : undefined,
      refused: outcome.kind === "refuse" ? outcome.reason : undefined,
    });
  };
  if (outcome.kind === "refuse") {
    countRefusal(deps.metrics, label, outcome.reason);
    // Drain what the client sends so the answer is read rather than reset.
    req.discardBody();
    const spec: RefusalSpec = REFUSALS[outcome.reason];
    if (outcome.goaway) res.endConnection?.();
    if (isGrpc(req)) return sendGrpc(res, spec.grpc, outcome.body);
    return send(res, outcome.status, outcome.body, outcome.close, outcome.contentType);
  }
  void proxy(deps, req, res, conn, outcome);
}

async function proxy(deps: RequestDeps, req: ClientRequest, res: ClientResponse, conn: ClientConn, p: Pass): Promise<void> {
  const limits = p.snapshot.model.limits;
  const declared = req.bodyLength;
  const grpc = isGrpc(req);
  if (declared > limits.max_body_bytes) return req.discardBody(), refuseAfterDecision(deps, req, res, p, "body_too_large");
  // gRPC needs trailers (grpc-status) end to end: an HTTP/1.1 origin cannot give them.
  if (grpc && p.route.protocol === "http1") return req.discardBody(), refuseAfterDecision(deps, req, res, p, "grpc_needs_h2_origin");
  if (req.body) res.writeContinue();
  if (p.route.protocol !== "http1") res.expectTrailers?.();
  const started = process.hrtime.bigint();
  const observe = (outcome: string) =>
    deps.metrics.originDuration.observe(Number(process.hrtime.bigint() - started) / 1e9, p.route.id, outcome);
  const exchange = deps.origins.get(p.route).exchange(
    {
      method: req.method,
      target: originForm(p.target),
      headers: upstreamHeaders(req.rawHeaders, forwardContext(conn, p), undefined, p.route.protocol !== "http1"),
      body: req.body,
      bodyLength: declared,
      maxBodyBytes: limits.max_body_bytes,
    },
    (status, headers) => {
      // Only an allowed Upgrade request may switch protocols, and never on a pooled connection.
      if (status === 101) throw new Error("the origin switched protocols on a request without an allowed upgrade");
      observe("ok");
      res.writeHead(status, downstreamHeaders(headers));
      return res;
    },
  );
  // Only a client gone before the response ended aborts the origin request.
  res.onAbort = () => exchange.abort();
  // grpc-timeout bounds the whole call (it is passed on too, so the origin knows its deadline).
  const deadlineMs = grpc ? grpcTimeoutMs(req.header("grpc-timeout")) : null;
  let deadline: NodeJS.Timeout | undefined;
  let expired = false;
  if (deadlineMs !== null)
    deadline = setTimeout(() => {
      expired = true;
      // After the response head, the deadline is a status in the trailers (HTTP/2); before it, a refusal below.
      if (res.headersSent && res.trailers) {
        res.trailers(["grpc-status", "4", "grpc-message", "Deadline exceeded"]);
        res.end();
      }
      exchange.abort();
    }, deadlineMs);
  try {
    await exchange.done;
  } catch (err) {
    const code = err instanceof OriginError ? err.code : "error";
    if (expired) {
      // After the head (observed "ok" then), the deadline went out in the trailers.
      if (res.headersSent) return;
      observe("timeout");
      return refuseAfterDecision(deps, req, res, p, "grpc_deadline");
    }
    if (res.headersSent || code === "aborted") return void res.destroy();
    const timeout = code === "timeout" || code === "connect_timeout";
    observe(code === "body_too_large" ? code : timeout ? "timeout" : "error");
    if (code === "body_too_large") return refuseAfterDecision(deps, req, res, p, "body_too_large");
    deps.log.warn({ msg: "origin failed", route: p.route.id, origin: p.route.origin.origin, code, err: (err as Error).message });
    // A request body not yet read in full makes the front end close the connection after this answer.
    refuseAfterDecision(deps, req, res, p, timeout ? "origin_timeout" : "origin_unreachable");
  } finally {
    clearTimeout(deadline);
  }
}

function forwardContext(conn: ClientConn, p: Pass): ForwardContext {
  return { hostHeader: p.hostHeader, policy: p.policy, facts: conn.facts, revoked: p.revoked, remoteAddress: conn.remoteAddress, trustForwardedFor: p.snapshot.model.trust_forwarded_for };
}

/** An answer the proxy gives after decide() passed the request. */
function refuseAfterDecision(deps: RequestDeps, req: ClientRequest, res: ClientResponse, p: Pass, reason: RefusalReason): void {
  countRefusal(deps.metrics, p.policy.pattern || "_default", reason);
  reply(req, res, REFUSALS[reason]);
}

/** A refusal's fixed answer, gRPC-shaped for gRPC. */
function reply(req: ClientRequest, res: ClientResponse, r: RefusalSpec): void {
  if (isGrpc(req)) return sendGrpc(res, r.grpc, r.body);
  send(res, r.status, r.body, r.close);
}

function send(res: ClientResponse, status: number, body: string, close: boolean, contentType = TEXT): void {
  res.writeHead(status, ["content-type", contentType, "content-length", String(Buffer.byteLength(body))], close);
  res.end(body);
}

/** WebSocket (and other) upgrades: the same decision, then a spliced byte stream. */
export function handleUpgrade(deps: RequestDeps, req: Request, socket: TLSSocket, clientHead: Buffer): void {
  const conn = clientConnOf(req.socket);
  socket.on("error", () => socket.destroy());
  if (!conn) return void socket.destroy();
  // As guarded(): an exception up to the origin request is a logged 500, never one thrown out of
  // llhttp's callback nor an unhandled rejection (either ends the process).
  const failed = (err: unknown) => {
    const r = failedInside(deps, req, conn, err);
    socket.end(closingResponse(r.status, r.body));
  };
  try {
    const view = hostView(conn, hostHeader(req), deps.snapshot());
    const rc = requestConn(deps, req, conn);
    withRevocation(deps, rc, view, (revoked) => void upgrade(deps, req, socket, clientHead, rc, view, revoked).catch(failed));
  } catch (err) {
    failed(err);
  }
}

async function upgrade(deps: RequestDeps, req: Request, socket: TLSSocket, clientHead: Buffer, conn: ClientConn, view: CachedView | null, revoked: boolean): Promise<void> {
  const outcome = decide(req, conn, view, revoked, deps);
  if (outcome.kind === "refuse") {
    countRefusal(deps.metrics, conn.policy.pattern || "_default", outcome.reason);
    return void socket.end(closingResponse(outcome.status, outcome.body, outcome.contentType));
  }
  // The configuration may have changed since the front end let the upgrade through.
  const protocols = allowedUpgrades(req, outcome.route);
  if (!protocols) {
    countRefusal(deps.metrics, outcome.policy.pattern || "_default", "upgrade");
    return void socket.end(closingResponse(REFUSALS.upgrade.status, REFUSALS.upgrade.body));
  }
  try {
    const up = await deps.origins.get(outcome.route).upgrade({
      method: req.method,
      target: originForm(outcome.target),
      headers: upstreamHeaders(req.rawHeaders, forwardContext(conn, outcome), protocols),
      body: null,
      bodyLength: 0,
      maxBodyBytes: 0,
    });
    // The origin may switch only to a protocol that was asked for.
    const chosen = rawHeader(up.headers, "upgrade")?.trim().toLowerCase();
    if (!chosen || !protocols.split(", ").includes(chosen)) {
      up.socket.destroy();
      throw new Error(`the origin switched to ${chosen ?? "nothing"}, not to ${protocols}`);
    }
    let head = "HTTP/1.1 101 Switching Protocols\r\n";
    for (let i = 0; i < up.headers.length; i += 2) head += `${up.headers[i]}: ${up.headers[i + 1]}\r\n`;
    socket.write(head + "\r\n");
    if (up.head.length) socket.write(up.head);
    if (clientHead.length) up.socket.write(clientHead);
    up.socket.on("error", () => socket.destroy());
    socket.on("close", () => up.socket.destroy());
    up.socket.on("close", () => socket.destroy());
    up.socket.pipe(socket).pipe(up.socket);
  } catch (err) {
    deps.log.warn({ msg: "upgrade failed", route: outcome.route.id, err: (err as Error).message });
    socket.end(closingResponse(REFUSALS.upgrade_failed.status, REFUSALS.upgrade_failed.body));
  }
}

/** The rules engine's view of a request; each field is computed only if a rule reads it. */
class RequestView implements RequestInput {
  readonly #req: ClientRequest;
  readonly host: string;
  readonly #target: Target;
  readonly #conn: ClientConn;
  readonly #revoked: boolean;
  #cert: RequestCert | undefined;
  readonly ssl = true;
  constructor(req: ClientRequest, host: string, target: Target, conn: ClientConn, revoked: boolean) {
    this.#req = req;
    this.host = host;
    this.#target = target;
    this.#conn = conn;
    this.#revoked = revoked;
  }
  get method(): string {
    return this.#req.method;
  }
  get uri(): string {
    return originForm(this.#target);
  }
  get path(): string {
    return this.#target.path;
  }
  get query(): string {
    return this.#target.query;
  }
  get userAgent(): string {
    return this.#req.header("user-agent") ?? "";
  }
  get headers(): Record<string, string[]> {
    return this.#req.headersDistinct;
  }
  get srcIp(): string {
    return this.#conn.remoteAddress;
  }
  get tlsVersion(): string {
    return this.#conn.tlsVersion;
  }
  get awsVpceId(): string {
    return this.#conn.awsVpceId;
  }
  get cert(): RequestCert {
    return (this.#cert ??= new RequestCert(this.#conn.facts, this.#revoked));
  }
}
