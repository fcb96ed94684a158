// The metrics catalog: every metric certgate exports and its labels, in one place.
// `host` is the configured host pattern (or "_default"), never the raw SNI or Host header,
// so a client cannot create label values at will.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import { CellCounter, CellHistogram } from "./cells.ts";

export interface MetricsOptions {
  /** The reason labels of certgate_refusals_total, named in its help text: the data plane's REFUSAL_LABELS. */
  refusalReasons?: readonly string[];
}

const SMAPS_ROLLUP = "/proc/self/smaps_rollup";

export function createMetrics(opts: MetricsOptions = {}) {
  const registry = new Registry();
  // Gauges read at scrape time from state their owner keeps; the owner registers the reader.
  let readHttpConnections = (): number => 0;
  // Node and process metrics under their standard names (process_cpu_seconds_total,
  // nodejs_heap_size_used_bytes, ...), which existing dashboards and alerts expect.
  collectDefaultMetrics({ register: registry });
  if (existsSync(SMAPS_ROLLUP))
    new Gauge({
      name: "certgate_proportional_memory_bytes",
      help: "Proportional set size (Linux smaps_rollup): resident memory, each page shared with other processes (Node's own code, mapped by the primary and every worker) counted as its share. Unlike process_resident_memory_bytes it adds up: summed over the group it is what certgate costs the machine.",
      registers: [registry],
      async collect() {
        const pss = /^Pss:\s+(\d+) kB$/m.exec(await readFile(SMAPS_ROLLUP, "latin1"));
        if (pss) this.set(Number(pss[1]) * 1024);
      },
    });
  const m = {
    registry,
    /** inc(host, result, resumed, group) */
    handshakes: new CellCounter({
      name: "certgate_handshakes_total",
      help: "Completed TLS handshakes by host, client-certificate result (not_requested, verified, no_certificate, via_front: a trusted front brings certificates in a header, or the OpenSSL reason) and negotiated key-exchange group (X25519MLKEM768, X25519, P-256..., none on a TLS 1.2 resumption).",
      labelNames: ["host", "result", "resumed", "group"] as const,
      registers: [registry],
    }),
    /** inc(reason) */
    handshakeErrors: new CellCounter({
      name: "certgate_handshake_errors_total",
      help: "Connections that never completed a handshake, by reason (plaintext_http, not_tls, unknown_sni, hello_timeout, tls_error, no_certificate, proxy_untrusted: a PROXY header from a peer not trusted to send one, proxy_invalid: a malformed one or none from a trusted peer).",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    /** inc(host, reason) */
    verifyFailures: new CellCounter({
      name: "certgate_verify_failures_total",
      help: "Client certificates that failed verification, by host and reason (fail_verify_no_cert style, as Envoy's ssl stats).",
      labelNames: ["host", "reason"] as const,
      registers: [registry],
    }),
    /** inc(host, status, protocol) */
    requests: new CellCounter({
      name: "certgate_requests_total",
      help: "HTTP requests answered, by host, status code and protocol (http/1.1 or h2).",
      labelNames: ["host", "status", "protocol"] as const,
      registers: [registry],
    }),
    /** inc(host, reason) */
    refusals: new CellCounter({
      name: "certgate_refusals_total",
      help: `Requests refused by certgate itself, by host and reason (${opts.refusalReasons?.join(", ") ?? "see the data plane's refusal catalog"}).`,
      labelNames: ["host", "reason"] as const,
      registers: [registry],
    }),
    /** inc(rule, action) */
    ruleMatches: new CellCounter({
      name: "certgate_rule_matches_total",
      help: "Rule matches by rule id and action (block, allow, log).",
      labelNames: ["rule", "action"] as const,
      registers: [registry],
    }),
    /** observe(seconds, route, outcome) */
    originDuration: new CellHistogram({
      name: "certgate_origin_duration_seconds",
      help: "Time from sending a request to an origin to its response headers, by route and outcome.",
      labelNames: ["route", "outcome"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    configVersion: new Gauge({
      name: "certgate_config_version",
      help: "Version of the configuration snapshot in force.",
      registers: [registry],
    }),
    configApplies: new Counter({
      name: "certgate_config_applies_total",
      help: "Configuration applies by result (ok, rejected).",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    /** inc(source, result) */
    revocationChecks: new CellCounter({
      name: "certgate_revocation_checks_total",
      help: "Revocation checks of verified client certificates, by deciding source (none, crl, ocsp, managed) and result.",
      labelNames: ["source", "result"] as const,
      registers: [registry],
    }),
    crlFetches: new Counter({
      name: "certgate_crl_fetches_total",
      help: "CRL downloads by result (ok, error); on error the last good CRL stays in use.",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    crlAge: new Gauge({
      name: "certgate_crl_age_seconds",
      help: "Age of the CRL in use per URL, set at each fetch attempt (grows while refreshes fail).",
      labelNames: ["url"] as const,
      registers: [registry],
    }),
    ocspAnswers: new Counter({
      name: "certgate_ocsp_answers_total",
      help: "OCSP look-ups that reached a responder, by outcome (good, revoked, unknown, error).",
      labelNames: ["status"] as const,
      registers: [registry],
    }),
    fileReloads: new Counter({
      name: "certgate_file_reloads_total",
      help: "Changed files of file-backed certificates, keys, CA bundles and CRLs, by result (ok; invalid or unreadable: the last good contents stay in force).",
      labelNames: ["result"] as const,
      registers: [registry],
    }),
    fileLastReload: new Gauge({
      name: "certgate_file_last_reload_timestamp_seconds",
      help: "When each file in use was last read successfully into force (start, the admin write that declared it, or a reload), by path.",
      labelNames: ["path"] as const,
      registers: [registry],
    }),
    tlsServers: new Gauge({
      name: "certgate_tls_servers",
      help: "TLS servers in use: one per (server certificate, trust-policy version), never per SNI name.",
      registers: [registry],
    }),
    workers: new Gauge({
      name: "certgate_workers",
      help: "Worker processes serving the public port (serve --workers), by state (ready, starting, draining).",
      labelNames: ["state"] as const,
      registers: [registry],
    }),
    workerRestarts: new Counter({
      name: "certgate_worker_restarts_total",
      help: "Worker processes replaced after they died, by how they ended (exit code or signal).",
      labelNames: ["reason"] as const,
      registers: [registry],
    }),
    /** observe(seconds, bundle) */
    clientCertRemaining: new CellHistogram({
      name: "certgate_client_certificate_remaining_seconds",
      help: "Remaining lifetime of the client certificates presented in full handshakes, by trust bundle: verified ones, and expired ones observed as 0 (bucket le=\"0\"); resumed handshakes are not observed.",
      labelNames: ["bundle"] as const,
      // Days to years; 0 holds the expired ones (a histogram takes no negative counts).
      buckets: [0, 1, 7, 14, 30, 60, 90, 180, 365, 730, 1825].map((days) => days * 86_400),
      registers: [registry],
    }),
    httpConnections: new Gauge({
      name: "certgate_http_connections",
      help: "Client connections past their handshake, serving HTTP/1.1 (read at scrape time, not counted per connection).",
      registers: [registry],
      collect() {
        this.set(readHttpConnections());
      },
    }),
    /** A fleet node registers its store connection (absent with the embedded store). */
    collectStoreConnected(read: () => number): void {
      new Gauge({
        name: "certgate_store_connected",
        help: "1 while this node is connected to its fleet's PostgreSQL store (0: serving its last configuration, reconnecting).",
        registers: [registry],
        collect() {
          this.set(read());
        },
      });
    },
    /**
     * The control plane registers what it relies on (server certificates, trust-bundle CAs, the
     * managed CA) from the model in force: one series per certificate, read at scrape time, so a
     * deleted certificate's series goes with the next scrape.
     */
    collectCertificateExpiry(read: () => readonly { kind: string; id: string; subject: string; notAfter: number }[]): void {
      new Gauge({
        name: "certgate_certificate_not_after_seconds",
        help: "Expiry (not_after, Unix seconds) of each server certificate (kind server, id the certificate), each CA of each trust bundle (kind ca, id the bundle) and the managed CA (kind managed_ca).",
        labelNames: ["kind", "id", "subject"] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const c of read()) this.set({ kind: c.kind, id: c.id, subject: c.subject }, c.notAfter / 1000);
        },
      });
    },
    /** The data plane tells the catalog how to read the open-connection count. */
    collectHttpConnections(read: () => number): void {
      readHttpConnections = read;
    },
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;
