// Request-target normalisation (RFC 3986 §6.2.2): rules, routes and the origin must all see
// the same path, or `/%61dmin` and `/x/../admin` would slip past a rule on `/admin`.

export interface Target {
  path: string;
  query: string;
}

/** The target as sent to the origin and seen by rules (`http.request.uri`). */
export function originForm(t: Target): string {
  return t.query ? `${t.path}?${t.query}` : t.path;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** Returns null for a target certgate will not forward (absolute-form, bad escapes, NUL). */
export function normalizeTarget(target: string): Target | null {
  if (target.charCodeAt(0) !== 47 /* / */) return null;
  const q = target.indexOf("?");
  let path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q + 1);
  if (path.includes("%")) {
    const decoded = decodeUnreserved(path);
    if (decoded === null) return null;
    path = decoded;
  }
  if (path.includes("/.") || path.includes("\\")) path = removeDotSegments(path.replace(/\\/g, "/"));
  return { path, query };
}

function decodeUnreserved(path: string): string | null {
  let out = "";
  for (let i = 0; i < path.length; i++) {
    const c = path[i]!;
    if (c !== "%") {
      out += c;
      continue;
    }
    const hex = path.slice(i + 1, i + 3);
    if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return null;
    const code = parseInt(hex, 16);
    if (code === 0) return null;
    const ch = String.fromCharCode(code);
    out += UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
    i += 2;
  }
  return out;
}

function removeDotSegments(path: string): string {
  const out: string[] = [];
  const segs = path.split("/");
  for (let i = 1; i < segs.length; i++) {
    const s = segs[i]!;
    if (s === "..") out.pop();
    else if (s !== ".") out.push(s);
  }
  const last = segs[segs.length - 1];
  if (last === "." || last === "..") out.push("");
  return "/" + out.join("/");
}
