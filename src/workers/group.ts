// The primary's side of `serve --workers N`: it forks the workers, hands each its slot's
// listening socket (sockets.ts), sends every applied model to all of them (protocol.ts),
// fetches CRLs and asks OCSP responders for them all, replaces a worker that dies, and
// replaces all of them one at a time on reload. To the control plane it looks like a Runtime:
// apply() compiles (so a bad write is refused here, before any worker sees it) and
// settled() resolves once every worker enforces what was applied.
import { fork, type ChildProcess } from "node:child_process";
import { X509Certificate } from "node:crypto";
import module from "node:module";
import { fileURLToPath } from "node:url";
import type net from "node:net";
import type { Model } from "../model/schema.ts";
import type { Logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import { Snapshot, type DerivedRules } from "../dataplane/snapshot.ts";
import { ownRevocationSources } from "../dataplane/runtime.ts";
import { servingNodeArgs } from "../nodeargs.ts";
import type { CrlFetcher } from "../revocation/fetcher.ts";
import type { OcspClient } from "../revocation/ocsp.ts";
import { diffModels } from "./delta.ts";
import { aggregateGroup } from "./metrics.ts";
import { bindSlots, type BoundHandle } from "./sockets.ts";
import type { FromWorker, ToWorker } from "./protocol.ts";
import type { Sightings } from "../dataplane/tls/sightings.ts";
// Loaded (not run) here so that the compile cache holds every module a worker runs: see worker-entry.js.
import "./worker.ts";

const WORKER_SCRIPT = fileURLToPath(new URL("./worker-entry.js", import.meta.url));

export interface GroupOptions {
  workers: number;
  log: Logger;
  metrics: Metrics;
  ticketSecret: Buffer;
  environment: string;
  derivedRules?: (model: Model, environment: string) => ReturnType<DerivedRules>;
  /** One SO_REUSEPORT socket per worker (default), or one socket shared by all (serve --reuseport off). */
  reuseport?: boolean;
  /** How long a replaced or stopping worker may finish its requests (serve --drain-timeout). */
  drainTimeoutMs: number;
  /** A worker must be listening within this long of its start. */
  startTimeoutMs?: number;
  /** So many deaths within the window is a crash loop: the group gives up (onFatal). */
  crashLoop?: { deaths: number; windowMs: number };
  debugWorkerId?: boolean;
  /** The group's inventory of client certificates seen: every worker keeps its own (as large), merged here. */
  seen?: Sightings;
  /** The group cannot go on (crash loop): the caller logs and exits non-zero. */
  onFatal: (reason: string) => void;
}

const CRASH_LOOP = { deaths: 5, windowMs: 60_000 };
const MAX_BACKOFF_MS = 5_000;
const SETTLE_TIMEOUT_MS = 10_000;

type State = "starting" | "ready" | "draining";

class Worker {
  readonly child: ChildProcess;
  readonly slot: number;
  readonly generation: number;
  state: State = "starting";
  /** The config version this worker enforces. */
  version = 0;
  readonly startedAt = Date.now();
  readonly ready: Promise<void>;
  readonly exited: Promise<void>;
  readonly disconnected: Promise<void>;
  markReady!: () => void;
  failStart!: (e: Error) => void;
  /** Set when the primary asked it to go (reload, stop): its exit is no crash. */
  retiring = false;
  drainStarted?: () => void;

  constructor(child: ChildProcess, slot: number, generation: number) {
    this.child = child;
    this.slot = slot;
    this.generation = generation;
    this.ready = new Promise((resolve, reject) => {
      this.markReady = resolve;
      this.failStart = reject;
    });
    this.ready.catch(() => {});
    this.exited = new Promise((r) => child.once("exit", () => r()));
    // Every message the worker sent has been read once its channel is closed ('exit' can come first).
    this.disconnected = new Promise((r) => (child.connected ? child.once("disconnect", () => r()) : r()));
  }

  send(m: ToWorker, handle?: BoundHandle): void {
    if (!this.child.connected) return;
    // A worker that died between the check and the write is reported by its 'exit' event.
    try {
      this.child.send(m, handle as never, (err) => void err);
    } catch {
      /* see above */
    }
  }
}

interface Slot {
  index: number;
  handle: BoundHandle;
  current: Worker | null;
  /** A replacement being started (reload): becomes current once ready. */
  standby: Worker | null;
  timer?: NodeJS.Timeout;
}

export class WorkerGroup {
  #snapshot: Snapshot;
  readonly environment: string;
  readonly #o: GroupOptions;
  readonly #derived: DerivedRules | undefined;
  readonly #crls: CrlFetcher;
  readonly #ocsp: OcspClient;
  readonly #workers = new Set<Worker>();
  #slots: Slot[] = [];
  /** The model and version last sent to the workers: the base of the next delta. */
  #sent: { model: Model; version: number };
  #generation = 0;
  #deaths: number[] = [];
  #stopping = false;
  #reloading: Promise<number> | undefined;
  #settleWaiters: { version: number; resolve: () => void }[] = [];
  #metricsReqs = new Map<number, (json: unknown) => void>();
  #metricsSeq = 0;
  #seenReqs = new Map<number, () => void>();
  address: net.AddressInfo | undefined;
  mode: "reuseport" | "shared" | undefined;

  constructor(model: Model, opts: GroupOptions) {
    this.#o = { startTimeoutMs: 30_000, crashLoop: CRASH_LOOP, ...opts };
    this.environment = opts.environment;
    const derive = opts.derivedRules;
    this.#derived = derive && ((m) => derive(m, opts.environment));
    this.#snapshot = new Snapshot(model, 1, this.#derived);
    this.#sent = { model, version: 1 };
    opts.metrics.configVersion.set(1);
    const share = ownRevocationSources(opts.log, opts.metrics, {
      updated: (url, der, error) => this.#broadcast({ t: "crl", url, der: der ?? null, error: error?.message ?? null }),
      cached: (key, answer, ttlMs) => this.#broadcast({ t: "ocsp", key, answer, ttlMs }),
    });
    this.#crls = share.crls;
    this.#ocsp = share.ocsp;
    this.#prefetchCrls(model);
  }

  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /** Binds the public port and starts every worker; resolves when all of them listen. */
  async start(host: string, port: number): Promise<net.AddressInfo> {
    const bound = await bindSlots(host, port, this.#o.workers, this.#o.reuseport ?? true);
    this.address = bound.address;
    this.mode = bound.mode;
    if (bound.fallback) this.#o.log.warn({ msg: "no SO_REUSEPORT: the workers share one listening socket (node:cluster's SCHED_NONE distribution)", reason: bound.fallback });
    this.#slots = bound.handles.map((handle, index) => ({ index, handle, current: null, standby: null }));
    // Node writes the compile cache at exit: write what the primary compiled now, so that the
    // workers' first start already finds every module (src/cli.js, worker-entry.js).
    module.flushCompileCache();
    const started = this.#slots.map((s) => (s.current = this.#spawn(s)));
    await Promise.all(started.map((w) => w.ready));
    this.#gauge();
    return bound.address;
  }

  /** Compiles (throws ModelError, keeping the old model, if it does not compile), then sends it to every worker. */
  apply(model: Model): Snapshot {
    let next: Snapshot;
    try {
      next = new Snapshot(model, this.#snapshot.version + 1, this.#derived, this.#snapshot);
    } catch (e) {
      this.#o.metrics.configApplies.inc({ result: "rejected" });
      throw e;
    }
    this.#snapshot = next;
    const base = this.#sent.version;
    const delta = diffModels(this.#sent.model, model);
    this.#sent = { model, version: next.version };
    this.#broadcast({ t: "config", version: next.version, base, delta, model: null });
    this.#prefetchCrls(model);
    this.#o.metrics.configApplies.inc({ result: "ok" });
    this.#o.metrics.configVersion.set(next.version);
    this.#o.log.info({ msg: "config applied", version: next.version, hosts: model.hosts.length, routes: model.routes.length, workers: this.#workers.size });
    return next;
  }

  /** Resolves once every live worker enforces the last applied version (or after 10 s, with a warning). */
  settled(): Promise<void> {
    const version = this.#snapshot.version;
    if (this.#behind(version).length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiter = { version, resolve };
      this.#settleWaiters.push(waiter);
      setTimeout(() => {
        if (!this.#settleWaiters.includes(waiter)) return;
        this.#settleWaiters = this.#settleWaiters.filter((w) => w !== waiter);
        this.#o.log.warn({ msg: "workers have not applied a config version in time", version, behind: this.#behind(version).map((w) => w.slot) });
        resolve();
      }, SETTLE_TIMEOUT_MS).unref();
    });
  }

  /** For /healthz: each slot's worker. */
  health(): { mode: string | undefined; workers: { slot: number; pid: number | undefined; state: State; config_version: number; generation: number }[] } {
    return {
      mode: this.mode,
      workers: [...this.#workers].sort((a, b) => a.slot - b.slot || a.generation - b.generation).map((w) => ({ slot: w.slot, pid: w.child.pid, state: w.state, config_version: w.version, generation: w.generation })),
    };
  }

  /** The group's metrics in Prometheus text: the primary's and every worker's, merged (metrics.ts). */
  async metricsText(): Promise<string> {
    const primary = await this.#o.metrics.registry.getMetricsAsJSON();
    const live = [...this.#workers].filter((w) => w.state !== "starting");
    const replies = await Promise.all(live.map((w) => this.#workerMetrics(w)));
    const sources = [{ who: "primary", metrics: primary }];
    live.forEach((w, i) => replies[i] && sources.push({ who: String(w.slot), metrics: replies[i] as typeof primary }));
    return aggregateGroup(sources).metrics();
  }

  /**
   * Replaces every worker, one slot at a time: the new one listens (on the slot's socket) before
   * the old one stops accepting and drains. Resolves with the number replaced; a reload asked
   * for during one joins it.
   */
  reload(): Promise<number> {
    return (this.#reloading ??= this.#reloadAll().finally(() => (this.#reloading = undefined)));
  }

  /** Drains every worker (at most drainTimeoutMs) and stops. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const s of this.#slots) clearTimeout(s.timer);
    const all = [...this.#workers];
    await Promise.all(all.map((w) => this.#retire(w)));
    await Promise.all(all.map((w) => Promise.all([w.exited, w.disconnected])));
    for (const h of new Set(this.#slots.map((s) => s.handle))) h.close();
    this.#crls.close();
  }

  async #reloadAll(): Promise<number> {
    let replaced = 0;
    this.#o.log.info({ msg: "reload: replacing workers one at a time", workers: this.#slots.length });
    for (const slot of this.#slots) {
      if (this.#stopping) break;
      const old = slot.current;
      const fresh = (slot.standby = this.#spawn(slot));
      try {
        await fresh.ready;
      } catch (e) {
        slot.standby = null;
        throw new Error(`reload stopped at worker ${slot.index}: ${(e as Error).message}`);
      }
      slot.standby = null;
      slot.current = fresh;
      if (old) await this.#retire(old);
      replaced++;
      this.#gauge();
    }
    this.#o.log.info({ msg: "reload done", replaced });
    return replaced;
  }

  /** Asks a worker to drain; resolves once it has stopped accepting (or has exited). */
  #retire(w: Worker): Promise<void> {
    if (w.retiring) return Promise.resolve();
    w.retiring = true;
    w.state = "draining";
    const stopped = new Promise<void>((r) => (w.drainStarted = r));
    w.send({ t: "drain", timeoutMs: this.#o.drainTimeoutMs });
    // A worker that does not finish in time (or never answers) is killed.
    const kill = setTimeout(() => w.child.kill("SIGKILL"), this.#o.drainTimeoutMs + 5_000);
    void w.exited.then(() => clearTimeout(kill));
    this.#gauge();
    return Promise.race([stopped, w.exited]);
  }

  #spawn(slot: Slot): Worker {
    const child = fork(WORKER_SCRIPT, [], { serialization: "advanced", execArgv: [...process.execArgv, ...servingNodeArgs()], stdio: ["ignore", "inherit", "inherit", "ipc"] });
    const w = new Worker(child, slot.index, ++this.#generation);
    this.#workers.add(w);
    w.version = this.#sent.version;
    const startTimer = setTimeout(() => {
      w.failStart(new Error(`worker ${slot.index} did not start within ${this.#o.startTimeoutMs} ms`));
      child.kill("SIGKILL");
    }, this.#o.startTimeoutMs);
    child.on("message", (m: FromWorker) => this.#onMessage(w, m));
    child.once("exit", (code, signal) => {
      clearTimeout(startTimer);
      this.#onExit(w, slot, code, signal);
    });
    child.once("error", (e) => this.#o.log.error({ msg: "worker process error", worker: slot.index, err: e.message }));
    w.send(
      {
        t: "init",
        slot: slot.index,
        generation: w.generation,
        model: this.#sent.model,
        version: this.#sent.version,
        environment: this.environment,
        ticketSecret: this.#o.ticketSecret,
        debugWorkerId: this.#o.debugWorkerId ?? false,
        seenEntries: this.#o.seen?.max ?? 0,
      },
      slot.handle,
    );
    void w.ready.then(() => {
      clearTimeout(startTimer);
      this.#gauge();
    }, () => {});
    this.#gauge();
    return w;
  }

  #onMessage(w: Worker, m: FromWorker): void {
    switch (m.t) {
      case "ready":
        w.state = w.retiring ? "draining" : "ready";
        w.version = m.version;
        w.markReady();
        this.#o.log.info({ msg: "worker ready", worker: w.slot, pid: w.child.pid, generation: w.generation, config_version: m.version });
        return this.#checkSettled();
      case "applied":
        w.version = m.version;
        return this.#checkSettled();
      case "apply_failed":
        // It keeps an older model than the others: replace it, it starts from the current one.
        this.#o.log.error({ msg: "worker could not apply a config: restarting it", worker: w.slot, version: m.version, err: m.error });
        w.child.kill("SIGKILL");
        return;
      case "resync":
        w.send({ t: "config", version: this.#sent.version, base: null, delta: null, model: this.#sent.model });
        return;
      case "crl_want": {
        this.#crls.prefetch(m.url);
        const s = this.#crls.state(m.url);
        if (s) w.send({ t: "crl", url: m.url, der: s.der ?? null, error: s.error?.message ?? null });
        return;
      }
      case "ocsp_ask": {
        let leaf: X509Certificate, issuer: X509Certificate;
        try {
          leaf = new X509Certificate(m.leaf);
          issuer = new X509Certificate(m.issuer);
        } catch (e) {
          return w.send({ t: "ocsp", key: m.key, answer: { status: "error", detail: (e as Error).message }, ttlMs: 0 });
        }
        void Promise.resolve(this.#ocsp.lookup(leaf, issuer, m.url, m.opts)).then((answer) => w.send({ t: "ocsp", key: m.key, answer, ttlMs: this.#ocsp.remainingTtl(m.key) }));
        return;
      }
      case "metrics":
        this.#metricsReqs.get(m.id)?.(m.json);
        return;
      case "seen":
        // Asked for (id > 0), or a draining worker's last sightings (id 0).
        this.#o.seen?.merge(m.deltas);
        this.#seenReqs.get(m.id)?.();
        return;
      case "draining":
        w.drainStarted?.();
        return;
    }
  }

  #onExit(w: Worker, slot: Slot, code: number | null, signal: NodeJS.Signals | null): void {
    this.#workers.delete(w);
    w.failStart(new Error(`worker ${slot.index} exited (${signal ?? `code ${code}`}) before it was ready`));
    w.drainStarted?.();
    this.#checkSettled();
    this.#gauge();
    if (w.retiring || this.#stopping) return;
    // A replacement that never became ready is the reload's failure (reported there), still a death.
    const reason = signal ?? `exit_${code}`;
    this.#o.metrics.workerRestarts.inc({ reason });
    const now = Date.now();
    const { deaths, windowMs } = this.#o.crashLoop!;
    this.#deaths = [...this.#deaths.filter((t) => now - t < windowMs), now];
    this.#o.log.error({ msg: "worker died", worker: slot.index, pid: w.child.pid, reason, deaths_in_window: this.#deaths.length });
    if (this.#deaths.length >= deaths) {
      this.#stopping = true;
      return this.#o.onFatal(`crash loop: ${this.#deaths.length} worker deaths within ${windowMs / 1000} s (last: ${reason})`);
    }
    if (slot.current !== w) return; // a failed standby: the current worker goes on
    slot.current = null;
    if (slot.standby) return; // a reload's replacement is on its way
    // The slot's socket stays open in this process: connections wait in its queue meanwhile.
    const backoff = this.#deaths.length <= 1 ? 0 : Math.min(100 * 2 ** (this.#deaths.length - 2), MAX_BACKOFF_MS);
    slot.timer = setTimeout(() => {
      if (!this.#stopping && !slot.current) slot.current = this.#spawn(slot);
    }, backoff);
  }

  #behind(version: number): Worker[] {
    return [...this.#workers].filter((w) => w.version < version);
  }

  #checkSettled(): void {
    if (!this.#settleWaiters.length) return;
    const done = this.#settleWaiters.filter((s) => this.#behind(s.version).length === 0);
    if (!done.length) return;
    this.#settleWaiters = this.#settleWaiters.filter((s) => !done.includes(s));
    for (const s of done) s.resolve();
  }

  #broadcast(m: ToWorker): void {
    for (const w of this.#workers) w.send(m);
  }

  #workerMetrics(w: Worker): Promise<unknown> {
    const id = ++this.#metricsSeq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), 2_000);
      const done = (json: unknown) => {
        clearTimeout(timer);
        this.#metricsReqs.delete(id);
        resolve(json);
      };
      this.#metricsReqs.set(id, done);
      w.send({ t: "metrics_req", id });
      void w.exited.then(() => done(undefined));
    });
  }

  /** Merges every worker's sightings since it was last asked into the group's inventory (a worker silent for 2 s is skipped). */
  async collectSightings(): Promise<void> {
    if (!this.#o.seen) return;
    await Promise.all(
      [...this.#workers].filter((w) => w.state !== "starting").map((w) => {
        const id = ++this.#metricsSeq;
        return new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            this.#seenReqs.delete(id);
            resolve();
          };
          const timer = setTimeout(done, 2_000);
          this.#seenReqs.set(id, done);
          w.send({ t: "seen_req", id });
          void w.exited.then(done);
        });
      }),
    );
  }

  #gauge(): void {
    const count = { ready: 0, starting: 0, draining: 0 };
    for (const w of this.#workers) count[w.state]++;
    for (const [state, n] of Object.entries(count)) this.#o.metrics.workers.set({ state }, n);
  }

  #prefetchCrls(model: Model): void {
    for (const b of model.trust_bundles) for (const url of b.revocation?.crl?.urls ?? []) this.#crls.prefetch(url);
  }
}
