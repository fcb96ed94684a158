// certgate's entry point, in JavaScript: loading a .ts entry would load Node's TypeScript
// stripper (about 15-18 MB per process, for the life of the process) before the compile cache
// could answer for it. The cache is switched on before any of certgate loads, so each module
// is kept stripped of its types and compiled (in NODE_COMPILE_CACHE, by default
// node-compile-cache under the OS temp dir): from the second start on, this process and its
// workers (which inherit the variable) load certgate without the stripper and without parsing
// it again. Where the directory is not writable, Node runs on without a cache.
import "./gcflags.js";
import module from "node:module";
import process from "node:process";
import { tmpdir } from "node:os";
import { join } from "node:path";

process.env.NODE_COMPILE_CACHE ||= join(tmpdir(), "node-compile-cache");
module.enableCompileCache(process.env.NODE_COMPILE_CACHE);
await import("./commands.ts");
