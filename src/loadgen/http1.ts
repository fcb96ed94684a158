// The load generator's HTTP/1.1 response reader: status line, Content-Length or chunked
// body, Connection: close. Enough to frame any server's responses without a full parser.
const CRLFCRLF = Buffer.from("\r\n\r\n");
const LAST_CHUNK = Buffer.from("0\r\n\r\n");

export class ResponseReader {
  status = 0;
  close = false;
  #head: Buffer | undefined;
  #bodyLeft = -1; // -1: headers not read yet; -2: chunked; -3: until the server closes
  #tail: Buffer | undefined; // chunked: last bytes seen, to find the terminator across reads

  /** True when the head has been read and the body runs until the server closes: a close then completes it. */
  get endsAtClose(): boolean {
    return this.#bodyLeft === -3;
  }

  reset(): void {
    this.status = 0;
    this.close = false;
    this.#head = undefined;
    this.#bodyLeft = -1;
    this.#tail = undefined;
  }

  /** Feeds bytes; true when a whole response has been read. Throws on a malformed one. */
  feed(chunk: Buffer): boolean {
    if (this.#bodyLeft === -1) {
      const buf: Buffer = this.#head ? Buffer.concat([this.#head, chunk]) : chunk;
      const end = buf.indexOf(CRLFCRLF);
      if (end < 0) {
        if (buf.length > 65_536) throw new Error("response headers too long");
        this.#head = buf;
        return false;
      }
      this.#head = undefined;
      const head = buf.toString("latin1", 0, end);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m) throw new Error(`bad status line: ${head.slice(0, 40)}`);
      this.status = Number(m[1]);
      const lower = head.toLowerCase();
      this.close = /\r\nconnection:\s*close/.test(lower);
      const cl = /\r\ncontent-length:\s*(\d+)/.exec(lower);
      if (cl) this.#bodyLeft = Number(cl[1]);
      else if (/\r\ntransfer-encoding:[^\r]*chunked/.test(lower)) this.#bodyLeft = -2;
      else if (this.status === 204 || this.status === 304) this.#bodyLeft = 0;
      else this.#bodyLeft = -3; // HTTP/1.0 style: the body ends with the connection

      chunk = buf.subarray(end + 4);
    }
    if (this.#bodyLeft === -3) return false;
    if (this.#bodyLeft === -2) {
      const t: Buffer = this.#tail ? Buffer.concat([this.#tail, chunk]) : chunk;
      if (t.length >= LAST_CHUNK.length && t.subarray(t.length - LAST_CHUNK.length).equals(LAST_CHUNK)) return true;
      this.#tail = t.subarray(Math.max(0, t.length - LAST_CHUNK.length));
      return false;
    }
    this.#bodyLeft -= chunk.length;
    return this.#bodyLeft <= 0;
  }
}
