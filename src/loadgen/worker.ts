// A generator child process (`certgate bench --workers N`): runs one Generator from the spec
// in argv[2] and talks to the coordinator over IPC: window edges as they happen (so the
// server's CPU is read at the same moments), live counters for the progress line, the result.
import { Generator, type GenSpec } from "./generator.ts";

export type FromWorker =
  | { type: "window"; edge: "start" | "end" }
  | { type: "live"; ok: number; failed: number; conns: number; phase: string }
  | { type: "result"; result: Awaited<ReturnType<Generator["run"]>> };
export type ToWorker = { type: "stop" };

const send = (m: FromWorker) => process.send?.(m);
const gen = new Generator(JSON.parse(process.argv[2] ?? "") as GenSpec, (edge) => send({ type: "window", edge }));
const live = setInterval(() => send({ type: "live", ...gen.live }), 250);
process.on("message", (m: ToWorker) => {
  if (m.type === "stop") gen.stop();
});
// The coordinator going away ends this process too.
process.on("disconnect", () => process.exit(0));
const result = await gen.run();
clearInterval(live);
process.send!({ type: "result", result } satisfies FromWorker, () => process.disconnect());
