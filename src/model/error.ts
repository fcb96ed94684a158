// The model's validation failure: plain TypeScript, so the data plane can throw and catch it
// without loading the schema (and zod) in every worker process.

/** A validation failure naming where in the model it is and why. */
export class ModelError extends Error {
  readonly issues: { path: string; message: string }[];
  constructor(issues: { path: string; message: string }[]) {
    super(issues.map((i) => `${i.path || "(root)"}: ${i.message}`).join("\n"));
    this.name = "ModelError";
    this.issues = issues;
  }
}

export function formatPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i ? "." : ""}${String(p)}`)).join("");
}
