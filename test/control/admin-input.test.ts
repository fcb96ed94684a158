// What the admin server makes of hostile or odd input, in every dialect: malformed percent-encoding
// in a path, bodies that are not UTF-8, a rule response header with a CRLF, and uploads of expired
// certificates (server certificates refused, expired CAs in a bundle accepted with a warning).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issue, pki } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Issued } from "../../src/pki/issue.ts";
import type { ModelInput } from "../../src/model/schema.ts";
import { connect } from "node:net";
import { api, cfError, dialectError, echo, fastlyError, jsonapi, nativeError, seedModel, startCertgate, TOKEN, type ApiReply, type Certgate } from "./helpers.ts";

const DAY = 86_400_000;
const ACC = "acc1";

describe("admin input", () => {
  let cg: Certgate;
  let p: DevPki;
  let origin: string;
  let expiredServer: Issued;
  let expiredCa: Issued;
  const config = async () => (await api(cg, "GET", "/v1/config")).text;

  beforeAll(async () => {
    p = await pki();
    origin = await echo();
    const past = { notBefore: new Date(Date.now() - 30 * DAY), notAfter: new Date(Date.now() - DAY) };
    expiredServer = await issue({ subject: "CN=old.test", dnsNames: ["old.test"], eku: ["serverAuth"], ...past }, p.serverCa);
    expiredCa = await issue({ subject: "O=certgate test,CN=retired client CA", ca: true, ...past });
    // The bootstrap is not an upload: a certificate that has expired since is stored as it is.
    const seed = (d: DevPki, o: string): ModelInput => {
      const m = seedModel(d, o);
      return { ...m, certificates: [...(m.certificates ?? []), { id: "stale", cert: expiredServer.certPem, key: expiredServer.keyPem }] };
    };
    cg = await startCertgate(undefined, seed);
  });
  afterAll(() => cg.close());

  it("malformed percent-encoding in any path segment is a 400 in the dialect's envelope, never a 500; nothing changes", async () => {
    const before = await config();
    const cases: [string, string][] = [
      ["GET", "/v1/routes/%ZZ"],
      ["DELETE", "/v1/routes/%E0%A4"], // truncated UTF-8 sequence
      ["PUT", "/v1/trust_bundles/%FF/revocation"], // not UTF-8
      ["GET", "/v1/nothing/%C0%AF"], // overlong: no such endpoint either, the encoding is checked first
      ["GET", "/tls/certificates/%ZZ"],
      ["PATCH", "/tls/activations/%"],
      ["GET", "/zones/%ZZ"],
      ["GET", "/client/v4/zones/%ED%A0%80/rulesets"], // a UTF-16 surrogate
      ["GET", "/accounts/%ZZ/access/certificates"],
      ["DELETE", "/zones/z/client_certificates/%G1"],
      ["GET", "/apiops/projects/%ZZ"],
      ["POST", "/apiops/projects/P/apiProxies/%FF/policies/x"],
    ];
    for (const [method, path] of cases) {
      const r = await api(cg, method, path, method === "GET" || method === "DELETE" ? undefined : {});
      expect(r.status, `${method} ${path}`).toBe(400);
      expect(dialectError(path, r), `${method} ${path}`).toMatch(/malformed percent-encoding/);
    }
    expect(await config()).toBe(before);
    // Valid encodings still route: %30 is "0".
    const ok = await api(cg, "GET", "/v1/routes/r%30");
    expect(ok.status).toBe(200);
    expect(ok.body.id).toBe("r0");
  });

  it("a request Node's parser refuses (16 KiB request line, space or raw byte in the target) and a CONNECT are answered in the dialect's envelope", async () => {
    const { port } = new URL(cg.admin);
    const raw = (data: string) =>
      new Promise<string>((resolve, reject) => {
        const c = connect(Number(port), "127.0.0.1", () => c.end(data, "latin1"));
        let out = "";
        c.setEncoding("latin1");
        c.on("data", (d) => (out += d));
        c.on("error", reject);
        c.on("close", () => resolve(out));
      });
    const parse = (res: string): ApiReply => {
      const [head, body = ""] = res.split("\r\n\r\n");
      return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head!)?.[1]), headers: new Headers(), body: body ? JSON.parse(body) : undefined, text: body };
    };
    const long = parse(await raw(`GET /tls/certificates/${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\nFastly-Key: ${TOKEN}\r\n\r\n`));
    expect(long.status).toBe(431);
    expect(fastlyError(long)).toMatch(/exceed 16 KiB/);
    const space = parse(await raw(`GET /client/v4/zones/a b HTTP/1.1\r\nHost: x\r\n\r\n`));
    expect(space.status).toBe(400);
    expect(cfError(space)).toMatch(/malformed HTTP request/);
    const byte = parse(await raw(`GET /v1/routes/\u00e9 HTTP/1.1\r\nHost: x\r\n\r\n`));
    expect(byte.status).toBe(400);
    expect(nativeError(byte).code).toBe("bad_request");
    // CONNECT: Node closed the connection without an answer.
    const connectReq = parse(await raw(`CONNECT /tls/certificates HTTP/1.1\r\nHost: x\r\nFastly-Key: ${TOKEN}\r\n\r\n`));
    expect(connectReq.status).toBe(405);
    expect(fastlyError(connectReq)).toMatch(/CONNECT is not allowed/);
  });

  it("a client still sending after its oversized head gets the 431, not a reset (lingering close)", async () => {
    const { port } = new URL(cg.admin);
    const out = await new Promise<string>((resolve, reject) => {
      let got = "";
      const c = connect(Number(port), "127.0.0.1", () => {
        // A client that reads only once it has sent everything (as many do), and sends more of
        // the request after the server has answered.
        c.pause();
        c.write(`PUT /v1/routes/${"a".repeat(20_000)} HTTP/1.1\r\nHost: x\r\n`);
        setTimeout(() => c.end(`x-pad: ${"b".repeat(200_000)}\r\n\r\n`, () => setTimeout(() => c.resume(), 200)), 150);
      });
      c.setEncoding("latin1");
      c.on("data", (d) => (got += d));
      c.on("error", (e) => reject(new Error(`${e.message} after ${JSON.stringify(got.slice(0, 40))}`)));
      c.on("close", () => resolve(got));
    });
    expect(out).toMatch(/^HTTP\/1\.1 431 /);
  });

  it("a body that is not UTF-8 is a 400 in every dialect, and nothing is stored with U+FFFD", async () => {
    const before = await config();
    const bytes = (...parts: (string | number[])[]) => Buffer.concat(parts.map((x) => (typeof x === "string" ? Buffer.from(x) : Buffer.from(x))));
    const cases: [string, string, Buffer, Record<string, string>?][] = [
      ["PUT", "/v1/routes/u8", bytes(`{"hostname":"u8.test","origin":"${origin}","path_prefix":"/`, [0xff], `"}`)],
      ["PUT", "/v1/config", bytes("routes: []\ncertificates: []\n# ", [0xc3, 0x28], "\n"), { "content-type": "application/yaml" }],
      ["POST", "/tls/mutual_authentications", bytes(`{"data":{"type":"mutual_authentication","attributes":{"name":"`, [0xed, 0xa0, 0x80], `","cert_bundle":${JSON.stringify(p.ca.certPem)}}}}`)],
      ["POST", "/zones", bytes(`{"name":"u8.test","account":{"id":"${ACC}"},"x":"`, [0x80], `"}`)],
      ["POST", "/apiops/projects/U8", bytes(`{"description":"caf`, [0xe9], `"}`)],
    ];
    for (const [method, path, body, headers] of cases) {
      const r = await api(cg, method, path, body, { headers });
      expect(r.status, `${method} ${path}`).toBe(400);
      expect(dialectError(path, r), `${method} ${path}`).toMatch(/not valid UTF-8/);
    }
    expect(await config()).toBe(before);
    expect(await config()).not.toContain("\ufffd");
    // Valid UTF-8 is stored as sent.
    const cafe = await api(cg, "POST", "/apiops/projects/Cafe", bytes(`{"description":"caf`, [0xc3, 0xa9], `"}`));
    expect(cafe.status).toBe(200);
    expect(cg.plane.model.dialects.apinizer.projects.find((x) => x.name === "Cafe")?.description).toBe("café");
  });

  it("a JSON object that String() cannot convert ({toString: 1}) as a route's id is a 400, not a 500 (found by the fuzzer)", async () => {
    const r = await api(cg, "PUT", "/v1/routes/r9", { id: { toString: 1 }, hostname: "r9.test", origin });
    expect(r.status).toBe(400);
    expect(nativeError(r)).toMatchObject({ code: "bad_request", message: "id must be a string" });
  });

  describe("a rule's custom response is refused at the field at fault", () => {
    it("Cloudflare: a CRLF in content_type at .response.content_type, a 5xx status at .response.status, not at the expression", async () => {
      const z = await api(cg, "POST", "/zones", { name: "crlf.test", account: { id: ACC } });
      expect(z.status).toBe(200);
      const ep = `/zones/${z.body.result.id}/rulesets/phases/http_request_firewall_custom/entrypoint`;
      const before = await config();
      const put = (response: Record<string, unknown>) =>
        api(cg, "PUT", ep, { rules: [{ action: "block", expression: 'http.request.uri.path eq "/x"', action_parameters: { response: { status_code: 403, content_type: "text/plain", content: "no\n", ...response } } }] });
      const crlf = await put({ content_type: "text/plain\r\nSet-Cookie: a=b" });
      expect(crlf.status).toBe(400);
      expect(cfError(crlf)).toMatch(/response\.content_type: must be a media type/);
      expect(crlf.body.errors[0].source.pointer).toMatch(/^zones\[\d+\]\.rules\[0\]\.response\.content_type$/);
      expect(crlf.text).not.toMatch(/expression/);
      const status = await put({ status_code: 503 });
      expect(status.status).toBe(400);
      expect(status.body.errors[0].source.pointer).toMatch(/\.response\.status$/);
      expect(await config()).toBe(before);
      expect((await put({})).status).toBe(200);
    });
    it("native /v1/config: a CRLF in a global rule's content_type at rules[0].response.content_type", async () => {
      const cur = (await api(cg, "GET", "/v1/config")).body;
      const r = await api(cg, "PUT", "/v1/config", {
        ...cur,
        rules: [{ id: "b", expression: 'http.request.uri.path eq "/x"', action: "block", response: { content_type: "text/html\nX-Injected: 1" } }],
      });
      expect(r.status).toBe(400);
      expect(nativeError(r)).toMatchObject({ code: "invalid_config", path: "rules[0].response.content_type" });
      // A rule the engine refuses for something other than its expression is reported at the rule.
      const rule = { id: "dup", expression: 'http.request.uri.path eq "/x"', action: "block" };
      const dup = await api(cg, "PUT", "/v1/config", { ...cur, zones: [{ id: "zd", name: "dup.test", rules: [rule, rule] }] });
      expect(dup.status).toBe(400);
      expect(nativeError(dup)).toMatchObject({ code: "invalid_config", path: "zones[0].rules[1]" });
      expect(nativeError(dup).message).toMatch(/duplicate rule id/);
    });
  });

  describe("expired certificates", () => {
    it("Fastly: an expired server certificate is refused (400) on POST even with its key uploaded, and on PATCH; nothing stored", async () => {
      const old = await issue({ subject: "CN=old.test", dnsNames: ["old.test"], notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) }, p.serverCa);
      const key = await api(cg, "POST", "/tls/private_keys", jsonapi("tls_private_key", { key: old.keyPem, name: "old" }));
      expect(key.status).toBe(201);
      const before = cg.plane.model.certificates.length;
      const r = await api(cg, "POST", "/tls/certificates", jsonapi("tls_certificate", { cert_blob: old.certPem }));
      expect(r.status).toBe(400);
      expect(fastlyError(r)).toMatch(/certificates\[\d+\]\.cert: the certificate \(old\.test\) expired on \d{4}-/);
      expect(r.body.errors[0].title).toBe("Invalid certificate");
      expect(cg.plane.model.certificates.length).toBe(before);
      // Replacing a stored certificate's blob (same key) with an expired one: refused too, the old one stays.
      const stored = cg.plane.model.certificates.find((c) => c.id === "srv")!.cert;
      const renewedBadly = await issue({ subject: "CN=localhost", dnsNames: ["localhost"], notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) }, p.serverCa, p.server.keys);
      const patch = await api(cg, "PATCH", "/tls/certificates/srv", jsonapi("tls_certificate", { cert_blob: renewedBadly.certPem }, undefined, "srv"));
      expect(patch.status).toBe(400);
      expect(fastlyError(patch)).toMatch(/expired on/);
      expect(cg.plane.model.certificates.find((c) => c.id === "srv")!.cert).toBe(stored);
    });
    it("native /v1/config: a new expired certificate is refused; a stored one that has expired since round-trips", async () => {
      const cur = (await api(cg, "GET", "/v1/config")).body;
      expect(cur.certificates.map((c: { id: string }) => c.id)).toContain("stale");
      const again = await api(cg, "PUT", "/v1/config", cur);
      expect(again.status).toBe(200);
      expect(again.body.warnings).toBeUndefined();
      const other = await issue({ subject: "CN=old2.test", dnsNames: ["old2.test"], notBefore: new Date(Date.now() - 3 * DAY), notAfter: new Date(Date.now() - DAY) }, p.serverCa);
      const r = await api(cg, "PUT", "/v1/config", { ...cur, certificates: [...cur.certificates, { id: "new-old", cert: other.certPem, key: other.keyPem }] });
      expect(r.status).toBe(400);
      expect(nativeError(r)).toMatchObject({ code: "invalid_certificate", path: `certificates[${cur.certificates.length}].cert` });
    });
    it("Fastly: a bundle with an expired CA is accepted (201) with a warning in meta.warnings", async () => {
      const r = await api(cg, "POST", "/tls/mutual_authentications", jsonapi("mutual_authentication", { name: "with-retired", cert_bundle: p.ca.certPem + expiredCa.certPem }));
      expect(r.status).toBe(201);
      expect(r.body.meta.warnings).toEqual([expect.stringMatching(/CA certificate 2 \(O=certgate test, CN=retired client CA\) expired on \d{4}-.*no longer verify/)]);
      // The warning is about this write only.
      const again = await api(cg, "PATCH", `/tls/mutual_authentications/${r.body.data.id}`, jsonapi("mutual_authentication", { name: "renamed" }, undefined, r.body.data.id));
      expect(again.status).toBe(200);
      expect(again.body.meta?.warnings).toBeUndefined();
    });
    it("Cloudflare: an Access certificate holding an expired CA is accepted with the warning in messages[]", async () => {
      const r = await api(cg, "POST", `/accounts/${ACC}/access/certificates`, { name: "retired", certificate: expiredCa.certPem + p.ca.certPem });
      expect(r.status).toBe(201);
      expect(r.body.success).toBe(true);
      expect(r.body.messages).toEqual([{ code: expect.any(Number), message: expect.stringMatching(/CA certificate 1 .*retired client CA.* expired on/) }]);
    });
    it("native and Apinizer: accepted with a top-level warnings list", async () => {
      const cur = (await api(cg, "GET", "/v1/config")).body;
      const r = await api(cg, "PUT", "/v1/config", { ...cur, trust_bundles: [...cur.trust_bundles, { id: "retired", ca: expiredCa.certPem }] });
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ applied: true, warnings: [expect.stringMatching(/trust bundle "retired": CA certificate 1 .* expired on/)] });
      const a = await api(cg, "POST", "/apiops/projects/Exp", {});
      expect(a.status).toBe(200);
      const proxy = await api(cg, "POST", "/apiops/projects/Exp/apiProxies/Old/", { hostname: "up.test", relativePath: "/exp", backendUrl: origin, clientCaCertificate: expiredCa.certPem });
      expect(proxy.status).toBe(200);
      expect(proxy.body).toMatchObject({ success: true, warnings: [expect.stringMatching(/expired on/)] });
    });
  });
});
