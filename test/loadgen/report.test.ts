// --report: the page a short run writes is self-contained and its three plots render in a
// real browser (headless Chromium, Debian's `chromium`): each SVG has a size and every data
// line in it has a drawn extent, as measured by the page's own inline check.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import { pemFiles, run } from "../helpers/tools.ts";
import { runBench, type BenchResult } from "../../src/loadgen/coordinator.ts";
import { benchOptions } from "./options.ts";
import { reportHtml } from "../../src/loadgen/report.ts";

const CHROMIUM = "chromium";
let proxy: Proxy;
let result: BenchResult;

beforeAll(async () => {
  const p = await pki();
  const f = pemFiles({ "client.pem": p.client.certPem, "client.key": p.client.keyPem, "server-ca.pem": p.serverCa.certPem });
  proxy = await startProxy((pk, origin) => baseModel(pk, origin, [{ hostname: "localhost", mtls: { trust_bundle: "clients", mode: "enforced" } }]));
  result = await runBench(benchOptions(`https://localhost:${proxy.port}/`, f, { durationMs: 1_500, count: 0 }));
});
afterAll(() => proxy.close());

interface Rendered {
  id: string;
  width: number;
  height: number;
  paths: number[];
}

describe("certgate bench --report", () => {
  it("is one self-contained page: nothing loaded from anywhere", () => {
    const html = reportHtml(result);
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href=|@import|url\(|@font-face/i);
    expect(html.match(/<svg [^>]*class="plot"/g)).toHaveLength(3);
  });

  it("renders its three plots in headless Chromium", async () => {
    expect(result.ok).toBeGreaterThan(0);
    const dir = mkdtempSync(join(tmpdir(), "certgate-report-"));
    const file = join(dir, "report.html");
    writeFileSync(file, reportHtml(result));
    const r = await run(CHROMIUM, ["--headless", "--no-sandbox", "--disable-gpu", `--user-data-dir=${join(dir, "profile")}`, "--dump-dom", `file://${file}`], "", 60_000);
    expect(r.code, r.stderr.slice(-500)).toBe(0);
    const attr = /data-rendered="([^"]*)"/.exec(r.stdout)?.[1];
    expect(attr, "the page's inline check did not run").toBeDefined();
    const plots = JSON.parse(attr!.replace(/&quot;/g, '"').replace(/&amp;/g, "&")) as Rendered[];
    expect(plots.map((p) => p.id)).toEqual(["throughput", "histogram", "percentiles"]);
    for (const p of plots) {
      expect(p.width, p.id).toBeGreaterThan(100);
      expect(p.height, p.id).toBeGreaterThan(100);
    }
    // Handshakes/s and responses/s over time (failed/s is a flat line at zero: it has width).
    expect(plots[0]!.paths.filter((n) => n > 0).length).toBeGreaterThanOrEqual(3);
    // Connect, handshake, first byte and total histograms.
    expect(plots[1]!.paths.filter((n) => n > 0)).toHaveLength(4);
    // p50, p90, p99 over time.
    expect(plots[2]!.paths.filter((n) => n > 0)).toHaveLength(3);
  }, 90_000);
});
