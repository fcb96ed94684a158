// Keep-alive connection pools to origins (undici), one per distinct origin configuration,
// shared across snapshots so a config change does not drop warm connections.
import { Pool } from "undici";
import type { CompiledRoute } from "./snapshot.ts";

export class Origins {
  readonly #pools = new Map<string, Pool>();

  get(route: CompiledRoute): Pool {
    let pool = this.#pools.get(route.originKey);
    if (!pool) {
      const tls = route.tls;
      pool = new Pool(route.origin.origin, {
        connect: {
          timeout: route.connectTimeoutMs,
          ...(tls && {
            ca: tls.ca,
            cert: tls.cert,
            key: tls.key,
            servername: tls.serverName,
            rejectUnauthorized: tls.verify,
          }),
        },
        headersTimeout: route.readTimeoutMs,
        bodyTimeout: route.readTimeoutMs,
        keepAliveTimeout: 4_000,
      });
      this.#pools.set(route.originKey, pool);
    }
    return pool;
  }

  /** Closes pools no route uses any more (in-flight requests finish first). */
  retain(keys: Set<string>): void {
    for (const [key, pool] of this.#pools) {
      if (keys.has(key)) continue;
      this.#pools.delete(key);
      pool.close().catch(() => {});
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#pools.values()].map((p) => p.destroy()));
    this.#pools.clear();
  }
}
