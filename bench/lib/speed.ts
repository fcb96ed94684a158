// The crypto-only limit: what one full mTLS handshake must compute on the server, timed by
// `openssl speed` on the server CPU. Per handshake: one ECDSA P-256 sign (CertificateVerify),
// one ECDH P-256 (key share), two ECDSA P-256 verifies (the client's CertificateVerify and
// its certificate's signature).
import { spawnSync } from "node:child_process";
import { pinned } from "./servers.ts";

export interface CryptoLimit {
  openssl: string;
  seconds: number;
  signPerS: number;
  verifyPerS: number;
  ecdhPerS: number;
  /** Server CPU seconds per handshake for the crypto alone. */
  handshakeCpuMs: number;
  /** Full handshakes per CPU-second if a server did nothing but this crypto. */
  handshakesPerCpuS: number;
}

export function cryptoLimit(cpu: string | null, seconds: number): CryptoLimit | { error: string } {
  const [cmd, args] = pinned(cpu, "openssl", ["speed", "-seconds", String(seconds), "ecdsap256", "ecdhp256"]);
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout: (seconds * 8 + 30) * 1000 });
  if (r.status !== 0) return { error: `openssl speed failed: ${(r.stderr || r.error?.message || "").trim().slice(0, 300)}` };
  const out = r.stdout;
  const ecdsa = /256 bits ecdsa \(nistp256\)\s+\S+\s+\S+\s+([\d.]+)\s+([\d.]+)/.exec(out);
  const ecdh = /256 bits ecdh \(nistp256\)\s+\S+\s+([\d.]+)/.exec(out);
  if (!ecdsa || !ecdh) return { error: `cannot parse openssl speed output:\n${out.slice(-400)}` };
  const signPerS = Number(ecdsa[1]);
  const verifyPerS = Number(ecdsa[2]);
  const ecdhPerS = Number(ecdh[1]);
  const handshakeCpuS = 1 / signPerS + 1 / ecdhPerS + 2 / verifyPerS;
  const version = spawnSync("openssl", ["version"], { encoding: "utf8" }).stdout.trim();
  return { openssl: version, seconds, signPerS, verifyPerS, ecdhPerS, handshakeCpuMs: handshakeCpuS * 1000, handshakesPerCpuS: 1 / handshakeCpuS };
}
