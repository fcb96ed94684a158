// File-backed certificates, keys, CA bundles and CRLs (`cert_file`, `key_file`, `ca_file`,
// `revocation.crl.crl_file`): the store keeps the path, each node reads the file itself. A model
// as stored holds the paths alone; resolve() gives the model the data plane compiles and the
// dialects show, each file's contents filled in beside its path; strip() turns such a model back
// into its stored form. The contents used are the ones in force: a file that changes on disk is
// taken only once the reloader (filereload.ts) has checked it and applied it, so a half-written
// file never reaches a compile started by an admin write.
import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync, statSync, type BigIntStats } from "node:fs";
import { ModelError, type Model } from "../model/schema.ts";
import { ApiError } from "./apierrors.ts";

export type FileKind = "certificates" | "trust_bundles";
type Obj = Record<string, unknown>;

/** One file-backed field of an object: where its path and its contents sit. */
interface Slot {
  /** The path field, as the model names it (errors and the admin API say it). */
  field: string;
  /** The contents field. */
  content: string;
  path(o: Obj): string | undefined;
  get(o: Obj): string | undefined;
  /** `o` with the contents set (or, with undefined, removed). */
  set(o: Obj, text: string | undefined): Obj;
}

const top = (content: string, field: string): Slot => ({
  field,
  content,
  path: (o) => o[field] as string | undefined,
  get: (o) => o[content] as string | undefined,
  set: ({ [content]: _old, ...rest }, text) => (text === undefined ? rest : { ...rest, [content]: text }),
});

type Crl = { crl_file?: string; pem?: string };
const crlOf = (o: Obj): Crl | undefined => (o.revocation as { crl?: Crl } | undefined)?.crl;
const CRL: Slot = {
  field: "revocation.crl.crl_file",
  content: "revocation.crl.pem",
  path: (o) => crlOf(o)?.crl_file,
  get: (o) => crlOf(o)?.pem,
  set: (o, text) => {
    const { pem: _old, ...crl } = crlOf(o)!;
    return { ...o, revocation: { ...(o.revocation as Obj), crl: text === undefined ? crl : { ...crl, pem: text } } };
  },
};

export const SLOTS: Record<FileKind, Slot[]> = {
  certificates: [top("cert", "cert_file"), top("key", "key_file")],
  trust_bundles: [top("ca", "ca_file"), CRL],
};
export const FILE_KINDS = Object.keys(SLOTS) as FileKind[];

const isFileBacked = (kind: FileKind, o: Obj): boolean => SLOTS[kind].some((s) => s.path(o) !== undefined);

/** A file's contents as read, with what identifies that version on disk. */
export interface FileVersion {
  text: string;
  /** sha256, hex. */
  hash: string;
  /** Device, inode, size, mtime and ctime: changes whenever the file (or the symlink's target) does. */
  sig: string;
}

export const fileHash = (text: string): string => createHash("sha256").update(text).digest("hex");

/** Above this a file is refused: the largest CRLs are a few MB; /dev/zero must not fill memory. */
export const MAX_FILE_BYTES = 16 << 20;

const sigOf = (s: BigIntStats): string => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;

export function statSig(path: string): string {
  return sigOf(statSync(path, { bigint: true }));
}

/**
 * Reads a file now (following symlinks); throws the fs error, or for anything but a regular file
 * of at most MAX_FILE_BYTES. Opened non-blocking: a FIFO must not hang the control plane.
 */
export function readVersion(path: string): FileVersion {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw new Error("not a regular file");
    if (st.size > MAX_FILE_BYTES) throw new Error(`larger than ${MAX_FILE_BYTES} bytes`);
    const buf = Buffer.alloc(Number(st.size));
    let n = 0;
    while (n < buf.length) {
      const got = readSync(fd, buf, n, buf.length - n, n);
      if (!got) break; // truncated meanwhile: what was read is checked like any other contents
      n += got;
    }
    const text = buf.subarray(0, n).toString("utf8");
    return { text, hash: fileHash(text), sig: sigOf(st) };
  } finally {
    closeSync(fd);
  }
}

/** The file-backed fields of one model object: its model path's field, the file's path. */
export function filesOf(kind: FileKind, o: object): { field: string; path: string }[] {
  return SLOTS[kind].flatMap((s) => {
    const path = s.path(o as Obj);
    return path === undefined ? [] : [{ field: s.field, path }];
  });
}

/** Every file a model reads. */
export function pathsOf(model: Model): Set<string> {
  const out = new Set<string>();
  for (const kind of FILE_KINDS) for (const o of model[kind]) for (const f of filesOf(kind, o)) out.add(f.path);
  return out;
}

/** The refusal of a write that changes a file-backed object's contents, in every dialect's envelope (409). */
export function fileBackedConflict(kind: FileKind, o: object, field: string, at?: string): ApiError {
  const what = kind === "certificates" ? "certificate" : "trust bundle";
  return new ApiError(
    "conflict",
    `${what} "${String((o as Obj).id)}" is file-backed (${field}: ${String(SLOTS[kind].find((s) => s.field === field)?.path(o as Obj))}): its contents come from that file on each node; replace the file (certgate reloads it), or delete the ${what} or declare it again without ${field}`,
    at,
  );
}

/** `prev` when it holds the same elements as `next`. */
const same = (next: Obj[], prev: Obj[] | undefined): Obj[] => (prev && prev.length === next.length && prev.every((o, i) => o === next[i]) ? prev : next);

