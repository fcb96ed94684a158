// How the one model maps onto rows, for every store engine (SQLite, PostgreSQL): each array
// of the model is a collection of rows in `objects` (kind, key, pos, body JSON), every other
// top-level field a row in `scalars`. A write is a list of row operations computed from the
// old and new models by object identity, so a change to one of 10,000 hosts touches one row;
// each engine runs the same operations with the same SQL (ROW_SQL).
import { Model as ModelSchema, type Model } from "../model/schema.ts";
import { changedPositions } from "../model/positions.ts";

/** The model's arrays (stored as rows); everything else is a scalar. */
export const COLLECTIONS = Object.entries(ModelSchema.shape)
  .filter(([, s]) => isArraySchema(s))
  .map(([k]) => k as keyof Model);

function isArraySchema(s: unknown): boolean {
  const def = (s as { def?: { type?: string; innerType?: { def?: { type?: string } } } }).def;
  return def?.type === "array" || (def?.type === "default" && def.innerType?.def?.type === "array");
}

/** The field that keys a collection's rows: `id`, or a host's `hostname`. Two elements with one key would share a row. */
export const keyField = (kind: string): "id" | "hostname" => (kind === "hosts" ? "hostname" : "id");

/** The row key of a collection element. */
export function keyOf(kind: string, obj: Record<string, unknown>): string {
  return String(obj[keyField(kind)]);
}

export type RowOp =
  | { op: "clear" }
  | { op: "clearKind"; kind: string }
  | { op: "put"; kind: string; key: string; pos: number; body: string }
  /** After the kind's highest stored position. */
  | { op: "append"; kind: string; key: string; body: string }
  | { op: "setBody"; kind: string; key: string; body: string }
  | { op: "del"; kind: string; key: string }
  | { op: "scalar"; name: string; value: string };

/** Each operation's statements, `?` placeholders in argument order (PostgreSQL numbers them). */
export const ROW_SQL: { [K in RowOp["op"]]: { sql: string[]; args: (o: Extract<RowOp, { op: K }>) => unknown[] } } = {
  clear: { sql: ["DELETE FROM objects", "DELETE FROM scalars"], args: () => [] },
  clearKind: { sql: ["DELETE FROM objects WHERE kind = ?"], args: (o) => [o.kind] },
  put: { sql: ["INSERT INTO objects (kind, key, pos, body) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET pos = excluded.pos, body = excluded.body"], args: (o) => [o.kind, o.key, o.pos, o.body] },
  append: {
    sql: ["INSERT INTO objects (kind, key, pos, body) VALUES (?, ?, (SELECT COALESCE(MAX(pos), -1) + 1 FROM objects WHERE kind = ?), ?) ON CONFLICT (kind, key) DO UPDATE SET pos = excluded.pos, body = excluded.body"],
    args: (o) => [o.kind, o.key, o.kind, o.body],
  },
  setBody: { sql: ["UPDATE objects SET body = ? WHERE kind = ? AND key = ?"], args: (o) => [o.body, o.kind, o.key] },
  del: { sql: ["DELETE FROM objects WHERE kind = ? AND key = ?"], args: (o) => [o.kind, o.key] },
  scalar: { sql: ["INSERT INTO scalars (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"], args: (o) => [o.name, o.value] },
};

/** Every statement of `ops`, with its arguments. */
export function statements(ops: readonly RowOp[]): { sql: string; args: unknown[] }[] {
  const out: { sql: string; args: unknown[] }[] = [];
  for (const o of ops) {
    const spec = ROW_SQL[o.op] as { sql: string[]; args: (o: RowOp) => unknown[] };
    for (const sql of spec.sql) out.push({ sql, args: sql.includes("?") ? spec.args(o) : [] });
  }
  return out;
}

/** Replaces every row with `model`'s: its collections' elements at positions 0..n-1, every other field a scalar. */
export function allRows(model: Record<string, unknown>): RowOp[] {
  const ops: RowOp[] = [{ op: "clear" }];
  for (const [name, value] of Object.entries(model)) {
    if ((COLLECTIONS as string[]).includes(name)) (value as Record<string, unknown>[]).forEach((o, pos) => ops.push({ op: "put", kind: name, key: keyOf(name, o), pos, body: JSON.stringify(o) }));
    else ops.push({ op: "scalar", name, value: JSON.stringify(value) });
  }
  return ops;
}

/** Only the rows of objects and scalars that are not the same in `prev` and `next`. */
export function rowChanges(prev: Model, next: Model): RowOp[] {
  const ops: RowOp[] = [];
  for (const kind of COLLECTIONS) {
    const before = prev[kind] as unknown as Record<string, unknown>[];
    const after = next[kind] as unknown as Record<string, unknown>[];
    if (before === after) continue;
    // Replaced in place under the same keys (most writes): each keeps its row.
    const at = changedPositions(before, after);
    if (at?.every((i) => i < before.length && keyOf(kind, after[i]!) === keyOf(kind, before[i]!))) {
      for (const i of at) ops.push({ op: "setBody", kind, key: keyOf(kind, after[i]!), body: JSON.stringify(after[i]) });
      continue;
    }
    // Keep positions when the surviving old objects stay in order and new ones are appended.
    const oldIndex = new Map<string, number>();
    before.forEach((o, i) => oldIndex.set(keyOf(kind, o), i));
    let inOrder = true;
    let last = -1;
    let appended = false;
    for (const o of after) {
      const i = oldIndex.get(keyOf(kind, o));
      if (i === undefined) appended = true;
      else if (i < last || appended) inOrder = false;
      else last = i;
    }
    if (!inOrder) {
      ops.push({ op: "clearKind", kind });
      after.forEach((o, pos) => ops.push({ op: "put", kind, key: keyOf(kind, o), pos, body: JSON.stringify(o) }));
      continue;
    }
    // Stored positions are not array indexes (deletes leave gaps): a changed object keeps its
    // own, a new one goes after the highest, so the order read back after a restart is this one.
    const seen = new Set<string>();
    for (const o of after) {
      const key = keyOf(kind, o);
      seen.add(key);
      const i = oldIndex.get(key);
      if (i === undefined) ops.push({ op: "append", kind, key, body: JSON.stringify(o) });
      else if (before[i] !== o) ops.push({ op: "setBody", kind, key, body: JSON.stringify(o) });
    }
    for (const key of oldIndex.keys()) if (!seen.has(key)) ops.push({ op: "del", kind, key });
  }
  for (const [name, value] of Object.entries(next)) {
    if ((COLLECTIONS as string[]).includes(name)) continue;
    if ((prev as Record<string, unknown>)[name] === value) continue;
    ops.push({ op: "scalar", name, value: JSON.stringify(value) });
  }
  return ops;
}

/** The raw model from its rows (objects in (kind, pos) order), before parsing. */
export function rawFromRows(objects: Iterable<Record<string, unknown>>, scalars: Iterable<Record<string, unknown>>): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const k of COLLECTIONS) raw[k] = [];
  for (const r of objects) ((raw[String(r.kind)] ??= []) as unknown[]).push(JSON.parse(String(r.body)));
  for (const r of scalars) raw[String(r.name)] = JSON.parse(String(r.value));
  return raw;
}

/** The same SQL for both engines: objects ordered for rawFromRows, and the scalars. */
export const READ_OBJECTS = "SELECT kind, body FROM objects ORDER BY kind, pos";
export const READ_SCALARS = "SELECT name, value FROM scalars";
