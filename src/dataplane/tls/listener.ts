// The one public TLS port. It reads the ClientHello in plain TCP (after the PROXY header a
// trusted balancer sends first), picks the hostname's TLS server, puts the bytes back and
// hands the socket over; Node then runs the handshake.
import net from "node:net";
import { parseClientHello } from "./clienthello.ts";
import { parseProxyHeader, proxySignature, type ProxiedPeer } from "./proxyprotocol.ts";
import { closingResponse } from "../http1/http1.ts";

export type FrontRefusal = "plaintext_http" | "not_tls" | "unknown_sni" | "hello_timeout" | "proxy_untrusted" | "proxy_invalid";

export interface Dispatcher {
  /** Returns false when no certificate serves this name: the handshake is refused. `peer`: what a PROXY header said. */
  dispatch(socket: net.Socket, servername: string | null, peer: ProxiedPeer | undefined): boolean;
  helloTimeoutMs(): number;
  /** Connections from this address must start with a PROXY header (and only theirs may). */
  proxyTrusted(address: string): boolean;
  /** `servername`: the SNI, when the ClientHello was read; `peer`: what a PROXY header said, when one was read. */
  rejected(reason: FrontRefusal, socket: net.Socket, servername?: string | null, peer?: ProxiedPeer): void;
}

// TLS alert record: fatal (2) unrecognized_name (112), the answer to an SNI we do not serve.
const UNRECOGNIZED_NAME = Buffer.from([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]);

export function createFrontServer(d: Dispatcher): net.Server {
  return net.createServer({ noDelay: true }, (socket) => {
    const chunks: Buffer[] = [];
    let have = 0;
    let need = 1;
    let answered = false;
    // Decided once, at accept: a later configuration change does not reinterpret bytes already read.
    let expectProxy = d.proxyTrusted(socket.remoteAddress ?? "");
    let peer: ProxiedPeer | undefined;
    socket.on("error", () => socket.destroy()); // resets before handover: nothing to report
    // One deadline for the ClientHello and, after a refusal, for the peer to close: a peer
    // that keeps its side open never holds the socket longer.
    const timer = setTimeout(() => {
      if (!answered) d.rejected("hello_timeout", socket, undefined, peer);
      socket.destroy();
    }, d.helloTimeoutMs());
    socket.once("close", () => clearTimeout(timer));
    const refuse = (reason: "plaintext_http" | "unknown_sni", reply: Buffer | string, servername?: string | null) => {
      d.rejected(reason, socket, servername, peer);
      answered = true;
      socket.end(reply);
      socket.resume(); // discard whatever follows, so the peer's FIN closes the socket at once
    };
    const close = (reason: FrontRefusal) => {
      socket.removeListener("data", onData);
      d.rejected(reason, socket, undefined, peer);
      socket.destroy();
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < need) return;
      let buf = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, have);
      chunks.length = 0;
      chunks.push(buf);
      if (expectProxy) {
        const header = parseProxyHeader(buf);
        if (header.kind === "more") return void (need = header.need);
        if (header.kind === "invalid") return close("proxy_invalid");
        expectProxy = false;
        peer = header.peer;
        buf = buf.subarray(header.length);
        chunks[0] = buf;
        have = buf.length;
        need = 1;
        if (!have) return;
      } else if (buf[0] !== 0x16) {
        // Only a trusted balancer may name the client: anyone else's header is refused, never skipped.
        const sig = proxySignature(buf);
        if (sig === "yes") return close("proxy_untrusted");
        if (sig === "maybe") return void (need = have + 1);
      }
      const hello = parseClientHello(buf);
      if (hello.kind === "more") {
        need = hello.need;
        return;
      }
      socket.removeListener("data", onData);
      socket.pause();
      if (hello.kind === "http") refuse("plaintext_http", closingResponse(400, "This port speaks HTTPS only: use https://\n"));
      else if (hello.kind === "invalid") close("not_tls");
      else {
        socket.unshift(buf);
        if (d.dispatch(socket, hello.servername, peer)) clearTimeout(timer); // the TLS server's handshake timeout takes over
        else refuse("unknown_sni", UNRECOGNIZED_NAME, hello.servername);
      }
    };
    socket.on("data", onData);
  });
}
