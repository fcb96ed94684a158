// certgate's entry point. Node's compile cache is switched on before any of certgate loads,
// so each module is kept stripped of its types and compiled (in NODE_COMPILE_CACHE, by default
// node-compile-cache under the OS temp dir). Worker processes inherit the variable: they then
// start without loading Node's TypeScript stripper (about 18 MB per process) and without
// parsing certgate again. Where the directory is not writable, Node runs on without a cache.
import module from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";

process.env.NODE_COMPILE_CACHE ||= join(tmpdir(), "node-compile-cache");
module.enableCompileCache(process.env.NODE_COMPILE_CACHE);
await import("./commands.ts");
