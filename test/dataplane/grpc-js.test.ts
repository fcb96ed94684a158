// Interop with a real gRPC implementation: an @grpc/grpc-js client and server, certgate in
// between with mTLS (the client presents its certificate; certgate speaks h2c to the server).
// Unary, server, client and bidirectional streaming; an enforced host with an untrusted or
// expired certificate gives UNAUTHENTICATED (16); a missing one fails in the handshake; a
// fail-open host with a rule on the method's path gives PERMISSION_DENIED (7).
//
// @grpc/grpc-js is a devDependency (a missing one fails the file); GRPC_JS may name another copy (a path) to import.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { baseModel, pki, startProxy, type Proxy } from "../helpers/harness.ts";
import type { DevPki } from "../../src/pki/devpki.ts";

/** The part of @grpc/grpc-js this test uses, typed here so the test compiles without it. */
interface Metadata {
  get(key: string): unknown[];
}
interface ServiceError extends Error {
  code: number;
  details: string;
}
interface Call {
  on(ev: "data", cb: (m: Buffer) => void): Call;
  on(ev: "end" | "close", cb: () => void): Call;
  on(ev: "error", cb: (e: ServiceError) => void): Call;
  on(ev: "status", cb: (s: { code: number; details: string; metadata: Metadata }) => void): Call;
  write(m: Buffer): boolean;
  end(m?: Buffer): void;
}
type UnaryCb = (err: ServiceError | null, res?: Buffer) => void;
interface GenericClient {
  unary(req: Buffer, cb: UnaryCb): Call;
  serverStream(req: Buffer): Call;
  clientStream(cb: UnaryCb): Call;
  bidi(): Call;
  drip(req: Buffer): Call;
  close(): void;
}
interface GrpcJs {
  Server: new () => {
    addService(def: unknown, impl: Record<string, unknown>): void;
    bindAsync(addr: string, creds: unknown, cb: (err: Error | null, port: number) => void): void;
    forceShutdown(): void;
  };
  ServerCredentials: { createInsecure(): unknown };
  credentials: { createSsl(root: Buffer, key?: Buffer, cert?: Buffer): unknown };
  makeGenericClientConstructor(def: unknown, name: string): new (target: string, creds: unknown, opts: Record<string, unknown>) => GenericClient;
  status: Record<string, number>;
}

const grpc = (await import(process.env.GRPC_JS ?? "@grpc/grpc-js")) as GrpcJs;

const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: raw.serialize,
  requestDeserialize: raw.deserialize,
  responseSerialize: raw.serialize,
  responseDeserialize: raw.deserialize,
});
const SERVICE = {
  unary: method("/pkg.Service/Method", false, false),
  serverStream: method("/pkg.Service/ServerStream", false, true),
  clientStream: method("/pkg.Service/ClientStream", true, false),
  bidi: method("/pkg.Service/Bidi", true, true),
  drip: method("/pkg.Service/Drip", false, true),
};

