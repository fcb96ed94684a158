// certgate's commands: serve, backup, store migrate, certs dev, rules check, bench (src/cli.js is the entry point).
import { mkdirSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import http from "node:http";
import { loadBootstrap } from "./bootstrap.ts";
import { ModelError, type Model } from "./model/schema.ts";
import { createDevPki, writeDevPki } from "./pki/devpki.ts";
import { containerNotes, demoModel, ensureDevPki } from "./demo/demo.ts";
import { startEcho } from "./demo/echo.ts";
import { createLogger } from "./observability/log.ts";
import { createMetrics } from "./observability/metrics.ts";
import { Runtime } from "./dataplane/runtime.ts";
import { Snapshot } from "./dataplane/snapshot.ts";
import { REFUSAL_LABELS } from "./dataplane/request/refusals.ts";
import { apinizerRules, DEFAULT_ENVIRONMENT } from "./dialects/apinizer/rules.ts";
import { listenAdmin } from "./control/admin.ts";
import { resolveAdminToken } from "./control/auth.ts";
import { ManagedCaService } from "./managedca/service.ts";
import { loadStore, startControl } from "./control/setup.ts";
import { backupStore, DB_FILE } from "./control/storefile.ts";
import type { Enforcer } from "./control/enforcer.ts";
import { WorkerGroup } from "./workers/group.ts";
import { ticketsPerHandshake } from "./dataplane/tls/opensslconfig.ts";
import { servingNodeArgs } from "./nodeargs.ts";
import { StoreFollower } from "./control/follower.ts";
import { PostgresStore, redact } from "./control/pgstore.ts";
import { StoreUnavailable } from "./control/store.ts";
import { LAST_COPY, readLastCopy, saveLastCopy } from "./control/lastcopy.ts";
import { loadKek, StoreKeystore } from "./control/cakeystore.ts";
import { FileSource } from "./control/filesource.ts";
import { blameFiles, FileReloader } from "./control/filereload.ts";
import { availableParallelism } from "node:os";
import { DEFAULT_SEEN_ENTRIES, Sightings } from "./dataplane/tls/sightings.ts";
import { SeenInventory } from "./control/seen.ts";
import { keepYoungGenerationTouched } from "./pretouch.ts";

const USAGE = `usage:
  certgate serve [--listen HOST:PORT] [--admin HOST:PORT] [--public HOST:PORT] [--public-url URL]
                [--data DIR] [--config FILE] [--environment NAME]
                [--admin-tls-cert PEM --admin-tls-key PEM --admin-client-ca PEM]
                [--workers N|auto] [--drain-timeout DURATION] [--reuseport on|off] [--store postgres://…] [--kek-file FILE]
                [--client-cert-inventory N] [--client-cert-inventory-flush DURATION]
      Serve on one TLS port (default 0.0.0.0:8443); admin API on 127.0.0.1:8444; the managed
      CA's certificate, CRL and OCSP on 127.0.0.1:8445 (--public-url: the base URL written
      into issued certificates, default from --public).
      The model is kept in DIR/certgate.db, or with --store (or $CERTGATE_STORE_URL) in PostgreSQL
      (a fleet: every node with the same URL; the managed CA's key sealed with $CERTGATE_KEK or --kek-file); --config (or the demo) only seeds an empty store,
      and only with a model that compiles. A directory that has held a store (DIR/store-state.json)
      refuses to start when certgate.db is missing, damaged or short of committed writes.
      Admin token: $CERTGATE_ADMIN_TOKEN, else DIR/admin-token (generated at first start).
      --environment: the Apinizer environment this node serves (default production).
      Without --config: a demo on https://localhost:8443 (mTLS enforced) using certs/dev.
      --workers: processes serving the public port (default auto: one per CPU); with more than
      one, this process is their primary (store, admin API, managed CA, CRL and OCSP fetching).
      SIGHUP or POST /v1/reload replaces the workers one at a time; SIGTERM drains and exits;
      --drain-timeout (default 30s) bounds how long a stopping worker finishes its requests.
      --reuseport off: the workers share one listening socket instead of one SO_REUSEPORT
      socket each. --debug-worker-id (tests): responses name their worker (certgate-worker).
      --client-cert-inventory: client certificates remembered (GET /v1/client_certificates/seen;
      default 100000, 0: off), flushed to the store every --client-cert-inventory-flush (30s).
  certgate backup --out FILE [--data DIR]
      A consistent copy of DIR/certgate.db (default ./data), also while certgate serves;
      README "Backup and restore" says how to restore it.
  certgate store migrate --from DIR|postgres://… --to DIR|postgres://… [--kek-file FILE]
      Copy a whole store into an empty one (SQLite data directory ↔ PostgreSQL): the model, the
      scoped tokens and, where a KEK ($CERTGATE_KEK or --kek-file) allows, the managed CA.
  certgate certs dev [--out DIR] [--force]
      Write a development PKI (client CA, localhost server certificate, client certificates:
      valid, via an intermediate, expired, not yet valid, untrusted) into DIR (default certs/dev).
  certgate rules check 'EXPRESSION'
      Parse and type-check a rule expression; print it normalised with its fields, or the error.
  certgate bench URL --cert FILE --key FILE [options]
      Measure an mTLS endpoint's handshakes and latency (certgate bench --help: every option).`;

export function parseHostPort(s: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(s);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`${what}: expected HOST:PORT, got "${s}"`);
  return { host: m[1] ?? (m[2] || "0.0.0.0"), port };
}

