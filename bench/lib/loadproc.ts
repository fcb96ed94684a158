// One load-generator process (bench/load.ts), pinned, bounded in time; its JSON result.
import { spawn } from "node:child_process";
import { join } from "node:path";
import type { LoadResult, LoadSpec } from "../load.ts";
import { pinned, REPO } from "./servers.ts";

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
