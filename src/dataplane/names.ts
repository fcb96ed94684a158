// Hostname lookup with the precedence every TLS proxy uses: the exact name first, then a
// wildcard covering exactly one label (`*.example.com` matches `a.example.com` only).
import { isIPv6 } from "node:net";

export class NameTable<T> {
  readonly #exact: Map<string, T>;
  readonly #wildcard: Map<string, T>;
  /**
   * A table this one changes (see with()): what the maps above lack is looked up there, unless
   * this table removed it. Never itself layered, so a lookup is at most two levels deep.
   */
  readonly #base: NameTable<T> | null;
  readonly #goneExact: ReadonlySet<string>;
  readonly #goneWildcard: ReadonlySet<string>;

  constructor(exact = new Map<string, T>(), wildcard = new Map<string, T>(), base: NameTable<T> | null = null, goneExact: ReadonlySet<string> = NONE, goneWildcard: ReadonlySet<string> = NONE) {
    this.#exact = exact;
    this.#wildcard = wildcard;
    this.#base = base;
    this.#goneExact = goneExact;
    this.#goneWildcard = goneWildcard;
  }

  /** Returns false when the name is already present (first one wins). Only while the table is built. */
  add(pattern: string, value: T): boolean {
    const wild = pattern.startsWith("*.");
    const map = wild ? this.#wildcard : this.#exact;
    const key = wild ? pattern.slice(2) : pattern;
    if (map.has(key)) return false;
    map.set(key, value);
    return true;
  }

  get(name: string): T | undefined {
    const hit = this.#find(name, this.#exact, this.#goneExact, false);
    if (hit !== undefined) return hit;
    const dot = name.indexOf(".");
    return dot > 0 ? this.#find(name.slice(dot + 1), this.#wildcard, this.#goneWildcard, true) : undefined;
  }

  #find(key: string, own: Map<string, T>, gone: ReadonlySet<string>, wild: boolean): T | undefined {
    const hit = own.get(key);
    if (hit !== undefined || !this.#base || gone.has(key)) return hit;
    return (wild ? this.#base.#wildcard : this.#base.#exact).get(key);
  }

  #size(): number {
    return this.#exact.size + this.#wildcard.size;
  }

  /**
   * A new table: this one without the `remove` patterns, then with the `add` ones; null when an
   * added pattern is already present (the caller's full build reports the duplicate). Costs the
   * size of the change, not of the table: the result layers its changes over this table's base
   * and flattens only once they outgrow an eighth of it.
   */
  with(remove: readonly string[], add: readonly (readonly [string, T])[]): NameTable<T> | null {
    const base = this.#base ?? this;
    const exact = this.#base ? new Map(this.#exact) : new Map<string, T>();
    const wildcard = this.#base ? new Map(this.#wildcard) : new Map<string, T>();
    const goneExact = new Set(this.#goneExact);
    const goneWildcard = new Set(this.#goneWildcard);
    const split = (pattern: string) => (pattern.startsWith("*.") ? ([wildcard, goneWildcard, pattern.slice(2), base.#wildcard] as const) : ([exact, goneExact, pattern, base.#exact] as const));
    for (const pattern of remove) {
      const [own, gone, key, below] = split(pattern);
      own.delete(key);
      if (below.has(key)) gone.add(key);
    }
    for (const [pattern, value] of add) {
      const [own, gone, key, below] = split(pattern);
      if (own.has(key) || (below.has(key) && !gone.has(key))) return null;
      own.set(key, value);
    }
    const layered = new NameTable(exact, wildcard, base, goneExact, goneWildcard);
    return exact.size + wildcard.size + goneExact.size + goneWildcard.size > Math.max(64, base.#size() / 8) ? layered.#flat() : layered;
  }

  /** The same lookups from one level of maps. */
  #flat(): NameTable<T> {
    const base = this.#base!;
    const flat = (own: Map<string, T>, below: Map<string, T>, gone: ReadonlySet<string>) => {
      const out = new Map<string, T>();
      for (const [k, v] of below) if (!gone.has(k) && !own.has(k)) out.set(k, v);
      for (const [k, v] of own) out.set(k, v);
      return out;
    };
    return new NameTable(flat(this.#exact, base.#exact, this.#goneExact), flat(this.#wildcard, base.#wildcard, this.#goneWildcard));
  }
}

const NONE: ReadonlySet<string> = new Set();

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
