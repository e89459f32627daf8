// Prometheus metrics in the text exposition format (version 0.0.4), written out directly:
// counters and histograms with labels, and gauges read when scraped. Small enough not to need
// a client library.

type Labels = Record<string, string>;

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')}"`,
  );
  return parts.length ? `{${parts.join(",")}}` : "";
}

const keyOf = (labels: Labels) => JSON.stringify(Object.entries(labels).sort());

interface Metric {
  render(): string[];
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = keyOf(labels);
    const cur = this.values.get(k) ?? { labels, value: 0 };
    cur.value += by;
    this.values.set(k, cur);
  }
  get(labels: Labels = {}): number {
    return this.values.get(keyOf(labels))?.value ?? 0;
  }
  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} counter`,
      ...[...this.values.values()].map((v) => `${this.name}${labelText(v.labels)} ${v.value}`),
    ];
  }
}

export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}
  render(): string[] {
    return [
      `# HELP ${this.name} ${this.help}`,
      `# TYPE ${this.name} gauge`,
      `${this.name} ${this.read()}`,
    ];
  }
}

export class Histogram implements Metric {
  private readonly series = new Map<
    string,
    { labels: Labels; counts: number[]; sum: number; count: number }
  >();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = keyOf(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { labels, counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    this.buckets.forEach((b, i) => {
      if (value <= b) s.counts[i]! += 1;
    });
    s.sum += value;
    s.count += 1;
  }
  count(labels: Labels = {}): number {
    return this.series.get(keyOf(labels))?.count ?? 0;
  }
  render(): string[] {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const s of this.series.values()) {
      this.buckets.forEach((b, i) =>
        lines.push(
          `${this.name}_bucket${labelText({ ...s.labels, le: String(b) })} ${s.counts[i]}`,
        ),
      );
      lines.push(`${this.name}_bucket${labelText({ ...s.labels, le: "+Inf" })} ${s.count}`);
      lines.push(`${this.name}_sum${labelText(s.labels)} ${s.sum}`);
      lines.push(`${this.name}_count${labelText(s.labels)} ${s.count}`);
    }
    return lines;
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];
  register<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }
  render(): string {
    return this.metrics.flatMap((m) => m.render()).join("\n") + "\n";
  }
}

/** The operator's metrics. */
export function operatorMetrics(queueDepth: () => number, leading: () => number = () => 1) {
  const registry = new Registry();
  return {
    registry,
    reconciles: registry.register(
      new Counter("herd_operator_reconciles_total", "Reconciles run, by kind and result."),
    ),
    errors: registry.register(
      new Counter("herd_operator_reconcile_errors_total", "Reconciles that failed, by kind."),
    ),
    workflowsStarted: registry.register(
      new Counter(
        "herd_operator_workflows_started_total",
        "Workflows this replica started, by kind.",
      ),
    ),
    watchRestarts: registry.register(
      new Counter(
        "herd_operator_watch_restarts_total",
        "Informer restarts after a watch error, by kind.",
      ),
    ),
    latency: registry.register(
      new Histogram(
        "herd_operator_reconcile_duration_seconds",
        "Time one reconcile took, by kind.",
        [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      ),
    ),
    queueDepth: registry.register(
      new Gauge("herd_operator_queue_depth", "Keys waiting in the work queue.", queueDepth),
    ),
    leader: registry.register(
      new Gauge(
        "herd_operator_leader",
        "1 while this replica reconciles (leads), 0 while it stands by.",
        leading,
      ),
    ),
    residentMemory: registry.register(
      new Gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        () => process.memoryUsage().rss,
      ),
    ),
    heapUsed: registry.register(
      new Gauge(
        "nodejs_heap_used_bytes",
        "V8 heap in use, in bytes.",
        () => process.memoryUsage().heapUsed,
      ),
    ),
  };
}

export type OperatorMetrics = ReturnType<typeof operatorMetrics>;
