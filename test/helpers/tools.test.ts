// The test helpers that run openssl and curl must not fail a test by themselves.
import { describe, expect, it } from "vitest";
import { run } from "./tools.ts";

describe("run()", () => {
  it("answers a child's exit code when the child closes its stdin before reading the input (EPIPE)", async () => {
    // 8 MiB cannot fit in the pipe: the write is still pending when the child closes stdin,
    // which is what a busy machine does to openssl's tiny input (one of the flaky test's causes).
    const r = await run("sh", ["-c", "exec 0<&-; exit 3"], "x".repeat(8 << 20));
    expect(r.code).toBe(3);
  });
});
