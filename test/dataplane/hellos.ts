// Real ClientHello bytes, captured from Node's TLS client, for tests that send them by hand.
import net from "node:net";
import tls from "node:tls";
import { parseClientHello } from "../../src/dataplane/tls/clienthello.ts";

/** The records a `tls.connect` with these options sends first (its whole ClientHello). */
export async function captureClientHello(opts: tls.ConnectionOptions = {}): Promise<Buffer> {
  let got: (b: Buffer) => void = () => {};
  const hello = new Promise<Buffer>((r) => (got = r));
  const server = net.createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (parseClientHello(buf).kind === "more") return;
      got(buf);
      s.destroy();
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const client = tls.connect({ host: "127.0.0.1", port: (server.address() as net.AddressInfo).port, ...opts });
  client.on("error", () => {});
  try {
    return await hello;
  } finally {
    client.destroy();
    server.close();
  }
}
