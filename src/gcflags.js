// V8 flags certgate sets from inside, before any of certgate loads (both take effect at run time).
//
// Allocation-site pretenuring, off. Under a proxy's load V8 decides that objects made per
// request (headers, responses, HTTP/2 streams) outlive the young generation and allocates them
// straight in the old one, where they die anyway. In the soak (docs/benchmarks.md) that was
// 8.8 MB moved to the old generation at each scavenge instead of 1.3 MB, a full GC about once a
// minute, and a V8 heap swinging by 100 MB; scavenges took 12-24 ms instead of 1-8.
//
// The minor GC task, off: V8 then scavenges when the young generation is full rather than from
// a task it posts at 80%. With the task, the last fifth of each semi-space stayed untouched
// until some burst outran it, and the RSS stepped up by ~6 MB at a random moment (minute 9 to 34
// of the soak's hour); without it those pages are in use within seconds of load.
import v8 from "node:v8";

v8.setFlagsFromString("--no-allocation-site-pretenuring");
v8.setFlagsFromString("--no-minor-gc-task");
