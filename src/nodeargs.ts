// The Node flags a process that serves traffic needs on its command line, since Node and V8
// read them only at start-up: certgate's OpenSSL configuration and V8's young generation, each
// unless the operator chose their own. The primary passes them to its workers; benchmarks and
// the soak to the certgate they start (package.json's scripts and the Dockerfile spell them out).
import { opensslArgs } from "./dataplane/tls/opensslconfig.ts";
import { heapArgs } from "./heapflags.ts";

export function servingNodeArgs(execArgv: readonly string[] = process.execArgv, env: NodeJS.ProcessEnv = process.env): string[] {
  return [...opensslArgs(execArgv, env), ...heapArgs(execArgv, env)];
}
