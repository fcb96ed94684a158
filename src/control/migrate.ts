// `certgate store migrate --from A --to B`: a whole store copied between engines (a data
// directory's SQLite store, a postgres:// URL), for moving one node to a fleet and back. The
// target must be empty: nothing is merged or overwritten. What moves: the model, the scoped
// tokens, the audit trail's last entries as one summary, and (to or from PostgreSQL, with a KEK)
// the managed CA, so certificates it issued keep verifying.
import { join } from "node:path";
import { FileKeystore, type CaKeystore } from "../managedca/keystore.ts";
import { StoreKeystore } from "./cakeystore.ts";
import { PostgresStore, redact } from "./pgstore.ts";
import { openStore } from "./setup.ts";
import type { Store } from "./store.ts";

export interface MigrateReport {
  from: string;
  to: string;
  revision: number;
  objects: number;
  tokens: number;
  managed_ca: "copied" | "none" | "not copied: set CERTGATE_KEK";
}

const isUrl = (where: string): boolean => /^postgres(ql)?:\/\//.test(where);
const describe = (where: string): string => (isUrl(where) ? redact(where) : join(where, "certgate.db"));

function keystoreOf(where: string, store: Store, kek: Buffer | undefined): CaKeystore | undefined {
  if (store instanceof PostgresStore) return kek ? new StoreKeystore(store, kek) : undefined;
  return new FileKeystore(join(where, "managed-ca"));
}

/** Keystores are undefined for PostgreSQL without a KEK: the sealed key can be neither read nor written. */
async function copyManagedCa(from: CaKeystore | undefined, to: CaKeystore | undefined, source: Store): Promise<MigrateReport["managed_ca"]> {
  if (!from) return source instanceof PostgresStore && (await source.get("secret:managed_ca")) ? "not copied: set CERTGATE_KEK" : "none";
  const pair = await from.load();
  if (!pair) return "none";
  if (!to) return "not copied: set CERTGATE_KEK";
  await to.create(pair);
  return "copied";
}

export async function migrateStore(from: string, to: string, kek: Buffer | undefined): Promise<MigrateReport> {
  const source = await openStore(from, isUrl(from) ? from : undefined);
  let target: Store | undefined;
  try {
    if (await source.isEmpty()) throw new Error(`${describe(from)} holds no configuration: nothing to migrate`);
    target = await openStore(to, isUrl(to) ? to : undefined);
    if (!(await target.isEmpty())) throw new Error(`${describe(to)} already holds a configuration: migrate only into an empty store (nothing was changed)`);
    const model = await source.load();
    const tokens = await source.listTokens();
    const revision = await source.revision();
    await target.replace(model, { audit: { token_id: "system", method: "MIGRATE", path: "", status: 200, summary: `store migrated from ${describe(from)} at revision ${revision}` } });
    for (const t of tokens) await target.addToken(t);
    const managed = await copyManagedCa(keystoreOf(from, source, kek), keystoreOf(to, target, kek), source);
    const objects = Object.values(model).reduce((n, v) => n + (Array.isArray(v) ? v.length : 0), 0);
    return { from: describe(from), to: describe(to), revision, objects, tokens: tokens.length, managed_ca: managed };
  } finally {
    await source.close();
    await target?.close();
  }
}
