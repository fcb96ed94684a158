// Control-plane test harness: a real Runtime + admin server on 127.0.0.1 over a temp data dir.
import { mkdtempSync } from "node:fs";
import http from "node:http";
import { ManagedCaService } from "../../src/managedca/service.ts";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import { fetch } from "undici";
import { parseModel, type ModelInput } from "../../src/model/schema.ts";
import { Runtime } from "../../src/dataplane/runtime.ts";
import { Snapshot } from "../../src/dataplane/snapshot.ts";
import { apinizerRules, DEFAULT_ENVIRONMENT } from "../../src/dialects/apinizer/rules.ts";
import { createMetrics } from "../../src/observability/metrics.ts";
import { REFUSAL_LABELS } from "../../src/dataplane/request/refusals.ts";
import { createLogger } from "../../src/observability/log.ts";
import { startEcho } from "../../src/demo/echo.ts";
import { listenAdmin } from "../../src/control/admin.ts";
import { loadStore, startControl } from "../../src/control/setup.ts";
import type { WritePath } from "../../src/control/writepath.ts";
import { FileSource } from "../../src/control/filesource.ts";
import { FileReloader } from "../../src/control/filereload.ts";
import { pki } from "../helpers/harness.ts";
import { createDatabase } from "../helpers/postgres.setup.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { Sightings } from "../../src/dataplane/tls/sightings.ts";
import { SeenInventory } from "../../src/control/seen.ts";

export const TOKEN = "test-admin-token";

export interface Certgate {
  dataDir: string;
  port: number;
  admin: string;
  /** The public listener (managed CA's certificate, CRL and OCSP). */
  publicUrl: string;
  runtime: Runtime;
  /** The runtime behind file-backed objects (reads and watches their files), as `certgate serve` wires it. */
  reloader: FileReloader;
  metrics: ReturnType<typeof createMetrics>;
  plane: WritePath;
  /** The inventory of client certificates seen (flushed to the store at close). */
  seen: SeenInventory;
  close(): Promise<void>;
}

let echoUrl: Promise<string> | undefined;
/** One echo origin per test file, kept across restarts. */
export function echo(): Promise<string> {
  return (echoUrl ??= startEcho().then((e) => {
    e.server.unref();
    return e.url;
  }));
}

export const tmpData = (): string => mkdtempSync(join(tmpdir(), "certgate-control-"));

/** The default seed: the dev server certificate (localhost, a.test, b.test...) and routes to the echo origin. */
export function seedModel(p: DevPki, origin: string): ModelInput {
  return {
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    hosts: [],
    routes: ["localhost", "a.test", "b.test", "up.test"].map((h, i) => ({ id: `r${i}`, hostname: h, origin })),
    default_certificate: "srv",
  };
}

/**
 * With usePostgresStores(), startCertgate keeps each data directory's model in a fresh
 * PostgreSQL database instead of SQLite (the same one again for the same directory, as a
 * restart would): test/dialects/on-postgres.test.ts runs every dialect's tests that way.
 */
let pg: { url: string; byDir: Map<string, string> } | undefined;
export function usePostgresStores(url: string): void {
  pg = { url, byDir: new Map() };
}
export const usingPostgres = (): boolean => pg !== undefined;

async function storeUrlFor(dataDir: string): Promise<string | undefined> {
  if (!pg) return undefined;
  let url = pg.byDir.get(dataDir);
  if (!url) {
    pg.byDir.set(dataDir, (url = await createDatabase(pg.url)));
  }
  return url;
}

