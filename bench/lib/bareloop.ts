// The floor for a Node TLS client: new connections in a loop (8 in flight), one GET each,
// no timing, no parsing, no verification, nothing counted but closes; the CPU of this
// process over the window. bench/stime.bench.ts compares certgate bench with it.
//
// Usage: node bench/lib/bareloop.ts PORT CERT KEY SECONDS  → {"handshakes": N, "cpuS": S}
import tls from "node:tls";
import { readFileSync } from "node:fs";

const [port, cert, key, seconds] = process.argv.slice(2);
const ctx = tls.createSecureContext({ cert: readFileSync(cert!), key: readFileSync(key!), ca: [], minVersion: "TLSv1.3", ecdhCurve: "X25519" });
const req = Buffer.from("GET /bench HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
let handshakes = 0;
let measuring = false;
let done = false;
const loop = () => {
  const s = tls.connect({ host: "127.0.0.1", port: Number(port), servername: "localhost", secureContext: ctx, rejectUnauthorized: false });
  s.setNoDelay(true);
  s.once("secureConnect", () => s.write(req));
  s.on("data", () => {});
  s.on("error", () => {});
  s.on("close", () => {
    if (measuring) handshakes++;
    if (!done) setImmediate(loop);
  });
};
for (let i = 0; i < 8; i++) loop();
setTimeout(() => {
  measuring = true;
  const u0 = process.cpuUsage();
  setTimeout(() => {
    done = true;
    const u = process.cpuUsage(u0);
    process.stdout.write(JSON.stringify({ handshakes, cpuS: (u.user + u.system) / 1e6, seconds: Number(seconds) }) + "\n", () => process.exit(0));
  }, Number(seconds) * 1000);
}, 500);
