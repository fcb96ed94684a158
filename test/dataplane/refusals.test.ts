// The refusal catalog (src/dataplane/request/refusals.ts) is what clients get and what is counted:
// each refusal driven through a real socket answers the catalog's status and body, closes the
// connection exactly when the catalog says, and is counted under the catalog's label; the
// counter's help text names exactly the catalog's labels. (That every refusal the code emits
// is a catalog reason is the type checker's job: refuse() takes a RefusalReason.)
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, pki, startProxy, type ClientOpts, type Proxy } from "../helpers/harness.ts";
import { exchange, parseResponses, responses } from "../helpers/wire.ts";
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
      { id: "dead", hostname: "localhost", path_prefix: "/dead", origin: "http://127.0.0.1:1" },
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

  it("the refusal counter's help text names exactly the catalog's labels", async () => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_refusals_total");
    const listed = /^# HELP certgate_refusals_total .*\(([^)]*)\)\.$/m.exec(text)?.[1]?.split(", ");
    const catalog = new Set(Object.values(REFUSALS).flatMap((r) => (r.metric === null ? [] : [r.metric])));
    expect(listed?.sort()).toEqual([...catalog].sort());
    for (const label of ["connect", "expectation_failed", "request_timeout", "headers_too_large", "body_too_large"]) expect(listed).toContain(label);
  });
});
