// Every certgate process starts through one of two entry points; each must turn V8's
// allocation-site pretenuring off before anything else loads (src/gcflags.js says why).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const firstImport = (file: string) => /^import\s+(?:[^"']*from\s+)?["']([^"']+)["']/m.exec(readFileSync(new URL(`../../${file}`, import.meta.url), "utf8"))?.[1];

describe("entry points", () => {
  it.each([
    ["src/cli.js", "./gcflags.js"],
    ["src/workers/worker-entry.js", "../gcflags.js"],
  ])("%s imports gcflags.js first", (file, spec) => {
    expect(firstImport(file)).toBe(spec);
  });

  it("gcflags.js turns allocation-site pretenuring off", () => {
    expect(readFileSync(new URL("../../src/gcflags.js", import.meta.url), "utf8")).toMatch(/setFlagsFromString\("--no-allocation-site-pretenuring"\)/);
  });
});

// Each worker process pays for every module it loads (source text, bytecode): @peculiar/x509 and
// its ASN.1 schema stack cost one about 9 MB (README, Workers). The data plane reads certificate
// extensions with its own DER walker (src/dataplane/tls/certextensions.ts) instead.
describe("a worker's modules", () => {
  it("do not include @peculiar/x509, its schemas or reflect-metadata", () => {
    const hook = `import { registerHooks } from "node:module";
const urls = [];
registerHooks({ load(url, ctx, next) { urls.push(url); return next(url, ctx); } });
await import(${JSON.stringify(new URL("../../src/workers/worker.ts", import.meta.url).href)});
process.stdout.write(JSON.stringify(urls));`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", hook], { encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const loaded = (JSON.parse(r.stdout) as string[]).map((u) => /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(u)?.[1]).filter((p): p is string => !!p);
    // The probe works: the worker's own dependencies are seen.
    expect(loaded).toContain("lru-cache");
    expect(new Set(loaded.filter((p) => p.startsWith("@peculiar/") || p === "reflect-metadata" || p === "tsyringe"))).toEqual(new Set());
  });
});
