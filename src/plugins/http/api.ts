import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import type { Memberlist } from '../../gossip/index.js';
import type { Leadership } from '../../supervisor/leadership.js';
import type { HaOperations } from '../../ha/index.js';
import type { Logger } from '../../supervisor/log.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import type { BackupOperations } from '../backup/coordinator.js';
import type { SnapshotOperations } from '../backup/snapshot-jobs.js';
import { ApiMetrics, metricsRoutes } from '../metrics/metrics.js';
import { memberApiAddress } from '../../supervisor/rumors/service-members.js';
import { backupRoutes } from './backup.js';
import { butterflyRoutes } from './butterfly.js';
import { checkRoutes } from './checks.js';
import { configApplyRoutes, type ConfigPublisher } from './config-apply.js';
import { EventHub, eventRoutes, watchRing, type ApiEvent, type EventHubOptions } from './events.js';
import { haStatusRoutes } from './ha-status-routes.js';
import { Heartbeat } from './liveness.js';
import { operationRoutes } from './operations.js';
import { restoreRoutes } from './restore.js';
import { createHttpServer, type HttpTls, type OpenAccess } from './server.js';
import { servicesRoutes } from './services.js';
import { snapshotRoutes } from './snapshots.js';
import { SessionStore, type SessionLimits } from './sessions.js';
import { consoleRoutes } from './console/routes.js';
import { esRoutes } from './console/es-routes.js';
import { censusInput, viewRoutes } from './views.js';
import { buildCensus } from './cluster-view.js';
import type { EtcdMembershipStatus } from '../etcd/membership.js';
import type { EsAccess } from '../elasticsearch/access.js';

export interface ApiDeps {
  log: Logger;
  memberId: string;
  ring: Memberlist;
  supervisor: Supervisor;
  leadership: Leadership;
  /** Gossips a config document (POST /config). */
  configs: ConfigPublisher;
  token: string;
  /** The read-only token (the secrets' viewer_token); absent where the secrets file predates it. */
  viewerToken?: string;
  /** The secrets file, named when it lacks a viewer token. */
  secretsFile?: string;
  tls?: HttpTls;
  open?: OpenAccess;
  events?: EventHubOptions;
  livenessMaxAgeMs?: number;
  /** More Prometheus registries /metrics appends (host and shipping metrics). */
  metricsRegistries?: Registry[];
  /** The PostgreSQL election's operations (switchover, pause, view); absent on a standalone member. */
  ha?: HaOperations;
  /** Backup jobs, the repository's listing and its verification (src/plugins/backup/coordinator.ts). */
  backup?: BackupOperations;
  /** Elasticsearch snapshots and their restores (src/plugins/backup/snapshot-jobs.ts). */
  snapshots?: SnapshotOperations;
  /** This member's etcd role and the voters (GET /etcd), for the HA status. */
  etcd?: () => EtcdMembershipStatus;
  /** This member's shipping spool, for the HA status; undefined while it does not ship. */
  spool?: () => { backlog: number; dropped: number } | undefined;
  /** Elasticsearch nodes the console's charts and log search ask, in order; none: those panels say so. */
  elasticsearchUrls?: () => string[];
  /** How the console reaches Elasticsearch when its security is on: the CA and hasup's reader user (elasticsearch/access.ts). */
  elasticsearchAccess?: () => EsAccess;
  /** The console's session limits (default 1 h idle, 12 h at most). */
  sessions?: SessionLimits;
}

/**
 * The whole member API: load-balancer checks, views, operations, metrics,
 * the event stream and the OpenAPI description, on one fastify instance
 * (not yet listening). Closing it detaches everything it subscribed to.
 */
export async function createApiServer(deps: ApiDeps): Promise<FastifyInstance> {
  const { memberId, ring, supervisor, leadership } = deps;
  const metrics = new ApiMetrics({ ring, supervisor });
  for (const registry of deps.metricsRegistries ?? []) metrics.addRegistry(registry);
  const hub = new EventHub({ ...deps.events, onClients: (n) => metrics.eventClients.set(n), onDropped: () => metrics.eventClientsDropped.inc() });
  const unwatch = watchRing(ring, (e) => hub.publish(e));
  const views = { memberId, ring, services: supervisor, leadership, backup: () => deps.backup?.report(), spare: () => deps.ha?.view().spare };
  const sessions = new SessionStore(deps.sessions);
  const app = await createHttpServer({
    log: deps.log,
    token: deps.token,
    viewerToken: deps.viewerToken,
    sessions,
    tls: deps.tls,
    open: deps.open,
    onResponse: (req, status, seconds) => metrics.observeRequest(req.method, req.routeOptions.url ?? 'unmatched', status, seconds),
    plugins: [
      { plugin: checkRoutes, options: { memberId, leadership, services: supervisor, heartbeat: new Heartbeat(), livenessMaxAgeMs: deps.livenessMaxAgeMs } },
      { plugin: viewRoutes, options: views },
      {
        plugin: haStatusRoutes,
        options: {
          sources: { memberId, census: () => buildCensus(censusInput(views)), ha: deps.ha && (() => deps.ha!.view()), etcd: deps.etcd, spool: deps.spool },
          publish: (e: ApiEvent) => hub.publish(e),
        },
      },
      { plugin: butterflyRoutes, options: { ring } },
      { plugin: servicesRoutes, options: { supervisor } },
      { plugin: configApplyRoutes, options: { supervisor, ring: deps.configs } },
      { plugin: operationRoutes, options: { ha: deps.ha } },
      { plugin: backupRoutes, options: { backup: deps.backup, locate: (member: string) => memberApiAddress(ring, member) } },
      { plugin: restoreRoutes, options: { ha: deps.ha, backup: deps.backup, snapshots: deps.snapshots } },
      { plugin: snapshotRoutes, options: { snapshots: deps.snapshots } },
      { plugin: metricsRoutes, options: { metrics } },
      { plugin: eventRoutes, options: { hub, memberId } },
      { plugin: consoleRoutes, options: { memberId, token: deps.token, viewerToken: deps.viewerToken, sessions, secretsHint: deps.secretsFile } },
      { plugin: esRoutes, options: { urls: deps.elasticsearchUrls ?? (() => []), ...(deps.elasticsearchAccess ? { access: deps.elasticsearchAccess } : {}) } },
    ],
  });
  app.addHook('onClose', async () => {
    unwatch();
    metrics.close();
  });
  return app;
}
