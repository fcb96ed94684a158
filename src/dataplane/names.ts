// Hostname lookup with the precedence every TLS proxy uses: the exact name first, then a
// wildcard covering exactly one label (`*.example.com` matches `a.example.com` only).

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

/** Lower-cased hostname of a Host header, without port or IPv6 brackets; null if malformed. */
export function hostOfHeader(host: string | undefined): string | null {
  if (!host) return null;
  let h = host.toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end > 0 ? h.slice(1, end) : null;
  }
  const colon = h.lastIndexOf(":");
  if (colon >= 0) {
    if (!/^\d{1,5}$/.test(h.slice(colon + 1))) return null;
    h = h.slice(0, colon);
  }
  if (h.endsWith(".")) h = h.slice(0, -1);
  return /^[a-z0-9_.-]+$/.test(h) ? h : null;
}
