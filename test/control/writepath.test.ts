// The write path's validation of what a mutation changed (validateChanged): collections element by
// element, each dialect's records apart, every other field whole; unknown fields at either level
// are refused with their path, and nothing is stored.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ModelError, type Model } from "../../src/model/schema.ts";
import type { WriteContext } from "../../src/control/writepath.ts";
import { startCertgate, type Certgate } from "./helpers.ts";

let cg: Certgate;
beforeAll(async () => {
  cg = await startCertgate();
});
afterAll(() => cg.close());

const ctx = (): WriteContext => ({ principal: { token_id: "admin", read_only: false, account_id: null }, method: "PUT", path: "/test", warnings: [] });

/** The problems a mutation is refused with (and the stored model is unchanged). */
async function refused(mutate: (m: Model) => unknown): Promise<{ path: string; message: string }[]> {
  const before = cg.plane.model;
  const e = await cg.plane.write(ctx(), "test", (m) => ({ model: mutate(m) as Model, result: null })).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ModelError);
  expect(cg.plane.model).toBe(before);
  return (e as ModelError).issues;
}

describe("write path: validation of a changed model", () => {
  it("names the path of a bad field, at the top, in a collection element and in a dialect's records", async () => {
    expect(await refused((m) => ({ ...m, colour: "red" }))).toEqual([{ path: "colour", message: "unrecognized key" }]);
    expect((await refused((m) => ({ ...m, limits: { ...m.limits, max_header_count: "many" } })))[0]!.path).toBe("limits.max_header_count");
    expect((await refused((m) => ({ ...m, hosts: [...m.hosts, { hostname: "new.test", mtls: { mode: "sideways" } }] })))[0]!.path).toBe(`hosts[${cg.plane.model.hosts.length}].mtls.mode`);
    expect(await refused((m) => ({ ...m, dialects: { ...m.dialects, acme: {} } }))).toEqual([{ path: "dialects.acme", message: "unrecognized key" }]);
    expect(await refused((m) => ({ ...m, dialects: "none" }))).toEqual([{ path: "dialects", message: "must be an object" }]);
    expect((await refused((m) => ({ ...m, dialects: { ...m.dialects, fastly: { ...m.dialects.fastly, tls_configurations: "x" } } })))[0]!.path).toBe("dialects.fastly.tls_configurations");
  });

  it("parses only what changed: an unchanged dialect's records keep their identity", async () => {
    const prev = cg.plane.model;
    await cg.plane.write(ctx(), "test", (m) => ({ model: { ...m, url_normalization: { merge_slashes: false }, dialects: { ...m.dialects, fastly: { ...m.dialects.fastly } } }, result: null }));
    const next = cg.plane.model;
    expect(next.url_normalization).toEqual({ merge_slashes: false });
    expect(next.dialects.cloudflare).toBe(prev.dialects.cloudflare);
    expect(next.hosts).toBe(prev.hosts);
  });
});
