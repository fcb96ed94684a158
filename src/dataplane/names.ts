// Hostname lookup with the precedence every TLS proxy uses: the exact name first, then a
// wildcard covering exactly one label (`*.example.com` matches `a.example.com` only).
import { isIPv6 } from "node:net";

export class NameTable<T> {
  readonly #exact = new Map<string, T>();
  readonly #wildcard = new Map<string, T>();

  /** Returns false when the name is already present (first one wins). */
  add(pattern: string, value: T): boolean {
    const [map, key] = pattern.startsWith("*.") ? [this.#wildcard, pattern.slice(2)] : [this.#exact, pattern];
    if (map.has(key)) return false;
    map.set(key, value);
    return true;
  }

  get(name: string): T | undefined {
    const hit = this.#exact.get(name);
    if (hit !== undefined) return hit;
    const dot = name.indexOf(".");
    return dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

/**
 * Lower-cased hostname of a Host header, without port or IPv6 brackets; null unless the whole
 * value is `reg-name[:port]` (letters, digits, `-`, `_`, non-empty dot-separated labels, one
 * trailing dot allowed) or `[IPv6][:port]` (RFC 9110 §7.2, RFC 3986 §3.2.2), port ≤ 65535.
 */
export function hostOfHeader(host: string | undefined): string | null {
  if (!host) return null;
  const h = host.toLowerCase();
  let name: string;
  let rest: string;
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    if (end < 0) return null;
    name = h.slice(1, end);
    rest = h.slice(end + 1);
    if (!isIPv6(name)) return null; // IPvFuture and zone ids are refused too
  } else {
    const colon = h.indexOf(":");
    name = colon < 0 ? h : h.slice(0, colon);
    rest = colon < 0 ? "" : h.slice(colon);
    if (name.endsWith(".")) name = name.slice(0, -1);
    if (!REG_NAME.test(name)) return null;
  }
  if (rest && !(PORT.test(rest) && Number(rest.slice(1)) <= 65535)) return null;
  return name;
}

const REG_NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;
const PORT = /^:\d{1,5}$/;
