// Counters and histograms for the per-request and per-connection path. prom-client builds,
// validates, sorts and hashes a label object on every inc() and observe(), about 3% of a
// keep-alive request's CPU in the bench's profile; here a label combination is found through
// one Map per label and its cell updated in place. The registry reads the cells at scrape time
// in prom-client's own format, so /metrics, the workers' merge (getMetricsAsJSON) and the
// primary's aggregation see the same series as before.
import type { Metric, MetricObjectWithValues, MetricValue, MetricValueWithName, Registry } from "prom-client";

type LabelValue = string | number;
/** One value per label name, in the same order. */
type Values<L extends readonly string[]> = { [K in keyof L]: LabelValue };

interface Cell {
  labels: Record<string, LabelValue>;
  count: number;
  sum: number;
  /** Histograms: observations per bucket (not cumulative), the last one +Inf. */
  buckets: Float64Array | null;
}

interface Options<L extends readonly string[]> {
  name: string;
  help: string;
  labelNames: L;
  registers: Registry[];
}

abstract class CellMetric<L extends readonly string[]> {
  readonly name: string;
  readonly help: string;
  readonly aggregator = "sum" as const;
  abstract readonly type: "counter" | "histogram";
  readonly #labelNames: L;
  /** Histograms: buckets per cell (the bounds and +Inf); counters: 0. */
  readonly #buckets: number;
  readonly #root = new Map<LabelValue, unknown>();
  readonly #cells: Cell[] = [];

  constructor(o: Options<L>, buckets = 0) {
    this.name = o.name;
    this.help = o.help;
    this.#labelNames = o.labelNames;
    this.#buckets = buckets;
    // prom-client's registries take any object with a name and get(); its Metric type is a class.
    for (const r of o.registers) r.registerMetric(this as unknown as Metric);
  }

  /**
   * The cell of these label values, in labelNames' order (created on first use). A label takes
   * numbers or strings, not both: 200 and "200" would be two cells of one series.
   */
  protected cell(values: Values<L>): Cell {
    let m = this.#root;
    const last = values.length - 1;
    for (let i = 0; i < last; i++) {
      let next = m.get(values[i]!) as Map<LabelValue, unknown> | undefined;
      if (!next) m.set(values[i]!, (next = new Map()));
      m = next;
    }
    let c = m.get(values[last]!) as Cell | undefined;
    if (!c) {
      const labels: Record<string, LabelValue> = {};
      this.#labelNames.forEach((n, i) => (labels[n] = values[i]!));
      c = { labels, count: 0, sum: 0, buckets: this.#buckets ? new Float64Array(this.#buckets) : null };
      m.set(values[last]!, c);
      this.#cells.push(c);
    }
    return c;
  }

  protected abstract values(c: Cell): MetricValueWithName<string>[];

  get(): Promise<MetricObjectWithValues<MetricValue<string>>> {
    // As prom-client's own get(): plain data (workers send it to the primary over IPC), no
    // `collect` function although its type names one; `type` is the name its enum stands for.
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.#cells.flatMap((c) => this.values(c)),
    } as unknown as MetricObjectWithValues<MetricValue<string>>);
  }

  reset(): void {
    this.#root.clear();
    this.#cells.length = 0;
  }
}

/** A counter: `inc(v1, v2, ...)` with the label values in labelNames' order. */
export class CellCounter<L extends readonly string[]> extends CellMetric<L> {
  readonly type = "counter";

  inc(...values: Values<L>): void {
    this.cell(values).count++;
  }

  protected values(c: Cell): MetricValueWithName<string>[] {
    return [{ labels: c.labels, value: c.count }];
  }
}

/** A histogram with fixed upper bounds: `observe(value, v1, v2, ...)`. */
export class CellHistogram<L extends readonly string[]> extends CellMetric<L> {
  readonly type = "histogram";
  readonly #bounds: readonly number[];

  constructor(o: Options<L> & { buckets: readonly number[] }) {
    super(o, o.buckets.length + 1);
    this.#bounds = o.buckets;
  }

  observe(value: number, ...values: Values<L>): void {
    const c = this.cell(values);
    const b = this.#bounds;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    c.buckets![i]!++;
    c.count++;
    c.sum += value;
  }

  protected values(c: Cell): MetricValueWithName<string>[] {
    const out: MetricValueWithName<string>[] = [];
    let cumulative = 0;
    this.#bounds.forEach((le, i) => {
      cumulative += c.buckets![i]!;
      out.push({ metricName: `${this.name}_bucket`, labels: { le, ...c.labels }, value: cumulative });
    });
    out.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf", ...c.labels }, value: c.count });
    out.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
    out.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    return out;
  }
}
