// A Runtime for a node serving one Apinizer environment (`certgate serve --environment NAME`):
// every snapshot it compiles, at start and on every admin write, includes the rules of the
// Apinizer policies deployed to that environment (apinizer-compile.ts). The stored model is
// unchanged; only this node's compiled view of it gains the derived rules.
//
// This is a stand-in for a hook in the data plane: when Snapshot takes the environment and calls
// withApinizerRules() itself, this class becomes `new Runtime(model, {..., environment})`.
import { ModelError, type Model } from "../model/schema.ts";
import { Runtime, type RuntimeOptions } from "../dataplane/runtime.ts";
import type { Snapshot } from "../dataplane/snapshot.ts";
import { withApinizerRules } from "./apinizer-compile.ts";

export const DEFAULT_ENVIRONMENT = "production";

export class ApinizerRuntime extends Runtime {
  readonly environment: string;

  constructor(model: Model, opts: RuntimeOptions, environment: string = DEFAULT_ENVIRONMENT) {
    super(expand(model, environment), opts);
    this.environment = environment;
  }

  override compile(model: Model): Snapshot {
    const next = expand(model, this.environment);
    try {
      return super.compile(next);
    } catch (e) {
      throw remap(e, next.rules.length - model.rules.length, next);
    }
  }
}

function expand(model: Model, environment: string): Model {
  return withApinizerRules(model, environment);
}

/** Errors at `rules[k]` of the expanded model → the stored model's `rules[k - n]`, or the generated rule's id. */
function remap(e: unknown, n: number, expanded: Model): unknown {
  if (!n || !(e instanceof ModelError)) return e;
  return new ModelError(
    e.issues.map((i) => {
      const m = /^rules\[(\d+)\](.*)$/.exec(i.path);
      if (!m) return i;
      const k = Number(m[1]);
      return k < n ? { path: `apinizer (rule ${expanded.rules[k]!.id})`, message: i.message } : { path: `rules[${k - n}]${m[2]}`, message: i.message };
    }),
  );
}
