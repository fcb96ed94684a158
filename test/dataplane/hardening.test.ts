// Holes an adversarial review found in the data plane (issue 12: findings 3, 4, 5, 10, 11),
// each proved closed on real sockets against a recording raw origin.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type tls from "node:tls";
import { baseModel, connect, issue, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { echoReply, startRecorder, type Recorder } from "../helpers/recorder.ts";
import { exchange, parseResponses, responses } from "../helpers/wire.ts";
import type { DevPki } from "../../src/pki/devpki.ts";
import type { Model } from "../../src/model/schema.ts";

const CRLF = "\r\n";
const req = (method: string, target: string, host = "localhost", extra = "", body = "") =>
  `${method} ${target} HTTP/1.1\r\nHost: ${host}\r\n${extra}${body ? `Content-Length: ${body.length}\r\n` : ""}\r\n${body}`;

/** Envoy's XFCC grammar, parsed independently: elements by `,`, pairs by `;`, values maybe quoted with `\"`. */
function parseXfcc(v: string): [string, string][][] {
  const elements: [string, string][][] = [[]];
  let key = "";
  let value = "";
  let inKey = true;
  let quoted = false;
  const push = () => {
    elements[elements.length - 1]!.push([key, value]);
    key = value = "";
    inKey = true;
  };
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (quoted) {
      if (c === "\\") value += v[++i];
      else if (c === '"') quoted = false;
      else value += c;
    } else if (inKey) {
      if (c === "=") inKey = false;
      else key += c;
    } else if (c === '"' && value === "") quoted = true;
    else if (c === ";") push();
    else if (c === ",") {
      push();
      elements.push([]);
    } else value += c;
  }
  push();
  return elements;
}

