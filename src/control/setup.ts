// Wiring for `certgate serve` and the tests: the store in the data directory, the model it holds
// (seeded from the bootstrap when empty), the control plane, the token, the admin server.
//
// Precedence: a store that holds a model wins. --config (or the demo) only seeds an empty store,
// and only with a model that compiles (nothing is stored otherwise, so a corrected file seeds
// the next start); from then on the admin API and /v1/config are how the model changes. To
// start over from a file, PUT it to /v1/config, or remove DATA/certgate.db and
// DATA/store-state.json (certgate refuses a missing database while store-state.json is there).
import type http from "node:http";
import type https from "node:https";
import type { Model } from "../model/schema.ts";
import type { Enforcer } from "./enforcer.ts";
import type { Metrics } from "../observability/metrics.ts";
import { createAdminServer, type AdminOptions } from "./admin.ts";
import { Authenticator } from "./auth.ts";
import { WritePath, checkControlRefs } from "./writepath.ts";
import { SqliteStore, type Store } from "./store.ts";
import { PostgresStore, redact } from "./pgstore.ts";
import { FileReloader } from "./filereload.ts";

export interface Loaded {
  store: Store;
  model: Model;
  /** True when the store was empty and `seed` filled it. */
  seeded: boolean;
}

/**
 * Opens the store and returns the model to start with. An empty store is seeded with `seed()`
 * once `compile` accepts it: the caller's compile of a snapshot, the same one its runtime will
 * make (same derived rules, same environment); it throws ModelError for a model it refuses.
 */
export async function loadStore(dataDir: string, seed: () => Model | Promise<Model>, compile: (model: Model) => void, storeUrl?: string): Promise<Loaded> {
  const store = await openStore(dataDir, storeUrl);
  if (await store.isEmpty()) {
    let stored: Model;
    try {
      const model = await seed();
      checkControlRefs(model);
      // Compiled inside the transaction: a model the data plane refuses rolls back, leaving the store empty.
      ({ model: stored } = await store.replace(model, {
        audit: { token_id: "system", method: "SEED", path: "", status: 200, summary: "store seeded from the bootstrap configuration" },
        beforeCommit: compile,
      }));
    } catch (e) {
      await store.close();
      throw e;
    }
    return { store, model: stored, seeded: true };
  }
  return { store, model: await store.load(), seeded: false };
}

/** The store: PostgreSQL when `url` is a postgres:// URL (a fleet's), else SQLite in the data directory. */
export function openStore(dataDir: string, url?: string): Promise<Store> {
  if (!url) return Promise.resolve(SqliteStore.open(dataDir));
  if (!/^postgres(ql)?:\/\//.test(url)) return Promise.reject(new Error(`--store: expected a postgres:// URL, got "${redact(url)}"`));
  return PostgresStore.open(url);
}

export function startControl(runtime: Enforcer, metrics: Metrics, loaded: Loaded, adminToken: string, extra: Partial<AdminOptions> = {}): { plane: WritePath; auth: Authenticator; server: http.Server | https.Server } {
  // File-backed objects: the write path resolves and strips models with the files the runtime reads.
  const plane = new WritePath(loaded.store, runtime, loaded.model, runtime instanceof FileReloader ? runtime.files : undefined);
  const auth = new Authenticator(adminToken, loaded.store);
  const server = createAdminServer(runtime, metrics, { plane, auth, ...extra });
  return { plane, auth, server };
}
