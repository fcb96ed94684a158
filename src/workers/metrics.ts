// One /metrics for a process group: the primary's registry and every worker's, merged.
// Counters and histograms are summed (process_cpu_seconds_total is the group's CPU);
// gauges get a `worker` label ("primary", "0", "1", …) where a sum would mean nothing
// (resident memory, heap, config version), and are summed where it does (open connections).
// Proportional memory stays per process too, though it adds up: the sum is a query away.
// The control plane's own counters (config applies, file reloads) come from the primary alone, which runs
// every compile the admin API asks for; workers' copies of them are dropped. So do the
// certificate expiry gauges: the primary reads them from its model, once for the group.
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue, type Registry } from "prom-client";

type MetricJson = MetricObjectWithValues<MetricValue<string>>;

/** Gauges whose values add up across processes. */
const SUMMED_GAUGES = new Set(["certgate_http_connections", "nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]);
/** Only the primary's count means something. */
const PRIMARY_ONLY = new Set(["certgate_store_connected", "certgate_config_applies_total", "certgate_workers", "certgate_worker_restarts_total", "certgate_crl_fetches_total", "certgate_crl_age_seconds", "certgate_ocsp_answers_total", "certgate_file_reloads_total", "certgate_file_last_reload_timestamp_seconds", "certgate_certificate_not_after_seconds"]);
/** The data plane's metrics: the primary, which serves no client, has none worth showing. */
const WORKER_ONLY = /^certgate_(?!config_|workers|worker_restarts|crl_|ocsp_|store_|file_|certificate_not_after_|proportional_memory_)/;

/** `sources`: the primary's getMetricsAsJSON() as "primary", then each worker's by slot. */
export function aggregateGroup(sources: { who: string; metrics: MetricJson[] }[]): Registry {
  const labelled = sources.map(({ who, metrics }) =>
    metrics
      .filter((m) => (who === "primary" ? !WORKER_ONLY.test(m.name) : !PRIMARY_ONLY.has(m.name)))
      .map((m) =>
        // prom-client types `type` as an enum; its JSON carries the name ("gauge").
        (m.type as unknown as string) !== "gauge" || SUMMED_GAUGES.has(m.name) || PRIMARY_ONLY.has(m.name)
          ? m
          : ({ ...m, aggregator: "sum", values: m.values.map((v) => ({ ...v, labels: { ...v.labels, worker: who } })) } as MetricJson),
      ),
  );
  return AggregatorRegistry.aggregate(labelled);
}
