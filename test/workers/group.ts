// `certgate serve --workers N` as an operator runs it: a primary child process with its
// workers, real ports, a bootstrap file; every response names its worker (--debug-worker-id).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type tls from "node:tls";
import { pki } from "../helpers/harness.ts";
import type { ModelInput } from "../../src/model/schema.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Issued } from "../../src/pki/issue.ts";

const CLI = resolve("src/cli.js");
export const TOKEN = "workers-test-token";

export interface Group {
  child: ChildProcess;
  port: number;
  admin: string;
  dataDir: string;
  /** Everything the group logged so far (primary and workers share stdout). */
  log(): string;
  exited: Promise<number | null>;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>; // eslint-disable-line @typescript-eslint/no-explicit-any
  health(): Promise<{ workers: { slot: number; pid: number; state: string; config_version: number; generation: number }[]; config_version: number; mode: string }>;
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export async function startGroup(build: (p: DevPki) => ModelInput, args: string[] = [], nodeArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Group> {
  const p = await pki();
  const dir = mkdtempSync(join(tmpdir(), "certgate-workers-"));
  const config = join(dir, "certgate.json");
  writeFileSync(config, JSON.stringify(build(p)));
  const child = spawn(process.execPath, [...nodeArgs, CLI, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", "--data", join(dir, "data"), "--config", config, "--workers", "2", "--debug-worker-id", "--drain-timeout", "3s", ...args], {
    env: { ...process.env, CERTGATE_ADMIN_TOKEN: TOKEN, CERTGATE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const { port, admin } = await new Promise<{ port: number; admin: string }>((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`serve did not start:\n${out}`)), 30_000);
    void exited.then((code) => rej(new Error(`serve exited ${code}:\n${out}`)));
    const poll = setInterval(() => {
      const line = out.split("\n").find((l) => l.includes('"certgate listening"'));
      if (!line) return;
      clearInterval(poll);
      clearTimeout(timer);
      const j = JSON.parse(line) as { listen: string; admin: string };
      res({ port: Number(j.listen.split(":").pop()), admin: `http://${j.admin}` });
    }, 20);
  });
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(admin + path, { method, headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
  return {
    child,
    port,
    admin,
    dataDir: join(dir, "data"),
    log: () => out,
    exited,
    api,
    health: async () => (await fetch(`${admin}/healthz`)).json() as never,
    metrics: async () => (await fetch(`${admin}/metrics`)).text(),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

export interface Answer {
  status: number;
  worker: string;
  body: string;
  reused: boolean;
  socket: tls.TLSSocket;
}

/** One GET; a new connection unless `agent` keeps one alive. */
export async function get(port: number, o: { servername?: string; path?: string; cert?: Issued; agent?: https.Agent; session?: Buffer; host?: string } = {}): Promise<Answer> {
  const p = await pki();
  const servername = o.servername ?? "localhost";
  return new Promise((resolvePromise, reject) => {
    const req = https.get(
      {
        host: "127.0.0.1",
        port,
        path: o.path ?? "/",
        servername,
        ca: p.serverCa.certPem,
        headers: { host: o.host ?? servername },
        cert: o.cert?.certPem,
        key: o.cert?.keyPem,
        agent: o.agent ?? false,
        ...(o.session ? { session: o.session } : {}),
      },
      (res) => {
        let body = "";
        // A keep-alive agent takes the socket back at the end of the response.
        const socket = res.socket as tls.TLSSocket;
        const reused = socket.isSessionReused();
        res.setEncoding("utf8");
        res.on("data", (c: string) => (body += c));
        res.on("end", () => {
          resolvePromise({ status: res.statusCode ?? 0, worker: String(res.headers["certgate-worker"] ?? ""), body, reused, socket });
        });
      },
    );
    req.on("error", reject);
  });
}

/** Opens new connections until one lands on `worker` (the kernel spreads them by 4-tuple hash). */
export async function onWorker(worker: string, attempt: () => Promise<Answer>, tries = 60): Promise<Answer> {
  for (let i = 0; i < tries; i++) {
    const a = await attempt();
    if (a.worker === worker) return a;
  }
  throw new Error(`no connection reached worker ${worker} in ${tries} tries`);
}

/** The value of one sample in Prometheus text, e.g. metric(text, 'certgate_workers{state="ready"}'). */
export function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export function untilTrue(check: () => Promise<boolean>, timeoutMs = 20_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return (async () => {
    while (Date.now() < deadline) {
      if (await check()) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`timed out waiting for ${what}`);
  })();
}
