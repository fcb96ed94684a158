// The model delta a primary sends its workers (src/workers/delta.ts), over random writes: the
// worker's rebuilt model equals the primary's after Node's IPC serialization, and every element
// the write left alone is the worker's own previous object (the compile memo depends on it).
import { deserialize, serialize } from "node:v8";
import { describe, expect, it } from "vitest";
import { applyDelta, diffModels } from "../../src/workers/delta.ts";
import { changedPositions } from "../../src/model/positions.ts";
import type { Model } from "../../src/model/schema.ts";
import { prng } from "../helpers/prng.ts";

type Host = { hostname: string; n: number };
const host = (i: number, n = 0): Host => ({ hostname: `h${i}.test`, n });

/** One write as the control plane makes it: a new array sharing every element it leaves alone. */
function write(rand: () => number, hosts: Host[], fresh: () => number): Host[] {
  const out = hosts.slice();
  const at = () => Math.floor(rand() * out.length);
  switch (Math.floor(rand() * 6)) {
    case 0: // replace some in place
      for (let k = 1 + Math.floor(rand() * 3); k > 0 && out.length; k--) {
        const i = at();
        out[i] = { ...out[i]!, n: out[i]!.n + 1 };
      }
      return out;
    case 1: // append
      out.push(host(fresh()));
      return out;
    case 2: // delete
      if (out.length) out.splice(at(), 1);
      return out;
    case 3: // insert in the middle
      out.splice(at(), 0, host(fresh()));
      return out;
    case 4: // reorder
      return out.reverse();
    default: // rename in place
      if (out.length) out[at()] = host(fresh());
      return out;
  }
}

describe("model delta", () => {
  it("rebuilds the primary's model in the worker over random writes, keeping the identity of elements left in place", () => {
    const rand = prng(7);
    let next = 1_000;
    for (let run = 0; run < 40; run++) {
      let primary = { hosts: Array.from({ length: Math.floor(rand() * 200) }, (_, i) => host(i)), limits: { a: 1 } } as unknown as Model;
      let worker = deserialize(serialize(primary)) as Model;
      for (let step = 0; step < 30; step++) {
        const hosts = write(rand, primary.hosts as unknown as Host[], () => next++);
        const model = { ...primary, hosts, ...(rand() < 0.1 ? { limits: { a: step } } : {}) } as unknown as Model;
        const delta = deserialize(serialize(diffModels(primary, model)));
        const rebuilt = applyDelta(worker, delta);
        expect(rebuilt).toEqual(model);
        // An element the write left where it was is the worker's previous object, not a copy
        // (one the write moved may travel as a copy when the positions still line up).
        (model.hosts as unknown as Host[]).forEach((h, i) => {
          if (h === (primary.hosts as unknown as Host[])[i]) expect(rebuilt.hosts[i]).toBe(worker.hosts[i]);
        });
        primary = model;
        worker = rebuilt;
      }
    }
  });

  it("refuses a positional delta that does not line up with the worker's model", () => {
    const hosts = [host(1), host(2), host(3)];
    const prev = { hosts } as unknown as Model;
    const model = { hosts: [hosts[0], { ...host(2), n: 1 }, hosts[2]] } as unknown as Model;
    const delta = diffModels(prev, model);
    expect(delta.collections.hosts).toMatchObject({ length: 3, at: [1] });
    expect(() => applyDelta({ hosts: [host(1)] } as unknown as Model, delta)).toThrow(/does not line up/);
  });

  it("finds changed positions, and gives up on deletes and on wholesale changes", () => {
    const a = Array.from({ length: 100 }, (_, i) => ({ i }));
    const b = a.slice();
    b[3] = { i: 3 };
    b.push({ i: 100 });
    expect(changedPositions(a, b)).toEqual([3, 100]);
    expect(changedPositions(a, a.slice(1))).toBeNull();
    expect(changedPositions(a, a.slice().reverse())).toBeNull();
    expect(changedPositions(a, a)).toEqual([]);
  });
});
