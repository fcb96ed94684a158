// The one public TLS port. It reads the ClientHello in plain TCP, picks the hostname's TLS
// server, puts the bytes back and hands the socket over; Node then runs the handshake.
import net from "node:net";
import { parseClientHello } from "./clienthello.ts";
import { closingResponse } from "../http1/http1.ts";

export interface Dispatcher {
  /** Returns false when no certificate serves this name: the handshake is refused. */
  dispatch(socket: net.Socket, servername: string | null): boolean;
  helloTimeoutMs(): number;
  /** `servername`: the SNI, when the ClientHello was read. */
  rejected(reason: "plaintext_http" | "not_tls" | "unknown_sni" | "hello_timeout", socket: net.Socket, servername?: string | null): void;
}

// TLS alert record: fatal (2) unrecognized_name (112), the answer to an SNI we do not serve.
const UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

export function createFrontServer(d: Dispatcher): net.Server {
  return net.createServer({ noDelay: true }, (socket) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let need = 1;
    let answered = false;
    socket.on("error", () => socket.destroy()); // resets before handover: nothing to report
    // One deadline for the ClientHello and, after a refusal, for the peer to close: a peer
    // that keeps its side open never holds the socket longer.
    const timer = setTimeout(() => {
      if (!answered) d.rejected("hello_timeout", socket);
      socket.destroy();
    }, d.helloTimeoutMs());
    socket.once("close", () => clearTimeout(timer));
    const refuse = (reason: "plaintext_http" | "unknown_sni", reply: Buffer | string, servername?: string | null) => {
      d.rejected(reason, socket, servername);
      answered = true;
      socket.end(reply);
      socket.resume(); // discard whatever follows, so the peer's FIN closes the socket at once
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < need) return;
      const buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
      chunks.length = 0;
      chunks.push(buf);
      const hello = parseClientHello(buf);
      if (hello.kind === "more") {
        need = hello.need;
        return;
      }
      socket.removeListener("data", onData);
      socket.pause();
      if (hello.kind === "http") refuse("plaintext_http", closingResponse(400, "This port speaks HTTPS only: use https://\n"));
      else if (hello.kind === "invalid") {
        d.rejected("not_tls", socket);
        socket.destroy();
      } else {
        socket.unshift(buf);
        if (d.dispatch(socket, hello.servername)) clearTimeout(timer); // the TLS server's handshake timeout takes over
        else refuse("unknown_sni", UNRECOGNIZED_NAME, hello.servername);
      }
    };
    socket.on("data", onData);
  });
}
