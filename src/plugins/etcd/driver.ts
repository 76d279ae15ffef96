import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DriverContext, HealthResult, ServiceDriver } from '../../supervisor/driver.js';
import { assertReachable, ensureOwnedDir } from '../service-dirs.js';
import { clientUrl, clusterToken, initialCluster, peerUrl } from './cluster.js';
import { readDecision } from './formation-file.js';
import { httpJson } from '../http-json.js';

interface EtcdStatus {
  header?: { member_id?: string; cluster_id?: string; revision?: string };
  version?: string;
  dbSize?: string;
  leader?: string;
  raftIndex?: string;
  raftTerm?: string;
  raftAppliedIndex?: string;
  errors?: string[];
}

/** etcd prints member and cluster ids in hex; its JSON gateway gives uint64 in decimal strings. */
function hexId(decimal: string | undefined): string | undefined {
  if (decimal === undefined || !/^\d+$/.test(decimal)) return undefined;
  return BigInt(decimal).toString(16);
}

function describe(err: unknown, where: string, signal: AbortSignal): string {
  if (signal.aborted) return `etcd at ${where} did not answer in time`;
  return `etcd at ${where}: ${(err as Error).message}`;
}

/**
 * etcd on one member. When the cluster formation (membership.ts) has made
 * this member a voter, etcd starts with the member list it decided on:
 * alone as a new cluster on the founding member, with the running
 * cluster's members (state "existing") on one added later. Without a
 * formation (a member run with `--service etcd` alone) it is a one-member
 * cluster of its own.
 */
export class EtcdDriver implements ServiceDriver {
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
      etcd_initial_cluster: initialCluster([{ name: ctx.memberId, peerUrl: peerUrl(ctx.cfg, ctx.ip) }]),
      etcd_initial_cluster_state: hasData ? 'existing' : 'new',
      etcd_cluster_token: clusterToken(ctx.memberId),
    };
  }

  async prepare(ctx: DriverContext): Promise<void> {
    const { paths, user } = ctx;
    // etcd refuses a data dir with any group or other permission bits.
    await ensureOwnedDir(paths.data, 0o700, user);
    await ensureOwnedDir(paths.run, 0o700, user);
    await ensureOwnedDir(paths.logs, 0o750, user);
    await ensureOwnedDir(paths.config, 0o750, user);
    await assertReachable(paths.data, user);
    await assertReachable(paths.config, user);
  }

  async health(ctx: DriverContext, signal: AbortSignal): Promise<HealthResult> {
    const base = clientUrl(ctx.cfg, ctx.ip);
    let health: { health?: unknown; reason?: unknown };
    try {
      const answer = await httpJson(`${base}/health`, signal);
      health = answer.json as typeof health;
    } catch (err) {
      return { status: 'critical', message: describe(err, base, signal) };
    }
    if (health.health !== 'true') {
      const reason = typeof health.reason === 'string' && health.reason !== '' ? `: ${health.reason}` : '';
      return { status: 'critical', message: `etcd at ${base} reports itself unhealthy${reason}` };
    }
    // Raft facts are a bonus: a status that fails or times out does not make a healthy member unhealthy.
    let status: EtcdStatus;
    try {
      status = (await httpJson(`${base}/v3/maintenance/status`, signal, {})).json as EtcdStatus;
    } catch (err) {
      return { status: 'ok', message: `raft status unavailable: ${describe(err, base, signal)}` };
    }
    const memberId = hexId(status.header?.member_id);
    const leader = hexId(status.leader);
    const details = {
      version: status.version,
      member_id: memberId,
      cluster_id: hexId(status.header?.cluster_id),
      leader,
      is_leader: memberId !== undefined && memberId === leader,
      raft_term: Number(status.raftTerm ?? NaN),
      raft_index: Number(status.raftIndex ?? NaN),
      raft_applied_index: Number(status.raftAppliedIndex ?? NaN),
      db_size_bytes: Number(status.dbSize ?? NaN),
    };
    if (status.errors && status.errors.length > 0) return { status: 'warning', message: status.errors.join('; '), details };
    return { status: 'ok', details };
  }
}
