// Rotating files as the tools operators run do it, and the clients that watch the rotation:
// an atomic rename (cert-manager's csi driver, Vault agent, `mv`), a Kubernetes secret volume's
// `..data` symlink swap (kubelet's AtomicWriter), a load of new connections that must never fail.
import { mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import tls from "node:tls";
import { pki } from "./harness.ts";
import type { Issued } from "../../src/pki/issue.ts";

/** Writes `text` beside `path` and renames it over `path`: readers see the old file or the new one. */
export function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/**
 * A directory laid out as kubelet lays out a secret volume: `dir/<name>` → `..data/<name>`,
 * `..data` → `..<timestamp>` holding the files. swap() writes a new timestamped directory and
 * renames a new `..data` symlink over the old one, then removes the old directory.
 */
export class SecretVolume {
  readonly dir: string;
  #current = "";
  #n = 0;

  constructor(dir: string, files: Record<string, string>) {
    this.dir = dir;
    mkdirSync(dir, { recursive: true });
    this.#write(files);
    for (const name of Object.keys(files)) symlinkSync(join("..data", name), join(dir, name));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  swap(files: Record<string, string>): void {
    this.#write(files);
  }

  #write(files: Record<string, string>): void {
    const old = this.#current;
    const ts = `..2026_12_04_00_00_${String(++this.#n).padStart(2, "0")}.${process.pid}`;
    mkdirSync(join(this.dir, ts));
    for (const [name, text] of Object.entries(files)) writeFileSync(join(this.dir, ts, name), text);
    symlinkSync(ts, join(this.dir, "..data_tmp"));
    renameSync(join(this.dir, "..data_tmp"), join(this.dir, "..data"));
    this.#current = ts;
    if (old) rmSync(join(this.dir, old), { recursive: true });
  }
}

/** The serial number of the certificate a new connection to `servername` is served. */
export async function servedSerial(port: number, servername = "localhost"): Promise<string> {
  const p = await pki();
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: "127.0.0.1", port, servername, ca: p.serverCa.certPem }, () => {
      resolve(s.getPeerX509Certificate()!.serialNumber);
      s.destroy();
    });
    s.once("error", reject);
  });
}

export interface LoadResult {
  ok: number;
  /** Requests that did not end in 200 (status, or the error), after a 421's retry. */
  failures: string[];
  /** 421 answers (a connection verified under the policy before a change), retried once on a new connection as RFC 9110 §15.5.20 lets a client. */
  retried: number;
}

/**
 * `concurrency` loops of GETs, each on a new connection (so each sees the files in force when it
 * connects), with client certificate `cert` (read at each request: a test may change it), until stop().
 */
export function startLoad(port: number, cert: () => Issued | undefined, concurrency = 4): { stop(): Promise<LoadResult> } {
  const result: LoadResult = { ok: 0, failures: [], retried: 0 };
  let running = true;
  const once = async (): Promise<number> => {
    const p = await pki();
    const c = cert();
    return new Promise((resolve, reject) => {
      const req = https.get(
        { host: "127.0.0.1", port, path: "/", servername: "localhost", headers: { host: "localhost" }, ca: p.serverCa.certPem, cert: c?.certPem, key: c?.keyPem, agent: false },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
        },
      );
      req.on("error", reject);
    });
  };
  const loop = async () => {
    while (running) {
      try {
        let status = await once();
        if (status === 421) {
          result.retried++;
          status = await once();
        }
        if (status === 200) result.ok++;
        else result.failures.push(String(status));
      } catch (e) {
        result.failures.push((e as Error).message);
      }
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return result;
    },
  };
}
