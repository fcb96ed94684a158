// The refusal catalog (src/dataplane/request/refusals.ts) is what clients get and what is counted:
// each refusal driven through a real socket answers the catalog's status and body, closes the
// connection exactly when the catalog says, and is counted under the catalog's label; the
// counter's help text names exactly the catalog's labels. (That every refusal the code emits
// is a catalog reason is the type checker's job: refuse() takes a RefusalReason.) The reasons
// that need an origin, a CRL or a pipeline to happen are checked against a table written out
// in this file (status, whether the connection closes, the label counted), not the catalog.
import net from "node:net";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, pki, startProxy, type ClientOpts, type Proxy } from "../helpers/harness.ts";
import { OpensslCa } from "../helpers/opensslca.ts";
import { exchange, parseResponses, responses } from "../helpers/wire.ts";
import { h2connect, h2once, h2request, type H2RequestOpts } from "../helpers/h2client.ts";
import { REFUSAL_LABELS, REFUSALS, type RefusalReason } from "../../src/dataplane/request/refusals.ts";
import { issue, type Issued } from "../../src/pki/issue.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Model, ModelInput } from "../../src/model/schema.ts";

const get = (target: string, host = "localhost", extra = "") => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

/** Set up before the proxy starts: a CRL revoking a certificate, and origins that stall or refuse upgrades. */
const fx = { crl: "", stallOrigin: "", no101Origin: "" };

function model(p: DevPki, origin: string, aTest: "enforced" | "fail_open" = "enforced"): ModelInput {
  return {
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    trust_bundles: [
      { id: "clients", ca: p.ca.certPem },
      // An uploaded CRL listing one certificate.
      { id: "revoking", ca: p.ca.certPem, revocation: { crl: { pem: fx.crl, urls: [], fetch_distribution_points: false, when_missing: "ignore" } } },
    ],
    hosts: [
      { hostname: "localhost", mtls: { mode: "off" } },
      { hostname: "a.test", mtls: { trust_bundle: "clients", mode: aTest } },
      { hostname: "r.wild.test", mtls: { trust_bundle: "revoking", mode: "enforced" } },
    ],
    routes: [
      { id: "local", hostname: "localhost", origin },
      { id: "dead", hostname: "localhost", path_prefix: "/dead", origin: "http://127.0.0.1:1", origin_protocol: "h2c" },
      { id: "stall", hostname: "localhost", path_prefix: "/stall", origin: fx.stallOrigin, read_timeout_ms: 200 },
      { id: "no101", hostname: "localhost", path_prefix: "/no101", origin: fx.no101Origin },
      { id: "a", hostname: "a.test", origin },
      { id: "r", hostname: "r.wild.test", origin },
    ],
    zones: [{ id: "z", name: "localhost", rules: [{ id: "no-blocked", expression: 'http.request.uri.path eq "/blocked"', action: "block" }] }],
    limits: { max_body_bytes: 10, request_timeout_ms: 300 },
    default_certificate: "srv",
  };
}

