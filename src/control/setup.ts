// Wiring for `certgate serve` and the tests: the store in the data directory, the model it holds
// (seeded from the bootstrap when empty), the control plane, the token, the admin server.
//
// Precedence: a store that holds a model wins. --config (or the demo) only seeds an empty store;
// from then on the admin API and /v1/config are how the model changes. To start over from a
// file, PUT it to /v1/config or remove DATA/certgate.db.
import type http from "node:http";
import type https from "node:https";
import type { Model } from "../model/schema.ts";
import type { Runtime } from "../dataplane/runtime.ts";
import type { Metrics } from "../observability/metrics.ts";
import { createAdminServer, type AdminOptions } from "./admin.ts";
import { Authenticator } from "./auth.ts";
import { ControlPlane, checkControlRefs } from "./plane.ts";
import { SqliteStore, type Store } from "./store.ts";

export interface Loaded {
  store: Store;
  model: Model;
  /** True when the store was empty and `seed` filled it. */
  seeded: boolean;
}

/** Opens the store and returns the model to start with. */
export async function loadStore(dataDir: string, seed: () => Model | Promise<Model>): Promise<Loaded> {
  const store = SqliteStore.open(dataDir);
  if (await store.isEmpty()) {
    const model = await seed();
    checkControlRefs(model);
    const { model: stored } = await store.replace(model, { audit: { token_id: "system", method: "SEED", path: "", status: 200, summary: "store seeded from the bootstrap configuration" } });
    return { store, model: stored, seeded: true };
  }
  return { store, model: await store.load(), seeded: false };
}

export function startControl(runtime: Runtime, metrics: Metrics, loaded: Loaded, adminToken: string, extra: Partial<AdminOptions> = {}): { plane: ControlPlane; auth: Authenticator; server: http.Server | https.Server } {
  const plane = new ControlPlane(loaded.store, runtime, loaded.model);
  const auth = new Authenticator(adminToken, loaded.store);
  const server = createAdminServer(runtime, metrics, { plane, auth, ...extra });
  return { plane, auth, server };
}
