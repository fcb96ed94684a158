// A real OpenSSL CA directory around one of our test CAs: `openssl ca -revoke/-gencrl`
// make the CRLs and `openssl ocsp -index` answers OCSP, as independent implementations.
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { X509Certificate } from "node:crypto";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Issued } from "../../src/pki/issue.ts";
import { run } from "./tools.ts";

export class OpensslCa {
  readonly dir: string;
  constructor(ca: Issued) {
    this.dir = mkdtempSync(join(tmpdir(), "certgate-ossl-ca-"));
    writeFileSync(join(this.dir, "ca.pem"), ca.certPem);
    writeFileSync(join(this.dir, "ca.key"), ca.keyPem, { mode: 0o600 });
    writeFileSync(join(this.dir, "index.txt"), "");
    writeFileSync(join(this.dir, "crlnumber"), "1000\n");
    writeFileSync(
      join(this.dir, "ca.cnf"),
      `[ca]\ndefault_ca = CA_default\n[CA_default]\ndir = ${this.dir}\ndatabase = $dir/index.txt\ncrlnumber = $dir/crlnumber\ncertificate = $dir/ca.pem\nprivate_key = $dir/ca.key\ndefault_md = sha256\ndefault_crl_days = 1\nunique_subject = no\n`,
    );
  }

  /** Records a certificate as valid in the index (OCSP "good"). */
  markValid(certPem: string): void {
    const c = new X509Certificate(certPem);
    const exp = new Date(c.validTo).toISOString().replace(/[-:T]/g, "").slice(2, 14) + "Z";
    appendFileSync(join(this.dir, "index.txt"), `V\t${exp}\t\t${c.serialNumber}\tunknown\t/${c.subject.split("\n").join("/")}\n`);
  }

  async revoke(certPem: string): Promise<void> {
    const file = join(this.dir, `revoke-${Date.now()}-${Math.random()}.pem`);
    writeFileSync(file, certPem);
    const r = await run("openssl", ["ca", "-config", join(this.dir, "ca.cnf"), "-revoke", file, "-crl_reason", "keyCompromise", "-batch"]);
    if (r.code !== 0) throw new Error(`openssl ca -revoke failed: ${r.stderr}`);
  }

  /** A CRL of the revocations so far; `seconds` sets nextUpdate that far ahead (default 1 day). */
  async gencrl(seconds?: number): Promise<string> {
    const out = join(this.dir, "crl.pem");
    const r = await run("openssl", ["ca", "-config", join(this.dir, "ca.cnf"), "-gencrl", "-out", out, "-batch", ...(seconds ? ["-crlsec", String(seconds)] : [])]);
    if (r.code !== 0) throw new Error(`openssl ca -gencrl failed: ${r.stderr}`);
    return (await import("node:fs")).readFileSync(out, "utf8");
  }

  /**
   * Starts `openssl ocsp` as a responder; resolves when it says it is waiting. (It serves one
   * connection at a time, so a connect-and-close readiness probe would wedge it.)
   */
  async startOcsp(port?: number, signer?: Issued): Promise<{ url: string; child: ChildProcess }> {
    port ??= await freePort();
    // A delegated responder signs with its own certificate and key; by default the CA itself.
    const [rsigner, rkey] = signer ? [join(this.dir, "rsigner.pem"), join(this.dir, "rsigner.key")] : [join(this.dir, "ca.pem"), join(this.dir, "ca.key")];
    if (signer) {
      writeFileSync(rsigner, signer.certPem);
      writeFileSync(rkey, signer.keyPem, { mode: 0o600 });
    }
    const child = spawn(
      "openssl",
      ["ocsp", "-index", join(this.dir, "index.txt"), "-port", String(port), "-timeout", "5", "-rsigner", rsigner, "-rkey", rkey, "-CA", join(this.dir, "ca.pem"), "-ndays", "1"],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    // Never outlive the test process, whatever happens to its teardown.
    const stop = () => child.kill();
    process.once("exit", stop);
    child.once("exit", () => process.off("exit", stop));
    await new Promise<void>((resolve, reject) => {
      let err = "";
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error(`openssl ocsp did not start: ${err}`));
      }, 10_000);
      child.stderr!.on("data", (d) => {
        err += d;
        if (!err.includes("waiting for OCSP client connections")) return;
        clearTimeout(timer);
        resolve();
      });
    });
    return { url: `http://127.0.0.1:${port}`, child };
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
