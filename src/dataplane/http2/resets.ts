// Rapid reset (CVE-2023-44487): a client that opens streams and resets them at once makes the
// server start work (here: origin requests) it never has to pay for. Each session has a token
// bucket of client resets; when it runs dry the session gets GOAWAY ENHANCE_YOUR_CALM.
// nghttp2 (1.57+) has its own limit (1,000 then 33/s) but ends with INTERNAL_ERROR; this one
// fires first and names the reason.

/** Resets a client may make at once, then per second, before the connection is closed. */
export const RESET_BURST = 200;
export const RESETS_PER_SECOND = 100;

export class ResetBudget {
  #tokens = RESET_BURST;
  #at = Date.now();

  /** Counts one reset by the client; false when the client is over its budget. */
  take(now = Date.now()): boolean {
    this.#tokens = Math.min(RESET_BURST, this.#tokens + ((now - this.#at) * RESETS_PER_SECOND) / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
