// The public port's listening sockets, created and kept by the primary, handed to workers.
//
// One socket per worker slot, each bound with SO_REUSEPORT: the kernel spreads new connections
// across the slots and no process relays them. The primary keeps every socket open and never
// accepts on it, so a slot's socket outlives its worker: connections that arrive while a worker
// is replaced (reload) or restarted (crash) wait in that socket's queue for the next one,
// instead of being reset as they would be if each worker bound its own socket and closed it.
// Where SO_REUSEPORT is unavailable, every slot shares one socket, as node:cluster's
// SCHED_NONE distribution does: the kernel wakes one accepting worker per connection.
import net from "node:net";
import { lookup } from "node:dns/promises";
import { getSystemErrorName } from "node:util";

/** libuv's UV_TCP_REUSEPORT bind flag (tcp_wrap constants). */
const UV_TCP_REUSEPORT = 2;

/** A bound TCP handle (Node's internal tcp_wrap), sendable to a child process. */
export type BoundHandle = { close(): void; getsockname(out: object): number };

// net._createServerHandle binds without listening: the worker that adopts the handle listens.
// (net.BoundSocket does the same publicly in later Node releases, but 24.21 cannot send it to a child.)
const createServerHandle = (net as unknown as { _createServerHandle(address: string, port: number, addressType: number, fd: undefined, flags: number): BoundHandle | number })._createServerHandle;

export interface SlotSockets {
  handles: BoundHandle[];
  mode: "reuseport" | "shared";
  address: net.AddressInfo;
  /** Why `shared`: the reuseport bind's error. */
  fallback?: string;
}

/** `reuseport: false` shares one socket among the slots on purpose (serve --reuseport off). */
export async function bindSlots(host: string, port: number, slots: number, reuseport = true): Promise<SlotSockets> {
  const address = net.isIP(host) ? host : (await lookup(host)).address;
  const family = net.isIP(address);
  const bind = (p: number, flags: number): BoundHandle => {
    const h = createServerHandle(address, p, family, undefined, flags);
    if (typeof h === "number") throw Object.assign(new Error(`cannot bind ${address}:${p}: ${errname(h)}`), { code: errname(h) });
    return h;
  };
  // SO_REUSEPORT would let this bind join another process's listener on the port (a second
  // certgate, say) and silently share its connections: a plain bind first proves the port free.
  const probe = bind(port, 0);
  const probed = addressOf(probe, address, port);
  probe.close();
  port = probed.port;
  const first = ((): { h: BoundHandle; error?: string } => {
    if (!reuseport) return { h: bind(port, 0), error: "turned off (--reuseport off)" };
    try {
      return { h: bind(port, UV_TCP_REUSEPORT) };
    } catch (e) {
      if ((e as { code?: string }).code === "EADDRINUSE") throw e;
      return { h: bind(port, 0), error: (e as Error).message };
    }
  })();
  const info = addressOf(first.h, address, port);
  if (first.error) return { handles: Array.from({ length: slots }, () => first.h), mode: "shared", address: info, fallback: first.error };
  const handles = [first.h];
  try {
    for (let i = 1; i < slots; i++) {
      const h = bind(info.port, UV_TCP_REUSEPORT);
      addressOf(h, address, port); // libuv defers a bind's EADDRINUSE to the next getsockname
      handles.push(h);
    }
  } catch (e) {
    for (const h of handles) h.close();
    throw e;
  }
  return { handles, mode: "reuseport", address: info };
}

function addressOf(h: BoundHandle, address: string, port: number): net.AddressInfo {
  const out = {} as net.AddressInfo;
  const err = h.getsockname(out);
  if (err) {
    h.close();
    throw Object.assign(new Error(`cannot listen on ${address.includes(":") ? `[${address}]` : address}:${port}: ${errname(err) === "EADDRINUSE" ? "address already in use" : errname(err)}`), { code: errname(err) });
  }
  return out;
}

const errname = (code: number): string => getSystemErrorName(code);
