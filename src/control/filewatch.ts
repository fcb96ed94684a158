// When to look at file-backed certificates again: file-system events on the directories that
// hold them, and a periodic check as a backstop. Directories, not files: Kubernetes secret
// volumes swap a `..data` symlink in the directory, cert-manager and Vault agent write a new file
// and rename it over the old one, and a watch on the old file would see none of that. A burst of
// events (a swap, a certificate then its key) becomes one check.
import { watch, realpathSync, type FSWatcher } from "node:fs";
import { dirname } from "node:path";

export interface FileWatchOptions {
  /** The periodic check's interval. */
  pollMs: number;
  /** Quiet time after an event before checking (each new event waits again, up to maxDelayMs). */
  debounceMs: number;
  maxDelayMs: number;
  /** Every this many periodic checks, the files are read and hashed even if stat shows no change. */
  fullEvery: number;
}

export const FILE_WATCH_DEFAULTS: FileWatchOptions = { pollMs: 1_000, debounceMs: 100, maxDelayMs: 1_000, fullEvery: 30 };

export class FileWatch {
  readonly #check: (full: boolean) => void;
  readonly #opts: FileWatchOptions;
  /** Directory → its watcher (null: watching failed; the poll covers it and retries). */
  readonly #dirs = new Map<string, FSWatcher | null>();
  #poll: NodeJS.Timeout | undefined;
  #polls = 0;
  #pending: NodeJS.Timeout | undefined;
  #firstEvent = 0;

  /** `check(full)`: look at every file now (full: read them even if stat shows no change). */
  constructor(check: (full: boolean) => void, opts: Partial<FileWatchOptions> = {}) {
    this.#check = check;
    this.#opts = { ...FILE_WATCH_DEFAULTS, ...opts };
  }

  /** Watches the directories of `paths` (and of their symlinks' targets), and no others. */
  watch(paths: Iterable<string>): void {
    const dirs = new Set<string>();
    for (const p of paths) {
      dirs.add(dirname(p));
      try {
        dirs.add(dirname(realpathSync(p)));
      } catch {
        /* missing: the directory above still tells when it appears */
      }
    }
    for (const [dir, w] of this.#dirs) {
      if (dirs.has(dir)) continue;
      w?.close();
      this.#dirs.delete(dir);
    }
    for (const dir of dirs) if (!this.#dirs.get(dir)) this.#dirs.set(dir, this.#open(dir));
    if (dirs.size && !this.#poll) {
      this.#poll = setInterval(() => this.#tick(), this.#opts.pollMs);
      this.#poll.unref();
    } else if (!dirs.size) this.#stopPoll();
  }

  close(): void {
    for (const w of this.#dirs.values()) w?.close();
    this.#dirs.clear();
    this.#stopPoll();
    clearTimeout(this.#pending);
  }

  #open(dir: string): FSWatcher | null {
    try {
      const w = watch(dir, { persistent: false }, () => this.#event());
      w.on("error", () => {
        w.close();
        if (this.#dirs.get(dir) === w) this.#dirs.set(dir, null);
      });
      return w;
    } catch {
      return null;
    }
  }

  #event(): void {
    const now = Date.now();
    if (!this.#pending) this.#firstEvent = now;
    clearTimeout(this.#pending);
    const wait = Math.max(0, Math.min(this.#opts.debounceMs, this.#firstEvent + this.#opts.maxDelayMs - now));
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.#check(false);
    }, wait);
    this.#pending.unref();
  }

  #tick(): void {
    for (const [dir, w] of this.#dirs) if (!w) this.#dirs.set(dir, this.#open(dir));
    this.#check(++this.#polls % this.#opts.fullEvery === 0);
  }

  #stopPoll(): void {
    clearInterval(this.#poll);
    this.#poll = undefined;
  }
}