describe("@grpc/grpc-js client and server through certgate (mTLS)", () => {
  const g = grpc;
  let proxy: Proxy;
  let p: DevPki;
  let server: InstanceType<GrpcJs["Server"]>;
  const clients: GenericClient[] = [];

  beforeAll(async () => {
    p = await pki();
    server = new g.Server();
    server.addService(SERVICE, {
      unary: (call: { request: Buffer }, cb: UnaryCb) => cb(null, Buffer.from(`hello ${call.request.toString()}`)),
      serverStream: (call: { request: Buffer; write(b: Buffer): void; end(): void }) => {
        for (let i = 0; i < 5; i++) call.write(Buffer.from(`${call.request.toString()} ${i}`));
        call.end();
      },
      clientStream: (call: Call, cb: UnaryCb) => {
        const parts: string[] = [];
        call.on("data", (m) => parts.push(m.toString()));
        call.on("end", () => cb(null, Buffer.from(parts.join("+"))));
      },
      bidi: (call: Call) => {
        call.on("data", (m) => call.write(Buffer.from(m.toString().toUpperCase())));
        call.on("end", () => call.end());
      },
      // 8 messages 100 ms apart: a stream that outlasts its route's read timeout while it keeps talking.
      drip: (call: { write(b: Buffer): void; end(): void; on(ev: "cancelled", cb: () => void): void }) => {
        let n = 0;
        const t = setInterval(() => {
          call.write(Buffer.from(`drop ${n}`));
          if (++n === 8) {
            clearInterval(t);
            call.end();
          }
        }, 100);
        call.on("cancelled", () => clearInterval(t));
      },
    });
    const port = await new Promise<number>((res, rej) => server.bindAsync("127.0.0.1:0", g.ServerCredentials.createInsecure(), (err, port) => (err ? rej(err) : res(port))));
    proxy = await startProxy((pk, origin) =>
      baseModel(
        pk,
        origin,
        [
          { hostname: "localhost", mtls: { mode: "enforced", trust_bundle: "clients" } },
          { hostname: "a.test", mtls: { mode: "fail_open", trust_bundle: "clients" } },
          { hostname: "b.test", mtls: { mode: "enforced", trust_bundle: "clients" } },
        ],
        {
          routes: [
            { id: "l", hostname: "localhost", origin: `http://127.0.0.1:${port}`, origin_protocol: "h2c" },
            { id: "a", hostname: "a.test", origin: `http://127.0.0.1:${port}`, origin_protocol: "h2c" },
            { id: "s", hostname: "b.test", origin: `http://127.0.0.1:${port}`, origin_protocol: "h2c", read_timeout_ms: 400 },
          ],
          zones: [{ id: "z", name: "a.test", rules: [{ id: "m", expression: 'http.request.uri.path eq "/pkg.Service/Method"', action: "block" }] }],
        },
      ),
    );
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await proxy.close();
    server.forceShutdown();
  });

  const client = (host: string, cert?: typeof p.client): GenericClient => {
    const Ctor = g.makeGenericClientConstructor(SERVICE, "Service");
    const creds = g.credentials.createSsl(Buffer.from(p.serverCa.certPem), cert && Buffer.from(cert.keyPem), cert && Buffer.from(cert.certPem));
    const c = new Ctor(`127.0.0.1:${proxy.port}`, creds, { "grpc.ssl_target_name_override": host, "grpc.default_authority": host });
    clients.push(c);
    return c;
  };
  const unary = (c: GenericClient, msg: string) =>
    new Promise<{ err: ServiceError | null; res?: string }>((r) => c.unary(Buffer.from(msg), (err, res) => r({ err, res: res?.toString() })));

  it("unary", async () => {
    const r = await unary(client("localhost", p.client), "world");
    expect(r.err).toBeNull();
    expect(r.res).toBe("hello world");
  });

  it("server streaming", async () => {
    const call = client("localhost", p.client).serverStream(Buffer.from("tick"));
    const got: string[] = [];
    call.on("data", (m) => got.push(m.toString()));
    const status = await new Promise<number>((r) => call.on("status", (s) => r(s.code)));
    expect(status).toBe(0);
    expect(got).toEqual(["tick 0", "tick 1", "tick 2", "tick 3", "tick 4"]);
  });

  it("a server stream that keeps talking outlasts its route's read timeout (a silence between messages, not a limit on the call)", async () => {
    const call = client("b.test", p.client).drip(Buffer.from(""));
    const got: string[] = [];
    call.on("data", (m) => got.push(m.toString()));
    call.on("error", () => {});
    const status = await new Promise<number>((r) => call.on("status", (s) => r(s.code)));
    expect(status).toBe(0);
    expect(got).toEqual(Array.from({ length: 8 }, (_, i) => `drop ${i}`));
  });

  it("client streaming", async () => {
    const r = await new Promise<{ err: ServiceError | null; res?: string }>((resolve) => {
      const call = client("localhost", p.client).clientStream((err, res) => resolve({ err, res: res?.toString() }));
      for (const m of ["a", "b", "c"]) call.write(Buffer.from(m));
      call.end();
    });
    expect(r.err).toBeNull();
    expect(r.res).toBe("a+b+c");
  });

  it("bidirectional streaming, one message answered before the next is sent", async () => {
    const call = client("localhost", p.client).bidi();
    const got: string[] = [];
    let wake: (() => void) | null = null;
    call.on("data", (m) => {
      got.push(m.toString());
      wake?.();
    });
    const status = new Promise<number>((r) => call.on("status", (s) => r(s.code)));
    for (let i = 0; i < 10; i++) {
      call.write(Buffer.from(`m${i}`));
      while (got.length <= i) await new Promise<void>((r) => (wake = r));
    }
    call.end();
    expect(await status).toBe(0);
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `M${i}`));
  });

  it("enforced host: untrusted or expired certificate is UNAUTHENTICATED (16); no certificate fails in the handshake", async () => {
    for (const cert of [p.untrusted, p.expired]) {
      const r = await unary(client("localhost", cert), "x");
      expect(r.err?.code).toBe(g.status.UNAUTHENTICATED);
      expect(r.err?.details).toMatch(/Client certificate error: (untrusted|expired)/);
    }
    const none = await unary(client("localhost"), "x");
    expect(none.err?.code).toBe(g.status.UNAVAILABLE);
  });

  it("fail-open host with a rule on the method's path: PERMISSION_DENIED (7); other methods pass", async () => {
    const r = await unary(client("a.test", p.client), "x");
    expect(r.err?.code).toBe(g.status.PERMISSION_DENIED);
    const call = client("a.test").serverStream(Buffer.from("ok"));
    call.on("data", () => {});
    expect(await new Promise<number>((res) => call.on("status", (s) => res(s.code)))).toBe(0);
  });
});
