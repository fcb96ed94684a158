// Routes to origins: by hostname, longest path prefix first, each with its origin's pool key.
import type { Model } from "../../model/schema.ts";
import { NameTable } from "../names.ts";
import type { CompiledCert } from "./certs.ts";
import type { Fail } from "./memo.ts";

export interface OriginRoute {
  id: string;
  pathPrefix: string;
  origin: URL;
  originKey: string;
  /** Origin TLS; serverName is what the origin's certificate is checked against (never the client's Host). */
  tls: { ca?: string; cert?: string; key?: string; serverName: string; verify: boolean } | undefined;
  /** HTTP/1.1, HTTP/2 over TLS (ALPN h2), or cleartext HTTP/2 with prior knowledge. */
  protocol: "http1" | "h2" | "h2c";
  connectTimeoutMs: number;
  readTimeoutMs: number;
  /** Upgrade protocols (lower case) the origin may be asked for; anything else is stripped. */
  upgrades: readonly string[];
}

export interface CompiledRoutes {
  byHost: NameTable<OriginRoute[]>;
  /** Every origin configuration routes use: the pools worth keeping. */
  originKeys: Set<string>;
}

const DEFAULT_UPGRADES: readonly string[] = ["websocket"];

export function compileRoutes(model: Model, certs: Map<string, CompiledCert>, fail: Fail): CompiledRoutes {
  const byHost = new Map<string, OriginRoute[]>();
  const originKeys = new Set<string>();
  const routeIds = new Set<string>();
  model.routes.forEach((r, i) => {
    if (routeIds.has(r.id)) return fail(`routes[${i}].id`, `duplicate id "${r.id}"`);
    routeIds.add(r.id);
    const clientCert = r.origin_tls?.client_certificate;
    const cc = clientCert ? certs.get(clientCert) : undefined;
    if (clientCert && !cc) return fail(`routes[${i}].origin_tls.client_certificate`, `no certificate with id "${clientCert}"`);
    const origin = new URL(r.origin);
    if (origin.pathname !== "/" || origin.search) return fail(`routes[${i}].origin`, "an origin is scheme://host[:port] with no path or query");
    const tls =
      origin.protocol === "https:"
        ? { ca: r.origin_tls?.ca, cert: cc?.certPem, key: cc?.keyPem, serverName: r.origin_tls?.server_name ?? origin.hostname.replace(/^\[|\]$/g, ""), verify: r.origin_tls?.verify ?? true }
        : undefined;
    const protocol = r.origin_protocol ?? "http1";
    if (protocol === "h2" && !tls) return fail(`routes[${i}].origin_protocol`, "h2 needs an https origin (h2c is cleartext HTTP/2)");
    if (protocol === "h2c" && tls) return fail(`routes[${i}].origin_protocol`, "h2c needs an http origin (h2 is HTTP/2 over TLS)");
    const list = byHost.get(r.hostname) ?? [];
    if (list.some((x) => x.pathPrefix === r.path_prefix)) return fail(`routes[${i}].path_prefix`, `"${r.hostname}${r.path_prefix}" is already routed`);
    list.push({
      id: r.id,
      pathPrefix: r.path_prefix,
      origin,
      originKey: JSON.stringify([origin.origin, tls, r.connect_timeout_ms, r.read_timeout_ms, protocol]),
      tls,
      protocol,
      connectTimeoutMs: r.connect_timeout_ms,
      readTimeoutMs: r.read_timeout_ms,
      upgrades: r.upgrades ?? DEFAULT_UPGRADES,
    });
    byHost.set(r.hostname, list);
    originKeys.add(list[list.length - 1]!.originKey);
  });
  const table = new NameTable<OriginRoute[]>();
  for (const [host, list] of byHost) table.add(host, list.sort((a, b) => b.pathPrefix.length - a.pathPrefix.length));
  return { byHost: table, originKeys };
}
