// Per-connection budgets for what costs the server more than the client (each a token bucket;
// over budget, the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed):
// - rapid reset (CVE-2023-44487): streams opened and reset at once make the server start work
//   (here: origin requests) the client never pays for. nghttp2 (1.57+) has its own limit
//   (1,000, then 33/s) but ends with INTERNAL_ERROR; this one fires first and names the reason.
// - PING and SETTINGS floods: each is answered; a client that does not read the answers makes
//   them pile up in memory (node:http2 hands them to the socket at once, so nghttp2's own
//   limit on queued acknowledgements never sees them). Well-behaved clients send a few.

export interface Rate {
  /** Events allowed at once. */
  burst: number;
  /** Then per second. */
  perSecond: number;
}

/** Streams the client resets before their response ended. */
export const RESETS: Rate = { burst: 200, perSecond: 100 };
/** PING frames from the client. */
export const PINGS: Rate = { burst: 100, perSecond: 20 };
/** SETTINGS frames from the client (one at the start, rarely more). */
export const SETTINGS: Rate = { burst: 20, perSecond: 5 };

export class Budget {
  readonly #rate: Rate;
  #tokens: number;
  #at = Date.now();

  constructor(rate: Rate) {
    this.#rate = rate;
    this.#tokens = rate.burst;
  }

  /** Counts one event; false when over budget. */
  take(now = Date.now()): boolean {
    this.#tokens = Math.min(this.#rate.burst, this.#tokens + ((now - this.#at) * this.#rate.perSecond) / 1000);
    this.#at = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}
