// File-backed objects through the admin API: declared by path (PUT /v1/config), shown as
// file-backed by every dialect (the path, the contents as for any object, never a key), their
// contents' edits refused in each dialect's envelope (409), their deletion fine; a file that
// cannot be read refuses the write and changes nothing.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify as toYaml } from "yaml";
import { issue, pki } from "../helpers/harness.ts";
import { run } from "../helpers/tools.ts";
import { api, cfError, fastlyError, jsonapi, nativeError, startCertgate, type Certgate } from "./helpers.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

describe("file-backed objects in the admin API", () => {
  let p: DevPki;
  let cg: Certgate;
  let dir: string;
  const f = (n: string) => join(dir, n);
  beforeAll(async () => {
    p = await pki();
    dir = mkdtempSync(join(tmpdir(), "certgate-files-api-"));
    writeFileSync(f("tls.crt"), p.server.certPem);
    writeFileSync(f("tls.key"), p.server.keyPem);
    writeFileSync(f("ca.crt"), p.ca.certPem);
    cg = await startCertgate(undefined, (_p, origin) => ({
      certificates: [{ id: "srv", cert_file: f("tls.crt"), key_file: f("tls.key") }],
      trust_bundles: [{ id: "clients", ca_file: f("ca.crt") }],
      hosts: [{ hostname: "localhost", mtls: { trust_bundle: "clients" } }],
      routes: [{ id: "r", hostname: "localhost", origin }],
      default_certificate: "srv",
    }));
  });
  afterAll(async () => {
    await cg.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("the store keeps the paths; GET /v1/config shows them, no contents and no key; a re-import keeps them file-backed", async () => {
    const stored = cg.plane.stored.certificates[0]!;
    expect(stored).toMatchObject({ id: "srv", cert_file: f("tls.crt"), key_file: f("tls.key") });
    expect(stored.cert).toBeUndefined();
    expect(stored.key).toBeUndefined();
    const db = new DatabaseSync(join(cg.dataDir, "certgate.db"), { readOnly: true });
    const rows = (db.prepare("SELECT body FROM objects WHERE kind IN ('certificates', 'trust_bundles')").all() as { body: string }[]).map((r) => r.body).join("\n");
    db.close();
    expect(rows).toContain(JSON.stringify(f("tls.key")));
    expect(rows).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE/);
    const r = await api(cg, "GET", "/v1/config");
    expect(r.body.certificates[0]).toEqual(expect.objectContaining({ cert_file: f("tls.crt"), key_file: f("tls.key") }));
    expect(r.text).not.toContain("PRIVATE KEY");
    expect(r.text).not.toContain("<redacted>");
    expect(r.body.trust_bundles[0].ca_file).toBe(f("ca.crt"));
    expect(r.body.trust_bundles[0].ca).toBeUndefined();
    const put = await api(cg, "PUT", "/v1/config", toYaml(r.body), { headers: { "content-type": "application/yaml" } });
    expect(put.status).toBe(200);
    expect(cg.plane.stored.certificates[0]!.cert).toBeUndefined();
    expect(cg.plane.stored.certificates[0]!.cert_file).toBe(f("tls.crt"));
  });

  it("Fastly and Cloudflare show the paths and the contents; Fastly's key resource shows no key", async () => {
    const c = await api(cg, "GET", "/tls/certificates/srv");
    expect(c.status).toBe(200);
    expect(c.body.data.attributes).toMatchObject({ cert_file: f("tls.crt"), key_file: f("tls.key"), issued_to: "localhost" });
    const ma = await api(cg, "GET", "/tls/mutual_authentications/clients");
    expect(ma.body.data.attributes).toMatchObject({ ca_file: f("ca.crt"), cert_bundle: p.ca.certPem });
    const keys = await api(cg, "GET", "/tls/private_keys");
    expect(keys.status).toBe(200);
    expect(keys.text).not.toContain("PRIVATE KEY");
    const ac = await api(cg, "GET", "/accounts/acc1/access/certificates/clients");
    expect(ac.body.result).toMatchObject({ id: "clients", ca_file: f("ca.crt"), fingerprint: expect.any(String) });
  });

  it("refuses edits of a file-backed object's contents with 409 in each dialect's envelope; other fields change", async () => {
    const other = await issue({ subject: "O=x,CN=other CA", ca: true });
    const fastlyCert = await api(cg, "PATCH", "/tls/certificates/srv", jsonapi("tls_certificate", { cert_blob: p.server.certPem.replace(/\n/g, "\r\n") }, undefined, "srv"));
    expect(fastlyCert.status).toBe(409);
    expect(fastlyError(fastlyCert)).toMatch(/certificate "srv" is file-backed \(cert_file: .*tls\.crt\)/);
    expect(fastlyCert.body.errors[0].source.pointer).toBe("/data/attributes/cert_blob");
    const fastlyCa = await api(cg, "PATCH", "/tls/mutual_authentications/clients", jsonapi("mutual_authentication", { cert_bundle: other.certPem }, undefined, "clients"));
    expect(fastlyCa.status).toBe(409);
    expect(fastlyError(fastlyCa)).toMatch(/trust bundle "clients" is file-backed \(ca_file: /);
    const cf = await api(cg, "PUT", "/accounts/acc1/access/certificates/clients", { name: "renamed", certificate: other.certPem });
    expect(cf.status).toBe(409);
    expect(cfError(cf)).toMatch(/file-backed/);
    // Through the whole model: contents that differ from the file's.
    const cur = (await api(cg, "GET", "/v1/config")).body;
    const edited = { ...cur, trust_bundles: [{ ...cur.trust_bundles[0], ca: other.certPem }] };
    const nat = await api(cg, "PUT", "/v1/config", edited);
    expect(nat.status).toBe(409);
    expect(nativeError(nat)).toMatchObject({ code: "conflict", message: expect.stringMatching(/trust bundle "clients" is file-backed/) });
    // The same contents as the file's are no edit; renaming is fine.
    const same = await api(cg, "PUT", "/v1/config", { ...cur, trust_bundles: [{ ...cur.trust_bundles[0], ca: p.ca.certPem, name: "same" }] });
    expect(same.status).toBe(200);
    const renamed = await api(cg, "PUT", "/accounts/acc1/access/certificates/clients", { name: "renamed" });
    expect(renamed.status).toBe(200);
    expect(renamed.body.result).toMatchObject({ name: "renamed", ca_file: f("ca.crt") });
    expect(cg.plane.stored.trust_bundles[0]).toMatchObject({ name: "renamed", ca_file: f("ca.crt") });
    expect(cg.plane.stored.trust_bundles[0]!.ca).toBeUndefined();
  });

  it("a file that cannot be read refuses the write, naming it; nothing changes", async () => {
    const before = cg.plane.stored;
    const version = cg.runtime.snapshot.version;
    const cur = (await api(cg, "GET", "/v1/config")).body;
    const missing = f("nope.crt");
    const r = await api(cg, "PUT", "/v1/config", { ...cur, certificates: [...cur.certificates, { id: "two", cert_file: missing, key_file: f("tls.key") }] });
    expect(r.status).toBe(400);
    expect(nativeError(r).message).toContain(`certificates[1].cert_file: cannot read ${missing}: ENOENT`);
    const relative = await api(cg, "PUT", "/v1/config", { ...cur, certificates: [{ ...cur.certificates[0], cert_file: "tls.crt" }] });
    expect(relative.status).toBe(400);
    expect(nativeError(relative).message).toContain("certificates[0].cert_file: an absolute path");
    // A file that is there but is not a certificate: the compile's error, named by the file.
    writeFileSync(f("garbage.crt"), "not a certificate");
    const bad = await api(cg, "PUT", "/v1/config", { ...cur, certificates: [...cur.certificates, { id: "two", cert_file: f("garbage.crt"), key_file: f("tls.key") }] });
    expect(bad.status).toBe(400);
    expect(nativeError(bad)).toMatchObject({ code: "invalid_certificate", message: expect.stringContaining(`certificates[1].cert_file: ${f("garbage.crt")}: no PEM certificate found`) });
    // Corrected on disk, the same write goes through: a refused file is read again.
    writeFileSync(f("garbage.crt"), p.server.certPem);
    const fixed = await api(cg, "PUT", "/v1/config", { ...cur, certificates: [...cur.certificates, { id: "two", cert_file: f("garbage.crt"), key_file: f("tls.key") }] });
    expect(fixed.status).toBe(200);
    expect(cg.runtime.snapshot.version).toBeGreaterThan(version);
    expect(before.certificates).toHaveLength(1);
  });

  it("refuses what is not a regular file at once: a device that never ends, a FIFO no one writes, a directory", async () => {
    await run("mkfifo", [f("fifo")]);
    const cur = (await api(cg, "GET", "/v1/config")).body;
    for (const [path, why] of [["/dev/zero", "not a regular file"], [f("fifo"), "not a regular file"], [dir, "not a regular file"]] as const) {
      const r = await api(cg, "PUT", "/v1/config", { ...cur, trust_bundles: [{ ...cur.trust_bundles[0], ca_file: path }] });
      expect(r.status, path).toBe(400);
      expect(nativeError(r).message).toContain(`trust_bundles[0].ca_file: cannot read ${path}: ${why}`);
    }
    expect(cg.plane.stored.trust_bundles[0]!.ca_file).toBe(f("ca.crt"));
  });

  it("deleting a file-backed certificate is an ordinary delete", async () => {
    const r = await api(cg, "DELETE", "/tls/certificates/two");
    expect(r.status).toBe(204);
    expect(cg.plane.stored.certificates.map((c) => c.id)).toEqual(["srv"]);
    expect(cg.runtime.snapshot.certs.has("two")).toBe(false);
  });
});