async function serve(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: "string", default: "0.0.0.0:8443" },
      admin: { type: "string", default: "127.0.0.1:8444" },
      public: { type: "string", default: "127.0.0.1:8445" },
      "public-url": { type: "string" },
      data: { type: "string", default: "./data" },
      config: { type: "string" },
      "admin-tls-cert": { type: "string" },
      "admin-tls-key": { type: "string" },
      "admin-client-ca": { type: "string" },
      environment: { type: "string", default: DEFAULT_ENVIRONMENT }, // Apinizer dialect
      workers: { type: "string", default: "auto" },
      "drain-timeout": { type: "string", default: "30s" },
      reuseport: { type: "string", default: "on" },
      store: { type: "string" }, // postgres://… (default: DIR/certgate.db)
      "kek-file": { type: "string" }, // a fleet's key-encryption key for the managed CA (else $CERTGATE_KEK)
      "debug-worker-id": { type: "boolean", default: false }, // tests: which worker answered (certgate-worker header)
      "client-cert-inventory": { type: "string", default: String(DEFAULT_SEEN_ENTRIES) },
      "client-cert-inventory-flush": { type: "string", default: "30s" },
    },
    strict: true,
  });
  const listen = parseHostPort(values.listen, "--listen");
  const workers = parseWorkers(values.workers);
  const drainTimeoutMs = parseDuration(values["drain-timeout"], "--drain-timeout");
  const seenEntries = parseCount(values["client-cert-inventory"], "--client-cert-inventory", 0, 10_000_000);
  const seenFlushMs = parseDuration(values["client-cert-inventory-flush"], "--client-cert-inventory-flush");
  if (seenFlushMs < 1000) throw new Error(`--client-cert-inventory-flush: at least 1s, got "${values["client-cert-inventory-flush"]}"`);
  if (values.reuseport !== "on" && values.reuseport !== "off") throw new Error(`--reuseport: expected on or off, got "${values.reuseport}"`);
  const admin = parseHostPort(values.admin, "--admin");
  const dataDir = resolve(values.data);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const log = createLogger();
  const metrics = createMetrics({ refusalReasons: REFUSAL_LABELS });

  // --- control plane wiring: the store holds the model; the bootstrap/demo seeds an empty store ---
  let demo: { curl: string[] } | undefined;
  let demoOrigin: string | undefined;
  if (!values.config) {
    const certDir = resolve("certs/dev");
    if (await ensureDevPki(certDir)) console.error(`certgate: wrote a development PKI to ${certDir}`);
    const echo = await startEcho();
    demoOrigin = echo.url;
    const port = listen.port === 443 ? "" : `:${listen.port}`;
    const base = `curl --cacert certs/dev/server-ca.pem`;
    demo = {
      curl: [
        ...containerNotes(),
        `${base} --cert certs/dev/client.pem --key certs/dev/client.key https://localhost${port}/hello   # 200, echo shows Client-Cert`,
        `${base} --http1.1 https://localhost${port}/hello   # refused: no client certificate (TLS alert)`,
        `${base} --cert certs/dev/untrusted.pem --key certs/dev/untrusted.key https://localhost${port}/hello   # 403 untrusted`,
        `${base} --cert certs/dev/expired.pem --key certs/dev/expired.key https://localhost${port}/hello   # 403 expired`,
      ],
    };
  }
  const configFile = values.config;
  const storeUrl = values.store ?? process.env.CERTGATE_STORE_URL;
  const storeName = storeUrl ? redact(storeUrl) : join(dataDir, DB_FILE);
  // File-backed certificates, keys, bundles and CRLs: read here (the primary), whatever the store.
  const files = new FileSource();
  // The snapshot the Runtime below compiles (same derived rules, same environment), with the files' contents.
  const compileSeed = (m: Model) => {
    try {
      void new Snapshot(files.resolve(m), 1, (x) => apinizerRules(x, values.environment));
    } catch (e) {
      throw e instanceof ModelError ? blameFiles(e, m) : e;
    }
  };
  const seed = (): Model => (configFile ? loadBootstrap(configFile) : demoModel(resolve("certs/dev"), demoOrigin!));
  let offline: ReturnType<typeof readLastCopy>;
  const loaded = await loadStore(dataDir, seed, compileSeed, storeUrl).catch((e: unknown) => {
    // A fleet node whose PostgreSQL is unreachable serves the last configuration it applied, if any.
    if (!storeUrl || !(e instanceof StoreUnavailable)) throw e;
    offline = readLastCopy(dataDir);
    if (!offline) throw new Error(`${(e as Error).message}; and ${join(dataDir, LAST_COPY)} holds no configuration this node applied before: cannot start without the store`);
    log.warn({ msg: "the store is unreachable: serving the last configuration this node applied until it is back", store: storeName, revision: offline.revision, saved_at: offline.saved_at, err: (e as Error).message });
    return { store: PostgresStore.offline(storeUrl), model: offline.model, seeded: false };
  });
  if (!loaded.seeded && configFile && !offline) log.warn({ msg: "the store already holds a model: --config is ignored (PUT it to /v1/config to replace)", store: storeName });
  if (!loaded.seeded && demoOrigin && !offline) {
    // The demo's echo origin listens on a new port each start: point every route that used
    // the previous one (the demo's own, and any an operator added against it) at the new one.
    const origin = demoOrigin;
    const r = await loaded.store.transact((m) => {
      const old = m.routes.find((x) => x.id === "echo" && /^http:\/\/127\.0\.0\.1:\d+$/.test(x.origin))?.origin;
      return { model: old ? { ...m, routes: m.routes.map((x) => (x.origin === old ? { ...x, origin } : x)) } : m, result: null };
    });
    loaded.model = r.model;
  }
  const model = loaded.model;
  const adminToken = resolveAdminToken(dataDir).token;
  const adminTls =
    values["admin-tls-cert"] && values["admin-tls-key"] && values["admin-client-ca"]
      ? { cert: readFileSync(values["admin-tls-cert"], "utf8"), key: readFileSync(values["admin-tls-key"], "utf8"), clientCa: readFileSync(values["admin-client-ca"], "utf8") }
      : undefined;
  if (!adminTls && (values["admin-tls-cert"] || values["admin-tls-key"] || values["admin-client-ca"]))
    throw new Error("admin mTLS needs all three of --admin-tls-cert, --admin-tls-key and --admin-client-ca");

  // --- data plane: in this process, or in worker processes this one supervises ---
  // A fleet shares its ticket secret through the store, so any node resumes any node's sessions.
  const tickets = offline ? offline.ticketSecret : loaded.store instanceof PostgresStore ? await loaded.store.sharedSecret("ticket", 32) : ticketSecret(dataDir);
  const common = { log, metrics, ticketSecret: tickets, environment: values.environment, derivedRules: apinizerRules };
  // Set once everything listens; a crash loop before then exits from here.
  let stop = (_why: string, code = 0): void => void loaded.store.close().finally(() => process.exit(code));
  let served: Enforcer;
  let bound: { address: string; port: number };
  let group: WorkerGroup | undefined;
  let single: Runtime | undefined;
  // A file the stored model names that is missing or broken: nothing starts (ModelError naming it, exit 1).
  compileSeed(model);
  const live = files.resolve(model);
  // The inventory of client certificates seen: this process's table (its workers' merged into it), kept in the store.
  const seenTable = seenEntries > 0 ? new Sightings(seenEntries) : undefined;
  const seen = seenTable && new SeenInventory(seenTable, loaded.store, log, () => group?.collectSightings() ?? Promise.resolve());
  void seen?.start(seenFlushMs); // a fleet's PostgreSQL may be down: serving does not wait for the inventory
  if (workers === 1) {
    served = single = new Runtime(live, { ...common, seen: seenTable, debugWorkerId: values["debug-worker-id"] ? "0" : undefined });
    bound = await single.listen(listen.host, listen.port);
    keepYoungGenerationTouched(log);
  } else {
    served = group = new WorkerGroup(live, {
      ...common,
      workers,
      drainTimeoutMs,
      reuseport: values.reuseport === "on",
      debugWorkerId: values["debug-worker-id"],
      seen: seenTable,
      onFatal: (reason) => {
        log.fatal({ msg: "giving up: the workers keep dying", reason });
        stop("crash loop", 1);
      },
    });
    bound = await group.start(listen.host, listen.port);
  }
  // Files are watched here alone: workers get new contents in their deltas, as any change.
  const runtime = new FileReloader(served, files, model, { log, metrics });
  // The public listener: the managed CA's certificate, CRL and OCSP, for any relying party.
  const pub = parseHostPort(values.public, "--public");
  // The handler runs only after listen resolves, by which time managedCa is set.
  const publicServer = http.createServer((req, res) => managedCa.handler(req, res));
  const publicBound = await listenAdmin(publicServer, pub.host, pub.port);
  // A fleet keeps its managed CA in the store (the key sealed under the KEK), one node its data directory.
  const caHome = loaded.store instanceof PostgresStore ? new StoreKeystore(loaded.store, loadKek(process.env, values["kek-file"])) : dataDir;
  const managedCa = new ManagedCaService(caHome, values["public-url"] ?? `http://${publicBound.address.includes(":") ? `[${publicBound.address}]` : publicBound.address}:${publicBound.port}`, () => runtime.snapshot.model);
  // A fleet: every node applies what any node commits (LISTEN/NOTIFY on the shared store).
  let follower: StoreFollower | undefined;
  const { server: adminServer, plane, auth } = startControl(runtime, metrics, loaded, adminToken, {
    tls: adminTls,
    managedCa,
    onError: (e) => log.error({ msg: "admin error", err: e }),
    onUnauthenticated: (method, path, remote) => log.warn({ msg: "admin write without a valid token", method, path, remote }),
    onWarnings: (warnings, write) => log.warn({ msg: "admin write stored with warnings", ...write, warnings }),
    processes: group,
    seen,
    storeHealth: storeUrl ? () => ({ store: { kind: "postgres", connected: follower?.connected ?? false, revision: plane.revision } }) : undefined,
  });
  const adminBound = await listenAdmin(adminServer, admin.host, admin.port);
  if (storeUrl) {
    const f = (follower = new StoreFollower(storeUrl, plane, log, () => auth.invalidate()));
    metrics.collectStoreConnected(() => (f.connected ? 1 : 0));
    plane.onApplied = (m, revision) => {
      try {
        saveLastCopy(dataDir, m, revision, tickets);
      } catch (e) {
        log.error({ msg: "could not save the local copy of the configuration", file: join(dataDir, LAST_COPY), err: (e as Error).message });
      }
    };
    await follower.start();
  }
  // --- end control plane wiring ---
  log.info({ msg: "certgate listening", listen: `${bound.address}:${bound.port}`, admin: `${adminBound.address}:${adminBound.port}`, public: managedCa.publicUrl, config_version: runtime.snapshot.version, workers, ...(group && { sockets: group.mode }), tls13_tickets_per_handshake: ticketsPerHandshake(group ? [...process.execArgv, ...servingNodeArgs()] : process.execArgv) });
  if (demo) console.error(`\ncertgate demo: https://localhost:${bound.port} (mTLS enforced, echo origin)\n  ${demo.curl.join("\n  ")}\n`);

  let stopping = false;
  // Draining: the public port stops accepting, requests in flight finish (drain-timeout at most).
  stop = (sig: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    log.info({ msg: "shutting down", signal: sig, drain_timeout_ms: drainTimeoutMs });
    // The store last: checkpointed and closed, so DATA/certgate.db alone holds every write.
    // Its calls are synchronous, so no transaction is half done when it closes.
    const exit = () => {
      void loaded.store.close().then(
        () => process.exit(code),
        (e: unknown) => {
          log.error({ msg: "closing the store failed", store: storeName, err: (e as Error).message });
          process.exit(1);
        },
      );
    };
    void follower?.close();
    runtime.close();
    adminServer.close();
    adminServer.closeIdleConnections();
    publicServer.close();
    // The inventory's last sightings (the workers' too, sent as they drain) go to the store before it closes.
    void (group ? group.stop() : single!.drain(drainTimeoutMs)).then(() => seen?.stop()).then(exit, exit);
    setTimeout(exit, drainTimeoutMs + 10_000).unref();
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGHUP", () => {
    if (!group) return log.warn({ msg: "SIGHUP: nothing to reload with --workers 1 (the configuration applies live without one)" });
    group.reload().catch((e: unknown) => log.error({ msg: "reload failed: the remaining workers keep serving", err: (e as Error).message }));
  });
}

