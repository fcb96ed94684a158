// Every certgate process starts through one of two entry points; each must turn V8's
// allocation-site pretenuring off before anything else loads (src/gcflags.js says why).
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
