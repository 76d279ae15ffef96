import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverContext, HealthResult, ServiceDriver, UpgradeTarget } from '../../supervisor/driver.js';
import { etcdUpgradeTarget } from '../upgrade-targets.js';
import { assertReachable, prepareServiceDirs } from '../service-dirs.js';
import { clientUrl, clusterToken, initialCluster, peerUrl } from './cluster.js';
import { EtcdClient, EtcdError, hexId, type EtcdStatus } from './client.js';
import { readDecision } from './formation-file.js';
import { etcdClientTls } from './tls.js';
import type { TlsClientOptions } from '../http-json.js';

function describe(err: unknown, where: string, signal: AbortSignal): string {
  if (signal.aborted) return `etcd at ${where} did not answer in time`;
  return `etcd at ${where}: ${err instanceof EtcdError ? err.reason : (err as Error).message}`;
}

/**
 * The health check's calls are about this member's etcd alone, through the
 * one etcd client, each on a connection of its own that closes after it; the
 * health loop's signal is their deadline (this only bounds a call without one).
 */
const HEALTH_CALL_LIMIT_MS = 60_000;

/**
 * etcd on one member. When the cluster formation (membership.ts) has made
 * this member a voter, etcd starts with the member list it decided on:
 * alone as a new cluster on the founding member, with the running
 * cluster's members (state "existing") on one added later. Without a
 * formation (a member run with `--service etcd` alone) it is a one-member
 * cluster of its own.
 */
export class EtcdDriver implements ServiceDriver {
  /** The TLS options of the check in progress (the service's copy of the member files). */
  private tls: TlsClientOptions | undefined;
  private readonly etcd = new EtcdClient({ endpoints: () => [], timeoutMs: HEALTH_CALL_LIMIT_MS, keepAlive: false, tls: () => this.tls });

  templateValues(ctx: DriverContext): Record<string, unknown> {
    // With a member/ dir etcd ignores the initial-cluster flags and restarts from its own state.
    const hasData = existsSync(join(ctx.paths.data, 'member'));
    const decision = readDecision(ctx.paths.root);
    if (decision?.role === 'voter') {
      return {
        etcd_initial_cluster: initialCluster(decision.members.flatMap((m) => m.peer_urls.map((url) => ({ name: m.name, peerUrl: url })))),
        etcd_initial_cluster_state: hasData ? 'existing' : decision.state,
        etcd_cluster_token: decision.token,
      };
    }
    return {
      etcd_initial_cluster: initialCluster([{ name: ctx.memberId, peerUrl: peerUrl(ctx.cfg, ctx.ip, !!ctx.tls) }]),
      etcd_initial_cluster_state: hasData ? 'existing' : 'new',
      etcd_cluster_token: clusterToken(ctx.memberId),
    };
  }

  /** hasup upgrade etcd --to /path/to/etcd | 3.4.23. */
  upgradeTarget(ctx: DriverContext, to: string, signal: AbortSignal): Promise<UpgradeTarget> {
    return etcdUpgradeTarget(ctx, to, signal);
  }

  async prepare(ctx: DriverContext): Promise<void> {
    const { paths, user } = ctx;
    // etcd refuses a data dir with any group or other permission bits.
    await prepareServiceDirs(paths, user);
    await assertReachable(paths.config, user);
  }

  async health(ctx: DriverContext, signal: AbortSignal): Promise<HealthResult> {
    const base = clientUrl(ctx.cfg, ctx.ip, !!ctx.tls);
    this.tls = etcdClientTls(ctx.tls);
    let health: { healthy: boolean; reason: string | undefined };
    try {
      health = await this.etcd.healthAt(base, { signal });
    } catch (err) {
      return { status: 'critical', message: describe(err, base, signal) };
    }
    if (!health.healthy) {
      return { status: 'critical', message: `etcd at ${base} reports itself unhealthy${health.reason ? `: ${health.reason}` : ''}` };
    }
    // Raft facts are a bonus: a status that fails or times out does not make a healthy member unhealthy.
    let status: EtcdStatus;
    try {
      status = await this.etcd.statusAt(base, { signal });
    } catch (err) {
      return { status: 'ok', message: `raft status unavailable: ${describe(err, base, signal)}` };
    }
    const memberId = hexId(status.memberId);
    const leader = hexId(status.leader);
    const details = {
      version: status.version,
      member_id: memberId,
      cluster_id: hexId(status.clusterId),
      leader,
      is_leader: memberId !== undefined && memberId === leader,
      raft_term: status.raftTerm,
      raft_index: status.raftIndex,
      raft_applied_index: status.raftAppliedIndex,
      db_size_bytes: status.dbSizeBytes,
    };
    if (status.errors.length > 0) return { status: 'warning', message: status.errors.join('; '), details };
    return { status: 'ok', details };
  }
}
