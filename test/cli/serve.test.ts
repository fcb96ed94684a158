// `certgate serve` as an operator runs it: a child process, real ports, real curl.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { afterAll, describe, expect, it } from "vitest";
import { run } from "../helpers/tools.ts";

const CLI = resolve("src/cli.js");
const NODE = process.execPath;

interface Started {
  child: ChildProcess;
  port: number;
  admin: number;
  stderr: () => string;
}

function startServe(cwd: string, args: string[]): Promise<Started> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(NODE, [CLI, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", ...args], { cwd, env: { ...process.env, CERTGATE_LOG_LEVEL: "info" } });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`serve did not start:\n${out}\n${err}`)), 20_000);
    child.stderr.on("data", (d) => (err += d));
    child.stdout.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.includes('"certgate listening"'));
      if (!line) return;
      clearTimeout(timer);
      const j = JSON.parse(line) as { listen: string; admin: string };
      resolvePromise({ child, port: Number(j.listen.split(":").pop()), admin: Number(j.admin.split(":").pop()), stderr: () => err });
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code}:\n${out}\n${err}`)));
  });
}

/** The store's revision row in DATA/certgate.db. */
function storeRevision(data: string): unknown {
  const db = new DatabaseSync(join(data, "certgate.db"), { readOnly: true });
  const row = db.prepare("SELECT value FROM meta WHERE key = 'revision'").get();
  db.close();
  return row;
}

describe("certgate serve", () => {
  const children: ChildProcess[] = [];
  afterAll(() => children.forEach((c) => c.kill("SIGTERM")));

  it("with no config serves the demo: mTLS enforced on localhost, fronting the echo origin", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "certgate-demo-"));
    const s = await startServe(cwd, ["--data", "data"]);
    children.push(s.child);
    const curl = (extra: string[]) =>
      run("curl", ["-sS", "--cacert", "certs/dev/server-ca.pem", "-w", "\n%{http_code}", ...extra, `https://localhost:${s.port}/hello`], "", 15_000, cwd).then((r) => ({
        ...r,
        status: r.stdout.split("\n").pop(),
      }));
    const ok = await curl(["--cert", "certs/dev/client.pem", "--key", "certs/dev/client.key"]);
    expect(ok.status).toBe("200");
    expect(ok.stdout).toContain('"client-cert"');
    const expired = await curl(["--cert", "certs/dev/expired.pem", "--key", "certs/dev/expired.key"]);
    expect(expired.status).toBe("403");
    expect(expired.stdout).toContain("expired");
    const none = await curl([]);
    expect(none.code).not.toBe(0);
    expect(s.stderr()).toContain("curl --cacert certs/dev/server-ca.pem --cert certs/dev/client.pem");
    const health = await fetch(`http://127.0.0.1:${s.admin}/healthz`);
    expect(await health.json()).toMatchObject({ status: "ok" });
    const metrics = await (await fetch(`http://127.0.0.1:${s.admin}/metrics`)).text();
    expect(metrics).toMatch(/certgate_handshakes_total\{host="localhost",result="verified",resumed="false",group="[A-Za-z0-9-]+"\} [1-9]/);
    expect(metrics).toContain("certgate_verify_failures_total");
    // Expiry monitoring: the demo's server certificate and client CA, and the valid client's full handshake.
    expect(metrics).toMatch(/certgate_certificate_not_after_seconds\{kind="server",id="dev-localhost",subject="CN=localhost,O=certgate dev"\} \d{10}/);
    expect(metrics).toMatch(/certgate_certificate_not_after_seconds\{kind="ca",id="dev-clients",subject="CN=certgate dev client CA,O=certgate dev"\} \d{10}/);
    expect(metrics).toMatch(/certgate_client_certificate_remaining_seconds_count\{bundle="dev-clients"\} [1-9]/);
  });

  it("refuses an invalid bootstrap file, naming the path and the reason", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-badcfg-"));
    const cfg = join(dir, "certgate.yaml");
    writeFileSync(cfg, "hosts:\n  - hostname: a.example\n    mtls: { mode: enforced }\n    colour: blue\nroutes:\n  - id: r\n    hostname: a.example\n    origin: ftp://x\n");
    const r = await run(NODE, [CLI, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", "--data", join(dir, "data"), "--config", cfg]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("hosts[0].mtls.trust_bundle: trust_bundle is required unless mode is off");
    expect(r.stderr).toContain('hosts[0]: Unrecognized key: "colour"');
    expect(r.stderr).toContain("routes[0].origin");
  });

  it("refuses a bootstrap file that does not compile, storing nothing: the corrected file then serves", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-badkey-"));
    await run(NODE, [CLI, "certs", "dev", "--out", join(dir, "pki")]);
    const cfg = join(dir, "certgate.yaml");
    const data = join(dir, "data");
    const args = ["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", "--data", data, "--config", cfg];
    const file = (key: string, expression: string) =>
      `certificates:\n  - id: s\n    cert_file: pki/server.pem\n    key_file: pki/${key}\ndefault_certificate: s\nrules:\n  - id: r\n    expression: '${expression}'\n    action: block\n`;
    const revision = () => storeRevision(data);
    // A key that does not match its certificate; then a regular expression that does not compile.
    writeFileSync(cfg, file("client.key", 'http.request.uri.path eq "/x"'));
    const badKey = await run(NODE, [CLI, ...args]);
    expect(badKey.code).toBe(1);
    expect(badKey.stderr).toContain(`certificates[0].key_file: ${join(dir, "pki", "client.key")}: the private key does not match the certificate`);
    expect(revision()).toEqual({ value: "0" });
    writeFileSync(cfg, file("server.key", 'http.request.uri.path matches "(a"'));
    const badRule = await run(NODE, [CLI, ...args]);
    expect(badRule.code).toBe(1);
    expect(badRule.stderr).toContain("rules[0].expression");
    expect(revision()).toEqual({ value: "0" });
    // Corrected: it seeds the store and serves.
    writeFileSync(cfg, file("server.key", 'http.request.uri.path matches "(a)"'));
    const s = await startServe(dir, ["--data", data, "--config", cfg]);
    children.push(s.child);
    expect((await fetch(`http://127.0.0.1:${s.admin}/healthz`)).status).toBe(200);
    expect(revision()).toEqual({ value: "1" });
  }, 90_000); // three certgate starts

  it("a file-backed certificate whose file is missing: a clear error at the first start and at a restart, nothing stored or changed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "certgate-nofile-"));
    await run(NODE, [CLI, "certs", "dev", "--out", join(dir, "pki")]);
    const cfg = join(dir, "certgate.yaml");
    const data = join(dir, "data");
    const args = [CLI, "serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--public", "127.0.0.1:0", "--data", data, "--config", cfg];
    writeFileSync(cfg, "certificates:\n  - id: s\n    cert_file: tls/server.pem\n    key_file: pki/server.key\ndefault_certificate: s\n");
    const first = await run(NODE, args);
    expect(first.code).toBe(1);
    expect(first.stderr).toContain(`certificates[0].cert_file: cannot read ${join(dir, "tls", "server.pem")}: ENOENT`);
    const revision = () => storeRevision(data);
    expect(revision()).toEqual({ value: "0" });
    // With the file there it seeds and serves; the file then goes away: the restart refuses, naming it.
    mkdirSync(join(dir, "tls"));
    copyFileSync(join(dir, "pki", "server.pem"), join(dir, "tls", "server.pem"));
    const s = await startServe(dir, ["--data", data, "--config", cfg]);
    const stopped = new Promise((r) => s.child.once("exit", r));
    s.child.kill("SIGTERM");
    await stopped;
    rmSync(join(dir, "tls", "server.pem"));
    const again = await run(NODE, args);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`certificates[0].cert_file: cannot read ${join(dir, "tls", "server.pem")}: ENOENT`);
    expect(revision()).toEqual({ value: "1" });
  }, 90_000);
});
