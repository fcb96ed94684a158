// Where the managed CA's certificate and private key live: files in the data directory for one
// node (managed-ca/, key 0600), or a fleet's store, sealed with a key-encryption key
// (control/cakeystore.ts), so every node signs with the same CA.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CaPair {
  certPem: string;
  keyPem: string;
}

export interface CaKeystore {
  /** The stored CA, or undefined while none was created. */
  load(): Promise<CaPair | undefined>;
  /** Stores `pair` unless a CA exists already; returns the stored one (the first writer wins). */
  create(pair: CaPair): Promise<CaPair>;
}

export class FileKeystore implements CaKeystore {
  readonly #dir: string;
  constructor(dir: string) {
    this.#dir = dir;
  }

  load(): Promise<CaPair | undefined> {
    const cert = join(this.#dir, "managed-ca.pem");
    const key = join(this.#dir, "managed-ca.key");
    if (!existsSync(cert) || !existsSync(key)) return Promise.resolve(undefined);
    return Promise.resolve({ certPem: readFileSync(cert, "utf8"), keyPem: readFileSync(key, "utf8") });
  }

  async create(pair: CaPair): Promise<CaPair> {
    const existing = await this.load();
    if (existing) return existing;
    mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    // Key first, then certificate, each written whole: a crash never leaves a cert without its key.
    atomicWrite(join(this.#dir, "managed-ca.key"), pair.keyPem, 0o600);
    atomicWrite(join(this.#dir, "managed-ca.pem"), pair.certPem, 0o644);
    return pair;
  }
}

function atomicWrite(file: string, body: string, mode: number): void {
  writeFileSync(`${file}.tmp`, body, { mode });
  renameSync(`${file}.tmp`, file);
}
