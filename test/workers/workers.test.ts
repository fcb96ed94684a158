// Two worker processes behind one port: connections spread, one /metrics, writes and
// revocations enforced by every worker when the admin API answers, CRLs and OCSP fetched once,
// session tickets that resume across workers but never across hosts or policy changes.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEcho } from "../../src/demo/echo.ts";
import { OPENSSL_CONFIG } from "../../src/dataplane/tls/opensslconfig.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { pki } from "../helpers/harness.ts";
import { h2once } from "../helpers/h2client.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { get, onWorker, sample, startGroup, type Answer, type Group } from "./group.ts";

describe("serve --workers 2", () => {
  let g: Group;
  let p: DevPki;
  let ca: OpensslCa;
  let client: Issued;
  const closers: (() => void)[] = [];
  const cacheDir = mkdtempSync(join(tmpdir(), "certgate-compile-cache-"));

  beforeAll(async () => {
    p = await pki();
    ca = new OpensslCa(p.ca);
    client = await issue({ subject: "O=certgate dev,CN=workers client" }, p.ca);
    const echo = await startEcho();
    closers.push(() => echo.server.close());
    // A cache of its own, empty at start: the workers' first start must already find it filled.
    process.env.NODE_COMPILE_CACHE = cacheDir;
    g = await startGroup((pk) => ({
      certificates: [{ id: "srv", cert: pk.server.certPem, key: pk.server.keyPem }],
      trust_bundles: [{ id: "clients", ca: pk.ca.certPem }],
      hosts: [
        { hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } },
        { hostname: "a.test" },
        { hostname: "b.test", mtls: { trust_bundle: "clients", mode: "enforced" } },
      ],
      routes: ["localhost", "a.test", "b.test"].map((h, i) => ({ id: `r${i}`, hostname: h, origin: echo.url })),
      default_certificate: "srv",
    }));
  }, 60_000);
  afterAll(async () => {
    await g?.stop();
    closers.forEach((c) => c());
    delete process.env.NODE_COMPILE_CACHE;
    rmSync(cacheDir, { recursive: true, force: true });
  });

  /** A keep-alive connection that landed on `worker`. */
  async function keptOn(worker: string, cert: Issued): Promise<https.Agent> {
    for (let i = 0; i < 60; i++) {
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      const a = await get(g.port, { cert, agent });
      expect(a.status).toBe(200);
      if (a.worker === worker) return agent;
      agent.destroy();
    }
    throw new Error(`no keep-alive connection reached worker ${worker}`);
  }

  it("starts its workers on the primary's compile cache, written before the first worker starts", async () => {
    const h = await g.health();
    for (const w of h.workers) {
      const env = readFileSync(`/proc/${w.pid}/environ`, "latin1").split("\0");
      expect(env, `worker ${w.slot}'s environment`).toContain(`NODE_COMPILE_CACHE=${cacheDir}`);
    }
    // Node writes a cache at exit; no process of the group has exited, so these entries were
    // flushed by the primary for its workers (one per module, under a per-version directory).
    expect(readdirSync(cacheDir, { recursive: true }).length).toBeGreaterThan(50);
  });

  it("starts its workers with certgate's young generation and OpenSSL configuration, though the primary was started without them", async () => {
    const argv = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0");
    expect(argv(g.child.pid!).filter((a) => /semi-space|openssl-config/.test(a))).toEqual([]);
    for (const w of (await g.health()).workers) {
      const flags = argv(w.pid).filter((a) => /semi-space|openssl-config/.test(a));
      expect(flags, `worker ${w.slot}'s command line`).toEqual([`--openssl-config=${OPENSSL_CONFIG}`, "--max-semi-space-size=16"]);
    }
  });

  it("spreads new connections over both workers, lists them in /healthz and merges their /metrics", async () => {
    const seen = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const a = await get(g.port, { cert: client });
      expect(a.status).toBe(200);
      seen.set(a.worker, (seen.get(a.worker) ?? 0) + 1);
    }
    expect([...seen.keys()].sort()).toEqual(["0", "1"]);
    const h = await g.health();
    expect(h.mode).toBe("reuseport");
    expect(h.workers.map((w) => w.slot)).toEqual([0, 1]);
    expect(new Set(h.workers.map((w) => w.pid)).size).toBe(2);
    expect(h.workers.every((w) => w.state === "ready" && w.config_version === h.config_version)).toBe(true);
    const m = await g.metrics();
    // Counters are summed across workers: every request above, whichever worker answered it.
    expect(sample(m, 'certgate_requests_total{host="localhost",status="200",protocol="http/1.1"}')).toBe(30);
    expect(sample(m, 'certgate_handshakes_total{host="localhost",result="verified",resumed="false",group="X25519MLKEM768"}')).toBe(30); // Node 24 clients offer the post-quantum hybrid first
    // Gauges where a sum means nothing, per worker.
    for (const who of ["primary", "0", "1"]) {
      const rss = sample(m, `process_resident_memory_bytes{worker="${who}"}`);
      expect(rss).toBeGreaterThan(10e6);
      // Each process's share of the pages it shares (Node's code, mapped by all three): less than its RSS.
      const pss = sample(m, `certgate_proportional_memory_bytes{worker="${who}"}`);
      expect(pss).toBeGreaterThan(10e6);
      expect(pss).toBeLessThan(rss!);
    }
    expect(sample(m, 'certgate_workers{state="ready"}')).toBe(2);
    expect(sample(m, `certgate_config_version{worker="0"}`)).toBe(h.config_version);
    expect(m).toContain("certgate_worker_restarts_total");
    expect(sample(m, "process_cpu_seconds_total")).toBeGreaterThan(0);
  });

  it("answers a write once every worker enforces it: a CRL uploaded through the admin API refuses the next request on either worker's keep-alive connection", async () => {
    const victim = await issue({ subject: "O=certgate dev,CN=uploaded victim" }, p.ca);
    const agents = [await keptOn("0", victim), await keptOn("1", victim)];
    await ca.revoke(victim.certPem);
    const put = await g.api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { pem: await ca.gencrl() } });
    expect(put.status).toBe(200);
    // No waiting: the write was answered after both workers applied it.
    for (const [i, agent] of agents.entries()) {
      const a = await get(g.port, { cert: victim, agent });
      expect(a.worker).toBe(String(i));
      expect(a.status).toBe(403);
      expect(a.body).toContain("revoked");
      agent.destroy();
    }
    for (const w of ["0", "1"]) expect((await onWorker(w, () => get(g.port, { cert: victim }))).status).toBe(403);
    expect((await get(g.port, { cert: client })).status).toBe(200);
  });

  it("fetches a CRL distribution point once for the whole group and shares the copy with every worker", async () => {
    let hits = 0;
    let crl = "";
    const server = http.createServer((_req, res) => {
      hits++;
      res.end(crl);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    closers.push(() => server.close());
    const url = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}/ca.crl`;
    const victim = await issue({ subject: "O=certgate dev,CN=fetched victim" }, p.ca);
    await ca.revoke(victim.certPem);
    crl = await ca.gencrl();
    expect((await g.api("PUT", "/v1/trust_bundles/clients/revocation", { crl: { urls: [url], when_missing: "revoked" } })).status).toBe(200);
    for (const w of ["0", "1"]) {
      expect((await onWorker(w, () => get(g.port, { cert: victim }))).status).toBe(403);
      expect((await onWorker(w, () => get(g.port, { cert: client }))).status).toBe(200);
    }
    expect(hits).toBe(1);
    const m = await g.metrics();
    expect(sample(m, 'certgate_crl_fetches_total{result="ok"}')).toBe(1);
  });

  it("asks an OCSP responder once for the whole group: the answer the primary got refuses the certificate on every worker", async () => {
    const responder = await ca.startOcsp();
    closers.push(() => responder.child.kill());
    // Counts the look-ups that reach the responder (openssl ocsp serves one connection at a time).
    let asked = 0;
    const counter = http.createServer((req, res) => {
      asked++;
      const up = http.request(responder.url, { method: req.method, headers: req.headers }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((r) => counter.listen(0, "127.0.0.1", r));
    closers.push(() => counter.close());
    const victim = await issue({ subject: "O=certgate dev,CN=ocsp victim" }, p.ca);
    await ca.revoke(victim.certPem);
    ca.markValid(client.certPem);
    const url = `http://127.0.0.1:${(counter.address() as net.AddressInfo).port}`;
    expect((await g.api("PUT", "/v1/trust_bundles/clients/revocation", { ocsp: { mode: "hard_fail", responder_url: url } })).status).toBe(200);
    const first = await get(g.port, { cert: victim });
    expect(first.status).toBe(403);
    expect(asked).toBe(1);
    const other = first.worker === "0" ? "1" : "0";
    const second = await onWorker(other, () => get(g.port, { cert: victim }));
    expect(second.status).toBe(403);
    expect(asked).toBe(1);
    for (const w of ["0", "1"]) expect((await onWorker(w, () => get(g.port, { cert: client }))).status).toBe(200);
    expect(asked).toBe(2);
    expect((await g.api("PUT", "/v1/trust_bundles/clients/revocation", {})).status).toBe(200);
  });

  it("resumes a session issued by one worker on the other; never on another host, nor after a policy change, on either worker", async () => {
    const fresh = async (servername: string, session?: Buffer): Promise<Answer & { session: Buffer }> => {
      const a = await get(g.port, { servername, cert: client, session });
      // TLS 1.3 tickets arrive after the handshake; a GET's response is late enough for them.
      const s = a.socket.getSession();
      return { ...a, session: s! };
    };
    const origin = await fresh("localhost");
    expect(origin.status).toBe(200);
    const other = origin.worker === "0" ? "1" : "0";
    const resumed = await onWorker(other, () => fresh("localhost", origin.session));
    expect(resumed.reused).toBe(true);
    expect(resumed.status).toBe(200);
    // A ticket from a.test (no mTLS) presented to b.test (enforced): a full handshake, on both workers.
    const plain = await get(g.port, { servername: "a.test" });
    const plainSession = plain.socket.getSession()!;
    for (const w of ["0", "1"]) {
      const a = await onWorker(w, () => fresh("b.test", plainSession));
      expect(a.reused).toBe(false);
      expect(a.status).toBe(200);
    }
    // A policy change (b.test's bundle gains a CA): tickets from before it no longer resume, anywhere.
    const before = await fresh("b.test");
    const cfg = await g.api("GET", "/v1/config");
    const bundles = cfg.body.trust_bundles.map((b: { id: string; ca: string }) => (b.id === "clients" ? { ...b, ca: b.ca + p.otherCa.certPem } : b));
    expect((await g.api("PUT", "/v1/config", { ...cfg.body, trust_bundles: bundles })).status).toBe(200);
    for (const w of ["0", "1"]) {
      const a = await onWorker(w, () => fresh("b.test", before.session));
      expect(a.reused).toBe(false);
      expect(a.status).toBe(200);
    }
    // And the new policy's tickets resume across workers again.
    const after = await fresh("b.test");
    const across = await onWorker(after.worker === "0" ? "1" : "0", () => fresh("b.test", after.session));
    expect(across.reused).toBe(true);
  });

  it("serves HTTP/2 on every worker (ALPN h2), each answer saying which worker served it", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 60 && seen.size < 2; i++) {
      const r = await h2once(g.port, { cert: client });
      expect(r.status).toBe(200);
      seen.add(String(r.headers["certgate-worker"]));
    }
    expect([...seen].sort()).toEqual(["0", "1"]);
  });
});