describe("the refusal catalog", () => {
  let proxy: Proxy;
  let p: DevPki;
  let revoked: Issued;
  const servers: net.Server[] = [];
  /** Called when the stalling origin receives a request. */
  let stalled: (() => void) | undefined;
  const listen = async (server: net.Server): Promise<string> => {
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  };
  beforeAll(async () => {
    p = await pki();
    const ca = new OpensslCa(p.ca);
    revoked = await issue({ subject: "O=certgate dev,CN=revoked" }, p.ca);
    await ca.revoke(revoked.certPem);
    fx.crl = await ca.gencrl();
    // An origin that reads requests and never answers; one that answers every request with a 200.
    fx.stallOrigin = await listen(net.createServer((s) => s.on("error", () => {}).on("data", () => stalled?.())));
    fx.no101Origin = await listen(net.createServer((s) => s.on("error", () => {}).on("data", () => s.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nno"))));
    proxy = await startProxy(model);
  });
  afterAll(async () => {
    await proxy.close();
    for (const s of servers) s.close();
  });

  /** One refusal on a fresh connection: the answer must be the catalog's. */
  async function expectRefusal(reason: RefusalReason, data: string, o: ClientOpts = { servername: "localhost" }): Promise<void> {
    const { socket } = await connect(proxy.port, o);
    try {
      const { text } = await exchange(socket, data, responses(1));
      const [r] = parseResponses(text);
      const spec = REFUSALS[reason];
      expect(r, reason).toBeDefined();
      expect([r!.status, r!.body], reason).toEqual([spec.status, spec.body]);
      expect(/\r\nconnection: close/i.test(r!.head), `${reason} closes`).toBe(spec.close);
    } finally {
      socket.destroy();
    }
  }

  it("answers each refusal driven through a socket as the catalog says", async () => {
    await expectRefusal("connect", "CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n");
    await expectRefusal("too_many_headers", get("/", "localhost", "x-h: v\r\n".repeat(101)));
    await expectRefusal("headers_too_large", get("/", "localhost", `x-big: ${"v".repeat(20_000)}\r\n`));
    await expectRefusal("malformed", "NOT HTTP AT ALL\r\n\r\n");
    await expectRefusal("transfer_coding", "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
    await expectRefusal("expectation_failed", get("/", "localhost", "Expect: tea\r\n"));
    await expectRefusal("request_timeout", "GET / HTTP/1.1\r\n"); // the head never ends
    await expectRefusal("bad_target", get("/a#fragment"));
    await expectRefusal("bad_host", "GET / HTTP/1.1\r\n\r\n");
    await expectRefusal("misdirected", get("/", "a.test"));
    await expectRefusal("cert_untrusted", get("/", "a.test"), { servername: "a.test", cert: p.untrusted });
    await expectRefusal("cert_expired", get("/", "a.test"), { servername: "a.test", cert: p.expired });
    await expectRefusal("cert_not_yet_valid", get("/", "a.test"), { servername: "a.test", cert: p.notYetValid });
    await expectRefusal("rule", get("/blocked"));
    await expectRefusal("no_route", get("/", "b.test"), { servername: "b.test" });
    await expectRefusal("body_too_large", "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n01234567890");
    await expectRefusal("origin_unreachable", get("/dead"));

    // A policy change under an open connection.
    const { socket } = await connect(proxy.port, { servername: "a.test", cert: p.client });
    try {
      expect(parseResponses((await exchange(socket, get("/", "a.test"), responses(1))).text)[0]!.status).toBe(200);
      const m = proxy.runtime.snapshot.model;
      proxy.runtime.apply({ ...m, hosts: m.hosts.map((h) => (h.hostname === "a.test" ? { ...h, mtls: { ...h.mtls, mode: "fail_open" as const } } : h)) });
      const [r] = parseResponses((await exchange(socket, get("/", "a.test"), responses(1))).text);
      expect([r!.status, r!.body]).toEqual([REFUSALS.policy_changed.status, REFUSALS.policy_changed.body]);
    } finally {
      socket.destroy();
    }

    // Every label counted is the catalog's: the ones driven above, and nothing else.
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_refusals_total");
    const counted = new Set([...text.matchAll(/reason="([^"]+)"/g)].map((m) => m[1]!));
    const driven: RefusalReason[] = ["connect", "too_many_headers", "headers_too_large", "malformed", "transfer_coding", "expectation_failed", "request_timeout", "bad_target", "bad_host", "misdirected", "cert_untrusted", "cert_expired", "cert_not_yet_valid", "rule", "no_route", "body_too_large", "policy_changed"];
    expect([...counted].sort()).toEqual([...new Set(driven.map((r) => REFUSALS[r].metric))].sort());
    for (const label of counted) expect(REFUSAL_LABELS).toContain(label);
  });

  it("over HTTP/2, each refusal on a stream answers the catalog's status and body; a gRPC request gets the catalog's gRPC status instead", async () => {
    const cases: [RefusalReason, string, H2RequestOpts, ClientOpts?][] = [
      ["too_many_headers", "localhost", { headers: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`x-h${i}`, "v"])) }],
      ["bad_target", "localhost", { path: "/a#fragment" }],
      ["bad_host", "localhost", { authority: "[localhost]x" }],
      ["misdirected", "localhost", { authority: "a.test" }],
      ["cert_untrusted", "a.test", {}, { cert: p.untrusted }],
      ["cert_expired", "a.test", {}, { cert: p.expired }],
      ["cert_not_yet_valid", "a.test", {}, { cert: p.notYetValid }],
      ["rule", "localhost", { path: "/blocked" }],
      ["no_route", "b.test", {}],
      ["body_too_large", "localhost", { method: "POST", headers: { "content-length": "11" }, body: "01234567890" }],
      ["origin_unreachable", "localhost", { path: "/dead" }],
    ];
    // The test above left a.test fail-open: enforced again here.
    const base = proxy.runtime.snapshot.model;
    proxy.runtime.apply({ ...base, hosts: base.hosts.map((h) => (h.hostname === "a.test" ? { ...h, mtls: { ...h.mtls, mode: "enforced" as const } } : h)) });
    for (const [reason, sni, req, conn] of cases) {
      const spec = REFUSALS[reason];
      const plain = await h2once(proxy.port, { servername: sni, cert: conn?.cert }, req);
      expect([plain.status, plain.body], reason).toEqual([spec.status, spec.body]);
      const grpc = await h2once(proxy.port, { servername: sni, cert: conn?.cert }, { ...req, method: "POST", headers: { ...req.headers, "content-type": "application/grpc+proto" } });
      expect([grpc.status, grpc.headers["grpc-status"], grpc.body], reason).toEqual([200, String(spec.grpc), ""]);
      expect(decodeURIComponent(String(grpc.headers["grpc-message"]))).toBe(spec.body.trim());
    }
    // gRPC only: a route whose origin speaks HTTP/1.1.
    const h1only = await h2once(proxy.port, { servername: "localhost" }, { method: "POST", headers: { "content-type": "application/grpc" }, body: "" });
    expect([h1only.status, h1only.headers["grpc-status"]]).toEqual([200, String(REFUSALS.grpc_needs_h2_origin.grpc)]);
    // request_timeout: a body that stops arriving.
    const s = await h2connect(proxy.port, { servername: "localhost" });
    try {
      const stream = s.request({ ":method": "POST", ":path": "/", ":authority": "localhost" }, { endStream: false });
      stream.write("x");
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      const status = await new Promise<number>((r) => stream.on("response", (h) => r(Number(h[":status"]))));
      await new Promise((r) => stream.on("close", r));
      expect([status, Buffer.concat(chunks).toString()]).toEqual([REFUSALS.request_timeout.status, REFUSALS.request_timeout.body]);
    } finally {
      s.destroy();
    }
    // policy_changed: the stream after a change gets it, and the connection GOAWAY (no new streams).
    const c = await h2connect(proxy.port, { servername: "a.test", cert: p.client });
    const m = proxy.runtime.snapshot.model;
    try {
      expect((await h2request(c, { authority: "a.test" })).status).toBe(200);
      proxy.runtime.apply({ ...m, hosts: m.hosts.map((h) => (h.hostname === "a.test" ? { ...h, mtls: { ...h.mtls, mode: h.mtls.mode === "enforced" ? ("fail_open" as const) : ("enforced" as const) } } : h)) });
      const r = await h2request(c, { authority: "a.test" });
      expect([r.status, r.body]).toEqual([REFUSALS.policy_changed.status, REFUSALS.policy_changed.body]);
      const goaway = await new Promise<number>((res) => (c.closed ? res(-1) : c.once("goaway", (code: number) => res(code))));
      expect(goaway === 0 || goaway === -1).toBe(true);
    } finally {
      proxy.runtime.apply(m);
      c.destroy();
    }
  });

  /** certgate_refusals_total by reason label (all hosts). */
  async function refusalCounts(): Promise<Map<string, number>> {
    const counts = new Map<string, number>();
    for (const v of (await proxy.metrics.refusals.get()).values) counts.set(String(v.labels.reason), (counts.get(String(v.labels.reason)) ?? 0) + v.value);
    return counts;
  }
  /** The labels whose count changed since `before`, with the change. */
  async function counted(before: Map<string, number>): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const [label, n] of await refusalCounts()) if (n !== (before.get(label) ?? 0)) out[label] = n - (before.get(label) ?? 0);
    return out;
  }

  // Written out here, not read from REFUSALS: what a client gets (status, whether the connection
  // closes after it) and the label it is counted under (null: an origin failure, not a refusal).
  const EXPECTED = {
    cert_revoked: { status: 403, close: true, metric: "cert_revoked" },
    upgrade: { status: 400, close: true, metric: "upgrade" },
    upgrade_failed: { status: 502, close: true, metric: null },
    origin_timeout: { status: 504, close: false, metric: null },
    chunk_extensions_too_large: { status: 413, close: true, metric: "bad_request" },
  } as const;

  /**
   * Sends `data` on a new connection and checks the answer, the close, and the count against
   * EXPECTED; `prior`: an answer (and its label) that comes first on the same connection.
   */
  async function drive(
    reason: keyof typeof EXPECTED,
    data: string,
    opts: { client?: ClientOpts; during?: () => Promise<void>; prior?: { status: number; metric: string | null } } = {},
  ): Promise<void> {
    const want = EXPECTED[reason];
    const before = await refusalCounts();
    const { socket } = await connect(proxy.port, opts.client ?? { servername: "localhost" });
    try {
      const answer = exchange(socket, data, responses(opts.prior ? 2 : 1));
      await opts.during?.();
      const { text } = await answer;
      const statuses = parseResponses(text).map((r) => r.status);
      expect(statuses, `${reason}: ${JSON.stringify(text.slice(0, 300))}`).toEqual([...(opts.prior ? [opts.prior.status] : []), want.status]);
      if (want.close) {
        // The connection closes after the answer: nothing more is read from it.
        const { closed } = await exchange(socket, "", () => false);
        expect(closed, `${reason} closes`).toBe(true);
      } else {
        // It stays open: the next request on it is served.
        const next = parseResponses((await exchange(socket, get("/"), responses(1))).text)[0];
        expect(next?.status, `${reason}: the connection serves the next request`).toBe(200);
      }
      const labels: Record<string, number> = {};
      for (const l of [opts.prior?.metric, want.metric]) if (l) labels[l] = (labels[l] ?? 0) + 1;
      expect(await counted(before), `${reason} counted`).toEqual(labels);
    } finally {
      socket.destroy();
    }
  }

  it("drives cert_revoked, upgrade, upgrade_failed, origin_timeout and chunk_extensions_too_large through sockets: status, close and label as written", async () => {
    await drive("cert_revoked", get("/", "r.wild.test"), { client: { servername: "r.wild.test", cert: revoked } });
    await drive("upgrade_failed", get("/no101", "localhost", "Upgrade: websocket\r\nConnection: Upgrade\r\n"));
    await drive("origin_timeout", get("/stall"));
    // Chunk extensions are body framing: the request is answered from its head (a rule's 403,
    // which keeps the connection), then its body, read to be discarded, is refused.
    const bigExtensions = `POST /blocked HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1;x=${"e".repeat(20_000)}\r\na\r\n0\r\n\r\n`;
    await drive("chunk_extensions_too_large", bigExtensions, { prior: { status: 403, metric: "rule" } });
    // `upgrade`: the front end lets an upgrade through when it reads the head (the route allows
    // websocket); pipelined behind a request the origin holds, it is decided only after that
    // one's answer (a 504), and by then the route allows no upgrade any more.
    const m: Model = proxy.runtime.snapshot.model;
    try {
      await drive("upgrade", get("/stall") + get("/ws", "localhost", "Upgrade: websocket\r\nConnection: Upgrade\r\n"), {
        prior: { status: 504, metric: null },
        during: async () => {
          await new Promise<void>((r) => (stalled = r));
          stalled = undefined;
          proxy.runtime.apply({ ...m, routes: m.routes.map((r) => (r.id === "local" ? { ...r, upgrades: [] } : r)) });
        },
      });
    } finally {
      proxy.runtime.apply(m);
    }
  });

  it("cert_missing is never an HTTP answer: an enforced host's handshake without a certificate fails with the TLS alert certificate_required, and nothing is counted as a refusal", async () => {
    const before = await refusalCounts();
    const failed = await new Promise<string>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: proxy.port, servername: "r.wild.test", ca: p.serverCa.certPem }, () => s.write(get("/", "r.wild.test")));
      s.on("data", (d: Buffer) => resolve(`answered: ${d.toString("latin1").slice(0, 40)}`));
      s.on("error", (e) => resolve(e.message));
      s.on("close", () => resolve("closed without an alert"));
    });
    expect(failed).toMatch(/alert certificate required/);
    expect(await counted(before)).toEqual({});
  });

  it("the refusal counter's help text names exactly the catalog's labels", async () => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_refusals_total");
    const listed = /^# HELP certgate_refusals_total .*\(([^)]*)\)\.$/m.exec(text)?.[1]?.split(", ");
    const catalog = new Set(Object.values(REFUSALS).flatMap((r) => (r.metric === null ? [] : [r.metric])));
    expect(listed?.sort()).toEqual([...catalog].sort());
    for (const label of ["connect", "expectation_failed", "request_timeout", "headers_too_large", "body_too_large"]) expect(listed).toContain(label);
  });
});
