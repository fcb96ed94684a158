// TLS settings per host and global (versions, TLS 1.2 ciphers, key-exchange groups), proved
// with openssl s_client, and the negotiated group certgate reports against what the client saw.
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { parseModel, type ModelError, type ModelInput } from "../../src/model/schema.ts";

describe("TLS settings", () => {
  let proxy: Proxy;
  let caFile: string;
  let model: ModelInput;
  beforeAll(async () => {
    proxy = await startProxy((p, origin) => (model = {
      ...baseModel(p, origin, [
        { hostname: "localhost" },
        { hostname: "a.test", tls: { max_version: "1.2", ciphers: ["ECDHE-ECDSA-AES256-GCM-SHA384"] } },
        { hostname: "b.test", tls: { min_version: "1.3", groups: ["P-384"] } },
      ]),
    }));
    caFile = pemFiles({ "ca.pem": (await pki()).serverCa.certPem })["ca.pem"]!;
  });
  afterAll(() => proxy.close());

  const sClient = (servername: string, ...args: string[]) =>
    run("openssl", ["s_client", "-connect", `127.0.0.1:${proxy.port}`, "-servername", servername, "-CAfile", caFile, ...args], "Q\n");
  const handshook = (r: { stdout: string }) => /^New, TLSv1\.[23], Cipher is (?!\(NONE\))/m.test(r.stdout);
  const groupCount = async (host: string, group: string) => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_handshakes_total");
    const line = text.split("\n").find((l) => l.includes(`host="${host}"`) && l.includes(`group="${group}"`) && l.includes('resumed="false"'));
    return line ? Number(line.split(" ").pop()) : 0;
  };

  it("a host without settings offers TLS 1.2 and 1.3, any default cipher", async () => {
    expect(handshook(await sClient("localhost", "-tls1_2"))).toBe(true);
    expect(handshook(await sClient("localhost", "-tls1_3"))).toBe(true);
    expect(handshook(await sClient("localhost", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"))).toBe(true);
  });

  it("max_version 1.2 and a TLS 1.2 cipher list on one host", async () => {
    expect(handshook(await sClient("a.test", "-tls1_3"))).toBe(false);
    const ok = await sClient("a.test", "-tls1_2");
    expect(handshook(ok)).toBe(true);
    expect(ok.stdout).toMatch(/Cipher\s*: ECDHE-ECDSA-AES256-GCM-SHA384/);
    expect(handshook(await sClient("a.test", "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"))).toBe(false);
  });

  it("min_version 1.3 and one group on another host", async () => {
    expect(handshook(await sClient("b.test", "-tls1_2"))).toBe(false);
    expect(handshook(await sClient("b.test", "-tls1_3", "-groups", "X25519"))).toBe(false);
    const before = await groupCount("b.test", "P-384");
    const ok = await sClient("b.test", "-tls1_3", "-groups", "X25519:P-384");
    expect(handshook(ok)).toBe(true);
    expect(ok.stdout).toMatch(/Server Temp Key: ECDH, secp384r1/);
    expect(await groupCount("b.test", "P-384")).toBe(before + 1);
  });

  it("global settings apply live to hosts without their own, and a host's own fields win", async () => {
    // Without a.test, whose own max_version 1.2 a global min_version 1.3 contradicts (refused below).
    proxy.runtime.apply(parseModel({ ...model, hosts: model.hosts!.filter((h) => h.hostname !== "a.test"), tls: { min_version: "1.3" } }));
    try {
      expect(handshook(await sClient("localhost", "-tls1_2"))).toBe(false);
      expect(handshook(await sClient("unknown.example", "-tls1_2"))).toBe(false); // names no host covers too
      expect(handshook(await sClient("localhost", "-tls1_3"))).toBe(true);
      expect(handshook(await sClient("b.test", "-tls1_3", "-groups", "P-384"))).toBe(true); // its own groups still apply
    } finally {
      proxy.runtime.apply(parseModel(model));
    }
    expect(handshook(await sClient("localhost", "-tls1_2"))).toBe(true);
  });

  it("refuses unknown ciphers and groups, TLS 1.3 suites and min above max, naming the field; the old settings stay", () => {
    const bad = (m: ModelInput) => {
      try {
        proxy.runtime.apply(parseModel(m));
      } catch (e) {
        return (e as ModelError).issues;
      }
      throw new Error("accepted");
    };
    expect(bad({ ...model, tls: { ciphers: ["ECDHE-ECDSA-AES128-GCM-SHA256", "NOT-A-CIPHER"] } })).toEqual([{ path: "tls.ciphers[1]", message: expect.stringMatching(/unknown cipher "NOT-A-CIPHER"/) }]);
    expect(bad({ ...model, tls: { ciphers: ["TLS_AES_128_GCM_SHA256"] } })[0]).toMatchObject({ path: "tls.ciphers[0]", message: expect.stringMatching(/TLS 1.3 suite/) });
    expect(bad({ ...model, tls: { groups: ["X25519", "curve-nope"] } })).toEqual([{ path: "tls.groups[1]", message: expect.stringMatching(/unknown key-exchange group "curve-nope"/) }]);
    expect(bad({ ...model, tls: { min_version: "1.3", max_version: "1.2" } })[0]).toMatchObject({ path: "tls.min_version", message: "min_version is above max_version" });
    // A host's max 1.2 under a global min 1.3: the merged pair is refused at the host's field.
    expect(bad({ ...model, tls: { min_version: "1.3" } })).toEqual([{ path: "hosts[1].tls.max_version", message: "min_version 1.3 is above max_version 1.2" }]);
    expect(bad({ ...model, hosts: [{ hostname: "c.test", tls: { groups: ["nope"] } }] })).toEqual([{ path: "hosts[0].tls.groups[0]", message: expect.stringMatching(/unknown key-exchange group/) }]);
    expect(proxy.runtime.snapshot.model.tls).toEqual({});
  });
});

describe("the negotiated key-exchange group", () => {
  let proxy: Proxy;
  let caFile: string;
  beforeAll(async () => {
    proxy = await startProxy((p, origin) => baseModel(p, origin, [{ hostname: "localhost" }]));
    caFile = pemFiles({ "ca.pem": (await pki()).serverCa.certPem })["ca.pem"]!;
  });
  afterAll(() => proxy.close());

  const count = async (group: string, resumed = "false") => {
    const text = await proxy.metrics.registry.getSingleMetricAsString("certgate_handshakes_total");
    const line = text.split("\n").find((l) => l.includes(`group="${group}"`) && l.includes(`resumed="${resumed}"`));
    return line ? Number(line.split(" ").pop()) : 0;
  };
  /** A Node 24 client (OpenSSL 3.5: it can offer ML-KEM hybrids, which the system openssl 3.0 cannot). */
  const nodeClient = async (o: tls.ConnectionOptions) => {
    const p = await pki();
    return new Promise<{ key: tls.EphemeralKeyInfo | object | null; session: Buffer | undefined; reused: boolean }>((resolve, reject) => {
      let key: tls.EphemeralKeyInfo | object | null = null;
      let reused = false;
      let session: Buffer | undefined;
      const s = tls.connect({ host: "127.0.0.1", port: proxy.port, servername: "localhost", ca: p.serverCa.certPem, ...o }, () => {
        key = s.getEphemeralKeyInfo();
        reused = s.isSessionReused();
        session ??= s.getSession();
        s.write("GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
      });
      s.on("session", (b: Buffer) => (session = b));
      s.on("data", () => {});
      s.on("close", () => resolve({ key, session, reused }));
      s.on("error", reject);
    });
  };

  it("X25519MLKEM768 when the client offers the post-quantum hybrid (Node's default)", async () => {
    const before = await count("X25519MLKEM768");
    const c = await nodeClient({});
    expect(c.key).toMatchObject({ name: "X25519MLKEM768" });
    expect(await count("X25519MLKEM768")).toBe(before + 1);
  });

  /** The group openssl s_client says it used, in certgate's names. */
  const clientSaw = (stdout: string) => {
    const m = /Server Temp Key: (X25519|ECDH, prime256v1|ECDH, secp384r1|ECDH, secp521r1)/.exec(stdout);
    return m && { X25519: "X25519", "ECDH, prime256v1": "P-256", "ECDH, secp384r1": "P-384", "ECDH, secp521r1": "P-521" }[m[1]!];
  };
  const sClient = (...args: string[]) => run("openssl", ["s_client", "-connect", `127.0.0.1:${proxy.port}`, "-servername", "localhost", "-CAfile", caFile, ...args], "Q\n");

  for (const group of ["X25519", "P-256", "P-384"]) {
    it(`${group} with openssl s_client -groups ${group} (TLS 1.3), and the group the server picks in TLS 1.2`, async () => {
      let before = await count(group);
      expect(clientSaw((await sClient("-tls1_3", "-groups", group)).stdout)).toBe(group);
      expect(await count(group)).toBe(before + 1);
      // TLS 1.2 also needs P-256 offered: the server's ECDSA certificate is on that curve (RFC 8422 §5.1).
      const saw = clientSaw((await sClient("-tls1_2", "-groups", group === "P-256" ? group : `${group}:P-256`)).stdout);
      expect(saw).not.toBeNull();
      before = await count(saw!);
      await sClient("-tls1_2", "-groups", group === "P-256" ? group : `${group}:P-256`);
      expect(await count(saw!)).toBe(before + 1);
    });
  }

  it("after a HelloRetryRequest: the server asked for another key share than the client sent first", async () => {
    // s_client shares a key for its first group only; OpenSSL 3.5 ranks X25519 above P-384 and retries.
    const before = await count("X25519");
    const r = await sClient("-tls1_3", "-groups", "P-384:X25519", "-msg");
    expect(r.stdout.match(/>>> TLS 1.3, Handshake \[length [0-9a-f]+\], ClientHello/g)).toHaveLength(2);
    expect(clientSaw(r.stdout)).toBe("X25519");
    expect(await count("X25519")).toBe(before + 1);
  });

  it("a resumed TLS 1.3 connection reports its own key exchange; a resumed TLS 1.2 one has none", async () => {
    const first = await nodeClient({ ecdhCurve: "X25519" });
    expect(first.key).toMatchObject({ name: "X25519" });
    // Resumed with a different first group: the new key exchange is what is reported, not the original session's.
    const beforeP256 = await count("P-256", "true");
    const again = await nodeClient({ ecdhCurve: "P-256:X25519", session: first.session });
    expect(again.reused).toBe(true);
    expect(again.key).toMatchObject({ name: "prime256v1" });
    expect(await count("P-256", "true")).toBe(beforeP256 + 1);
    const t12 = await nodeClient({ maxVersion: "TLSv1.2", ecdhCurve: "P-256" });
    const beforeNone = await count("none", "true");
    const r12 = await nodeClient({ maxVersion: "TLSv1.2", ecdhCurve: "P-256", session: t12.session });
    expect(r12.reused).toBe(true);
    expect(await count("none", "true")).toBe(beforeNone + 1);
  });
});
