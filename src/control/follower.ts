// A fleet node's ear on the shared store: LISTEN for the revision every commit notifies
// (pgstore.ts), and put each newer model in force here. A node that missed notifications
// (restart, a cut connection) catches up by revision when it reconnects, with backoff.
import pg from "pg";
import type { Logger } from "../observability/log.ts";
import { CONFIG_CHANNEL, redact, TOKENS_CHANGED } from "./pgstore.ts";
import type { WritePath } from "./writepath.ts";

const MAX_BACKOFF_MS = 30_000;

export class StoreFollower {
  readonly #url: string;
  readonly #plane: WritePath;
  readonly #log: Logger;
  #client: pg.Client | undefined;
  #closed = false;
  #backoff = 500;
  #timer: NodeJS.Timeout | undefined;
  /** Catch-ups run one at a time; a notification during one asks for another after it. */
  #running: Promise<void> | undefined;
  #again = false;
  /** Whether the LISTEN connection is up (for /healthz and the metrics). */
  connected = false;

  /** Scoped tokens changed on some node (or notifications may have been missed): forget cached ones. */
  readonly #tokensChanged: () => void;

  constructor(url: string, plane: WritePath, log: Logger, tokensChanged: () => void) {
    this.#url = url;
    this.#plane = plane;
    this.#log = log;
    this.#tokensChanged = tokensChanged;
  }

  start(): Promise<void> {
    return this.#connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#client?.end().catch(() => {});
    await this.#running;
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 5_000 });
    client.on("error", (e) => this.#lost(client, e));
    client.on("end", () => this.#lost(client, new Error("connection closed")));
    client.on("notification", (n) => (n.payload === TOKENS_CHANGED ? this.#tokensChanged() : this.catchUp()));
    try {
      await client.connect();
      await client.query(`LISTEN ${CONFIG_CHANNEL}`);
    } catch (e) {
      return this.#lost(client, e as Error);
    }
    this.#client = client;
    if (!this.connected && this.#backoff > 500) this.#log.info({ msg: "store connection back: catching up", store: redact(this.#url) });
    this.connected = true;
    this.#backoff = 500;
    this.#tokensChanged();
    this.catchUp();
  }

  #lost(client: pg.Client, e: Error): void {
    if (this.#closed || (this.#client && this.#client !== client)) return;
    this.#client = undefined;
    client.end().catch(() => {});
    if (this.connected) this.#log.error({ msg: "lost the store's notifications: serving the last configuration, reconnecting", store: redact(this.#url), err: e.message });
    this.connected = false;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#connect(), this.#backoff);
    this.#backoff = Math.min(this.#backoff * 2, MAX_BACKOFF_MS);
  }

  /** Applies the store's model if it is newer than this node's. */
  catchUp(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          const revision = await this.#plane.store.revision();
          if (revision <= this.#plane.revision) continue;
          const model = await this.#plane.store.load();
          if (await this.#plane.adopt(model, revision)) this.#log.info({ msg: "applied a configuration written on another node", revision });
        } catch (e) {
          this.#log.error({ msg: "could not apply the store's configuration: keeping the last one", err: (e as Error).message });
        }
      } while (this.#again && !this.#closed);
    })().finally(() => (this.#running = undefined));
  }
}
