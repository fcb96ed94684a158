// `certgate store migrate`: a node's SQLite store into PostgreSQL and back, as an operator runs
// it (the CLI, a child process): the configuration, tokens and managed CA come through whole.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { run } from "../helpers/tools.ts";
import { createDatabase } from "../helpers/postgres.setup.ts";
import { api, startCertgate, tmpData } from "./helpers.ts";

const pgUrl = inject("pgUrl");
const CLI = resolve("src/cli.js");

describe.skipIf(!pgUrl)("certgate store migrate", () => {
  it("copies SQLite → PostgreSQL → SQLite with /v1/config, tokens and the managed CA unchanged, and refuses a non-empty target", async () => {
    // A node with some history: a route, a scoped token, a certificate from its managed CA.
    const dir = tmpData();
    const cg = await startCertgate(dir);
    expect((await api(cg, "PUT", "/v1/routes/extra", { hostname: "a.test", path_prefix: "/extra", origin: "http://127.0.0.1:9" })).status).toBe(201);
    expect((await api(cg, "POST", "/v1/tokens", { name: "reader", read_only: true })).status).toBe(201);
    const zone = (await api(cg, "POST", "/zones", { name: "a.test" })).body.result.id as string;
    const csrDir = mkdtempSync(join(tmpdir(), "certgate-migrate-csr-"));
    expect((await run("openssl", ["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", join(csrDir, "k.pem"), "-out", join(csrDir, "c.csr"), "-subj", "/CN=migrated-device"])).code).toBe(0);
    expect((await api(cg, "POST", `/zones/${zone}/client_certificates`, { csr: readFileSync(join(csrDir, "c.csr"), "utf8"), validity_days: 30 })).status).toBe(200);
    const before = (await api(cg, "GET", "/v1/config")).text;
    const tokensBefore = (await api(cg, "GET", "/v1/tokens")).body.tokens;
    await cg.close();

    const url = new URL(await createDatabase(pgUrl, "cg_migrate"));
    const env = { ...process.env, CERTGATE_KEK: randomBytes(32).toString("base64") };
    const migrate = (from: string, to: string) => run(process.execPath, [CLI, "store", "migrate", "--from", from, "--to", to], "", 30_000, undefined, env);

    const up = await migrate(dir, url.toString());
    expect(up.code, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout)).toMatchObject({ tokens: 1, managed_ca: "copied" });
    // Again into the now non-empty database: refused, nothing changed.
    const again = await migrate(dir, url.toString());
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("already holds a configuration: migrate only into an empty store");

    const back = tmpData();
    const down = await migrate(url.toString(), back);
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ tokens: 1, managed_ca: "copied" });
    expect(readFileSync(join(back, "managed-ca/managed-ca.pem"), "utf8")).toBe(readFileSync(join(dir, "managed-ca/managed-ca.pem"), "utf8"));
    expect(existsSync(join(back, "managed-ca/managed-ca.key"))).toBe(true);

    const cg2 = await startCertgate(back);
    try {
      expect((await api(cg2, "GET", "/v1/config")).text).toBe(before);
      expect((await api(cg2, "GET", "/v1/tokens")).body.tokens).toEqual(tokensBefore);
      expect((await api(cg2, "GET", "/v1/audit?limit=1")).body.entries[0].summary).toMatch(/^store migrated from postgres:\/\//);
    } finally {
      await cg2.close();
    }
  });
});
