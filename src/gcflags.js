// V8's allocation-site pretenuring, off, before any of certgate loads. Under a proxy's load V8
// decides that objects made per request (headers, responses, HTTP/2 streams) outlive the young
// generation and allocates them straight in the old one, where they die anyway. In the soak
// (docs/benchmarks.md) that was 8.8 MB moved to the old generation at each scavenge instead of
// 1.3 MB, a full GC about once a minute, and a V8 heap swinging by 100 MB; scavenges took
// 12-24 ms instead of 1-8.
import v8 from "node:v8";

v8.setFlagsFromString("--no-allocation-site-pretenuring");
