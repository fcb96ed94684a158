// The connection loop: one generator process's load against one TLS endpoint, with a client
// certificate, in one of three modes:
//
//   full       a new connection per request (one GET, Connection: close), no session offered
//   resumed    the same, offering the latest session this process received from the server
//   keepalive  `concurrency` persistent connections, one GET after another on each
//   h2         `concurrency` HTTP/2 connections (ALPN h2), `streams` GETs in flight on each
//
// Closed loop (`concurrency` requests in flight) unless `rate` is set: then requests are due
// at fixed times (open loop), wait for a free slot (at most `concurrency` in flight) and every
// latency counts from the due time, so a slow server cannot hide its queueing (no coordinated
// omission). Each attempt's time is split into TCP connect, TLS handshake and time to first
// byte (request written → first response byte); only what completes inside the measured
// window is counted.
import http2 from "node:http2";
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { ResponseReader } from "./http1.ts";
import { record, type Histogram } from "./hist.ts";
import { classifyError } from "./failures.ts";

export type Mode = "full" | "resumed" | "keepalive" | "h2";

/** Modes that keep connections open: the server's cost is counted per request, not per handshake. */
export const PERSISTENT: ReadonlySet<Mode> = new Set(["keepalive", "h2"]);

/** One generator's work: plain JSON, so a coordinator can hand it to a child process. */
export interface GenSpec {
  mode: Mode;
  /** Address to connect to (resolved once by the coordinator). */
  host: string;
  port: number;
  /** SNI; undefined for none (an IP address target). */
  servername: string | undefined;
  /** Host header value. */
  hostHeader: string;
  path: string;
  certFile?: string;
  keyFile?: string;
  caFile?: string;
  /** Accept any server certificate (no chain or name check). */
  insecure: boolean;
  tls?: "1.2" | "1.3";
  /** Key-exchange groups (OpenSSL list, e.g. "P-256") and TLS 1.3 suites / 1.2 ciphers; defaults are Node's. */
  groups?: string;
  ciphers?: string;
  concurrency: number;
  /** h2: streams in flight on each connection (closed loop), or at most (open loop). */
  streams: number;
  /** Requests per second (open loop); 0: closed loop. */
  rate: number;
  /** Open loop: due requests waiting for a slot beyond this are dropped (and counted). */
  queueMax: number;
  /** Epoch ms when load starts (the same for every generator process). */
  startAt: number;
  /** Epoch ms when the measured window opens; the load before it is the warm-up. */
  measureAt: number;
  /** Window length; 0: until maxAttempts. */
  durationMs: number;
  /** Close the window after this many completed attempts (ok or failed); 0: no limit. */
  maxAttempts: number;
  timeoutMs: number;
  /** Width of one step of the time series (ms). */
  stepMs: number;
}

/** One step of the time series (GenSpec.stepMs wide). */
export interface Second {
  conns: number; // handshakes completed
  ok: number;
  failed: number;
  total: Histogram; // latency of ok requests, µs
}

export interface Hists {
  connect: Histogram;
  handshake: Histogram;
  ttfb: Histogram;
  total: Histogram;
}

export interface GenResult {
  windowStart: number; // epoch ms
  windowS: number;
  attempts: number; // completed, ok or failed
  ok: number;
  failed: number;
  failures: Record<string, number>;
  firstError: string | null;
  connections: number; // handshakes completed
  resumed: number;
  dropped: number;
  hist: Hists;
  series: Second[]; // one per step of the window
  clientCpuS: number;
  /** Open loop: how late the generator started due requests (its own lag, not the server's). */
  maxLateMs: number;
}

/** Live counters for a progress line (cumulative, window only). */
export interface Live {
  phase: "warmup" | "measure" | "drain" | "done";
  ok: number;
  failed: number;
  conns: number;
}

const now = () => performance.now(); // ms, sub-µs resolution
const epoch = (t: number) => performance.timeOrigin + t;

interface Attempt {
  t0: number; // due (open loop) or start time, ms
  deadline: number;
  stage: "connect" | "handshake" | "response";
  tConnect: number;
  tSecure: number;
  tWrite: number;
  tFirst: number;
  sock: tls.TLSSocket | undefined;
  fail(cls: string): void;
}

