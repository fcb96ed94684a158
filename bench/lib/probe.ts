// One-off checks that every server is configured equivalently before any load: the server
// certificate verifies against the server CA for "localhost", TLS 1.3 with P-256 key
// exchange, a client certificate is required (no certificate: no 200), a request with one is
// proxied to the origin (its exact body comes back), and a session ticket resumes.
import tls from "node:tls";
import { readFileSync } from "node:fs";
import { ResponseReader } from "../../src/loadgen/http1.ts";
import { ORIGIN_BODY } from "./body.ts";
import { SERVERNAME, type Pki } from "./servers.ts";

export interface ProbeResult {
  ok: boolean;
  problems: string[];
  protocol: string | null;
  cipher: string | null;
  keyExchange: string | null;
  noCertificate: string; // what a client without a certificate got
  resumes: boolean;
  ticketsPerHandshake: number;
}

interface One {
  status: number;
  body: string;
  error: string | null;
  protocol: string | null;
  cipher: string | null;
  keyExchange: string | null;
  authorized: boolean;
  reused: boolean;
  sessions: Buffer[];
}

function once(port: number, pki: Pki, withCert: boolean, session?: Buffer): Promise<One> {
  return new Promise((resolve) => {
    const out: One = { status: 0, body: "", error: null, protocol: null, cipher: null, keyExchange: null, authorized: false, reused: false, sessions: [] };
    const sock = tls.connect({
      host: "127.0.0.1",
      port,
      servername: SERVERNAME,
      ca: readFileSync(pki.serverCa),
      ...(withCert && { cert: readFileSync(pki.clientCert), key: readFileSync(pki.clientKey) }),
      minVersion: "TLSv1.3",
      ecdhCurve: "P-256",
      ciphers: "TLS_AES_128_GCM_SHA256",
      rejectUnauthorized: true,
      session,
    });
    const reader = new ResponseReader();
    const chunks: Buffer[] = [];
    let headerSeen = false;
    const timer = setTimeout(() => finish("timeout"), 5_000);
    let done = false;
    const finish = (err: string | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      out.error = err;
      const raw = Buffer.concat(chunks).toString("latin1");
      out.body = raw.slice(raw.indexOf("\r\n\r\n") + 4);
      // Tickets may arrive just after the response: give them a moment.
      setTimeout(() => {
        sock.destroy();
        resolve(out);
      }, 100);
    };
    sock.on("session", (s: Buffer) => out.sessions.push(s));
    sock.on("secureConnect", () => {
      out.protocol = sock.getProtocol();
      out.cipher = sock.getCipher()?.standardName ?? null;
      const k = sock.getEphemeralKeyInfo() as { type?: string; name?: string } | null;
      out.keyExchange = k && "name" in k ? `${k.type ?? ""} ${k.name ?? ""}`.trim() : null;
      out.authorized = sock.authorized;
      out.reused = sock.isSessionReused();
    });
    sock.on("data", (c: Buffer) => {
      chunks.push(c);
      try {
        if (reader.feed(c)) {
          out.status = reader.status;
          finish(null);
        }
      } catch (e) {
        finish((e as Error).message);
      }
      headerSeen = true;
    });
    sock.on("error", (e) => finish(e.message));
    sock.on("close", () => finish(headerSeen ? "closed mid-response" : "closed without a response"));
    sock.write(`GET /probe HTTP/1.1\r\nHost: ${SERVERNAME}\r\nConnection: close\r\n\r\n`);
  });
}

export async function probe(port: number, pki: Pki): Promise<ProbeResult> {
  const problems: string[] = [];
  const a = await once(port, pki, true);
  if (a.error || a.status !== 200) problems.push(`request with a client certificate: ${a.error ?? `HTTP ${a.status}`}`);
  if (!a.authorized) problems.push("server certificate did not verify against the server CA");
  if (a.body !== ORIGIN_BODY) problems.push(`body is not the origin's (${JSON.stringify(a.body.slice(0, 60))})`);
  if (a.protocol !== "TLSv1.3") problems.push(`protocol ${a.protocol}`);
  if (a.keyExchange && !/prime256v1|P-256/i.test(a.keyExchange)) problems.push(`key exchange ${a.keyExchange}`);
  const b = await once(port, pki, false);
  const noCertificate = b.status ? `HTTP ${b.status}` : `refused (${(b.error ?? "").slice(0, 80)})`;
  if (b.status === 200) problems.push("a client without a certificate got 200: client certificates are not required");
  let resumes = false;
  const ticket = a.sessions.at(-1);
  if (!ticket) problems.push("no session ticket received");
  else {
    const c = await once(port, pki, true, ticket);
    resumes = c.reused && c.status === 200;
    if (!resumes) problems.push(`offered ticket did not resume (${c.error ?? `HTTP ${c.status}`}, reused=${c.reused})`);
  }
  return {
    ok: problems.length === 0,
    problems,
    protocol: a.protocol,
    cipher: a.cipher,
    keyExchange: a.keyExchange,
    noCertificate,
    resumes,
    ticketsPerHandshake: a.sessions.length,
  };
}
