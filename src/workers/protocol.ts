// The messages between a primary and its workers, over each worker's IPC channel (Node's
// structured-clone serialization, so Buffers travel as bytes). Messages on one channel
// arrive in the order they were sent.
//
//   primary → worker                                  worker → primary
//   init {model, version, …} + the listening socket    ready {version}
//   config {version, base, delta}                      applied {version} | apply_failed {version, error}
//   crl {url, der | error}          (every new copy)   crl_want {url}
//   ocsp {key, answer, ttlMs}       (every answer)     ocsp_ask {key, leaf, issuer, url, opts}
//   metrics_req {id}                                   metrics {id, json}
//   seen_req {id}                                      seen {id, deltas}   (also id 0, unasked, when it drains)
//   drain {timeoutMs}                                  draining, then exit(0) once drained
//   resync is a worker's answer to a delta whose base is not its version: `resync {version}`,
//   and the primary sends a full `config` (base null).
//
// The primary owns the store, the admin API, the managed CA and every CRL download and OCSP
// query; a worker owns its client connections and compiles its own snapshot from the models
// it is sent. Session-ticket keys derive from one secret given at init, so any worker resumes
// any other's sessions (under the same certificate and policy version only).
import type { Model } from "../model/schema.ts";
import type { OcspAnswer, OcspOptions } from "../revocation/ocsp.ts";
import type { ModelDelta } from "./delta.ts";
import type { SeenDelta } from "../dataplane/tls/sightings.ts";

export interface InitMessage {
  t: "init";
  /** The worker's slot (0..N-1): its `worker` label in metrics and logs. */
  slot: number;
  generation: number;
  model: Model;
  version: number;
  environment: string;
  ticketSecret: Buffer;
  debugWorkerId: boolean;
  /** Entries of the worker's client certificate inventory; 0: none kept. */
  seenEntries: number;
}

export type ToWorker =
  | InitMessage
  | { t: "config"; version: number; base: number | null; delta: ModelDelta | null; model: Model | null }
  | { t: "crl"; url: string; der: Buffer | null; error: string | null }
  | { t: "ocsp"; key: string; answer: OcspAnswer; ttlMs: number }
  | { t: "metrics_req"; id: number }
  | { t: "seen_req"; id: number }
  | { t: "drain"; timeoutMs: number };

export type FromWorker =
  | { t: "ready"; version: number }
  | { t: "applied"; version: number }
  | { t: "apply_failed"; version: number; error: string }
  | { t: "resync"; version: number }
  | { t: "crl_want"; url: string }
  | { t: "ocsp_ask"; key: string; leaf: Buffer; issuer: Buffer; url: string; opts: OcspOptions }
  | { t: "metrics"; id: number; json: unknown }
  /** The worker's inventory changes since its previous `seen` (tls/sightings.ts drain()). */
  | { t: "seen"; id: number; deltas: SeenDelta[] }
  | { t: "draining" };
