// Worker supervision as an operator meets it: a worker killed under load is replaced while
// the other keeps answering; reloads (SIGHUP, POST /v1/reload) under load fail no request;
// a crash loop makes the primary give up; SIGTERM lets requests in flight finish.
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki } from "../helpers/harness.ts";
import { get, sample, startGroup, untilTrue, type Group } from "./group.ts";

const model = (origin: string) => (pk: DevPki) => ({
  certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
  trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
  hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" as const } }],
  routes: [{ id: "echo", hostname: "localhost", origin }],
  default_certificate: "srv",
});

/** Load until stopped: `conns` clients on new connections and `keepalive` on kept-alive ones, one request at a time each. */
function load(port: number, p: DevPki, o: { conns: number; keepalive: number }) {
  let running = true;
  const stats = { ok: 0, failed: [] as string[], byWorker: new Map<string, number>() };
  const one = async (agent?: https.Agent) => {
    try {
      const a = await get(port, { cert: p.client, agent });
      if (a.status === 200) {
        stats.ok++;
        stats.byWorker.set(a.worker, (stats.byWorker.get(a.worker) ?? 0) + 1);
      } else stats.failed.push(`status ${a.status}`);
    } catch (e) {
      stats.failed.push((e as Error).message);
    }
  };
  const loops = [
    ...Array.from({ length: o.conns }, async () => {
      while (running) await one();
    }),
    ...Array.from({ length: o.keepalive }, async () => {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      while (running) await one(agent);
      agent.destroy();
    }),
  ];
  return {
    stats,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

describe("worker supervision", () => {
  let p: DevPki;
  let origin: string;
  const groups: Group[] = [];
  const closers: (() => void)[] = [];

  beforeAll(async () => {
    p = await pki();
    const echo = await startEcho();
    origin = echo.url;
    closers.push(() => echo.server.close());
  });
  afterAll(async () => {
    await Promise.all(groups.map((g) => g.stop()));
    closers.forEach((c) => c());
  });
  const start = async (args: string[] = []) => {
    const g = await startGroup(model(origin), args);
    groups.push(g);
    return g;
  };

  it("replaces a worker killed with SIGKILL under load while the other keeps answering, and counts the restart", async () => {
    const g = await start();
    const before = await g.health();
    const victim = before.workers.find((w) => w.slot === 0)!;
    const l = load(g.port, p, { conns: 2, keepalive: 2 });
    await untilTrue(async () => l.stats.ok >= 20, 20_000, "load to start");
    process.kill(victim.pid, "SIGKILL");
    const okAtKill = l.stats.ok;
    await untilTrue(async () => {
      const h = await g.health();
      return h.workers.some((w) => w.slot === 0 && w.pid !== victim.pid && w.state === "ready");
    }, 20_000, "a replacement for worker 0");
    const afterRestart = l.stats.ok;
    await untilTrue(async () => (l.stats.byWorker.get("0") ?? 0) > 0 && l.stats.ok > afterRestart + 20, 20_000, "load on the replacement");
    const s = await l.stop();
    // Only requests on the dead worker's own connections may fail; the other worker answered throughout.
    expect(afterRestart).toBeGreaterThan(okAtKill);
    expect(s.failed.length).toBeLessThanOrEqual(4);
    const m = await g.metrics();
    expect(sample(m, 'certgate_worker_restarts_total{reason="SIGKILL"}')).toBe(1);
    expect(sample(m, 'certgate_workers{state="ready"}')).toBe(2);
    expect(g.log()).toContain('"msg":"worker died"');
  }, 90_000);

  it("reloads three times in a row under new-connection and keep-alive load without failing a request", async () => {
    const g = await start();
    const l = load(g.port, p, { conns: 2, keepalive: 3 });
    await untilTrue(async () => l.stats.ok >= 20, 20_000, "load to start");
    let generation = Math.max(...(await g.health()).workers.map((w) => w.generation));
    for (const how of ["SIGHUP", "api", "SIGHUP"]) {
      const okBefore = l.stats.ok;
      if (how === "api") {
        const r = await g.api("POST", "/v1/reload");
        expect(r.status).toBe(200);
        expect(r.body.reloaded).toBe(2);
      } else g.child.kill("SIGHUP");
      await untilTrue(async () => {
        const h = await g.health();
        const ready = h.workers.filter((w) => w.state === "ready");
        return ready.length === 2 && ready.every((w) => w.generation > generation);
      }, 30_000, `reload by ${how}`);
      generation = Math.max(...(await g.health()).workers.map((w) => w.generation));
      await untilTrue(async () => l.stats.ok > okBefore + 20, 20_000, "requests after the reload");
    }
    const s = await l.stop();
    expect(s.failed).toEqual([]);
    expect(s.ok).toBeGreaterThan(80);
    expect((g.log().match(/"msg":"reload done"/g) ?? []).length).toBe(3);
    // Retired workers exited: only the two current ones are left.
    await untilTrue(async () => (await g.health()).workers.length === 2, 20_000, "old workers to exit");
    expect(sample(await g.metrics(), 'certgate_worker_restarts_total{reason="SIGKILL"}')).toBeUndefined();
  }, 120_000);

  it("with --reuseport off the workers share one socket, and a reload under load still fails nothing", async () => {
    const g = await start(["--reuseport", "off"]);
    const h = await g.health();
    expect(h.mode).toBe("shared");
    expect(g.log()).toContain("no SO_REUSEPORT: the workers share one listening socket");
    const l = load(g.port, p, { conns: 2, keepalive: 2 });
    await untilTrue(async () => l.stats.ok >= 20, 20_000, "load to start");
    const r = await g.api("POST", "/v1/reload");
    expect(r.status).toBe(200);
    expect(r.body.reloaded).toBe(2);
    const okAfter = l.stats.ok;
    await untilTrue(async () => l.stats.ok > okAfter + 20, 20_000, "requests after the reload");
    const s = await l.stop();
    expect(s.failed).toEqual([]);
  }, 90_000);

  it("gives up on a crash loop: five worker deaths within a minute make the primary exit non-zero", async () => {
    const g = await start();
    const killed = new Set<number>();
    while (g.child.exitCode === null && killed.size < 10) {
      const h = await g.health().catch(() => null);
      const w = h?.workers.find((x) => x.state === "ready" && !killed.has(x.pid));
      if (!w) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      killed.add(w.pid);
      process.kill(w.pid, "SIGKILL");
    }
    expect(await g.exited).toBe(1);
    expect(killed.size).toBe(5);
    expect(g.log()).toMatch(/"msg":"giving up: the workers keep dying","reason":"crash loop: 5 worker deaths within 60 s/);
  }, 90_000);

  it("drains on SIGTERM: a request in flight finishes, new connections are refused, the group exits 0", async () => {
    // A slow origin: the request is in flight when SIGTERM arrives.
    const slow = http.createServer((_req, res) => setTimeout(() => res.end("slow but complete\n"), 1_000));
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", r));
    closers.push(() => slow.close());
    const g = await startGroup(model(`http://127.0.0.1:${(slow.address() as net.AddressInfo).port}`));
    groups.push(g);
    const inflight = get(g.port, { cert: p.client });
    await new Promise((r) => setTimeout(r, 300));
    g.child.kill("SIGTERM");
    const a = await inflight;
    expect(a.status).toBe(200);
    expect(a.body).toBe("slow but complete\n");
    expect(await g.exited).toBe(0);
    await expect(get(g.port, { cert: p.client })).rejects.toThrow(/ECONNREFUSED/);
  }, 60_000);

  it("with --workers 1 runs in one process, as before workers existed", async () => {
    const g = await start(["--workers", "1"]);
    const h = await g.health();
    expect(h.workers).toBeUndefined();
    expect((await get(g.port, { cert: p.client })).worker).toBe("0");
    expect(await g.metrics()).not.toContain('worker="');
    const r = await g.api("POST", "/v1/reload");
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ reloaded: 0 });
  });
});
