// Rules from the configuration decide real requests (issue: rules engine, wired in).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, request, startProxy, type Proxy } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import { ModelError } from "../../src/model/schema.ts";

describe("rules on a fail-open host", () => {
  let proxy: Proxy;
  let p: DevPki;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [{ hostname: "localhost" }, { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" } }], {
        rules: [{ id: "log-all-posts", expression: 'http.request.method eq "POST"', action: "log" }],
        zones: [
          {
            id: "test-zone",
            name: "test",
            rules: [
              { id: "health", expression: 'http.request.uri.path eq "/admin/health"', action: "allow" },
              {
                id: "mtls-admin",
                expression: '(not cf.tls_client_auth.cert_verified or cf.tls_client_auth.cert_revoked) and starts_with(http.request.uri.path, "/admin")',
                action: "block",
              },
              {
                id: "teapot",
                expression: 'http.request.uri.path eq "/tea" and any(http.request.headers["x-brew"][*] eq "earl grey")',
                action: "block",
                response: { status: 418, content_type: "application/json", body: '{"error":"no tea"}' },
              },
            ],
          },
        ],
      }),
    );
  });
  afterAll(() => proxy.close());

  it("/admin without a certificate: 403 from the rule", async () => {
    const r = await request(proxy.port, { servername: "a.test", path: "/admin" });
    expect(r.status).toBe(403);
  });

  it("/public without a certificate: the origin answers", async () => {
    const r = await request(proxy.port, { servername: "a.test", path: "/public" });
    expect(r.status).toBe(200);
  });

  it("/admin with a valid certificate: the origin answers", async () => {
    const r = await request(proxy.port, { servername: "a.test", path: "/admin", cert: p.client });
    expect(r.status).toBe(200);
  });

  it("/admin with an untrusted certificate: 403", async () => {
    expect((await request(proxy.port, { servername: "a.test", path: "/admin", cert: p.untrusted })).status).toBe(403);
  });

  it("encoded paths cannot dodge the rule", async () => {
    expect((await request(proxy.port, { servername: "a.test", path: "/%61dmin" })).status).toBe(403);
    expect((await request(proxy.port, { servername: "a.test", path: "/public/../admin" })).status).toBe(403);
  });

  it("allow stops evaluation before a later block", async () => {
    expect((await request(proxy.port, { servername: "a.test", path: "/admin/health" })).status).toBe(200);
  });

  it("a block rule's custom status, content type and body", async () => {
    const r = await request(proxy.port, { servername: "a.test", path: "/tea", headers: { "x-brew": "earl grey" } });
    expect(r.status).toBe(418);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.body).toBe('{"error":"no tea"}');
    expect((await request(proxy.port, { servername: "a.test", path: "/tea", headers: { "x-brew": "green" } })).status).toBe(200);
  });

  it("zone rules apply only inside the zone; global log rules count everywhere", async () => {
    expect((await request(proxy.port, { servername: "localhost", path: "/admin" })).status).toBe(200);
    await request(proxy.port, { servername: "localhost", method: "POST", body: "x" });
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_rule_matches_total");
    expect(text).toMatch(/rule="log-all-posts",action="log"} [1-9]/);
    expect(text).toMatch(/rule="mtls-admin",action="block"} [1-9]/);
  });

  it("a bad expression is refused with its position and the old rules stay in force", async () => {
    const model = proxy.runtime.snapshot.model;
    const bad = { ...model, zones: [{ ...model.zones[0]!, rules: [{ ...model.zones[0]!.rules[1]!, expression: "cf.tls_client_auth.cert_verified eq \"x\"" }] }] };
    let err: unknown;
    try {
      proxy.runtime.apply(bad);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ModelError);
    expect((err as ModelError).issues[0]!.path).toBe("zones[0].rules[0].expression");
    expect((err as Error).message).toMatch(/position|\^/);
    expect((await request(proxy.port, { servername: "a.test", path: "/admin" })).status).toBe(403);
  });
});
