// One load-generator process (bench/load.ts over src/loadgen), pinned, bounded in time; its JSON result.
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { LoadResult, LoadSpec } from "../load.ts";
import { pinned, REPO, SERVERNAME, type Pki } from "./servers.ts";

/** What every load says the same way: the server under test, its name, the client certificate. */
export function target(port: number, pki: Pki): Pick<LoadSpec, "host" | "port" | "servername" | "path" | "certFile" | "keyFile"> {
  return { host: "127.0.0.1", port, servername: SERVERNAME, path: "/bench", certFile: pki.clientCert, keyFile: pki.clientKey };
}

export function runLoadProcess(spec: LoadSpec, cpu: string | null): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const [cmd, a] = pinned(cpu, process.execPath, [join(REPO, "bench/load.ts"), JSON.stringify(spec)]);
    const child = spawn(cmd, a, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const limit = spec.measureAt - Date.now() + spec.durationMs + 20_000;
    const timer = setTimeout(() => child.kill("SIGKILL"), limit);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      const line = out.trim().split("\n").at(-1) ?? "";
      try {
        resolve(JSON.parse(line) as LoadResult);
      } catch {
        reject(new Error(`load generator failed (${code ?? signal}): ${err.trim().slice(-600) || out.slice(-300)}`));
      }
    });
  });
}