export class FileSource {
  /** Path → the contents in force (what every resolved model holds) or, for a path no model in force uses yet, as last read. */
  readonly #files = new Map<string, FileVersion & { inForce: boolean }>();
  /** Stored object → its resolved object, while the contents it was built from are still the ones in force. */
  readonly #resolved = new WeakMap<object, { texts: (string | undefined)[]; live: object }>();
  /** Resolved object → its stored form. */
  readonly #storedOf = new WeakMap<object, object>();
  /** Collections the same way, so that resolving a list again gives the same array (and stripping it, its stored array) while no element changed. */
  readonly #liveList = new WeakMap<object, Obj[]>();
  /** And whole models: the same model resolved again is the same object while its files are unchanged. */
  readonly #liveModel = new WeakMap<Model, Model>();
  readonly #storedList = new WeakMap<object, Obj[]>();

  /**
   * The model with every file-backed field's contents filled in (the same objects again while
   * nothing changed, so compile memos and the workers' deltas see only what did). Throws
   * ModelError naming the field of each file it cannot read, and a 409 ApiError for an object that
   * brings contents of its own that differ from its file's (an edit of a file-backed object).
   */
  resolve(model: Model): Model {
    const problems: { path: string; message: string }[] = [];
    const lists = FILE_KINDS.map((kind) => this.#resolveList(kind, model[kind] as unknown as Obj[], problems));
    if (problems.length) throw new ModelError(problems);
    if (FILE_KINDS.every((k, i) => lists[i] === model[k])) return model;
    const hit = this.#liveModel.get(model);
    if (hit && FILE_KINDS.every((k, i) => lists[i] === hit[k])) return hit;
    const live = { ...model, ...Object.fromEntries(FILE_KINDS.map((k, i) => [k, lists[i]])) };
    this.#liveModel.set(model, live);
    return live;
  }

  /** The stored form of a resolved model: file-backed objects hold their paths, not the files' contents. */
  strip(model: Model): Model {
    const lists = FILE_KINDS.map((kind) => {
      const list = model[kind] as unknown as Obj[];
      let out: Obj[] | undefined;
      list.forEach((o, i) => {
        if (!isFileBacked(kind, o)) return;
        const stored = (this.#storedOf.get(o) as Obj | undefined) ?? SLOTS[kind].reduce((x, s) => (s.path(x) === undefined ? x : s.set(x, undefined)), o);
        if (stored !== o) (out ??= [...list])[i] = stored;
      });
      return out ? same(out, this.#storedList.get(list)) : list;
    });
    if (FILE_KINDS.every((k, i) => lists[i] === model[k])) return model;
    return { ...model, ...Object.fromEntries(FILE_KINDS.map((k, i) => [k, lists[i]])) };
  }

  #resolveList(kind: FileKind, list: Obj[], problems: { path: string; message: string }[]): Obj[] {
    let out: Obj[] | undefined;
    list.forEach((o, i) => {
      // An object resolve() made earlier starts again from its stored form: its contents may be older than the files'.
      const base = (this.#storedOf.get(o) as Obj | undefined) ?? o;
      if (!isFileBacked(kind, base)) return;
      const slots = SLOTS[kind];
      const texts = slots.map((s) => {
        const path = s.path(base);
        if (path === undefined) return undefined;
        try {
          return this.#contents(path);
        } catch (e) {
          problems.push({ path: `${kind}[${i}].${s.field}`, message: `cannot read ${path}: ${(e as Error).message}` });
          return undefined;
        }
      });
      if (texts.some((t, j) => t === undefined && slots[j]!.path(base) !== undefined)) return;
      slots.forEach((s, j) => {
        const given = s.get(base);
        if (texts[j] !== undefined && given !== undefined && given !== texts[j]) throw fileBackedConflict(kind, base, s.field, `${kind}[${i}].${s.content}`);
      });
      const hit = this.#resolved.get(base);
      let live = hit && hit.texts.every((t, j) => t === texts[j]) ? hit.live : undefined;
      if (!live) {
        live = slots.reduce((x, s, j) => (texts[j] === undefined ? x : s.set(x, texts[j])), base);
        const stored = slots.reduce((x, s, j) => (texts[j] === undefined ? x : s.set(x, undefined)), base);
        this.#resolved.set(base, { texts, live });
        if (stored !== base) this.#resolved.set(stored, { texts, live });
        this.#storedOf.set(live, stored);
      }
      if (live !== o) (out ??= [...list])[i] = live as Obj;
    });
    if (!out) return list;
    out = same(out, this.#liveList.get(list));
    this.#liveList.set(list, out);
    if (!list.some((o) => this.#storedOf.has(o))) this.#storedList.set(out, list); // `list` is a stored one
    return out;
  }

  /** The contents in force for `path`; a path not in force yet is read again whenever it changed on disk. */
  #contents(path: string): string {
    const known = this.#files.get(path);
    if (known?.inForce) return known.text;
    if (known && known.sig === statSig(path)) return known.text;
    const v = readVersion(path);
    this.#files.set(path, { ...v, inForce: false });
    return v.text;
  }

  /** What the model in force reads: its paths' contents become the ones in force; other paths are forgotten. */
  inForce(model: Model): void {
    const paths = pathsOf(model);
    for (const [path, v] of this.#files) {
      if (paths.has(path)) v.inForce = true;
      else this.#files.delete(path);
    }
  }

  /** The version in force of a path (the reloader compares the disk with it). */
  version(path: string): FileVersion | undefined {
    return this.#files.get(path);
  }

  /** Puts new contents in force for some paths (the reloader, once it has checked them); returns what to put back if the apply fails. */
  replace(next: Map<string, FileVersion>): () => void {
    const old = new Map([...next.keys()].map((p) => [p, this.#files.get(p)]));
    for (const [p, v] of next) this.#files.set(p, { ...v, inForce: true });
    return () => {
      for (const [p, v] of old) {
        if (v) this.#files.set(p, v);
        else this.#files.delete(p);
      }
    };
  }
}
