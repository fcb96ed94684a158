// A log line that anyone on the network can trigger (a failed handshake) must not let them
// flood the log: at most `perSecond` lines per one-second window, and one line at the end of
// a window saying how many were left out, so the count of events stays exact.
import type { Logger } from "./log.ts";

export class RateLimitedLog {
  readonly #log: Logger;
  readonly #msg: string;
  readonly #perSecond: number;
  #windowStart = -Infinity;
  #written = 0;
  #suppressed = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, msg: string, perSecond: number) {
    this.#log = log;
    this.#msg = msg;
    this.#perSecond = perSecond;
  }

  /** Logs `fields` under the message at level info, unless this window's lines are used up. */
  info(fields: Record<string, unknown>): void {
    if (!this.#log.isLevelEnabled("info")) return;
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#written = 0;
    }
    if (this.#written < this.#perSecond) {
      this.#written++;
      this.#log.info({ msg: this.#msg, ...fields });
      return;
    }
    this.#suppressed++;
    // One timer at a time, unref'd: it never keeps a stopping process alive.
    this.#timer ??= setTimeout(() => this.flush(), this.#windowStart + 1000 - now).unref();
  }

  /** Writes the count of lines left out since the last count, if any. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#suppressed) return;
    this.#log.info({ msg: `${this.#msg}: more not logged`, suppressed: this.#suppressed, limit_per_second: this.#perSecond });
    this.#suppressed = 0;
  }
}
