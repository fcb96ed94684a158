// vitest globalSetup: one real PostgreSQL for the whole run, from Debian's binaries, in a
// temporary directory on 127.0.0.1 (or the server CERTGATE_TEST_PG_URL names). Tests get its
// URL with inject("pgUrl"); "" when there is none, and then, unless CERTGATE_REQUIRE_PG is set
// (CI sets it), the PostgreSQL cases are skipped with a note.
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    pgUrl: string;
  }
}

function pgBin(): string | undefined {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return undefined;
  const versions = readdirSync(root).filter((v) => existsSync(join(root, v, "bin/initdb"))).sort((a, b) => Number(b) - Number(a));
  return versions[0] && join(root, versions[0], "bin");
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A throw-away PostgreSQL cluster on 127.0.0.1, from Debian's binaries; undefined when none is installed. */
export async function startCluster(): Promise<{ url: string; stop(): void; start(): void; remove(): void } | undefined> {
  const bin = pgBin();
  if (!bin) return undefined;
  const dir = mkdtempSync(join(tmpdir(), "certgate-pg-"));
  // initdb refuses to run as root: as root, the cluster belongs to the postgres user.
  const asRoot = process.getuid?.() === 0;
  const as = (cmd: string, args: string[]) => (asRoot ? execFileSync("runuser", ["-u", "postgres", "--", cmd, ...args], { stdio: "pipe" }) : execFileSync(cmd, args, { stdio: "pipe" }));
  if (asRoot) chownSync(dir, Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), Number(execFileSync("id", ["-g", "postgres"]).toString().trim()));
  const data = join(dir, "data");
  as(join(bin, "initdb"), ["-D", data, "--auth=trust", "--username=certgate", "--encoding=UTF8", "--no-sync"]);
  const port = await freePort();
  const start = () => void as(join(bin, "pg_ctl"), ["-D", data, "-l", join(dir, "log"), "-w", "-t", "30", "-o", `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, "start"]);
  const stop = () => void spawnSync(asRoot ? "runuser" : join(bin, "pg_ctl"), [...(asRoot ? ["-u", "postgres", "--", join(bin, "pg_ctl")] : []), "-D", data, "-m", "fast", "-w", "stop"], { stdio: "ignore" });
  start();
  return {
    url: `postgres://certgate@127.0.0.1:${port}/postgres`,
    start,
    stop,
    remove: () => {
      stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export default async function setup(project: TestProject): Promise<(() => void) | undefined> {
  if (process.env.CERTGATE_TEST_PG_URL) {
    project.provide("pgUrl", process.env.CERTGATE_TEST_PG_URL);
    return undefined;
  }
  const cluster = await startCluster();
  if (!cluster) {
    if (process.env.CERTGATE_REQUIRE_PG) throw new Error("CERTGATE_REQUIRE_PG is set but no PostgreSQL is installed (Debian: apt-get install postgresql)");
    console.warn("[postgres] no PostgreSQL installed: the PostgreSQL store cases are skipped (apt-get install postgresql)");
    project.provide("pgUrl", "");
    return undefined;
  }
  project.provide("pgUrl", cluster.url);
  return () => cluster.remove();
}

/** A new, empty database on the server `serverUrl` names; its URL. */
export async function createDatabase(serverUrl: string, prefix = "cg"): Promise<string> {
  const { Client } = (await import("pg")).default;
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
