// Admin tokens: the operator's token (CERTGATE_ADMIN_TOKEN, else DATA/admin-token generated at
// first start), plus scoped tokens kept in the store. Compared in constant time on SHA-256s.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type http from "node:http";
import { StoreUnavailable, type Store, type TokenRecord } from "./store.ts";

export interface Principal {
  token_id: string;
  read_only: boolean;
  /** Limited to this Cloudflare account: the Cloudflare endpoints only, and there only the account's objects and hostnames (ownership.ts). */
  account_id: string | null;
}

export const sha256 = (s: string): Buffer => createHash("sha256").update(s).digest();

export function newTokenSecret(): string {
  return "cgt_" + randomBytes(32).toString("base64url");
}

/** The operator token: the environment's, else the data directory's, else a new one written there (0600) and announced once. */
export function resolveAdminToken(dataDir: string, env = process.env, announce: (msg: string) => void = (m) => console.error(m)): { token: string; source: "env" | "file" | "generated" } {
  const fromEnv = env.CERTGATE_ADMIN_TOKEN?.trim();
  if (fromEnv) return { token: fromEnv, source: "env" };
  const file = join(dataDir, "admin-token");
  if (existsSync(file)) return { token: readFileSync(file, "utf8").trim(), source: "file" };
  const token = newTokenSecret();
  writeFileSync(file, token + "\n", { mode: 0o600, flag: "wx" });
  announce(`certgate: generated an admin token (stored in ${file}, shown once):\n  ${token}\n`);
  return { token, source: "generated" };
}

/** The secret a request carries: `Fastly-Key: T`, `Authorization: Bearer T`, or Cloudflare's `X-Auth-Key`... only the first two. */
export function presentedToken(req: http.IncomingMessage): string | undefined {
  const fk = req.headers["fastly-key"];
  if (typeof fk === "string" && fk) return fk.trim();
  const auth = req.headers.authorization;
  if (typeof auth === "string") {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  return undefined;
}

export class Authenticator {
  readonly #adminHash: Buffer;
  readonly #store: Store;
  #tokens: TokenRecord[] | undefined;

  constructor(adminToken: string, store: Store) {
    this.#adminHash = sha256(adminToken);
    this.#store = store;
  }

  /** Forget cached scoped tokens (after a change). */
  invalidate(): void {
    this.#tokens = undefined;
  }

  async authenticate(secret: string | undefined): Promise<Principal | null> {
    if (!secret) return null;
    const h = sha256(secret);
    let found: Principal | null = null;
    if (timingSafeEqual(h, this.#adminHash)) found = { token_id: "admin", read_only: false, account_id: null };
    try {
      this.#tokens ??= await this.#store.listTokens();
      found = match(h, this.#tokens, found);
      // Another fleet node may have created this token a moment ago, before its notification
      // reached this one: read the list again. Bounded, so wrong tokens never become store load.
      if (!found && this.#mayReread()) found = match(h, (this.#tokens = await this.#store.listTokens()), found);
    } catch (e) {
      // A fleet's store is down: the operator token still works (reads, and the 503 a write gets).
      if (e instanceof StoreUnavailable && found) return found;
      throw e;
    }
    return found;
  }

  #rereadWindow = 0;
  #rereads = 0;
  #mayReread(now = Date.now()): boolean {
    if (now - this.#rereadWindow >= 1_000) {
      this.#rereadWindow = now;
      this.#rereads = 0;
    }
    return this.#rereads++ < REREADS_PER_SECOND;
  }
}

/** Store reads a second that unknown tokens may cause (per process). */
const REREADS_PER_SECOND = 5;

/** Compares against every token, always: the time taken does not depend on which matched. */
function match(h: Buffer, tokens: readonly TokenRecord[], found: Principal | null): Principal | null {
  for (const t of tokens) {
    if (timingSafeEqual(h, Buffer.from(t.hash, "hex")) && !found) found = { token_id: t.id, read_only: t.read_only, account_id: t.account_id };
  }
  return found;
}
