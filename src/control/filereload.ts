// The data plane behind file-backed certificates: an Enforcer that puts every model in force
// with its files' contents (filesource.ts), and puts it in force again when a file changes.
// A changed file is checked first, alone with the object that names it (the PEM parses, the
// key matches the certificate, the bundle holds CA certificates, the CRL verifies against the
// bundle): what fails keeps the last good contents, what passes goes live in one apply. Only
// this process reads files: its workers get the new contents in the usual deltas, and every
// node of a fleet reads its own.
import { ModelError, parseModel, type Model } from "../model/schema.ts";
import { Snapshot } from "../dataplane/snapshot.ts";
import type { Logger } from "../observability/log.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { Enforcer } from "./enforcer.ts";
import { FILE_KINDS, SLOTS, filesOf, pathsOf, readVersion, statSig, type FileKind, type FileSource, type FileVersion } from "./filesource.ts";
import { FileWatch, type FileWatchOptions } from "./filewatch.ts";
import { checkValidity } from "./validity.ts";

export class FileReloader implements Enforcer {
  readonly files: FileSource;
  readonly #inner: Enforcer;
  readonly #log: Logger;
  readonly #metrics: Metrics;
  readonly #watch: FileWatch;
  /** The model in force, as stored (paths, not contents). */
  #model: Model;
  /** Path → the signature of the version on disk last looked at. */
  readonly #seen = new Map<string, string>();
  /** Path → the hash of contents refused (or why it cannot be read): not tried, nor logged, again until they change. */
  readonly #refused = new Map<string, string>();

  /** `inner` is already serving `files.resolve(model)`. */
  constructor(inner: Enforcer, files: FileSource, model: Model, opts: { log: Logger; metrics: Metrics; watch?: Partial<FileWatchOptions> }) {
    this.#inner = inner;
    this.files = files;
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#model = model;
    this.#watch = new FileWatch((full) => this.check(full), opts.watch);
    this.#inForce(model, new Set());
  }

  get snapshot(): Snapshot {
    return this.#inner.snapshot;
  }

  get environment(): string {
    return this.#inner.environment;
  }

