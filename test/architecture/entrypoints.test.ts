// Every certgate process starts through one of two entry points; each must turn V8's
// allocation-site pretenuring off before anything else loads (src/gcflags.js says why).
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { heapArgs, YOUNG_GENERATION_ARGS } from "../../src/heapflags.ts";

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

// V8 fixes its young generation's size at start-up (src/heapflags.ts says why certgate caps it).
describe("the young generation", () => {
  const newSpaceMb = (args: string[], inside = "") => {
    // A workload whose survivors make V8 grow the nursery to its ceiling.
    const code = `${inside}
let keep = [];
for (let i = 0; i < 1.2e7; i++) { const o = { a: i, b: [i, i + 1], s: "x" + i }; if (i % 4 === 0) keep.push(o); if (keep.length > 200000) keep = []; }
process.stdout.write(String(require("node:v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size / 2 ** 20));`;
    // An old generation of 4 GB, as V8 gives a machine with memory to spare, whatever this one has.
    const r = spawnSync(process.execPath, ["--max-old-space-size=4096", ...args, "-e", code], { encoding: "utf8", timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    return Number(r.stdout);
  };

  it("is capped by the command-line flag, and only by it: set from inside, V8 ignores it", () => {
    const capped = newSpaceMb([...YOUNG_GENERATION_ARGS]);
    expect(capped).toBeLessThanOrEqual(32);
    expect(newSpaceMb([])).toBeGreaterThan(capped);
    expect(newSpaceMb([], `require("node:v8").setFlagsFromString("${YOUNG_GENERATION_ARGS[0]}");`)).toBeGreaterThan(capped);
  });

  it("is on the command line of npm start, npm run certgate and the container's entry point", () => {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { scripts: Record<string, string> };
    for (const script of ["start", "certgate"]) expect(pkg.scripts[script]!.split(" ")).toContain(YOUNG_GENERATION_ARGS[0]);
    const entry = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(new URL("../../Dockerfile", import.meta.url), "utf8"))![1]!;
    expect(JSON.parse(entry)).toContain(YOUNG_GENERATION_ARGS[0]);
  });

  it("is the operator's when they size the heap themselves, on the command line or in NODE_OPTIONS", () => {
    expect(heapArgs([], {})).toEqual([...YOUNG_GENERATION_ARGS]);
    expect(heapArgs(["--max-semi-space-size=64"], {})).toEqual([]);
    expect(heapArgs(["--max-semi-space-size", "64"], {})).toEqual([]);
    expect(heapArgs(["--max_semi_space_size=64"], {})).toEqual([]);
    expect(heapArgs([], { NODE_OPTIONS: "--max-old-space-size=512 --min-semi-space-size=8" })).toEqual([]);
    expect(heapArgs(["--max-old-space-size=512"], { NODE_OPTIONS: "--inspect" })).toEqual([...YOUNG_GENERATION_ARGS]);
  });
});
