// What the control plane drives: the data plane in this process (dataplane/runtime.ts), or a
// primary's group of worker processes (workers/group.ts). Either way a write is compiled by
// apply() before it commits, and answered once settled() says it is enforced everywhere.
import type { Model } from "../model/schema.ts";
import type { Snapshot } from "../dataplane/snapshot.ts";

export interface Enforcer {
  /** The snapshot in force (the admin API reads certificates and versions from it). */
  readonly snapshot: Snapshot;
  /** The Apinizer environment this node serves. */
  readonly environment: string;
  /** Compiles and puts a model in force; throws ModelError, keeping the old one, if it does not compile. */
  apply(model: Model): Snapshot;
  /** Resolves once every process serving traffic enforces the last applied model. */
  settled(): Promise<void>;
}

/** The worker processes, for the admin API (absent with --workers 1). */
export interface ProcessGroup {
  /** Replaces every worker, one at a time; resolves with how many were replaced. */
  reload(): Promise<number>;
  health(): object;
  /** The whole group's metrics, merged, in Prometheus text. */
  metricsText(): Promise<string>;
}