/** --workers: a count, or auto (the CPUs this process may use). */
function parseWorkers(s: string): number {
  if (s === "auto") return availableParallelism();
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`--workers: expected a number from 1 to 256 or auto, got "${s}"`);
  return n;
}

/** A whole number within bounds. */
function parseCount(s: string, what: string, min: number, max: number): number {
  const n = Number(s);
  if (!/^\d+$/.test(s) || n < min || n > max) throw new Error(`${what}: expected a number from ${min} to ${max}, got "${s}"`);
  return n;
}

/** "30s", "500ms", "2m", or plain seconds. */
export function parseDuration(s: string, what: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(s.trim());
  if (!m) throw new Error(`${what}: expected a duration such as 30s, 500ms or 2m, got "${s}"`);
  return Math.round(Number(m[1]) * ({ ms: 1, s: 1000, m: 60_000 }[m[2] ?? "s"] ?? 1000));
}

/** Kept in the data directory so a restart does not invalidate every client's tickets. */
function ticketSecret(dataDir: string): Buffer {
  const file = join(dataDir, "ticket-secret");
  if (existsSync(file)) return readFileSync(file);
  const secret = randomBytes(32);
  writeFileSync(file, secret, { mode: 0o600 });
  return secret;
}

async function backupCmd(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { data: { type: "string", default: "./data" }, out: { type: "string" } }, strict: true });
  if (!values.out) throw new Error("usage: certgate backup --out FILE [--data DIR]");
  const out = resolve(values.out);
  const r = await backupStore(resolve(values.data), out);
  console.log(JSON.stringify({ backup: out, bytes: r.bytes, revision: r.revision, commits: r.commits }));
}

