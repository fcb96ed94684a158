// The refusal catalog (src/dataplane/request/refusals.ts) is what clients get and what is counted:
// each refusal driven through a real socket answers the catalog's status and body, closes the
// connection exactly when the catalog says, and is counted under the catalog's label; the
// counter's help text names exactly the catalog's labels. (That every refusal the code emits
// is a catalog reason is the type checker's job: refuse() takes a RefusalReason.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, pki, startProxy, type ClientOpts, type Proxy } from "../helpers/harness.ts";
import { exchange, parseResponses, responses } from "../helpers/wire.ts";
import { h2connect, h2once, h2request, type H2RequestOpts } from "../helpers/h2client.ts";
import { REFUSAL_LABELS, REFUSALS, type RefusalReason } from "../../src/dataplane/request/refusals.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { ModelInput } from "../../src/model/schema.ts";

const get = (target: string, host = "localhost", extra = "") => `GET ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

function model(p: DevPki, origin: string, aTest: "enforced" | "fail_open" = "enforced"): ModelInput {
  return {
    certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
    trust_bundles: [{ id: "clients", ca: p.ca.certPem }],
    hosts: [
      { hostname: "localhost", mtls: { mode: "off" } },
      { hostname: "a.test", mtls: { trust_bundle: "clients", mode: aTest } },
    ],
    routes: [
      { id: "local", hostname: "localhost", origin },
      { id: "dead", hostname: "localhost", path_prefix: "/dead", origin: "http://127.0.0.1:1", origin_protocol: "h2c" },
      { id: "a", hostname: "a.test", origin },
    ],
    zones: [{ id: "z", name: "localhost", rules: [{ id: "no-blocked", expression: 'http.request.uri.path eq "/blocked"', action: "block" }] }],
    limits: { max_body_bytes: 10, request_timeout_ms: 300 },
    default_certificate: "srv",
  };
}

describe("the refusal catalog", () => {
  let proxy: Proxy;
  let p: DevPki;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy(model);
  });
  afterAll(() => proxy.close());

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

  it("the refusal counter's help text names exactly the catalog's labels", async () => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_refusals_total");
    const listed = /^# HELP certgate_refusals_total .*\(([^)]*)\)\.$/m.exec(text)?.[1]?.split(", ");
    const catalog = new Set(Object.values(REFUSALS).flatMap((r) => (r.metric === null ? [] : [r.metric])));
    expect(listed?.sort()).toEqual([...catalog].sort());
    for (const label of ["connect", "expectation_failed", "request_timeout", "headers_too_large", "body_too_large"]) expect(listed).toContain(label);
  });
});
