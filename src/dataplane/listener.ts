// The one public TLS port. It reads the ClientHello in plain TCP, picks the hostname's TLS
// server, puts the bytes back and hands the socket over; Node then runs the handshake.
import net from "node:net";
import { parseClientHello } from "./clienthello.ts";
import { closingResponse } from "./http1.ts";

export interface Dispatcher {
  /** Returns false when no certificate serves this name: the handshake is refused. */
  dispatch(socket: net.Socket, servername: string | null): boolean;
  helloTimeoutMs(): number;
  rejected(reason: "plaintext_http" | "not_tls" | "unknown_sni" | "hello_timeout"): void;
}

// TLS alert record: fatal (2) unrecognized_name (112), the answer to an SNI we do not serve.
const UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

export function createFrontServer(d: Dispatcher): net.Server {
  return net.createServer({ noDelay: true }, (socket) => {
    let buf: Buffer | undefined;
    socket.on("error", () => socket.destroy()); // resets before handover: nothing to report
    const timer = setTimeout(() => {
      d.rejected("hello_timeout");
      socket.destroy();
    }, d.helloTimeoutMs());
    const onData = (chunk: Buffer) => {
      buf = buf ? Buffer.concat([buf, chunk]) : chunk;
      const hello = parseClientHello(buf);
      if (hello.kind === "more") return;
      clearTimeout(timer);
      socket.removeListener("data", onData);
      socket.pause();
      if (hello.kind === "http") {
        d.rejected("plaintext_http");
        socket.end(closingResponse(400, "This port speaks HTTPS only: use https://\n"));
      } else if (hello.kind === "invalid") {
        d.rejected("not_tls");
        socket.destroy();
      } else {
        socket.unshift(buf);
        if (!d.dispatch(socket, hello.servername)) {
          d.rejected("unknown_sni");
          socket.end(UNRECOGNIZED_NAME);
        }
      }
    };
    socket.on("data", onData);
  });
}