async function storeMigrate(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { from: { type: "string" }, to: { type: "string" }, "kek-file": { type: "string" } }, strict: true });
  if (!values.from || !values.to) throw new Error("usage: certgate store migrate --from DIR|postgres://… --to DIR|postgres://… [--kek-file FILE]");
  const { migrateStore } = await import("./control/migrate.ts");
  const abs = (w: string) => (/^postgres(ql)?:\/\//.test(w) ? w : resolve(w));
  if (!/^postgres/.test(values.to)) mkdirSync(abs(values.to), { recursive: true, mode: 0o700 });
  console.log(JSON.stringify(await migrateStore(abs(values.from), abs(values.to), loadKek(process.env, values["kek-file"]))));
}

async function certsDev(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { out: { type: "string", default: "certs/dev" }, force: { type: "boolean", default: false } } });
  const dir = resolve(values.out);
  if (existsSync(join(dir, "server.key")) && !values.force) throw new Error(`${dir} already holds a dev PKI (use --force to replace it)`);
  const files = await writeDevPki(dir, await createDevPki());
  console.log(files.join("\n"));
}

async function rulesCheck(argv: string[]): Promise<number> {
  const expr = argv.join(" ");
  if (!expr) throw new Error("usage: certgate rules check 'EXPRESSION'");
  const { checkExpression } = await import("./rules/index.ts");
  const r = checkExpression(expr);
  (r.ok ? process.stdout : process.stderr).write(r.output.endsWith("\n") ? r.output : r.output + "\n");
  return r.ok ? 0 : 1;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === "serve") return serve(argv.slice(1)).then(() => 0);
  if (cmd === "backup") return backupCmd(argv.slice(1)).then(() => 0);
  if (cmd === "store" && sub === "migrate") return storeMigrate(rest).then(() => 0);
  if (cmd === "certs" && sub === "dev") return certsDev(rest).then(() => 0);
  if (cmd === "rules" && sub === "check") return rulesCheck(rest);
  // The load generator is loaded only here: `serve` never pulls it in.
  if (cmd === "bench") {
    const { benchCommand, BENCH_USAGE } = await import("./loadgen/cli.ts");
    if (sub === undefined || sub === "--help" || sub === "-h") {
      (sub ? console.log : console.error)(`usage:\n${BENCH_USAGE}`);
      return sub ? 0 : 2;
    }
    return benchCommand(argv.slice(1));
  }
  console.error(USAGE);
  return cmd === undefined || cmd === "help" || cmd === "--help" ? 0 : 2;
}

main(process.argv.slice(2)).then(
  (code) => code && process.exit(code),
  (e: unknown) => {
    console.error(e instanceof ModelError ? `certgate: invalid configuration:\n${e.message}` : `certgate: ${(e as Error).message}`);
    process.exit(1);
  },
);
