// /metrics on the admin listener: certgate's own metrics under certgate_, Node's and the
// process's under the standard names Prometheus dashboards and alerts use.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { api, startCertgate, type Certgate } from "../control/helpers.ts";
import { request } from "../helpers/harness.ts";

describe("metrics endpoint", () => {
  let cg: Certgate;
  beforeAll(async () => {
    cg = await startCertgate();
  });
  afterAll(() => cg.close());

  it("exposes the process and Node metrics under their standard names, everything else under certgate_", async () => {
    expect((await request(cg.port, { path: "/m" })).status).toBe(200);
    const r = await api(cg, "GET", "/metrics", undefined, { token: null });
    expect(r.status).toBe(200);
    const families = [...r.text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!);
    for (const name of ["process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds", "nodejs_heap_size_used_bytes", "nodejs_heap_size_total_bytes", "nodejs_external_memory_bytes", "nodejs_active_handles_total", "nodejs_eventloop_lag_seconds"])
      expect(families).toContain(name);
    expect(r.text).toMatch(/^process_resident_memory_bytes [1-9]\d*$/m);
    expect(r.text).toMatch(/^certgate_proportional_memory_bytes [1-9]\d*$/m);
    expect(r.text).toMatch(/^certgate_requests_total\{host="_default",status="200",protocol="http\/1.1"\} 1$/m);
    expect(families.filter((n) => !/^(certgate|process|nodejs)_/.test(n))).toEqual([]);
    expect(families.filter((n) => n.startsWith("certgate_process_"))).toEqual([]);
  });
});
