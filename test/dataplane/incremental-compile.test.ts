// A snapshot compiled from the one in force (only the hosts a write replaced or appended are
// compiled again, compile/hosts.ts) must answer every lookup as one compiled from nothing: the
// policy a name gets decides its client verification. Random writes of every kind, each
// checked against a full compile of the same model.
import { describe, expect, it } from "vitest";
import { ModelError } from "../../src/model/error.ts";
import { parseModel, type Model } from "../../src/model/schema.ts";
import { Snapshot } from "../../src/dataplane/snapshot.ts";
import { issue } from "../../src/pki/issue.ts";
import { pki } from "../helpers/harness.ts";
import { prng } from "../helpers/prng.ts";

type Raw = Record<string, unknown>;

describe("incremental host compile", () => {
  it.each([12, 300])("answers every lookup as a full compile does, over random writes to %i hosts", async (count) => {
    const p = await pki();
    const other = await issue({ subject: "O=certgate test,CN=other.test", dnsNames: ["other.test"], eku: ["serverAuth"], days: 30 }, p.serverCa);
    const base: Raw = {
      certificates: [
        { id: "srv", cert: p.server.certPem, key: p.server.keyPem },
        { id: "other", cert: other.certPem, key: other.keyPem },
      ],
      trust_bundles: [
        { id: "a", ca: p.ca.certPem },
        { id: "b", ca: p.ca.certPem + p.intermediate.certPem, enforced: true },
      ],
      default_certificate: "srv",
    };
    const rand = prng(11);
    const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
    let fresh = 0;
    /** Every name a host entry ever had (and a name each wildcard covers): looked up after each write. */
    const names = new Set<string>(["unrelated.test", "x.other.test", "other.test"]);
    const rawHost = (): Raw => {
      const n = fresh++;
      const hostname = rand() < 0.2 ? `*.w${n}.test` : `h${n}.test`;
      names.add(hostname.startsWith("*.") ? `x.w${n}.test` : hostname).add(`deeper.${hostname.replace("*.", "")}`);
      const bundle = pick([undefined, "a", "b"]);
      return {
        hostname,
        ...(bundle ? { mtls: { trust_bundle: bundle, ...(rand() < 0.3 ? { mode: pick(["enforced", "fail_open"]) } : {}) } } : {}),
        ...(rand() < 0.3 ? { certificate: pick(["srv", "other"]) } : {}),
        ...(rand() < 0.2 ? { http2: false } : {}),
        ...(rand() < 0.2 ? { tls: { min_version: "1.3" } } : {}),
        ...(bundle && rand() < 0.15 ? { upstream_client_cert: { header: "Client-Cert", trusted_peers: ["10.0.0.0/8"] } } : {}),
      };
    };
    const parsed = (hosts: Raw[]): Model => parseModel({ ...base, hosts });
    /** A host entry as the write path makes it: parsed, then shared by every later model. */
    const newHost = () => parsed([rawHost()]).hosts[0]!;

    let model = parsed(Array.from({ length: count }, rawHost));
    let inForce = new Snapshot(model, 1);
    let incremental = 0;
    for (let step = 0; step < 300; step++) {
      const hosts = model.hosts.slice();
      const at = () => Math.floor(rand() * hosts.length);
      const kind = rand();
      if (kind < 0.4) hosts[at()] = newHost(); // replace in place (a new hostname, mode, pin, …)
      else if (kind < 0.55) {
        const i = at(); // the same hostname, other settings
        hosts[i] = { ...newHost(), hostname: hosts[i]!.hostname };
      } else if (kind < 0.7) hosts.push(newHost());
      else if (kind < 0.8) hosts.splice(at(), 1);
      else if (kind < 0.85) hosts.splice(at(), 0, newHost());
      else if (kind < 0.9) hosts.reverse();
      else if (kind < 0.95) hosts[at()] = { ...hosts[at()]!, hostname: hosts[at()]!.hostname }; // a duplicate hostname, sometimes
      const next: Model = { ...model, hosts, ...(rand() < 0.05 ? { trust_bundles: model.trust_bundles.slice() } : {}) };

      let full: Snapshot | ModelError;
      let from: Snapshot | ModelError;
      try {
        full = new Snapshot(next, step + 2);
      } catch (e) {
        full = e as ModelError;
      }
      try {
        from = new Snapshot(next, step + 2, undefined, inForce);
      } catch (e) {
        from = e as ModelError;
      }
      if (full instanceof ModelError || from instanceof ModelError) {
        expect(from).toBeInstanceOf(ModelError);
        expect((from as ModelError).message).toBe((full as ModelError).message);
        continue; // the write is refused: the snapshot in force stays
      }
      for (const name of names) {
        const a = full.hostPolicy(name);
        const b = from.hostPolicy(name);
        expect({ name, pattern: b.pattern, mode: b.mode, version: b.version, tls: b.tls.key, http2: b.http2, forwarding: b.forwarding, front: b.front?.header }).toEqual({
          name,
          pattern: a.pattern,
          mode: a.mode,
          version: a.version,
          tls: a.tls.key,
          http2: a.http2,
          forwarding: a.forwarding,
          front: a.front?.header,
        });
        expect(b.bundle?.digest).toBe(a.bundle?.digest);
        expect(from.certFor(name)?.id).toBe(full.certFor(name)?.id);
      }
      expect([...from.policyVersions].sort()).toEqual([...full.policyVersions].sort());
      expect([...from.tlsKeys].sort()).toEqual([...full.tlsKeys].sort());
      // Started from the snapshot in force: a host the write left alone kept its compiled policy.
      const kept = next.hosts.find((h, i) => h === model.hosts[i]);
      if (kept && from.hostPolicy(kept.hostname.replace("*.", "x.")) === inForce.hostPolicy(kept.hostname.replace("*.", "x."))) incremental++;
      model = next;
      inForce = from;
    }
    // Most writes took the incremental path: unchanged hosts kept their compiled policy object.
    expect(incremental).toBeGreaterThan(60);
  });
});