describe("data-plane hardening", () => {
  let proxy: Proxy;
  let origin: Recorder;
  let p: DevPki;
  let model: Model;
  beforeAll(async () => {
    p = await pki();
    origin = await startRecorder();
    proxy = await startProxy((pk) =>
      baseModel(pk, origin.url, [{ hostname: "localhost" }, { hostname: "off.test" }, { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" }, forward_client_cert: { xfcc: true } }], {
        rules: [{ id: "no-admin", expression: 'http.request.uri.path eq "/admin"', action: "block" }],
      }),
    );
    model = proxy.runtime.snapshot.model;
  });
  afterAll(async () => {
    await proxy.close();
    await origin.close();
  });
  beforeEach(() => {
    origin.messages.length = origin.raw.length = origin.errors.length = 0;
    origin.reply = echoReply;
  });

  const open = async (servername = "localhost", cert?: DevPki["client"]): Promise<tls.TLSSocket> => (await connect(proxy.port, { servername, cert })).socket;

  describe("finding 3: trailers stay with their message", () => {
    it("a request's trailer is neither glued onto the next request's target nor sent as its header", async () => {
      const s = await open();
      const { text } = await exchange(
        s,
        `POST /first HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-Injected: 1\r\n\r\n` + req("GET", "/second"),
        responses(2),
      );
      s.destroy();
      expect(parseResponses(text).map((r) => r.status)).toEqual([200, 200]);
      expect(origin.messages.map((m) => `${m.method} ${m.target} ${m.body}`)).toEqual(["POST /first a", "GET /second "]);
      for (const m of origin.messages) expect(origin.header(m, "x-injected")).toEqual([]);
      // Dropped, not forwarded as a trailer either.
      expect(origin.messages[0]!.trailers).toEqual([]);
    });

    it("an origin response's trailer does not leak into the next response on the pooled connection", async () => {
      origin.reply = (m) =>
        m.target === "/with-trailer"
          ? { data: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Leak\r\n\r\n2\r\nok\r\n0\r\nX-Leak: 1\r\n\r\n" }
          : echoReply(m);
      const s = await open();
      const { text } = await exchange(s, req("GET", "/with-trailer"), responses(1));
      const second = await exchange(s, req("GET", "/after"), responses(1));
      s.destroy();
      expect(parseResponses(text)[0]!.body).toBe("ok");
      const after = parseResponses(second.text)[0]!;
      expect(after.status).toBe(200);
      expect(after.head.toLowerCase()).not.toContain("x-leak");
      // The second exchange did reuse the origin connection the trailer came on.
      expect(origin.messages.map((m) => m.conn)).toEqual([origin.messages[0]!.conn, origin.messages[0]!.conn]);
    });
    it("a Connection: close trailer ends the connection after its message, even when the answer went out before the body ended", async () => {
      // /admin is refused by a rule before its body arrives; the trailer comes after the 403.
      const s = await open();
      const first = await exchange(s, "POST /admin HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n", responses(1));
      expect(parseResponses(first.text).map((r) => r.status)).toEqual([403]);
      const rest = await exchange(s, "0\r\nConnection: close\r\n\r\n" + req("GET", "/after"));
      expect(rest.closed).toBe(true);
      expect(rest.text).toBe("");
      expect(origin.messages).toEqual([]);
    });
  });

  describe("finding 4: request targets", () => {
    it("a fragment in the request target is a 400 and nothing reaches the origin", async () => {
      for (const target of ["/admin#x", "/#", "/ok?q#x"]) {
        const s = await open();
        const { text, closed } = await exchange(s, req("GET", target));
        expect(parseResponses(text).map((r) => r.status), target).toEqual([400]);
        expect(closed).toBe(true);
      }
      expect(origin.messages).toEqual([]);
    });

    it("merges successive slashes by default: rules, routes and the origin see one path", async () => {
      const s = await open();
      const { text } = await exchange(s, req("GET", "//admin") + req("GET", "/a//b///c?x=//y"), responses(2));
      s.destroy();
      expect(parseResponses(text).map((r) => r.status)).toEqual([403, 200]);
      expect(origin.messages.map((m) => m.target)).toEqual(["/a/b/c?x=//y"]);
    });

    it("url_normalization.merge_slashes: false keeps them, for the rule and the origin alike", async () => {
      proxy.runtime.apply({ ...model, url_normalization: { merge_slashes: false } });
      try {
        const s = await open();
        const { text } = await exchange(s, req("GET", "//admin"), responses(1));
        s.destroy();
        expect(parseResponses(text).map((r) => r.status)).toEqual([200]);
        expect(origin.messages.map((m) => m.target)).toEqual(["//admin"]);
      } finally {
        proxy.runtime.apply(model);
      }
    });

    it("`;` and `%2F` are forwarded exactly as the rules saw them; a dot segment with parameters is a 400", async () => {
      const s = await open();
      const { text } = await exchange(s, req("GET", "/admin;x") + req("GET", "/admin%2f..%2Fx"), responses(2));
      s.destroy();
      expect(parseResponses(text).map((r) => r.status)).toEqual([200, 200]);
      expect(origin.messages.map((m) => m.target)).toEqual(["/admin;x", "/admin%2F..%2Fx"]);
      origin.messages.length = 0;
      for (const target of ["/public/..;/admin", "/x/.;y/admin"]) {
        const c = await open();
        const r = await exchange(c, req("GET", target));
        expect(parseResponses(r.text).map((x) => x.status), target).toEqual([400]);
      }
      expect(origin.messages).toEqual([]);
    });
  });

  describe("finding 5: Host", () => {
    it.each(["[off.test]junk", "[off.test]", "[::1]x", "[::1", "off.test:99999", "off.test:80:80", "off.test:", "off..test", "off.test/x", "[v1.x]", "off_test@evil"])(
      "%s is a 400 and is not forwarded",
      async (host) => {
        const s = await open();
        const { text, closed } = await exchange(s, req("GET", "/", host));
        expect(parseResponses(text).map((r) => r.status)).toEqual([400]);
        expect(closed).toBe(true);
        expect(origin.messages).toEqual([]);
      },
    );

    it("reg-names with a port, a trailing dot, any case, and IPv6 literals are accepted", async () => {
      for (const [host, status] of [["OFF.test:443", 200], ["off.test.", 200], ["[::1]:8443", 404], ["127.0.0.1", 404]] as const) {
        const s = await open();
        const { text } = await exchange(s, req("GET", "/", host), responses(1));
        s.destroy();
        expect(parseResponses(text)[0]!.status, host).toBe(status);
      }
      // The origin gets the Host as the client sent it, once.
      expect(origin.messages.map((m) => origin.header(m, "host"))).toEqual([["OFF.test:443"], ["off.test."]]);
    });
  });

  describe("finding 10: upgrades", () => {
    // This origin switches to whatever it is asked for, and to h2c on /force-101 even unasked.
    const switching = () => {
      origin.reply = (m) => {
        const up = origin.header(m, "upgrade")[0] ?? (m.target === "/force-101" ? "h2c" : undefined);
        return up ? { data: `HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${up}\r\nConnection: Upgrade\r\n\r\n`, tunnel: true } : echoReply(m);
      };
    };

    it("h2c is not forwarded: the request goes on as a plain one, and later requests still meet the rules", async () => {
      switching();
      const s = await open();
      const { text } = await exchange(
        s,
        req("GET", "/h2c", "localhost", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n") + req("GET", "/admin") + req("GET", "/next"),
        responses(3),
      );
      s.destroy();
      expect(parseResponses(text).map((r) => r.status)).toEqual([200, 403, 200]);
      expect(origin.messages.map((m) => m.target)).toEqual(["/h2c", "/next"]);
      const first = origin.messages[0]!;
      for (const name of ["upgrade", "http2-settings"]) expect(origin.header(first, name)).toEqual([]);
      expect(origin.header(first, "connection").join(",").toLowerCase()).not.toContain("upgrade");
      expect(origin.raw).toEqual([]);
    });

    it("after an Upgrade served as a plain request, what follows is parsed afresh: garbage is a 400, not a hang", async () => {
      const s = await open();
      const { text, closed } = await exchange(s, req("GET", "/h2c", "localhost", "Connection: Upgrade\r\nUpgrade: h2c\r\n") + "GARBAGE\r\n\r\n");
      expect(closed).toBe(true);
      expect(parseResponses(text).map((r) => r.status)).toEqual([200, 400]);
      expect(origin.messages.map((m) => m.target)).toEqual(["/h2c"]);
    });

    it("an origin that answers 101 to a request without an allowed upgrade gets a 502, never a tunnel", async () => {
      switching();
      const s = await open();
      const { text } = await exchange(s, req("GET", "/force-101") + req("GET", "/admin") + req("GET", "/next"), responses(3));
      s.destroy();
      expect(parseResponses(text).map((r) => r.status)).toEqual([502, 403, 200]);
      // /next went on a fresh origin connection, as an HTTP request; nothing was spliced.
      expect(origin.messages.map((m) => m.target)).toEqual(["/force-101", "/next"]);
      expect(origin.messages[1]!.conn).not.toBe(origin.messages[0]!.conn);
      expect(origin.raw).toEqual([]);
    });

    it("websocket is allowed by default and tunnels; a route's `upgrades: []` turns it into a plain request", async () => {
      switching();
      const ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
      const s = await open();
      const { text } = await exchange(s, req("GET", "/ws", "localhost", ws), (t) => t.includes("\r\n\r\n"));
      expect(text).toMatch(/^HTTP\/1.1 101/);
      s.write("frame-bytes");
      await expect.poll(() => origin.raw.join(""), { timeout: 10_000 }).toBe("frame-bytes");
      s.destroy();
      expect(origin.header(origin.messages[0]!, "upgrade")).toEqual(["websocket"]);

      origin.raw.length = origin.messages.length = 0;
      proxy.runtime.apply({ ...model, routes: model.routes.map((r) => (r.hostname === "localhost" ? { ...r, upgrades: [] } : r)) });
      try {
        const c = await open();
        const r = await exchange(c, req("GET", "/ws", "localhost", ws), responses(1));
        c.destroy();
        expect(parseResponses(r.text).map((x) => x.status)).toEqual([200]);
        expect(origin.header(origin.messages[0]!, "upgrade")).toEqual([]);
      } finally {
        proxy.runtime.apply(model);
      }
    });

    it("an origin that switches to another protocol than the one asked for gets a 502", async () => {
      origin.reply = () => ({ data: "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n", tunnel: true });
      const s = await open();
      const ws = "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
      const { text, closed } = await exchange(s, req("GET", "/ws", "localhost", ws) + "smuggled");
      expect(closed).toBe(true);
      expect(parseResponses(text).map((r) => r.status)).toEqual([502]);
      // Nothing after the head was spliced to the origin.
      expect(origin.messages.map((m) => m.target)).toEqual(["/ws"]);
      expect(origin.raw.join("")).not.toContain("smuggled");
    });
  });

  describe("finding 11: XFCC quoting, transfer codings, header count", () => {
    it("XFCC quotes URI and DNS values per Envoy's rules, so a SAN cannot add fields", async () => {
      const uris = ["spiffe://x;Hash=0000;By=y", 'https://e.test/a,By=z"q'];
      const client = await issue({ subject: "CN=tricky", uris, dnsNames: ["plain.test"] }, p.ca);
      const s = await open("a.test", client);
      const { text } = await exchange(s, req("GET", "/xfcc", "a.test"), responses(1));
      s.destroy();
      expect(parseResponses(text)[0]!.status).toBe(200);
      const xfcc = origin.header(origin.messages[0]!, "x-forwarded-client-cert");
      expect(xfcc).toHaveLength(1);
      const elements = parseXfcc(xfcc[0]!);
      expect(elements).toHaveLength(1);
      const fields = elements[0]!;
      // SANs in certificate order (issue() writes DNS names first).
      expect(fields.map(([k]) => k)).toEqual(["Hash", "Cert", "Subject", "DNS", "URI", "URI"]);
      expect(fields.filter(([k]) => k === "URI").map(([, v]) => v)).toEqual(uris);
      expect(fields.find(([k]) => k === "DNS")![1]).toBe("plain.test");
      expect(xfcc[0]).toContain(";DNS=plain.test;"); // a plain value stays unquoted
    });

    it("Transfer-Encoding: xchunked is a 400 (not a silent close); a coding before chunked is a 501", async () => {
      for (const [te, status] of [["xchunked", 400], ["gzip, chunked", 501]] as const) {
        const s = await open();
        const { text, closed } = await exchange(s, `POST /te HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: ${te}\r\n\r\n3\r\nabc\r\n0\r\n\r\n`);
        expect(parseResponses(text).map((r) => r.status), te).toEqual([status]);
        expect(closed).toBe(true);
      }
      expect(origin.messages).toEqual([]);
    });

    it("more than limits.max_header_count (default 100) header lines is a 431; exactly 100 pass", async () => {
      const lines = (n: number) => Array.from({ length: n }, (_, i) => `h${i}: v${i}${CRLF}`).join("");
      const s = await open();
      const { text } = await exchange(s, req("GET", "/hundred", "localhost", lines(99)), responses(1));
      s.destroy();
      expect(parseResponses(text)[0]!.status).toBe(200);
      expect(origin.header(origin.messages[0]!, "h98")).toEqual(["v98"]);
      for (const n of [100, 1500]) {
        const c = await open();
        const r = await exchange(c, req("GET", "/many", "localhost", lines(n)));
        expect(parseResponses(r.text).map((x) => x.status), String(n)).toEqual([431]);
        expect(r.closed).toBe(true);
      }
      expect(origin.messages.map((m) => m.target)).toEqual(["/hundred"]);
    });

    it("the header count limit is the configured one, not a constant", async () => {
      const lines = (n: number) => Array.from({ length: n }, (_, i) => `h${i}: v${i}${CRLF}`).join("");
      proxy.runtime.apply({ ...model, limits: { ...model.limits, max_header_count: 5 } });
      try {
        const statuses: number[] = [];
        for (const n of [4, 5]) {
          const c = await open();
          const r = await exchange(c, req("GET", `/count-${n}`, "localhost", lines(n)), responses(1));
          c.destroy();
          statuses.push(parseResponses(r.text)[0]!.status);
        }
        // With Host, 4 extra lines are 5 header lines (allowed); 5 extra are 6 (refused).
        expect(statuses).toEqual([200, 431]);
      } finally {
        proxy.runtime.apply(model);
      }
    });
  });
});
