// Request-target normalisation (RFC 3986 §6.2.2 plus Cloudflare's URL normalisation): rules,
// routes and the origin all see the one path computed here, or `/%61dmin`, `/x/../admin` and
// `//admin` would slip past a rule on `/admin`.

export interface Target {
  path: string;
  query: string;
}

export interface NormalizeOptions {
  /** Successive slashes become one (Cloudflare's default); off keeps `//` as sent. */
  mergeSlashes: boolean;
}

/** The target as sent to the origin and seen by rules (`http.request.uri`). */
export function originForm(t: Target): string {
  return t.query ? `${t.path}?${t.query}` : t.path;
}

const UNRESERVED = /[A-Za-z0-9\-._~]/;
/** A dot segment carrying `;` parameters (`..;x`): servlet containers resolve it as `..`. */
const DOT_WITH_PARAMS = /\/\.{1,2};/;

/**
 * Returns null for a target certgate will not forward: absolute-form, a fragment (`#` may not
 * appear in a request target, RFC 9112 §3.2), bad or NUL escapes, a dot segment with parameters.
 * `%2F` and `;` are kept as sent: rules and the origin see the same bytes.
 */
export function normalizeTarget(target: string, opts: NormalizeOptions): Target | null {
  if (target.charCodeAt(0) !== 47 /* / */ || target.includes("#")) return null;
  const q = target.indexOf("?");
  let path = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q + 1);
  if (path.includes("%")) {
    const decoded = decodeUnreserved(path);
    if (decoded === null) return null;
    path = decoded;
  }
  if (path.includes("\\")) path = path.replace(/\\/g, "/");
  if (opts.mergeSlashes && path.includes("//")) path = path.replace(/\/{2,}/g, "/");
  if (path.includes("/.")) {
    if (DOT_WITH_PARAMS.test(path)) return null;
    path = removeDotSegments(path);
  }
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
