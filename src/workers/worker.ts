// A worker process: the data plane on the listening socket its primary hands over, with the
// models, CRLs and OCSP answers the primary sends (protocol.ts). Started by group.ts with
// child_process.fork (through worker-entry.js); it never touches the store.
import { createLogger } from "../observability/log.ts";
import { createMetrics } from "../observability/metrics.ts";
import { Runtime } from "../dataplane/runtime.ts";
import { REFUSAL_LABELS } from "../dataplane/request/refusals.ts";
import { apinizerRules } from "../dialects/apinizer/rules.ts";
import type { Model } from "../model/schema.ts";
import { applyDelta } from "./delta.ts";
import { CrlMirror, OcspMirror } from "./mirrors.ts";
import { Sightings } from "../dataplane/tls/sightings.ts";
import type { FromWorker, InitMessage, ToWorker } from "./protocol.ts";
import { keepYoungGenerationTouched } from "../pretouch.ts";

const send = (m: FromWorker): void => {
  // The channel closes when the primary dies; the 'disconnect' handler below ends this process.
  if (process.connected) process.send!(m);
};

async function start(init: InitMessage, handle: object): Promise<void> {
  const log = createLogger().child({ worker: init.slot });
  const metrics = createMetrics({ refusalReasons: REFUSAL_LABELS });
  const crls = new CrlMirror(send);
  const ocsp = new OcspMirror(send);
  const seen = init.seenEntries > 0 ? new Sightings(init.seenEntries) : undefined;
  const runtime = new Runtime(init.model, {
    log,
    metrics,
    ticketSecret: Buffer.from(init.ticketSecret),
    environment: init.environment,
    derivedRules: apinizerRules,
    revocation: { crls, ocsp },
    debugWorkerId: init.debugWorkerId ? String(init.slot) : undefined,
    seen,
  });
  let model: Model = init.model;
  let version = init.version;
  runtime.apply(model, version);
  let draining = false;

  process.on("message", (m: ToWorker) => {
    switch (m.t) {
      case "config": {
        if (m.base !== null && m.base !== version) return send({ t: "resync", version });
        try {
          const next = m.model ?? applyDelta(model, m.delta!);
          runtime.apply(next, m.version);
          model = next;
          version = m.version;
          send({ t: "applied", version });
        } catch (e) {
          // The primary compiled this model before committing it: a failure here is a bug, said loudly.
          log.error({ msg: "a model the primary accepted does not compile here", version: m.version, err: (e as Error).message });
          send({ t: "apply_failed", version: m.version, error: (e as Error).message });
        }
        return;
      }
      case "crl":
        return crls.received(m.url, m.der, m.error);
      case "ocsp":
        return ocsp.received(m.key, m.answer, m.ttlMs);
      case "metrics_req":
        void metrics.registry.getMetricsAsJSON().then((json) => send({ t: "metrics", id: m.id, json }));
        return;
      case "seen_req":
        send({ t: "seen", id: m.id, deltas: seen?.drain() ?? [] });
        return;
      case "drain":
        if (draining) return;
        draining = true;
        log.info({ msg: "draining", timeout_ms: m.timeoutMs });
        send({ t: "draining" });
        // The last sightings go to the primary before exit (IPC sends are flushed in order).
        void runtime.drain(m.timeoutMs).then(() => {
          if (!seen || !process.connected) process.exit(0);
          process.send!({ t: "seen", id: 0, deltas: seen.drain() } satisfies FromWorker, undefined, {}, () => process.exit(0));
        });
        return;
      case "init":
        return;
    }
  });
  await runtime.listen(handle);
  keepYoungGenerationTouched(log);
  send({ t: "ready", version });
}

/** The worker process's main (called by worker-entry.js): waits for the primary's init message. */
export function runWorker(): void {
  // Orphaned (the primary died): stop at once rather than serve a configuration nobody can change.
  process.on("disconnect", () => process.exit(0));
  process.once("message", (m: ToWorker, handle: object | undefined) => {
    if (m.t !== "init" || !handle) {
      console.error("certgate worker: the first message must be init with a listening socket");
      process.exit(2);
    }
    start(m, handle).catch((e: unknown) => {
      console.error(`certgate worker ${m.slot}: ${(e as Error).stack ?? String(e)}`);
      process.exit(1);
    });
  });
  // SIGINT reaches the whole process group from a terminal: the primary decides what happens.
  process.on("SIGINT", () => {});
}
