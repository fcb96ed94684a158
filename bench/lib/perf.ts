// `perf record` of one process for a while, summarised by native symbol and by family
// (EC math, ASN.1/X.509, malloc, TLS state machine, ...). The Node binary carries its
// symbols, so OpenSSL's functions inside certgate are named; JIT-compiled JavaScript is not
// (it shows as unresolved addresses: see the --cpu-prof summary for that part).
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { which } from "./servers.ts";

export interface PerfSummary {
  samples: string;
  top: { pct: number; symbol: string; dso: string }[];
  families: { family: string; pct: number }[];
  otherTop: string[];
}

export function perfAvailable(): boolean {
  if (!which("perf")) return false;
  const r = spawnSync("perf", ["record", "-q", "-o", "/dev/null", "--", "true"], { encoding: "utf8", timeout: 10_000 });
  return r.status === 0;
}

export function startPerf(pid: number, out: string): ChildProcess {
  return spawn("perf", ["record", "-q", "-F", "997", "-p", String(pid), "-o", out], { stdio: "ignore" });
}

export async function stopPerf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGINT");
  const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(t);
}

const FAMILIES: [string, RegExp][] = [
  ["kernel (network stack, syscalls, scheduling)", /^\[kernel/],
  ["malloc/free", /^(__libc_|_int_|malloc|free|realloc|calloc|cfree|CRYPTO_(malloc|zalloc|free|clear_free|realloc|strdup|strndup|memdup)|tcache|unlink_chunk|operator new|operator delete)/],
  ["EC P-256 math (ECDSA, ECDH)", /(nistz256|ecp_|^ec_|^EC_|ecdsa|ECDSA|ecdh|ECDH|^bn_|^BN_|mul_mont|sqr_mont|ossl_ec_|ossl_bn|_mulx|__ecp|ord_)/],
  ["hashes, HKDF, AEAD", /(sha256|SHA256|sha512|SHA512|sha1_|aes|gcm|GCM|hkdf|HKDF|HMAC|hmac|KECCAK|md_)/i],
  ["ASN.1 / X.509 decode-encode", /(asn1|ASN1|^d2i_|^i2d_|x509|X509|^OBJ_|^v3_|^ossl_x509|c2i_|i2c_|_der|DER)/],
  ["TLS state machine (libssl)", /(^ssl|^SSL|^tls|^TLS|statem|^dtls|^ossl_statem|_tls13)/],
  ["OpenSSL EVP, providers, properties, locks", /(^EVP_|^evp_|^OSSL_|^ossl_|^OPENSSL_|^CRYPTO_|provider|^lh_|^sk_|property|^ERR_|^BIO_|^bio_|pthread_rwlock|pthread_mutex)/],
  ["JavaScript in V8 builtins (ICs, calls, interpreter)", /^Builtins_/],
  ["node C++ (TLSWrap, streams, libuv)", /(^node::|^uv_|^uv__)/],
  ["V8 (GC, compiler, runtime)", /(^v8::|^Runtime_|^Heap|^cppgc|^Isolate|^v8_)/],
];

export function summarisePerf(data: string, top = 25): PerfSummary | { error: string } {
  const r = spawnSync("perf", ["report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym", "--percent-limit", "0.01"], {
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) return { error: `perf report failed: ${(r.stderr || "").trim().slice(0, 300)}` };
  const samples = /# Samples: (\S+)/.exec(r.stdout)?.[1] ?? "?";
  const rows: { pct: number; symbol: string; dso: string }[] = [];
  for (const line of r.stdout.split("\n")) {
    const m = /^\s+([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+?)\s*$/.exec(line);
    if (!m) continue;
    const dso = m[2]!;
    const kernel = m[3] === "k";
    let symbol = m[4]!;
    if (/^0x[0-9a-f]+$/.test(symbol)) symbol = dso.startsWith("perf-") || dso === "[unknown]" || dso === "[JIT]" ? "(JIT code: JavaScript)" : `(unresolved in ${dso})`;
    rows.push({ pct: Number(m[1]), symbol: kernel ? `[kernel] ${symbol}` : symbol, dso });
  }
  // Merge rows that collapse to one name (unresolved addresses).
  const merged = new Map<string, { pct: number; symbol: string; dso: string }>();
  for (const x of rows) {
    const k = `${x.symbol}\0${x.symbol.startsWith("(") ? "" : x.dso}`;
    const m = merged.get(k) ?? { pct: 0, symbol: x.symbol, dso: x.symbol.startsWith("(JIT") ? "JIT" : x.dso };
    m.pct += x.pct;
    merged.set(k, m);
  }
  const fam = new Map<string, number>();
  for (const x of merged.values()) {
    const name = x.symbol.startsWith("(JIT") ? "JavaScript (JIT code)" : (FAMILIES.find(([, re]) => re.test(x.symbol))?.[0] ?? "other");
    fam.set(name, (fam.get(name) ?? 0) + x.pct);
  }
  const other = [...merged.values()].filter((x) => !x.symbol.startsWith("(JIT") && !FAMILIES.some(([, re]) => re.test(x.symbol))).sort((a, b) => b.pct - a.pct);
  return {
    samples,
    otherTop: other.slice(0, 12).map((x) => `${x.symbol} ${x.pct.toFixed(1)}%`),
    top: [...merged.values()].sort((a, b) => b.pct - a.pct).slice(0, top),
    families: [...fam.entries()].map(([family, pct]) => ({ family, pct })).sort((a, b) => b.pct - a.pct),
  };
}
