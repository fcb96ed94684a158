// The control plane's write path, shared by every dialect:
//   validate the request → in ONE store transaction: load the model, mutate it, validate the
//   changed objects with the model's own schemas, drop the dialects' records of objects that
//   are gone, authorize the change against the token (ownership.ts: the only place scopes are
//   enforced), check the model's references, owners and the dialects' invariants, compile
//   (runtime.apply) → commit.
// A compile failure rolls back: nothing stored, the old snapshot stays, the caller gets a 4xx.
import { Certificate, Host, Model as ModelSchema, ManagedClientCertificate, ModelError, Route, Rule, TrustBundle, Zone, formatPath, parseModel, type Model } from "../model/schema.ts";
import type { Enforcer } from "./enforcer.ts";
import { COLLECTIONS, keyField, type AuditEntry, type Store } from "./store.ts";
import type { Principal } from "./auth.ts";
import { ApiError, toApiError } from "./apierrors.ts";
import { dialectProblems } from "../dialects/invariants.ts";
import { Dialects, pruneDialects } from "../dialects/records.ts";
import { authorize, ownershipProblems } from "./ownership.ts";
import { refuseExpiredServerCerts, uploadWarnings } from "./validity.ts";
import { FileSource } from "./filesource.ts";
import { changedPositions } from "../model/positions.ts";

const ELEMENT: Record<string, { safeParse(x: unknown): { success: true; data: unknown } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } } }> = {
  certificates: Certificate,
  trust_bundles: TrustBundle,
  hosts: Host,
  routes: Route,
  zones: Zone,
  rules: Rule,
  managed_client_certificates: ManagedClientCertificate,
};

export const now = (): string => new Date().toISOString();

export interface WriteContext {
  principal: Principal;
  method: string;
  path: string;
  /** Set once a refusal of this request is in the audit log (the router logs the others). */
  audited?: boolean;
  /** Collects the write's warnings (an expired CA, a certificate expiring within 7 days: validity.ts); the admin server renders and logs them. */
  warnings: string[];
}

/** The audit entry of an admin write. */
export function auditEntry(ctx: WriteContext, summary: string, status = 200): AuditEntry {
  return { token_id: ctx.principal.token_id, method: ctx.method, path: ctx.path, status, summary };
}

type Problem = { path: string; message: string };
type Schema = (typeof ELEMENT)[string];
/** Fields validated by their own function (given the field's value before and after), not by their schema. */
type Own = Record<string, (prev: unknown, next: unknown) => unknown>;

/**
 * Validates what a mutation changed, with the model's own zod schemas: each collection element by
 * element (a write to one of 10,000 hosts does not re-parse the other 9,999), each dialect's
 * records apart, every other field whole. Unchanged objects were validated when they were stored.
 */
function validateChanged(prev: Model, next: Model): Model {
  const problems: Problem[] = [];
  const own: Own = { dialects: (p, n) => validateShape(Dialects.shape, p, n, ["dialects"], problems) };
  for (const kind of COLLECTIONS) own[kind] = (p, n) => validateElements(kind, p as unknown[], n as unknown[], problems);
  const out = validateShape(ModelSchema.shape, prev, next, [], problems, own);
  if (problems.length) throw new ModelError(problems);
  return out as Model;
}

/** A collection's new or replaced elements, parsed (the same array when none changed). */
function validateElements(kind: string, prev: unknown[], next: unknown[], problems: Problem[]): unknown[] {
  if (!Array.isArray(next)) {
    problems.push({ path: kind, message: "must be an array" });
    return next;
  }
  let copy: unknown[] | undefined;
  const parse = (o: unknown, i: number) => {
    const r = ELEMENT[kind]!.safeParse(o);
    if (!r.success) for (const iss of r.error.issues) problems.push({ path: formatPath([kind, i, ...iss.path]), message: iss.message });
    else (copy ??= [...next])[i] = r.data;
  };
  const at = changedPositions(prev, next);
  if (at) for (const i of at) parse(next[i], i);
  else {
    const before = new Set(prev);
    next.forEach((o, i) => before.has(o) || parse(o, i));
  }
  return copy ?? next;
}

/**
 * `next`, an object of `shape` (at path `at`): each field that is not the same value as in `prev`
 * parsed by its schema (or by its `own` function), unknown fields reported.
 */
function validateShape(shape: Record<string, unknown>, prev: unknown, next: unknown, at: string[], problems: Problem[], own: Own = {}): Record<string, unknown> {
  if (typeof next !== "object" || next === null) {
    problems.push({ path: formatPath(at), message: "must be an object" });
    return next as Record<string, unknown>;
  }
  const before = (prev ?? {}) as Record<string, unknown>;
  const after = next as Record<string, unknown>;
  const out: Record<string, unknown> = { ...after };
  for (const [name, schema] of Object.entries(shape)) {
    const v = after[name];
    if (v === before[name]) continue;
    if (own[name]) {
      out[name] = own[name](before[name], v);
      continue;
    }
    const r = (schema as Schema).safeParse(v);
    if (!r.success) for (const iss of r.error.issues) problems.push({ path: formatPath([...at, name, ...iss.path]), message: iss.message });
    else out[name] = r.data;
  }
  for (const k of Object.keys(after)) if (!(k in shape)) problems.push({ path: formatPath([...at, k]), message: "unrecognized key" });
  return out;
}

/**
 * One element per key in every collection (the store's rows), the dialects' invariants (their
 * records' references, Apinizer's deployed policies), and owners. Runs for every write (validateChanged, and the full parse of PUT /v1/config) and for
 * the bootstrap seed, so no dialect can store what another one refuses. With `prev` (the stored
 * model), checks whose inputs are the same objects as in `prev` are skipped.
 */
