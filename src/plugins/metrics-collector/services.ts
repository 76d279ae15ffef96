/**
 * Service metrics, in the field layout of Metricbeat's modules:
 *   postgresql  connections (postgresql.activity), transactions per database
 *               summed (postgresql.database.transactions.*), and replication
 *               lag per follower in bytes (one set per pg_stat_replication row
 *               on the leader; the replay gap on a replica);
 *   etcd        leader and raft index/term, from the driver's health details;
 *   elasticsearch  cluster health from the driver's health details, and the
 *               local node's indexing total and rate from _nodes/_local/stats.
 * A service that does not answer is left out of this round (its health
 * check already says why); collection never fails as a whole.
 */
import type { ServiceStatus } from '../../supervisor/service.js';
import type { ClusterSecrets } from '../../supervisor/secrets.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import type { MemberTlsFiles } from '../../supervisor/pki/member-files.js';
import { PgSession, superuserTarget } from '../postgresql/connect.js';
import { esRequestExtras } from '../elasticsearch/access.js';
import { driverAccess, elasticsearchUrl } from '../elasticsearch/driver.js';
import { httpJson } from '../http-json.js';
import type { MetricSet } from './sample.js';

export interface ServiceMetricsContext {
  /** The member's advertised IP. */
  ip: string;
  secrets: ClusterSecrets;
  /** The merged config in force of a loaded service, by plan name. */
  config(name: string): TomlTable | undefined;
  /** A loaded service's copy of the member's TLS files (absent when TLS is off). */
  tls?(name: string): MemberTlsFiles | undefined;
}

const QUERY_TIMEOUT_MS = 3000;

interface PgNumbers {
  in_recovery: boolean;
  connections: number;
  max_connections: number;
  commits: string;
  rollbacks: string;
  replay_gap: string | null;
}

interface PgFollower {
  application_name: string;
  client_addr: string | null;
  state: string;
  sync_state: string;
  lag_bytes: string | null;
}

/** PostgreSQL's metric sets, over a connection kept open between rounds. */
export class PostgresqlSampler {
  private readonly session = new PgSession();

  sample(ctx: ServiceMetricsContext, status: ServiceStatus): Promise<MetricSet[]> {
    return postgresqlMetricSets(ctx, status, this.session);
  }
}

async function postgresqlMetricSets(ctx: ServiceMetricsContext, status: ServiceStatus, metricsSession: PgSession): Promise<MetricSet[]> {
  const cfg = ctx.config('postgresql');
  if (!cfg || status.state !== 'running') return [];
  const target = superuserTarget({ cfg, ip: ctx.ip, secrets: ctx.secrets, tls: ctx.tls?.('postgresql') });
  const signal = AbortSignal.timeout(QUERY_TIMEOUT_MS);
  const { numbers, followers } = await metricsSession.run(target, signal, async (client) => {
    const numbers = (
      await client.query<PgNumbers>(
        `SELECT pg_is_in_recovery() AS in_recovery,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
                current_setting('max_connections')::int AS max_connections,
                (SELECT coalesce(sum(xact_commit), 0) FROM pg_stat_database)::text AS commits,
                (SELECT coalesce(sum(xact_rollback), 0) FROM pg_stat_database)::text AS rollbacks,
                CASE WHEN pg_is_in_recovery()
                     THEN pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text END AS replay_gap`,
      )
    ).rows[0]!;
    const followers = numbers.in_recovery
      ? []
      : (
          await client.query<PgFollower>(
            `SELECT application_name, client_addr::text AS client_addr, state, sync_state,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::text AS lag_bytes
               FROM pg_stat_replication`,
          )
        ).rows;
    return { numbers, followers };
  });
  const sets: MetricSet[] = [
    {
      module: 'postgresql',
      metricset: 'database',
      fields: {
        postgresql: {
          activity: { connections: numbers.connections, max_connections: numbers.max_connections },
          database: { transactions: { commit: Number(numbers.commits), rollback: Number(numbers.rollbacks) } },
          role: numbers.in_recovery ? 'replica' : 'leader',
          ...(numbers.replay_gap !== null ? { replication: { replay_gap: { bytes: Number(numbers.replay_gap) } } } : {}),
        },
      },
    },
  ];
  for (const f of followers) {
    sets.push({
      module: 'postgresql',
      metricset: 'replication',
      fields: {
        postgresql: {
          replication: {
            application_name: f.application_name,
            client_addr: f.client_addr ?? '',
            state: f.state,
            sync_state: f.sync_state,
            ...(f.lag_bytes !== null ? { lag: { bytes: Number(f.lag_bytes) } } : {}),
          },
        },
      },
    });
  }
  return sets;
}