/** Starts certgate on `dataDir` (new if absent); the seed only fills an empty store. */
export async function startCertgate(dataDir = tmpData(), seed: (p: DevPki, origin: string) => ModelInput = seedModel): Promise<Certgate> {
  const p = await pki();
  const origin = await echo();
  const files = new FileSource();
  const loaded = await loadStore(dataDir, () => parseModel(seed(p, origin)), (m) => void new Snapshot(files.resolve(m), 1, (x) => apinizerRules(x, DEFAULT_ENVIRONMENT)), await storeUrlFor(dataDir));
  const metrics = createMetrics({ refusalReasons: REFUSAL_LABELS });
  const log = createLogger({ level: process.env.TEST_LOG ?? "silent" });
  const seen = new SeenInventory(new Sightings(1000), loaded.store, log);
  await seen.start(3_600_000);
  const runtime = new Runtime(files.resolve(loaded.model), { log, metrics, environment: DEFAULT_ENVIRONMENT, derivedRules: apinizerRules, seen: seen.table });
  const reloader = new FileReloader(runtime, files, loaded.model, { log, metrics });
  const { port } = await runtime.listen("127.0.0.1", 0);
  const publicServer = http.createServer((req, res) => managedCa.handler(req, res));
  const publicAddr: AddressInfo = await listenAdmin(publicServer, "127.0.0.1", 0);
  const publicUrl = `http://127.0.0.1:${publicAddr.port}`;
  const managedCa = new ManagedCaService(dataDir, publicUrl, () => runtime.snapshot.model);
  const { plane, server } = startControl(reloader, metrics, loaded, TOKEN, { onError: (e) => console.error(e), managedCa, seen });
  const addr: AddressInfo = await listenAdmin(server, "127.0.0.1", 0);
  return {
    dataDir,
    port,
    admin: `http://127.0.0.1:${addr.port}`,
    publicUrl,
    runtime,
    reloader,
    metrics,
    plane,
    seen,
    async close() {
      reloader.close();
      publicServer.closeAllConnections();
      publicServer.close();
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
      await runtime.close();
      await seen.stop();
      await loaded.store.close();
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are asserted field by field
export interface ApiReply<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** One admin call; `body` objects are sent as JSON (strings and bytes as they are). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- as above
export async function api<T = any>(
  cg: Certgate | string,
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string | null; header?: "fastly" | "bearer"; headers?: Record<string, string> } = {},
): Promise<ApiReply<T>> {
  const base = typeof cg === "string" ? cg : cg.admin;
  const token = opts.token === undefined ? TOKEN : opts.token;
  const headers: Record<string, string> = { ...opts.headers };
  if (token !== null) {
    if ((opts.header ?? (path.startsWith("/tls/") ? "fastly" : "bearer")) === "fastly") headers["fastly-key"] = token;
    else headers.authorization = `Bearer ${token}`;
  }
  if (body !== undefined) headers["content-type"] ??= path.startsWith("/tls/") ? "application/vnd.api+json" : "application/json";
  const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : typeof body === "string" || body instanceof Uint8Array ? body : JSON.stringify(body) });
  const text = await res.text();
  let parsed: unknown = undefined;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers as unknown as Headers, body: parsed as T, text };
}

/** Asserts the Fastly error envelope and returns its first detail. */
export function fastlyError(r: ApiReply): string {
  if (!Array.isArray(r.body?.errors) || typeof r.body.errors[0]?.title !== "string" || typeof r.body.errors[0]?.detail !== "string")
    throw new Error(`not a Fastly error envelope: ${r.text}`);
  return r.body.errors[0].detail;
}

/** Asserts the Cloudflare error envelope and returns its first message. */
export function cfError(r: ApiReply): string {
  const b = r.body;
  if (b?.success !== false || !Array.isArray(b.errors) || typeof b.errors[0]?.code !== "number" || !Array.isArray(b.messages) || b.result !== null)
    throw new Error(`not a Cloudflare error envelope: ${r.text}`);
  return b.errors[0].message;
}

/** Asserts the Apinizer error envelope and returns its first message. */
export function apinizerError(r: ApiReply): string {
  if (r.body?.success !== false || !Array.isArray(r.body.errors) || typeof r.body.errors[0]?.message !== "string") throw new Error(`not an Apinizer error envelope: ${r.text}`);
  return r.body.errors[0].message;
}

export function nativeError(r: ApiReply): { code: string; message: string } {
  if (typeof r.body?.error?.code !== "string" || typeof r.body.error.message !== "string") throw new Error(`not a native error envelope: ${r.text}`);
  return r.body.error;
}

/** Asserts the error envelope of the dialect that serves `path` (as the admin server picks it) and returns its message. */
export function dialectError(path: string, r: ApiReply): string {
  const p = path.startsWith("/client/v4/") ? path.slice("/client/v4".length) : path;
  if (p.startsWith("/tls/")) return fastlyError(r);
  if (p.startsWith("/accounts/") || p === "/zones" || p.startsWith("/zones/") || p.startsWith("/zones?")) return cfError(r);
  if (p === "/apiops" || p.startsWith("/apiops/")) return apinizerError(r);
  return nativeError(r).message;
}

export const jsonapi = (type: string, attributes?: Record<string, unknown>, relationships?: Record<string, unknown>, id?: string) => ({
  data: { type, ...(id ? { id } : {}), ...(attributes ? { attributes } : {}), ...(relationships ? { relationships } : {}) },
});
export const rel = (type: string, id: string | null) => ({ data: id === null ? null : { type, id } });
