/**
 * The metric collector (Metricbeat's role): every interval it samples the
 * host, each supervised child's process tree and the services, turns each
 * metric set into a document for the shipper, and hands the same sample to
 * the /metrics gauges. A round that is still running when the next is due
 * is not overlapped: that round is skipped.
 */
import type { ServiceStatus } from '../../supervisor/service.js';
import type { Logger } from '../../supervisor/log.js';
import { metricDocument, type EventOrigin } from '../shipper/ecs.js';
import { KIND_METRICS } from '../shipper/indices.js';
import type { EventTarget } from '../shipper/inputs.js';
import { HostSampler } from './host.js';
import { ProcessSampler } from './processes.js';
import type { MetricSet, Sample } from './sample.js';
import { ElasticsearchSampler, etcdMetricSets, PostgresqlSampler, type ServiceMetricsContext } from './services.js';

export interface MetricsCollectorOptions {
  /** Where the documents go (the Shipper); none = /metrics only. */
  target?: EventTarget;
  origin: EventOrigin;
  services: { list(): ServiceStatus[] };
  serviceContext: ServiceMetricsContext;
  log: Logger;
  /** Default 10 s. */
  intervalMs?: number;
  /** Every finished sample (the /metrics gauges). */
  onSample?: (sample: Sample) => void;
}

export class MetricsCollector {
  private timer: NodeJS.Timeout | undefined;
  private busy = false;
  private readonly host = new HostSampler();
  private readonly processes = new ProcessSampler();
  private readonly postgresql = new PostgresqlSampler();
  private readonly elasticsearch = new ElasticsearchSampler();
  private failures = new Map<string, string>();
  rounds = 0;
  skipped = 0;
  lastSample: Sample | undefined;

  constructor(private readonly opts: MetricsCollectorOptions) {}

  start(): void {
    if (this.timer) return;
    const interval = Math.max(100, this.opts.intervalMs ?? 10_000);
    // The first round at once: CPU shares need two readings, and the gauges should not start empty.
    void this.collect();
    this.timer = setInterval(() => void this.collect(), interval);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One round; resolves with the sample (also pushed and reported). */
  async collect(): Promise<Sample | undefined> {
    if (this.busy) {
      this.skipped++;
      return undefined;
    }
    this.busy = true;
    const time = Date.now();
    try {
      const statuses = this.opts.services.list();
      const sets: MetricSet[] = [];
      const parts: Array<[string, Promise<MetricSet[]>]> = [['host', this.host.sample(time)]];
      for (const s of statuses) {
        if (s.name === 'postgresql') parts.push(['postgresql', this.postgresql.sample(this.opts.serviceContext, s)]);
        else if (s.name === 'etcd') parts.push(['etcd', Promise.resolve(etcdMetricSets(s))]);
        else if (s.name === 'elasticsearch') parts.push(['elasticsearch', this.elasticsearch.sample(this.opts.serviceContext, s, time)]);
      }
      const running = statuses.filter((s) => s.state === 'running' && s.pid !== undefined).map((s) => ({ service: s.name, pid: s.pid! }));
      parts.push(['processes', Promise.resolve().then(() => this.processes.sample(running, time))]);
      const results = await Promise.allSettled(parts.map(([, p]) => p));
      results.forEach((r, i) => {
        const name = parts[i]![0];
        if (r.status === 'fulfilled') {
          sets.push(...r.value);
          this.failures.delete(name);
        } else {
          this.noteFailure(name, r.reason);
        }
      });
      const sample = { time, sets };
      this.lastSample = sample;
      this.rounds++;
      if (this.opts.target) {
        for (const set of sets) this.opts.target.push(KIND_METRICS, time, metricDocument(time, set.module, set.metricset, set.fields, this.opts.origin, set.service ?? set.module));
      }
      this.opts.onSample?.(sample);
      return sample;
    } finally {
      this.busy = false;
    }
  }

  /** Says once when a source starts failing (and again when the reason changes), not every round. */
  private noteFailure(name: string, reason: unknown): void {
    const text = reason instanceof Error ? reason.message : String(reason);
    if (this.failures.get(name) === text) return;
    this.failures.set(name, text);
    this.opts.log.info({ event: 'metrics_source_failed', source: name, reason: text }, `metrics from ${name} unavailable this round: ${text}`);
  }
}
