// TLS servers are keyed by what they are built from (certificate, trust policy), never by
// the client's SNI name: distinct names cost nothing, so nobody can fill memory with them.
import { randomBytes } from "node:crypto";
import tls from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("TLS servers per (certificate, policy), not per SNI name", () => {
  let proxy: Proxy;
  let p: DevPki;
  beforeAll(async () => {
    p = await pki();
    proxy = await startProxy((pk, origin) =>
      baseModel(pk, origin, [
        { hostname: "localhost" },
        { hostname: "*.wild.test", mtls: { mode: "enforced", trust_bundle: "clients" } },
        { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" } },
      ]),
    );
  });
  afterAll(() => proxy.close());

  const servers = async () => Number(/certgate_tls_servers (\d+)/.exec(await proxy.metrics.registry.getSingleMetricAsString("certgate_tls_servers"))![1]);

  /** One full handshake; resolves with whether it completed. */
  const handshake = (servername: string, cert?: DevPki["client"]) =>
    new Promise<boolean>((resolve) => {
      const s = tls.connect({ host: "127.0.0.1", port: proxy.port, servername, rejectUnauthorized: false, cert: cert?.certPem, key: cert?.keyPem }, () => {
        resolve(true);
        s.destroy();
      });
      s.on("error", () => resolve(false));
    });

  it("thousands of handshakes with distinct random SNI names create one server per (certificate, policy)", async () => {
    const N = 2_000;
    let ok = 0;
    // Random names: unknown ones (the default certificate, no mTLS), names under the enforced
    // wildcard host (with a client certificate), and the fail-open host.
    const name = (i: number) => (i % 3 === 0 ? `${randomBytes(6).toString("hex")}.example` : i % 3 === 1 ? `${randomBytes(6).toString("hex")}.wild.test` : "a.test");
    for (let i = 0; i < N; i += 25) {
      const batch = Array.from({ length: 25 }, (_, j) => name(i + j));
      const done = await Promise.all(batch.map((n) => handshake(n, n.endsWith(".example") ? undefined : p.client)));
      ok += done.filter(Boolean).length;
    }
    expect(ok).toBe(N);
    // One certificate × {off, enforced, fail_open}: 3 pairs; the target allows one more.
    expect(await servers()).toBeLessThanOrEqual(3 + 1);
  });

  it("drops servers the configuration no longer uses", async () => {
    await handshake("x.wild.test", p.client);
    const model = proxy.runtime.snapshot.model;
    // No more enforced host: its server goes; the others stay.
    proxy.runtime.apply({ ...model, hosts: model.hosts.filter((h) => h.hostname !== "*.wild.test") });
    try {
      expect(await servers()).toBe(2);
      expect(await handshake("x.wild.test")).toBe(true); // now a host without mTLS
    } finally {
      proxy.runtime.apply(model);
    }
  });
});
