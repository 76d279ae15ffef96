/**
 * Shipping on one member, composed: the spool under STATE_DIR/spool/events,
 * the shipper, its three log inputs and the metric collector. The daemon
 * creates one of these when the member runs Elasticsearch or hasup.toml has
 * a [shipping] table, adds `sink` to its MultiSink, and stops it on the way
 * down.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { MemberTlsFiles } from '../../supervisor/pki/member-files.js';
import type { LogSink } from '../../supervisor/log-sink.js';
import type { Logger, LogTap } from '../../supervisor/log.js';
import type { ClusterSecrets } from '../../supervisor/secrets.js';
import type { ServiceStatus } from '../../supervisor/service.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import type { MemberEsAccess } from '../elasticsearch/access.js';
import { elasticsearchUrl } from '../elasticsearch/driver.js';
import { MetricsCollector } from '../metrics-collector/collector.js';
import type { Sample } from '../metrics-collector/sample.js';
import type { EventOrigin } from './ecs.js';
import { ChildLinesInput, JournalInput, SupervisorLogInput } from './inputs.js';
import { ElasticsearchOutput } from './output.js';
import { Shipper, type ShipperStats } from './shipper.js';
import { Spool } from './spool.js';

/** [shipping] of hasup.toml, as the daemon passes it. */
export interface ShippingSettings {
  /** Elasticsearch URLs to fail over to, after the local node (when it runs one). */
  elasticsearch: string[];
  spoolMaxMb: number;
  batchMaxEvents: number;
  batchMaxBytes: number;
  flushIntervalMs: number;
  retryMaxMs: number;
  retentionDays: number;
  metricsIntervalS: number;
  /** host.name of every event; default the OS host name. */
  hostName?: string;
  journal: boolean;
}

export const DEFAULT_SHIPPING: ShippingSettings = {
  elasticsearch: [],
  spoolMaxMb: 256,
  batchMaxEvents: 5000,
  batchMaxBytes: 5 * 1024 * 1024,
  flushIntervalMs: 1000,
  retryMaxMs: 30_000,
  retentionDays: 7,
  metricsIntervalS: 10,
  journal: true,
};

export interface ShippingDeps {
  stateDir: string;
  memberId: string;
  /** The member's advertised IP. */
  ip: string;
  log: Logger;
  /** The supervisor's own log lines. */
  logTap?: LogTap;
  services: {
    list(): ServiceStatus[];
    get(name: string): { config(): TomlTable; driverContext(): { tls?: MemberTlsFiles } } | undefined;
  };
  secrets: ClusterSecrets;
  /** The member's PostgreSQL role, for every event. */
  role: () => string;
  /** Each metric sample, for /metrics. */
  onSample?: (sample: Sample) => void;
  /** Other members' Elasticsearch URLs, from the census (./census.ts), tried after the local and configured ones. */
  peers?: () => string[];
  /** Scheme, CA and users for Elasticsearch (../elasticsearch/access.ts); absent: plain HTTP, no user. */
  esAccess?: MemberEsAccess;
}

export class Shipping {
  readonly shipper: Shipper;
  readonly collector: MetricsCollector;
  /** Add to the daemon's MultiSink: every child's lines. */
  readonly sink: LogSink;
  private readonly journal: JournalInput | undefined;
  private readonly supervisorLog: SupervisorLogInput;

  constructor(
    readonly settings: ShippingSettings,
    private readonly deps: ShippingDeps,
  ) {
    const log = deps.log.child({ component: 'shipper' });
    const origin: EventOrigin = { memberId: deps.memberId, hostName: settings.hostName ?? hostname(), hostIp: deps.ip, role: deps.role };
    const spool = Spool.open({ dir: join(deps.stateDir, 'spool', 'events'), maxBytes: settings.spoolMaxMb * 1024 * 1024 });
    const access = deps.esAccess;
    const output = new ElasticsearchOutput({ urls: () => this.urls(), ...(access ? { access: (user) => access.as(user) } : {}) });
    this.shipper = new Shipper({
      spool,
      output,
      memberId: deps.memberId,
      log,
      batchMaxEvents: settings.batchMaxEvents,
      batchMaxBytes: settings.batchMaxBytes,
      flushIntervalMs: settings.flushIntervalMs,
      retryMaxMs: settings.retryMaxMs,
      retentionDays: settings.retentionDays,
    });
    this.sink = new ChildLinesInput(this.shipper, origin);
    this.supervisorLog = new SupervisorLogInput(this.shipper, origin);
    this.journal = settings.journal ? new JournalInput({ target: this.shipper, origin, log, cursorFile: join(deps.stateDir, 'spool', 'journal-cursor') }) : undefined;
    this.collector = new MetricsCollector({
      target: this.shipper,
      origin,
      services: deps.services,
      serviceContext: { ip: deps.ip, secrets: deps.secrets, config: (name) => deps.services.get(name)?.config(), tls: (name) => deps.services.get(name)?.driverContext().tls },
      log,
      intervalMs: settings.metricsIntervalS * 1000,
      onSample: deps.onSample,
    });
  }

  /** Where events go: the local Elasticsearch first (when this member runs one), then the configured nodes, then the census's. */
  urls(): string[] {
    const urls: string[] = [];
    const service = this.deps.services.list().some((s) => s.name === 'elasticsearch') ? this.deps.services.get('elasticsearch') : undefined;
    const local = service?.config();
    if (service && local) urls.push(elasticsearchUrl({ cfg: local, ip: this.deps.ip, tls: service.driverContext().tls }));
    for (const url of [...this.settings.elasticsearch, ...(this.deps.peers?.() ?? [])]) if (!urls.includes(url)) urls.push(url);
    return urls;
  }

  start(): void {
    this.deps.logTap?.attach((line) => this.supervisorLog.write(line));
    this.shipper.start();
    this.journal?.start();
    this.collector.start();
    this.deps.log.info({ event: 'shipping', urls: this.urls(), spool_max_mb: this.settings.spoolMaxMb, metrics_interval_s: this.settings.metricsIntervalS }, 'shipping logs and metrics to Elasticsearch');
  }

  stats(): ShipperStats & { supervisorLogDropped: number; journalRead: number; metricRounds: number } {
    return { ...this.shipper.stats(), supervisorLogDropped: this.supervisorLog.dropped, journalRead: this.journal?.read ?? 0, metricRounds: this.collector.rounds };
  }

  /** Stops the inputs, then the shipper (what is not acknowledged stays spooled for the next start). */
  async stop(): Promise<void> {
    this.collector.stop();
    this.journal?.stop();
    this.deps.logTap?.detach();
    await this.shipper.stop();
  }
}