export function etcdMetricSets(status: ServiceStatus): MetricSet[] {
  const d = status.details;
  if (!d || status.state !== 'running') return [];
  return [
    {
      module: 'etcd',
      metricset: 'server',
      fields: {
        etcd: {
          server: { is_leader: d.is_leader === true, id: String(d.member_id ?? '') },
          leader: { id: String(d.leader ?? '') },
          raft: { index: num(d.raft_index), applied_index: num(d.raft_applied_index), term: num(d.raft_term) },
          db: { size: { bytes: num(d.db_size_bytes) } },
        },
      },
    },
  ];
}

/** Keeps the previous indexing total to report a rate. */
export class ElasticsearchSampler {
  private previous: { total: number; at: number } | undefined;

  async sample(ctx: ServiceMetricsContext, status: ServiceStatus, now = Date.now()): Promise<MetricSet[]> {
    const cfg = ctx.config('elasticsearch');
    if (!cfg || status.state !== 'running') return [];
    const d = status.details ?? {};
    const cluster = { status: typeof d.status === 'string' ? d.status : 'unknown', nodes: { count: num(d.number_of_nodes), data: num(d.number_of_data_nodes) }, shards: { active: num(d.active_shards), unassigned: num(d.unassigned_shards) } };
    const indexing: Record<string, unknown> = {};
    const heap: Record<string, unknown> = {};
    try {
      const filter = 'nodes.*.indices.indexing.index_total,nodes.*.indices.docs.count,nodes.*.jvm.mem.heap_used_in_bytes,nodes.*.jvm.mem.heap_used_percent';
      const tls = ctx.tls?.('elasticsearch');
      const access = driverAccess({ cfg, secrets: ctx.secrets, tls }, 'admin');
      const answer = await httpJson(`${elasticsearchUrl({ cfg, ip: ctx.ip, tls })}/_nodes/_local/stats/indices,jvm?filter_path=${filter}`, AbortSignal.timeout(QUERY_TIMEOUT_MS), undefined, esRequestExtras(access));
      type NodeStats = { indices?: { indexing?: { index_total?: number }; docs?: { count?: number } }; jvm?: { mem?: { heap_used_in_bytes?: number; heap_used_percent?: number } } };
      const node = Object.values((answer.json as { nodes?: Record<string, NodeStats> }).nodes ?? {})[0];
      const total = node?.indices?.indexing?.index_total;
      if (typeof total === 'number') {
        indexing.index_total = total;
        if (this.previous && now > this.previous.at && total >= this.previous.total) indexing.rate = Math.round(((total - this.previous.total) / ((now - this.previous.at) / 1000)) * 10) / 10;
        this.previous = { total, at: now };
      }
      if (typeof node?.indices?.docs?.count === 'number') indexing.docs = node.indices.docs.count;
      // Metricbeat's names (elasticsearch.node.stats.jvm.mem.heap.used.*); pct as a 0-1 share like every *.pct.
      const mem = node?.jvm?.mem;
      if (typeof mem?.heap_used_in_bytes === 'number') heap.bytes = mem.heap_used_in_bytes;
      if (typeof mem?.heap_used_percent === 'number') heap.pct = mem.heap_used_percent / 100;
    } catch {
      // The node does not answer: health says so; this round has no indexing figures.
    }
    return [
      {
        module: 'elasticsearch',
        metricset: 'node_stats',
        fields: { elasticsearch: { cluster: { stats: cluster }, node: { stats: { indices: { indexing }, ...(Object.keys(heap).length > 0 ? { jvm: { mem: { heap: { used: heap } } } } : {}) } } } },
      },
    ];
  }
}

function num(v: unknown): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}
