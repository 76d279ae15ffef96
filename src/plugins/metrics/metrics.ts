import type { FastifyPluginAsync } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const EVENT_LOOP_SAMPLE_MS = 250;
import type { MemberlistStats } from '../../gossip/index.js';
import type { ServiceStatus } from '../../supervisor/service.js';

export interface MetricsSources {
  ring: { stats(): MemberlistStats };
  supervisor: {
    list(): ServiceStatus[];
    on(event: 'status', listener: (s: ServiceStatus) => void): unknown;
    off(event: 'status', listener: (s: ServiceStatus) => void): unknown;
  };
}

/**
 * The member's Prometheus metrics, in a registry of its own (several
 * members may share a process in tests). Ring and service figures are read
 * from the live objects at scrape time; only what has no running total
 * elsewhere (restarts, health changes, request latency) is counted here.
 */
export class ApiMetrics {
  readonly registry = new Registry();
  private readonly extraRegistries: Registry[] = [];
  private readonly latency: Histogram<'method' | 'route' | 'status'>;
  private readonly restarts: Counter<'service'>;
  private readonly healthResults: Counter<'service' | 'status'>;
  readonly eventClients: Gauge;
  readonly eventClientsDropped: Counter;
  private readonly lastSeen = new Map<string, { pid?: number; health: string }>();
  private readonly onStatus = (s: ServiceStatus) => this.observeStatus(s);

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    const stats = () => sources.ring.stats();
    // prom-client samples event-loop delay with a libuv timer at this
    // resolution; its default (10 ms) alone wakes an idle supervisor 100
    // times a second. Lag worth alerting on is far coarser than 250 ms.
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });

    new Counter({
      name: 'hasup_gossip_packets_total',
      help: 'Gossip packets received and sent',
      labelNames: ['direction'],
      registers,
      collect() {
        const s = stats();
        setTotals(this, [[{ direction: 'in' }, s.packetsIn], [{ direction: 'out' }, s.packetsOut]]);
      },
    });
    new Counter({
      name: 'hasup_gossip_bytes_total',
      help: 'Gossip bytes (sealed, UDP and TCP) received and sent',
      labelNames: ['direction'],
      registers,
      collect() {
        const s = stats();
        setTotals(this, [[{ direction: 'in' }, s.bytesIn], [{ direction: 'out' }, s.bytesOut]]);
      },
    });
    new Counter({
      name: 'hasup_gossip_dropped_packets_total',
      help: 'Gossip packets dropped undecoded, by reason',
      labelNames: ['reason'],
      registers,
      collect() {
        setTotals(this, Object.entries(stats().dropped).map(([reason, n]) => [{ reason }, n]));
      },
    });
    new Gauge({
      name: 'hasup_gossip_members',
      help: 'Members by state, this one included',
      labelNames: ['state'],
      registers,
      collect() {
        for (const [state, n] of Object.entries(stats().members)) this.set({ state }, n);
      },
    });
    new Counter({
      name: 'hasup_gossip_probes_total',
      help: 'SWIM probes sent; those that needed ping-req; those that failed',
      labelNames: ['kind'],
      registers,
      collect() {
        const s = stats();
        setTotals(this, [[{ kind: 'direct' }, s.probes], [{ kind: 'indirect' }, s.indirectProbes], [{ kind: 'failed' }, s.failedProbes]]);
      },
    });
    new Gauge({
      name: 'hasup_gossip_awareness',
      help: 'Lifeguard local health score (0 is healthy)',
      registers,
      collect() {
        this.set(stats().awareness);
      },
    });
    new Gauge({
      name: 'hasup_service_up',
      help: 'Whether the service process runs (1) or not (0)',
      labelNames: ['service'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.supervisor.list()) this.set({ service: `${s.name}.${s.group}` }, s.state === 'running' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'hasup_service_health',
      help: 'The last health check result of each service (1 for its current status)',
      labelNames: ['service', 'status'],
      registers,
      collect() {
        this.reset();
        for (const s of sources.supervisor.list()) {
          for (const status of ['ok', 'warning', 'critical', 'unknown']) this.set({ service: `${s.name}.${s.group}`, status }, s.health === status ? 1 : 0);
        }
      },
    });
    this.restarts = new Counter({ name: 'hasup_service_restarts_total', help: 'Times a service came back up with a new process (crash or operator restart)', labelNames: ['service'], registers });
    this.healthResults = new Counter({ name: 'hasup_service_health_changes_total', help: 'Health check results that changed a service\'s health, by the new status', labelNames: ['service', 'status'], registers });
    this.latency = new Histogram({
      name: 'hasup_http_request_duration_seconds',
      help: 'HTTP API request latency',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
      registers,
    });
    this.eventClients = new Gauge({ name: 'hasup_events_clients', help: 'WebSocket /events clients connected', registers });
    this.eventClientsDropped = new Counter({ name: 'hasup_events_clients_dropped_total', help: 'WebSocket /events clients dropped for reading too slowly', registers });

    for (const s of sources.supervisor.list()) this.lastSeen.set(`${s.name}.${s.group}`, { pid: s.pid, health: s.health });
    sources.supervisor.on('status', this.onStatus);
  }

  /** Another registry whose metrics /metrics appends (names must not clash with these). */
  addRegistry(registry: Registry): void {
    this.extraRegistries.push(registry);
  }

  /** The text /metrics answers: this registry, then the added ones. */
  async text(): Promise<string> {
    const parts = await Promise.all([this.registry, ...this.extraRegistries].map((r) => r.metrics()));
    return parts.filter((p) => p !== '').join('\n');
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.latency.observe({ method, route, status: String(status) }, seconds);
  }

  close(): void {
    this.sources.supervisor.off('status', this.onStatus);
  }

  private observeStatus(s: ServiceStatus): void {
    const service = `${s.name}.${s.group}`;
    const prev = this.lastSeen.get(service);
    if (s.state === 'running' && s.pid !== undefined && prev?.pid !== undefined && prev.pid !== s.pid) this.restarts.inc({ service });
    if (prev === undefined || prev.health !== s.health) this.healthResults.inc({ service, status: s.health });
    this.lastSeen.set(service, { pid: s.state === 'running' ? (s.pid ?? prev?.pid) : prev?.pid, health: s.health });
  }
}

/** A counter whose running totals live elsewhere: set to those totals at scrape time. */
function setTotals<T extends string>(c: Counter<T>, totals: Array<[Partial<Record<T, string>>, number]>): void {
  c.reset();
  for (const [labels, total] of totals) c.inc(labels, total);
}

/** `GET /metrics`: Prometheus text format. */
export const metricsRoutes: FastifyPluginAsync<{ metrics: ApiMetrics }> = async (app, { metrics }) => {
  app.get('/metrics', { config: { access: 'metrics' }, schema: { description: 'Prometheus metrics (text format).', security: [] } }, async (_req, reply) => {
    const text = await metrics.text();
    return reply.type(metrics.registry.contentType).send(text);
  });
};
