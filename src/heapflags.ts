// The size of V8's young generation, which V8 fixes when a process starts: unlike the flag
// gcflags.js sets from inside, this one must be on node's command line (src/nodeargs.ts).
//
// On a machine with memory to spare V8 13 lets each of the two semi-spaces grow to 64 MB.
// Under a proxy's steady load that is 128 MB of nursery, which the scavenger touches page by
// page for an hour and more: part of the soak's slow RSS rise (README, "Soak"). 16 MB each
// holds a proxy's per-request garbage as well: the same CPU per request in interleaved A/B
// runs, and 96 MB less committed to the young generation.
export const YOUNG_GENERATION_ARGS: readonly string[] = ["--max-semi-space-size=16"];

/** The operator sized V8's heap (a flag on the command line or in NODE_OPTIONS, V8 spelling `-` or `_`): certgate keeps out of it. */
function operatorSized(execArgv: readonly string[], env: NodeJS.ProcessEnv): boolean {
  return [...execArgv, ...(env.NODE_OPTIONS ?? "").split(/\s+/)].some((a) => /^--((max|min)[-_]semi[-_]space[-_]size|max[-_]heap[-_]size)(=|$)/.test(a));
}

/** Node flags for a child process that serves traffic: certgate's young generation unless the operator chose one. */
export function heapArgs(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  return operatorSized(execArgv, env) ? [] : [...YOUNG_GENERATION_ARGS];
}
