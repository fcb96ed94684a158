// A fleet's managed CA, kept in the shared store so every node signs with the same CA: the
// certificate in the clear, the private key sealed with AES-256-GCM under a key-encryption key
// (CERTGATE_KEK, or --kek-file) that never enters the store. The key is never returned by the
// admin API nor logged; without the KEK a node cannot use (or create) the managed CA.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { CaKeystore, CaPair } from "../managedca/keystore.ts";
import type { PostgresStore } from "./pgstore.ts";
import { ApiError } from "./apierrors.ts";

const KEY = "secret:managed_ca";
const AAD = Buffer.from("certgate managed CA private key v1");

/** The key-encryption key: 32 bytes, base64 or hex, from $CERTGATE_KEK or a file; undefined when neither is set. */
export function loadKek(env: NodeJS.ProcessEnv, file?: string): Buffer | undefined {
  const text = file ? readFileSync(file, "utf8").trim() : env.CERTGATE_KEK?.trim();
  if (!text) return undefined;
  const key = /^[0-9a-f]{64}$/i.test(text) ? Buffer.from(text, "hex") : Buffer.from(text, "base64");
  if (key.length !== 32) throw new Error(`${file ?? "CERTGATE_KEK"}: the key-encryption key must be 32 bytes, base64 or hex (openssl rand -base64 32)`);
  return key;
}

export function seal(kek: Buffer, plain: string): string {
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", kek, iv).setAAD(AAD);
  const body = Buffer.concat([c.update(plain, "utf8"), c.final()]);
  return Buffer.concat([iv, c.getAuthTag(), body]).toString("base64");
}

export function unseal(kek: Buffer, sealed: string): string {
  const raw = Buffer.from(sealed, "base64");
  const d = createDecipheriv("aes-256-gcm", kek, raw.subarray(0, 12)).setAAD(AAD);
  d.setAuthTag(raw.subarray(12, 28));
  try {
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
  } catch {
    throw new ApiError("conflict", "the managed CA's key does not decrypt with this key-encryption key (CERTGATE_KEK differs from the node that created it)");
  }
}

export class StoreKeystore implements CaKeystore {
  readonly #store: PostgresStore;
  readonly #kek: Buffer | undefined;

  constructor(store: PostgresStore, kek: Buffer | undefined) {
    this.#store = store;
    this.#kek = kek;
  }

  #needKek(): Buffer {
    if (!this.#kek) throw new ApiError("conflict", "the managed CA of a fleet is kept in the store, sealed with a key-encryption key: set CERTGATE_KEK (32 bytes, base64) or --kek-file on every node");
    return this.#kek;
  }

  async load(): Promise<CaPair | undefined> {
    const stored = await this.#store.get(KEY);
    if (!stored) return undefined;
    const { cert, key } = JSON.parse(stored) as { cert: string; key: string };
    return { certPem: cert, keyPem: unseal(this.#needKek(), key) };
  }

  async create(pair: CaPair): Promise<CaPair> {
    const sealed = seal(this.#needKek(), pair.keyPem);
    await this.#store.putIfAbsent(KEY, JSON.stringify({ cert: pair.certPem, key: sealed }));
    return (await this.load())!;
  }
}
