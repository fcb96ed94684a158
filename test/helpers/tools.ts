// Independent peers: openssl and curl, run as child processes with a bounded time.
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], input = "", timeoutMs = 15_000, cwd?: string, env?: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 4 << 20, cwd, env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    // A child may exit (or close its stdin) before reading its input: the EPIPE that follows
    // is not a test failure (its exit code and stderr say what happened), and unhandled it
    // failed whichever test was running when a busy machine delayed this write.
    child.stdin?.on("error", () => {});
    child.stdin?.end(input);
  });
}

/** Writes PEM strings to files in a fresh temp dir; returns their paths by name. */
export function pemFiles(files: Record<string, string>): Record<string, string> {
  const dir = mkdtempSync(join(tmpdir(), "certgate-test-"));
  const out: Record<string, string> = {};
  for (const [name, body] of Object.entries(files)) writeFileSync((out[name] = join(dir, name)), body, { mode: 0o600 });
  return out;
}
