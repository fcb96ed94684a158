// The dialects' invariants, checked by the write path on every write and on the bootstrap seed
// (checkControlRefs), so no dialect can store what another one refuses.
import type { Model } from "../model/schema.ts";
import { apinizerProblems } from "./apinizer/invariants.ts";
import { fastlyProblems } from "./fastly/records.ts";

type Problem = { path: string; message: string };

/** With `prev` (the stored model), checks whose inputs are unchanged are skipped. */
export function dialectProblems(model: Model, prev?: Model): Problem[] {
  const fastly = prev?.dialects.fastly !== model.dialects.fastly ? fastlyProblems(model) : [];
  return [...fastly, ...apinizerProblems(model, prev)];
}
