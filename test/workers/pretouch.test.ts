// V8's young generation touched once the process allocates (src/pretouch.ts): every page of both
// semi-spaces resident after one pass, nothing done where V8 has barely committed any, and each
// serving process of `certgate serve` (one process, or each worker) doing it on its own, not
// while idle.
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { get, startGroup, untilTrue } from "./group.ts";

const MiB = 1 << 20;
/** Semi-spaces of 16 MB committed whole from the start: 32 MB of young generation, nearly all untouched. */
const WHOLE_YOUNG_GENERATION = ["--min-semi-space-size=16", "--max-semi-space-size=16"];

interface Young {
  committed: number;
  touched: number;
}

type Pass = { bytes: number; committed: number; untouched: number } | null;

/** Two passes of touchYoungGeneration in a fresh node with `nodeArgs`, and the young generation around the first. */
function twoPasses(nodeArgs: string[]): { before: Young; first: Pass; after: Young; second: Pass } {
  const script = `
    import v8 from "node:v8";
    import { touchYoungGeneration } from ${JSON.stringify(pathToFileURL(resolve("src/pretouch.ts")).href)};
    const young = () => { const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === "new_space"); return { committed: s.space_size, touched: s.physical_space_size }; };
    const before = young(), first = touchYoungGeneration(), after = young(), second = touchYoungGeneration();
    console.log(JSON.stringify({ before, first, after, second }));`;
  const r = spawnSync(process.execPath, [...nodeArgs, "--input-type=module", "-e", script], { encoding: "utf8", timeout: 20_000 });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as never;
}

describe("touchYoungGeneration", () => {
  it("makes every committed page of both semi-spaces resident in one pass, and the next pass has nothing to do", () => {
    const { before, first, after, second } = twoPasses(WHOLE_YOUNG_GENERATION);
    // V8 commits the second semi-space at its first scavenge, which the pass brings about.
    expect(before.committed - before.touched).toBeGreaterThan(8 * MiB);
    expect(after).toEqual({ committed: 32 * MiB, touched: 32 * MiB });
    expect(first).toEqual({ bytes: after.touched - before.touched, committed: 32 * MiB, untouched: 0 });
    expect(second).toBeNull();
  });

  it("leaves alone a young generation V8 has barely committed (a process that has not grown it)", () => {
    const { before, first, after } = twoPasses(["--max-semi-space-size=16"]);
    expect(before.committed).toBeLessThan(4 * MiB);
    expect(first).toBeNull();
    expect(after.touched).toBe(before.touched);
  });
});

describe("certgate serve touches its serving processes' young generation", () => {
  const touches = (log: string) =>
    log
      .split("\n")
      .filter((l) => l.includes('"touched the young generation"'))
      .map((l) => JSON.parse(l) as { worker?: number; bytes: number; committed: number; untouched: number });

  it.each([1, 2])("--workers %i: not while idle; each serving process once it allocates", async (workers) => {
    const g = await startGroup(
      (p) => ({
        certificates: [{ id: "srv", cert: p.server.certPem, key: p.server.keyPem }],
        hosts: [{ hostname: "localhost" }],
        routes: [{ id: "r", hostname: "localhost", origin: "http://127.0.0.1:9" }],
        default_certificate: "srv",
      }),
      ["--workers", String(workers)],
      WHOLE_YOUNG_GENERATION,
      { CERTGATE_LOG_LEVEL: "debug" },
    );
    try {
      // Idle past the first check: V8's reserve stays untouched.
      await new Promise((r) => setTimeout(r, 11_000));
      expect(touches(g.log())).toEqual([]);
      // Then new connections (the origin is closed: each a prompt 502) until every serving
      // process has scavenged and been touched at its next check.
      const touchedAll = () => new Set(touches(g.log()).map((t) => t.worker)).size === workers;
      await untilTrue(
        async () => {
          const answers = await Promise.all(Array.from({ length: 8 }, () => get(g.port)));
          expect(answers.map((a) => a.status)).toEqual(Array(8).fill(502));
          return touchedAll();
        },
        40_000,
        `${workers} young generations touched`,
      );
      const seen = touches(g.log());
      // One process logs no worker field; with workers, a line from each.
      if (workers === 2) expect(seen.every((t) => t.worker !== undefined)).toBe(true);
      for (const t of seen) expect(t).toMatchObject({ bytes: expect.any(Number), committed: 32 * MiB, untouched: 0 });
    } finally {
      await g.stop();
    }
  }, 90_000);
});