export class Generator {
  readonly live: Live = { phase: "warmup", ok: 0, failed: 0, conns: 0 };
  #spec: GenSpec;
  #ctxVerify: tls.SecureContext;
  #ctxFast: tls.SecureContext;
  /** SHA-256 fingerprints of server certificates a connection has fully verified. */
  #verified = new Set<string>();
  #reqClose: Buffer;
  #reqKeep: Buffer;
  #session: Buffer | undefined;
  #inFlight = 0;
  #active = new Set<Attempt>();
  #queue: number[] = []; // open loop: due times waiting for a slot
  #kaConns: KaConn[] = [];
  #h2Conns: H2Conn[] = [];
  #r: GenResult;
  #windowT0 = 0; // perf ms
  #cpu0 = process.cpuUsage();
  #timers: NodeJS.Timeout[] = [];
  #resolve: (r: GenResult) => void = () => {};
  #onWindow: (edge: "start" | "end") => void;

  constructor(spec: GenSpec, onWindow: (edge: "start" | "end") => void = () => {}) {
    this.#spec = spec;
    this.#onWindow = onWindow;
    const version = spec.tls === "1.2" ? "TLSv1.2" : spec.tls === "1.3" ? "TLSv1.3" : undefined;
    const options: tls.SecureContextOptions = {
      cert: spec.certFile ? readFileSync(spec.certFile) : undefined,
      key: spec.keyFile ? readFileSync(spec.keyFile) : undefined,
      minVersion: version,
      maxVersion: version,
      ...(spec.groups && { ecdhCurve: spec.groups }),
      ...(spec.ciphers && { ciphers: spec.ciphers }),
    };
    // Without --insecure, connections verify the server (chain to --cacert or the system
    // roots, and its name) until one has; after that a connection presenting a certificate
    // already verified skips Node's per-connection check (which turns the whole peer chain
    // into JS objects: a fifth of the generator's JS time). A connection presenting any
    // other certificate is retried with full verification, which adds it. The fast context
    // trusts no CA at all, so OpenSSL's verdict on it is always an error that Node skips.
    this.#ctxVerify = tls.createSecureContext({ ...options, ca: spec.caFile ? readFileSync(spec.caFile) : undefined });
    this.#ctxFast = tls.createSecureContext({ ...options, ca: [] });
    const head = `GET ${spec.path} HTTP/1.1\r\nHost: ${spec.hostHeader}\r\nUser-Agent: certgate-bench\r\n`;
    this.#reqClose = Buffer.from(`${head}Connection: close\r\n\r\n`);
    this.#reqKeep = Buffer.from(`${head}\r\n`);
    this.#r = {
      windowStart: 0,
      windowS: 0,
      attempts: 0,
      ok: 0,
      failed: 0,
      failures: {},
      firstError: null,
      connections: 0,
      resumed: 0,
      dropped: 0,
      hist: { connect: {}, handshake: {}, ttfb: {}, total: {} },
      series: [],
      clientCpuS: 0,
      maxLateMs: 0,
    };
  }

  run(): Promise<GenResult> {
    const s = this.#spec;
    const done = new Promise<GenResult>((r) => (this.#resolve = r));
    // No warm-up: the window opens before the first connection does.
    if (s.measureAt <= Date.now()) this.#startWindow();
    else this.#timers.push(setTimeout(() => this.#startWindow(), s.measureAt - Date.now()));
    if (s.durationMs > 0) this.#timers.push(setTimeout(() => this.#endWindow(), Math.max(0, s.measureAt + s.durationMs - Date.now())));
    this.#timers.push(setInterval(() => this.#sweep(), 100));
    if (s.mode === "keepalive") for (let i = 0; i < s.concurrency; i++) this.#kaConns.push(new KaConn());
    if (s.mode === "h2") for (let i = 0; i < s.concurrency; i++) this.#h2Conns.push(new H2Conn());
    if (s.startAt <= Date.now()) this.#start();
    else this.#timers.push(setTimeout(() => this.#start(), s.startAt - Date.now()));
    return done;
  }

  #start(): void {
    const s = this.#spec;
    if (this.live.phase === "drain" || this.live.phase === "done") return;
    // Without warm-up the window opens before the first connection, whichever timer fired first.
    if (s.measureAt <= Date.now()) this.#startWindow();
    if (s.rate > 0) this.#openLoop();
    else if (s.mode === "keepalive") for (const c of this.#kaConns) this.#kaNext(c);
    else if (s.mode === "h2") for (const c of this.#h2Conns) for (let i = 0; i < s.streams; i++) this.#h2Next(c);
    else for (let i = 0; i < s.concurrency; i++) this.#closedLoop();
  }

  /** Ends the window now (a signal, or a coordinator's -n across processes). */
  stop(): void {
    if (this.live.phase === "warmup") this.#startWindow();
    this.#endWindow();
  }

  // ------------------------------------------------------------ window

  #startWindow(): void {
    if (this.live.phase !== "warmup") return;
    this.live.phase = "measure";
    this.#windowT0 = now();
    this.#r.windowStart = epoch(this.#windowT0);
    this.#cpu0 = process.cpuUsage();
    this.#onWindow("start");
  }

  #endWindow(): void {
    if (this.live.phase !== "measure") return;
    this.live.phase = "drain";
    const c = process.cpuUsage(this.#cpu0);
    this.#r.clientCpuS = (c.user + c.system) / 1e6;
    this.#r.windowS = (now() - this.#windowT0) / 1000;
    this.#onWindow("end");
    // In-flight attempts finish (bounded), then everything closes.
    const t0 = now();
    const check = setInterval(() => {
      if (this.#inFlight > 0 && now() - t0 < Math.min(2_000, this.#spec.timeoutMs)) return;
      clearInterval(check);
      for (const t of this.#timers) clearTimeout(t);
      for (const a of this.#active) a.sock?.destroy();
      for (const k of this.#kaConns) k.sock?.destroy();
      for (const k of this.#h2Conns) k.session?.destroy();
      this.live.phase = "done";
      this.#resolve(this.#r);
    }, 10);
  }

  #second(t: number): Second {
    const i = Math.max(0, Math.floor((t - this.#windowT0) / this.#spec.stepMs));
    const series = this.#r.series;
    while (series.length <= i) series.push({ conns: 0, ok: 0, failed: 0, total: {} });
    return series[i]!;
  }

  #handshakeDone(a: Attempt, sock: tls.TLSSocket): void {
    a.tSecure = now();
    a.stage = "response";
    if (this.live.phase !== "measure") return;
    const r = this.#r;
    r.connections++;
    this.live.conns++;
    if (sock.isSessionReused()) r.resumed++;
    // Connect counts from the due time: in an open loop that includes waiting for a slot.
    record(r.hist.connect, (a.tConnect - a.t0) * 1000);
    record(r.hist.handshake, (a.tSecure - a.tConnect) * 1000);
    this.#second(a.tSecure).conns++;
  }

  /** One attempt ended: ok (a response below 400) or failed with a class. */
  #complete(a: Attempt, failure: string | null): void {
    if (this.live.phase !== "measure") return;
    const r = this.#r;
    const t = now();
    r.attempts++;
    const sec = this.#second(t);
    if (failure === null) {
      r.ok++;
      this.live.ok++;
      sec.ok++;
      record(r.hist.ttfb, (a.tFirst - a.tWrite) * 1000);
      record(r.hist.total, (t - a.t0) * 1000);
      record(sec.total, (t - a.t0) * 1000);
    } else {
      r.failed++;
      this.live.failed++;
      sec.failed++;
      r.failures[failure] = (r.failures[failure] ?? 0) + 1;
      r.firstError ??= failure;
    }
    if (this.#spec.maxAttempts && r.attempts >= this.#spec.maxAttempts) this.#endWindow();
  }

  /** Deadlines on one sweep instead of a timer per attempt. */
  #sweep(): void {
    const t = now();
    for (const a of this.#active) if (t > a.deadline) a.fail(`timeout:${a.stage}`);
  }

  // ------------------------------------------------------------ full and resumed

  #attempt(t0: number, next: () => void, verify = false): void {
    const s = this.#spec;
    const fast = s.insecure || (!verify && this.#verified.size > 0);
    this.#inFlight++;
    const reader = new ResponseReader();
    let finished = false;
    const a: Attempt = {
      t0,
      deadline: now() + s.timeoutMs,
      stage: "connect",
      tConnect: 0,
      tSecure: 0,
      tWrite: 0,
      tFirst: 0,
      sock: undefined,
      fail: (cls) => finish(cls),
    };
    const finish = (failure: string | null) => {
      if (finished) return;
      finished = true;
      this.#inFlight--;
      this.#active.delete(a);
      this.#complete(a, failure);
      sock.destroy();
      next();
    };
    const sock = tls.connect({
      host: s.host,
      port: s.port,
      servername: s.servername,
      secureContext: fast ? this.#ctxFast : this.#ctxVerify,
      rejectUnauthorized: !fast,
      session: s.mode === "resumed" ? this.#session : undefined,
    });
    a.sock = sock;
    this.#active.add(a);
    sock.setNoDelay(true);
    sock.once("connect", () => {
      a.tConnect = now();
      a.stage = "handshake";
    });
    if (s.mode === "resumed") sock.on("session", (b: Buffer) => (this.#session = b));
    sock.once("secureConnect", () => {
      if (!s.insecure && !this.#trusted(sock, fast)) {
        // A certificate not verified yet: this attempt starts over, verifying (from the same due time).
        finished = true;
        this.#inFlight--;
        this.#active.delete(a);
        sock.destroy();
        this.#attempt(t0, next, true);
        return;
      }
      this.#handshakeDone(a, sock);
      a.tWrite = now();
      sock.write(this.#reqClose);
    });
    sock.on("data", (chunk: Buffer) => {
      if (!a.tFirst) a.tFirst = now();
      try {
        if (reader.feed(chunk)) finish(reader.status < 400 ? null : `http:${reader.status}`);
      } catch {
        finish("protocol:bad_response");
      }
    });
    sock.on("error", (e: NodeJS.ErrnoException) => finish(classifyError(e)));
    sock.on("close", () => {
      if (reader.endsAtClose) finish(reader.status < 400 ? null : `http:${reader.status}`);
      else finish("closed:before_response");
    });
  }

  /** Verifying connections record what they verified; fast ones must present a recorded certificate. */
  #trusted(sock: tls.TLSSocket, fast: boolean): boolean {
    const fp = sock.getPeerX509Certificate()?.fingerprint256;
    if (!fast) {
      if (fp && sock.authorized) this.#verified.add(fp);
      return true; // Node refused it already if it failed
    }
    // A resumed session carries no certificate: it resumes one verified before.
    return fp ? this.#verified.has(fp) : sock.isSessionReused();
  }

  #closedLoop(): void {
    if (this.live.phase === "drain" || this.live.phase === "done") return;
    this.#attempt(now(), () => setImmediate(() => this.#closedLoop()));
  }

  // ------------------------------------------------------------ open loop

  #openLoop(): void {
    const s = this.#spec;
    const t0 = now();
    const interval = 1000 / s.rate;
    let issued = 0;
    const tick = () => {
      if (this.live.phase === "drain" || this.live.phase === "done") return;
      const t = now();
      const due = Math.floor((t - t0) / interval) + 1;
      for (; issued < due; issued++) {
        const at = t0 + issued * interval;
        if (this.#queue.length >= s.queueMax) {
          if (this.live.phase === "measure") this.#r.dropped++;
          continue;
        }
        this.#queue.push(at);
      }
      this.#dispatch();
      setTimeout(tick, Math.max(0, Math.min(interval, 10) - (now() - t)));
    };
    tick();
  }

  /** Starts due requests while slots are free. */
  #dispatch(): void {
    const s = this.#spec;
    if (s.mode === "keepalive") {
      for (const c of this.#kaConns) if (this.#queue.length && !c.attempt) this.#kaNext(c);
      return;
    }
    if (s.mode === "h2") {
      for (const c of this.#h2Conns) while (this.#queue.length && c.inFlight < s.streams) this.#h2Next(c);
      return;
    }
    while (this.#queue.length && this.#inFlight < s.concurrency) {
      const at = this.#queue.shift()!;
      this.#late(at);
      this.#attempt(at, () => this.#dispatch());
    }
  }

  #late(at: number): void {
    if (this.live.phase === "measure") this.#r.maxLateMs = Math.max(this.#r.maxLateMs, now() - at);
  }

  // ------------------------------------------------------------ keep-alive

  #kaOpen(c: KaConn): void {
    const s = this.#spec;
    // Keep-alive connections are few: each one verifies (unless --insecure).
    const sock = tls.connect({ host: s.host, port: s.port, servername: s.servername, secureContext: s.insecure ? this.#ctxFast : this.#ctxVerify, rejectUnauthorized: !s.insecure });
    sock.setNoDelay(true);
    c.sock = sock;
    c.secure = false;
    // The request that opened the connection carries its connect and handshake times.
    const conn = c.attempt!;
    conn.stage = "connect";
    conn.sock = sock;
    sock.once("connect", () => {
      conn.tConnect = now();
      conn.stage = "handshake";
    });
    sock.once("secureConnect", () => {
      this.#handshakeDone(conn, sock);
      c.secure = true;
      if (c.attempt) this.#kaWrite(c);
      else this.#kaNext(c);
    });
    sock.on("data", (chunk: Buffer) => {
      const a = c.attempt;
      if (!a) return;
      if (!a.tFirst) a.tFirst = now();
      let complete = false;
      try {
        complete = c.reader.feed(chunk);
      } catch {
        this.#kaFinish(c, "protocol:bad_response");
        sock.destroy();
        return;
      }
      if (!complete) return;
      const close = c.reader.close;
      this.#kaFinish(c, c.reader.status < 400 ? null : `http:${c.reader.status}`);
      if (close) sock.destroy(); // 'close' reconnects
      else this.#kaNext(c);
    });
    sock.on("error", (e: NodeJS.ErrnoException) => {
      if (c.sock === sock && c.attempt) this.#kaFinish(c, classifyError(e));
    });
    sock.on("close", () => {
      if (c.sock !== sock) return;
      c.sock = undefined;
      if (c.attempt) this.#kaFinish(c, c.reader.endsAtClose && c.reader.status < 400 ? null : c.reader.endsAtClose ? `http:${c.reader.status}` : "closed:before_response");
      // Reconnect on the next request (a refused connection would otherwise spin).
      setImmediate(() => this.#kaNext(c));
    });
  }

  #kaAttempt(c: KaConn, t0: number): Attempt {
    const a: Attempt = {
      t0,
      deadline: now() + this.#spec.timeoutMs,
      stage: "response",
      tConnect: 0,
      tSecure: 0,
      tWrite: 0,
      tFirst: 0,
      sock: c.sock,
      fail: (cls) => {
        if (c.attempt !== a) return;
        this.#kaFinish(c, cls);
        c.sock?.destroy();
      },
    };
    return a;
  }

  /** When the next request on a persistent connection counts from: now (closed loop), or the next due time (open loop; none due: undefined). */
  #due(): number | undefined {
    if (this.#spec.rate <= 0) return now();
    const t0 = this.#queue.shift();
    if (t0 !== undefined) this.#late(t0);
    return t0;
  }

  /** The next request on an idle connection, opening it if needed. */
  #kaNext(c: KaConn): void {
    if (c.attempt || this.live.phase === "drain" || this.live.phase === "done") return;
    const t0 = this.#due();
    if (t0 === undefined) return;
    const a = this.#kaAttempt(c, t0);
    c.attempt = a;
    c.reader.reset();
    this.#inFlight++;
    this.#active.add(a);
    if (!c.sock) this.#kaOpen(c);
    else if (c.secure) this.#kaWrite(c);
  }

  #kaWrite(c: KaConn): void {
    const a = c.attempt!;
    a.stage = "response";
    a.sock = c.sock;
    a.tWrite = now();
    c.sock!.write(this.#reqKeep);
  }

  #kaFinish(c: KaConn, failure: string | null): void {
    const a = c.attempt;
    if (!a) return;
    c.attempt = undefined;
    this.#inFlight--;
    this.#active.delete(a);
    this.#complete(a, failure);
  }

  // ------------------------------------------------------------ HTTP/2

  /** The next stream on connection `c` (opening it if needed); its end starts the next one. */
  #h2Next(c: H2Conn): void {
    if (this.live.phase === "drain" || this.live.phase === "done") return;
    const t0 = this.#due();
    if (t0 === undefined) return;
    const a: Attempt = { t0, deadline: now() + this.#spec.timeoutMs, stage: "response", tConnect: 0, tSecure: 0, tWrite: 0, tFirst: 0, sock: undefined, fail: () => {} };
    this.#inFlight++;
    c.inFlight++;
    this.#active.add(a);
    if (!c.session) this.#h2Open(c, a);
    if (c.secure) this.#h2Request(c, a);
    else c.waiting.push(a);
  }

  #h2Open(c: H2Conn, first: Attempt): void {
    const s = this.#spec;
    first.stage = "connect";
    let sock: tls.TLSSocket | undefined;
    const session = http2.connect(`https://${s.host}:${s.port}`, {
      createConnection: () => {
        sock = tls.connect({ host: s.host, port: s.port, servername: s.servername, secureContext: s.insecure ? this.#ctxFast : this.#ctxVerify, rejectUnauthorized: !s.insecure, ALPNProtocols: ["h2"] });
        sock.setNoDelay(true);
        sock.once("connect", () => {
          first.tConnect = now();
          first.stage = "handshake";
        });
        return sock;
      },
    });
    c.session = session;
    c.secure = false;
    // After a GOAWAY the streams in flight still get their answers (a refusal is sent after
    // one); new streams go on a new connection.
    const detach = () => {
      if (c.session !== session) return [];
      c.session = undefined;
      c.secure = false;
      return c.waiting.splice(0);
    };
    const failAll = (cls: string) => {
      for (const a of detach()) this.#h2Finish(c, a, cls);
      session.destroy(); // streams in flight end with an error each: their own finish
    };
    session.once("connect", () => {
      if (sock?.alpnProtocol !== "h2") return failAll("protocol:no_h2");
      this.#handshakeDone(first, sock);
      c.secure = true;
      for (const a of c.waiting.splice(0)) this.#h2Request(c, a);
    });
    session.on("error", (e: NodeJS.ErrnoException) => failAll(classifyError(e)));
    session.once("goaway", () => {
      for (const a of detach()) this.#h2Finish(c, a, "closed:goaway");
    });
    session.once("close", () => failAll("closed:before_response"));
  }

  #h2Request(c: H2Conn, a: Attempt): void {
    const s = this.#spec;
    a.stage = "response";
    a.tWrite = now();
    let status = 0;
    const req = c.session!.request({ ":path": s.path, ":authority": s.hostHeader, "user-agent": "certgate-bench" }, { endStream: true });
    a.fail = (cls) => {
      this.#h2Finish(c, a, cls);
      req.close(http2.constants.NGHTTP2_CANCEL);
    };
    req.once("response", (h) => {
      a.tFirst = now();
      status = Number(h[":status"]);
    });
    req.on("data", () => {});
    req.once("end", () => this.#h2Finish(c, a, status && status < 400 ? null : status ? `http:${status}` : "closed:before_response"));
    req.once("error", (e: NodeJS.ErrnoException) => this.#h2Finish(c, a, classifyError(e)));
    req.once("close", () => this.#h2Finish(c, a, "closed:before_response"));
  }

  /** One stream ended (first call wins); the connection's slot goes to the next one. */
  #h2Finish(c: H2Conn, a: Attempt, failure: string | null): void {
    if (!this.#active.delete(a)) return;
    this.#inFlight--;
    c.inFlight--;
    this.#complete(a, failure);
    if (this.#spec.rate > 0) this.#dispatch();
    else setImmediate(() => this.#h2Next(c));
  }
}

class H2Conn {
  session: http2.ClientHttp2Session | undefined;
  secure = false;
  inFlight = 0;
  /** Streams due before the session was up. */
  waiting: Attempt[] = [];
}

class KaConn {
  sock: tls.TLSSocket | undefined;
  secure = false;
  reader = new ResponseReader();
  attempt: Attempt | undefined;
}
