// A worker process's entry point, in JavaScript so that it needs no type stripping: the primary
// has loaded worker.ts and everything it imports under the compile cache (src/cli.js), so a
// worker finds every module stripped already and never loads Node's TypeScript stripper.
import "../gcflags.js";
import { runWorker } from "./worker.ts";

runWorker();