  /** Puts a stored model in force with its files' contents; a ModelError names a file it cannot read. */
  apply(model: Model): Snapshot {
    let snap: Snapshot;
    const before = pathsOf(this.#model);
    try {
      snap = this.#inner.apply(this.files.resolve(model));
    } catch (e) {
      this.files.inForce(this.#model); // forget what the refused model read
      throw e instanceof ModelError ? blameFiles(e, model) : e;
    }
    this.#model = model;
    this.#inForce(model, before);
    return snap;
  }

  settled(): Promise<void> {
    return this.#inner.settled();
  }

  close(): void {
    this.#watch.close();
  }

  #inForce(model: Model, before: Set<string>): void {
    this.files.inForce(model);
    const paths = pathsOf(model);
    const now = Date.now() / 1000;
    for (const p of paths) {
      if (before.has(p)) continue;
      this.#seen.set(p, this.files.version(p)!.sig);
      this.#metrics.fileLastReload.set({ path: p }, now);
    }
    for (const p of before) {
      if (paths.has(p)) continue;
      this.#seen.delete(p);
      this.#refused.delete(p);
      this.#metrics.fileLastReload.remove({ path: p });
    }
    this.#watch.watch(paths);
  }

  /** Looks at every file of the model in force; whatever changed and passes its checks goes live in one apply. */
  check(full = false): void {
    const changed = new Map<string, FileVersion>();
    for (const path of pathsOf(this.#model)) {
      const inForce = this.files.version(path)!;
      let v: FileVersion;
      try {
        if (!full && statSig(path) === this.#seen.get(path)) continue;
        v = readVersion(path);
      } catch (e) {
        this.#refuse(path, `unreadable:${(e as NodeJS.ErrnoException).code ?? ""}`, "unreadable", `cannot read it: ${(e as Error).message}`);
        continue;
      }
      this.#seen.set(path, v.sig);
      if (v.hash === inForce.hash) this.#refused.delete(path);
      else if (this.#refused.get(path) !== v.hash) changed.set(path, v);
    }
    if (!changed.size) return;

    // Each object that reads a changed file, checked alone with all its files as they are now on
    // disk (a certificate refused for its old key passes once the new key arrives).
    const triggered = new Set(changed.keys());
    const disk = (path: string): FileVersion => {
      let v = changed.get(path);
      if (!v) {
        try {
          v = readVersion(path);
        } catch {
          v = this.files.version(path)!;
        }
        changed.set(path, v);
      }
      return v;
    };
    const accepted = new Map<string, FileVersion>();
    const refused = new Set<string>();
    for (const kind of FILE_KINDS) {
      for (const o of this.#model[kind]) {
        const files = filesOf(kind, o);
        if (!files.some((f) => triggered.has(f.path))) continue;
        const news = files.filter((f) => disk(f.path).hash !== this.files.version(f.path)!.hash);
        const problem = checkAlone(kind, o, (p) => disk(p).text, (w) => this.#log.warn({ msg: "file reloaded with a warning", warning: w }));
        for (const f of news) {
          if (!problem) accepted.set(f.path, disk(f.path));
          else {
            refused.add(f.path);
            this.#refuse(f.path, disk(f.path).hash, "invalid", `${kindName(kind)} "${o.id}": ${problem}`);
          }
        }
      }
    }
    for (const p of refused) accepted.delete(p); // a file two objects read goes live only if both accept it
    if (!accepted.size) return;
    const undo = this.files.replace(accepted);
    try {
      this.#inner.apply(this.files.resolve(this.#model));
    } catch (e) {
      undo();
      const why = e instanceof ModelError ? blameFiles(e, this.#model).message : (e as Error).message;
      for (const [path, v] of accepted) this.#refuse(path, v.hash, "invalid", why);
      return;
    }
    this.#watch.watch(pathsOf(this.#model)); // a swapped symlink points into another directory now
    const now = Date.now() / 1000;
    for (const [path, v] of accepted) {
      this.#refused.delete(path);
      this.#metrics.fileReloads.inc({ result: "ok" });
      this.#metrics.fileLastReload.set({ path }, now);
      this.#log.info({ msg: "file reloaded", path, sha256: v.hash.slice(0, 16) });
    }
  }

  /** Keeps the contents in force for `path`: counted and logged once per refused version. */
  #refuse(path: string, version: string, result: "invalid" | "unreadable", why: string): void {
    if (this.#refused.get(path) === version) return;
    this.#refused.set(path, version);
    this.#metrics.fileReloads.inc({ result });
    this.#log.warn({ msg: "file not reloaded: keeping its last good contents", path, reason: why });
  }
}

const kindName = (kind: FileKind): string => (kind === "certificates" ? "certificate" : "trust bundle");

const EMPTY = parseModel({});

/**
 * Why an object does not compile with its files' contents given by `text` (the data plane's own
 * checks; and, as for an upload, an expired server certificate is refused), or undefined.
 * `warn` gets what an upload would be warned about (an expired CA in a bundle).
 */
function checkAlone(kind: FileKind, o: object, text: (path: string) => string, warn: (w: string) => void): string | undefined {
  const filled = SLOTS[kind].reduce((x, s) => {
    const p = s.path(x);
    return p === undefined ? x : s.set(x, text(p));
  }, o as Record<string, unknown>);
  try {
    const model = parseModel({ [kind]: [filled] });
    void new Snapshot(model, 0);
    checkValidity(EMPTY, model).forEach(warn);
    return undefined;
  } catch (e) {
    if (!(e instanceof ModelError)) throw e;
    return blameFiles(e, { [kind]: [o] } as unknown as Model, "")
      .issues.map((i) => `${i.path}: ${i.message}`)
      .join("; ");
  }
}

/**
 * The compile's problems with a file's contents, named by the file: `certificates[0].cert_file
 * (/etc/tls/tls.crt): …` rather than `certificates[0].cert: …`. `prefix` is kept before the
 * object's field (a lone object's problems read `cert_file (…)`).
 */
export function blameFiles(e: ModelError, model: Model, prefix?: string): ModelError {
  return new ModelError(
    e.issues.map((i) => {
      const m = /^(certificates|trust_bundles)\[(\d+)\]\.(.+)$/.exec(i.path);
      const o = m && (model[m[1] as FileKind] as unknown as Record<string, unknown>[] | undefined)?.[Number(m[2])];
      const slot = m && o ? SLOTS[m[1] as FileKind].find((s) => s.content === m[3] && s.path(o) !== undefined) : undefined;
      if (!m || !o || !slot) return i;
      return { path: `${prefix ?? `${m[1]}[${m[2]}].`}${slot.field}`, message: `${slot.path(o)}: ${i.message}` };
    }),
  );
}
