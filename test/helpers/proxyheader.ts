// PROXY protocol v2 headers built byte by byte, as a balancer sends them (HAProxy's proxy-protocol.txt §2.2).

const V2_SIG = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

/** A v2 header: command 1 (PROXY) or 0 (LOCAL), family/proto byte, address block, TLVs. */
export function v2(command: number, famProto: number, addr: Buffer, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const len = Buffer.alloc(2);
  len.writeUInt16BE(addr.length + tlvs.length);
  return Buffer.concat([V2_SIG, Buffer.from([0x20 | command, famProto]), len, addr, tlvs]);
}
export function v2Inet(src: string, dst: string, sport: number, dport: number, tlvs?: Buffer): Buffer {
  const a = Buffer.alloc(12);
  Buffer.from(src.split(".").map(Number)).copy(a, 0);
  Buffer.from(dst.split(".").map(Number)).copy(a, 4);
  a.writeUInt16BE(sport, 8);
  a.writeUInt16BE(dport, 10);
  return v2(1, 0x11, a, tlvs);
}
