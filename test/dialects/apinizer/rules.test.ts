// Units of the Apinizer compiler: literals, DNs, endpoint paths, and the rules a policy becomes.
import { describe, expect, it } from "vitest";
import { compileExpression } from "../../../src/rules/index.ts";
import { parseModel } from "../../../src/model/schema.ts";
import { aclCondition, apinizerRules, endpointPath, lit } from "../../../src/dialects/apinizer/rules.ts";
import { normalizeDn } from "../../../src/dialects/apinizer/routes.ts";

describe("Apinizer compiler", () => {
  it("string literals survive quotes, backslashes and control characters", () => {
    for (const s of ['CN=a\\, b,O="x"', "tab\there", "\\", ""]) {
      const e = compileExpression(`http.request.uri.path eq ${lit(s)}`);
      expect(e.evaluate({ path: s } as never)).toBe(true);
    }
  });

  it("normalises DNs to certgate's RFC 2253 form", () => {
    expect(normalizeDn("CN=Issuing CA, O=Example")).toBe("CN=Issuing CA,O=Example");
    expect(normalizeDn("/C=US/O=Example/CN=Issuing CA")).toBe("CN=Issuing CA,O=Example,C=US");
    expect(normalizeDn("CN=a\\, b , O = x")).toBe("CN=a\\, b,O=x");
  });

  it("joins endpoint paths onto the relative path", () => {
    expect(endpointPath("/myapi", "/orders")).toBe("/myapi/orders");
    expect(endpointPath("/myapi/", "/orders")).toBe("/myapi/orders");
    expect(endpointPath("/", "/orders")).toBe("/orders");
  });

  it("an empty ACL is no condition (nothing allowed); DN entries become one set", () => {
    expect(aclCondition([])).toBeNull();
    expect(aclCondition([{ dn: "CN=a" }, { dn: "CN=b" }])).toBe('cf.tls_client_auth.cert_issuer_dn in {"CN=a" "CN=b"}');
  });

  it("only active, deployed, REQUEST/RESPONSE policies of the node's environment become rules", () => {
    const pol = (name: string, extra: Record<string, unknown> = {}) => ({ name, type: "policy-auth-mtls", pipeline: "REQUEST", scope: "ALL", ...extra });
    const model = parseModel({
      routes: [{ id: "r", hostname: "a.test", path_prefix: "/api", origin: "http://127.0.0.1:1" }],
      apinizer: {
        environments: [{ name: "production" }, { name: "staging" }],
        projects: [
          {
            name: "P",
            api_proxies: [
              {
                name: "X",
                hostname: "a.test",
                relative_path: "/api",
                backend_urls: ["http://127.0.0.1:1"],
                route_id: "r",
                policies: [],
                deployments: [
                  { environment: "production", policies: [pol("on"), pol("off", { active: false }), pol("err", { pipeline: "ERROR" }), pol("none", { validate_certificate: false, validate_acl_for_issuer: false })] },
                  { environment: "staging", policies: [pol("stg", { validate_certificate: false })] },
                ],
              },
            ],
          },
        ],
      },
    });
    expect(apinizerRules(model, "production").map((r) => r.id)).toEqual(["apinizer:P:X:on:no-cert", "apinizer:P:X:on:cert", "apinizer:P:X:on:revoked", "apinizer:P:X:on:issuer"]);
    expect(apinizerRules(model, "staging").map((r) => r.id)).toEqual(["apinizer:P:X:stg:no-cert", "apinizer:P:X:stg:issuer"]);
    expect(apinizerRules(model, "dev")).toEqual([]);
    const rule = apinizerRules(model, "production")[0]!;
    expect(rule).toMatchObject({ action: "block", response: { status: 401, content_type: "application/json" } });
    expect(JSON.parse(rule.response!.body)).toEqual({ error: "unauthorized", message: "mTLS authentication failed: a client certificate is required" });
    for (const r of apinizerRules(model, "production")) expect(() => compileExpression(r.expression)).not.toThrow();
  });
});