export function checkControlRefs(model: Model, prev?: Model): void {
  const problems: { path: string; message: string }[] = [];
  const same = (k: keyof Model) => prev?.[k] === model[k];
  // The store keeps one row per key: a second element with the same key would silently replace the first.
  for (const kind of COLLECTIONS) {
    if (same(kind)) continue;
    const field = keyField(kind);
    const list = model[kind] as unknown as Record<string, unknown>[];
    const before = prev?.[kind] as unknown as Record<string, unknown>[] | undefined;
    // Elements replaced in place under the same keys: `prev` had no duplicate, so neither has this.
    const at = before && changedPositions(before, list);
    if (at?.every((i) => i < before!.length && list[i]![field] === before![i]![field])) continue;
    const seen = new Set<unknown>();
    list.forEach((o, i) => {
      if (seen.has(o[field])) problems.push({ path: `${kind}[${i}].${field}`, message: `duplicate ${field} "${String(o[field])}"` });
      seen.add(o[field]);
    });
  }
  problems.push(...dialectProblems(model, prev));
  problems.push(...ownershipProblems(model, prev));
  if (problems.length) throw new ModelError(problems);
}

export class WritePath {
  readonly store: Store;
  readonly runtime: Enforcer;
  /** File-backed objects' contents: dialects read and mutate models with them filled in; the store gets the paths alone. */
  readonly files: FileSource;
  /** As stored. */
  #model: Model;
  /** The store revision `#model` is at (-1: not known yet). */
  #revision = -1;

  /** Called after each model put in force here, with its store revision (a fleet node keeps a local copy). */
  onApplied: ((model: Model, revision: number) => void) | undefined;

  /** `files`: the runtime's own (filereload.ts), which reads the files of every model it applies. */
  constructor(store: Store, runtime: Enforcer, model: Model, files = new FileSource()) {
    this.store = store;
    this.runtime = runtime;
    this.#model = model;
    this.files = files;
  }

  /** The committed model (what the running snapshot was compiled from), file-backed contents filled in. */
  get model(): Model {
    return this.files.resolve(this.#model);
  }

  /** The committed model as stored: file-backed objects hold their paths alone. */
  get stored(): Model {
    return this.#model;
  }

  get revision(): number {
    return this.#revision;
  }

  /**
   * Another node committed `revision` (a fleet on one PostgreSQL): put its model in force here,
   * unless this node is already there. Throws ModelError, keeping the old model, if it does not compile.
   */
  async adopt(model: Model, revision: number): Promise<boolean> {
    if (revision <= this.#revision) return false;
    this.runtime.apply(model);
    this.#model = model;
    this.#revision = revision;
    this.onApplied?.(model, revision);
    await this.runtime.settled();
    return true;
  }

  /**
   * One admin write. `mutate` gets the stored model (file-backed contents filled in) and returns
   * the next one (sharing unchanged objects) and a result; the change is validated, compiled,
   * committed (file-backed objects as their paths) and live on return.
   */
  async write<T>(ctx: WriteContext, summary: string, mutate: (model: Model) => { model: Model; result: T }, opts: { full?: boolean } = {}): Promise<T> {
    let applied: Model | undefined;
    let prev: Model | undefined;
    const audit = auditEntry(ctx, summary);
    try {
      const out = await this.store.transact(
        (m) => {
          prev = m;
          const live = this.files.resolve(m);
          const r = mutate(live);
          if (r.model === live) return { model: m, result: r.result };
          // parseModel prunes the dialects' records itself (all of them); a partial write prunes what it may have orphaned.
          const parsed = opts.full ? parseModel(r.model) : pruneDialects(validateChanged(live, r.model), live);
          // Reads the files new objects name; refuses (409) contents given for a file-backed object.
          const model = this.files.resolve(parsed);
          authorize(ctx.principal, live, model);
          checkControlRefs(model, live);
          refuseExpiredServerCerts(live, model); // whoever writes
          return { model: this.files.strip(model), result: r.result };
        },
        {
          audit,
          beforeCommit: (model) => {
            if (model === prev) return;
            const before = this.runtime.snapshot;
            const next = this.runtime.apply(model); // throws ModelError (and keeps the old snapshot) if it does not compile
            applied = model;
            // Read from the compiled certificates, whatever their PEM came from (an upload or a file).
            ctx.warnings.push(...uploadWarnings(before, next));
          },
        },
      );
      this.#model = out.model;
      this.#revision = Math.max(this.#revision, out.revision);
      if (applied) this.onApplied?.(out.model, out.revision);
      // Answered once every worker process enforces it, so the next request anywhere sees it.
      if (applied) await this.runtime.settled();
      return out.result;
    } catch (e) {
      // The snapshot went live but the commit failed: put the stored model back.
      if (applied && prev) this.runtime.apply(prev);
      if (e instanceof ApiError || e instanceof ModelError) {
        ctx.audited = true;
        await this.store.audit({ ...audit, status: toApiError(e).status, summary: `refused: ${summary}: ${e.message}` }).catch(() => {});
      }
      throw e;
    }
  }

  /** Replaces the whole model (PUT /v1/config), with the full parser. */
  replace<T>(ctx: WriteContext, summary: string, build: (current: Model) => { model: unknown; result: T }): Promise<T> {
    return this.write(ctx, summary, (m) => {
      const r = build(m);
      return { model: r.model as Model, result: r.result };
    }, { full: true });
  }
}
