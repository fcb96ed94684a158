// Memory of the client certificate inventory (dataplane/tls/sightings.ts): V8 heap after a full
// GC, before and after filling a table.
//  1. record() with real certificates and connection facts, as the handshake path fills it
//     (2,000 certificates issued here: issuing 100,000 would take long);
//  2. merge() of 100,000 entries of the same shape (as a primary fills its table from its
//     workers, and a start from the store), strings as long as (1)'s and flat, as Node's
//     X509Certificate getters and IPC make them: the default size's total.
//   node --expose-gc bench/seen-memory.ts
import { X509Certificate } from "node:crypto";
import { createDevPki } from "../src/pki/devpki.ts";
import { issue } from "../src/pki/issue.ts";
import { ClientCertFacts } from "../src/dataplane/tls/facts.ts";
import { DEFAULT_SEEN_ENTRIES, Sightings, type SeenDelta } from "../src/dataplane/tls/sightings.ts";
import { VERIFIED } from "../src/dataplane/tls/verify.ts";
import { cpuModel } from "./lib/proc.ts";

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");
const heap = (): number => {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
};
/** A flat copy of a string, as native code and IPC hand them over (not a cons or sliced string). */
const flat = (s: string): string => Buffer.from(s, "latin1").toString("latin1");

const pki = await createDevPki();
const REAL = 2_000;
console.error(`issuing ${REAL} client certificates...`);
const ders: Buffer[] = [];
for (let i = 0; i < REAL; i++) {
  const c = await issue({ subject: `O=certgate dev,CN=client-${String(i).padStart(6, "0")}`, dnsNames: [`client-${i}.example.test`], uris: [`spiffe://example.test/client-${i}`] }, pki.ca);
  ders.push(new X509Certificate(c.certPem).raw);
}

// Certificates and facts are made in the loop and die with it, as they die with their connections.
const t1 = new Sightings(REAL);
let before = heap();
ders.forEach((der, i) => t1.record(new ClientCertFacts(new X509Certificate(der), VERIFIED), flat(`api-${i % 10}.example.test`)));
t1.drain(); // the pending changes go to the store (or the primary); the table is what stays
const perRecorded = (heap() - before) / REAL;
const sample = t1.entries()[0]!;

// The same shape, 100,000 times: lengths from a real entry, each string its own, made in
// batches as deltas arrive (each batch garbage afterwards).
const N = DEFAULT_SEEN_ENTRIES;
const delta = (i: number): SeenDelta => {
  const id = String(i).padStart(8, "0");
  return {
    fingerprint: flat(sample.fingerprint.slice(0, -11) + id.replace(/(..)(..)(..)(..)/, "$1:$2:$3:$4")),
    subject: flat(sample.subject.replace(/client-\d+/, `client-${id.slice(2)}`)),
    issuer: flat(sample.issuer),
    serial: flat(sample.serial.slice(0, -8) + id),
    san: flat(sample.san.replace(/client-\d+/g, `client-${id.slice(2)}`)),
    notAfter: sample.notAfter,
    result: "verified",
    revoked: null,
    firstSeen: Date.now(),
    lastSeen: Date.now(),
    hostnames: [flat(`api-${i % 10}.example.test`)],
    connections: 1,
  };
};
const t2 = new Sightings(N);
before = heap();
for (let i = 0; i < N; i += 1000) t2.merge(Array.from({ length: 1000 }, (_, k) => delta(i + k)));
t2.drain();
const total = heap() - before;
if (t2.size !== N) throw new Error(`expected ${N} entries, got ${t2.size}`);
console.log(`\n| table | entries | V8 heap | per entry |`);
console.log(`|---|---:|---:|---:|`);
console.log(`| record() of real certificates | ${REAL} | ${((perRecorded * REAL) / 1e6).toFixed(1)} MB | ${perRecorded.toFixed(0)} B |`);
console.log(`| merge() of entries of the same shape | ${N} | ${(total / 1e6).toFixed(1)} MB | ${(total / N).toFixed(0)} B |`);
console.log(`\nA sample entry: subject ${sample.subject.length} chars, SAN ${sample.san.length}, serial ${sample.serial.length}, fingerprint ${sample.fingerprint.length}, one hostname. ${cpuModel()}, node ${process.version}.`);
