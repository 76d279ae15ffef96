import type { ReplicationState } from '../supervisor/leadership.js';
import type { HaContext, HaPhase } from './context.js';
import type { DatabaseStatus } from './database.js';
import { eligibility } from './decisions.js';
import type { HaSettings } from './settings.js';
import type { ClusterSnapshot, MemberReport, RestoreRequest, SwitchoverRequest } from './store.js';

/**
 * What this member tells others and shows: its report in the store, the
 * facts the load-balancer checks read, and the /ha view.
 */
export interface HaMemberView extends MemberReport {
  sync_role: 'sync' | 'async' | null;
}

export interface RoguePrimary {
  member: string;
  /** ms since the epoch when this member first saw it. */
  since: number;
  /** What this member did about it (null: nothing yet, or it could not). */
  action: string | null;
}

export interface HaView {
  member_id: string;
  service_group: string;
  /** This member's phase in the HA loop. */
  phase: HaPhase;
  leader: string | null;
  paused: boolean;
  timeline: number | null;
  synchronous_mode: boolean;
  sync_members: string[];
  switchover: SwitchoverRequest | null;
  /** The last cluster restore (in progress, done or failed), or null. */
  restore: RestoreRequest | null;
  /** A standby cluster: the primary cluster it follows (HOST:PORT); null for a primary cluster. */
  standby_of: string | null;
  /** With standby_of: whether the primary cluster's CA was given ([ha] standby_of_ca), so its servers are verified. */
  standby_of_ca?: boolean;
  /** A warm spare kept current from a copy of the primary cluster's repository: that path; null otherwise. */
  standby_of_repo?: string | null;
  /** The spare's re-base schedule (cron, UTC), when it has one. */
  restore_schedule?: string | null;
  /** The warm spare's restores as the cluster records them (src/node/spare.ts); absent where nobody adds it. */
  spare?: unknown;
  settings: { ttl: number; loop_wait: number; retry_timeout: number; maximum_lag_on_failover: number };
  members: HaMemberView[];
  /** Peers whose database takes writes without the leader lease, as this member sees them: critical. */
  rogue_primaries: RoguePrimary[];
  /** When the view was read from the store (ms since the epoch); null before the first read. */
  as_of: number | null;
}

export function haView(ctx: HaContext, rogues: RoguePrimary[]): HaView {
  const snap = ctx.snapshot;
  const s = ctx.settings();
  const syncMembers = snap?.sync?.members ?? [];
  const members = [...(snap?.members.values() ?? [])]
    .map((m) => ({ ...m.report, sync_role: s.synchronousMode && m.report.role === 'replica' ? (syncMembers.includes(m.report.member) ? ('sync' as const) : ('async' as const)) : null }))
    .sort((a, b) => a.member.localeCompare(b.member));
  const leaderReport = members.find((m) => m.member === snap?.leader?.member);
  return {
    member_id: ctx.memberId,
    service_group: ctx.deps.serviceGroup,
    phase: ctx.phase,
    leader: snap?.leader?.member ?? null,
    paused: snap?.paused ?? false,
    timeline: leaderReport?.timeline ?? null,
    synchronous_mode: s.synchronousMode,
    sync_members: syncMembers,
    switchover: snap?.switchover ?? null,
    restore: snap?.restore ?? null,
    standby_of: s.standbyOf ? `${s.standbyOf.host.includes(':') ? `[${s.standbyOf.host}]` : s.standbyOf.host}:${s.standbyOf.port}` : null,
    ...(s.standbyOf ? { standby_of_ca: s.standbyOf.ca !== undefined } : {}),
    standby_of_repo: s.standbyOfRepo,
    restore_schedule: s.standbyOfRepo ? s.restoreSchedule : null,
    settings: { ttl: s.ttlS, loop_wait: s.loopWaitMs / 1000, retry_timeout: s.retryTimeoutMs / 1000, maximum_lag_on_failover: s.maximumLagOnFailover },
    members,
    rogue_primaries: rogues,
    as_of: ctx.snapshotAt,
  };
}

export function memberReport(ctx: HaContext, db: DatabaseStatus, s: HaSettings, leaderSeen: string | null, snap: ClusterSnapshot | null = ctx.snapshot): MemberReport {
  const endpoint = ctx.deps.db.endpoint();
  const isReplica = db.running && db.inRecovery === true;
  const lag = replicaLag(ctx, db, snap);
  return {
    member: ctx.memberId,
    host: endpoint.host,
    port: endpoint.port,
    role: !db.running ? 'stopped' : db.inRecovery ? (ctx.holding ? 'standby_leader' : 'replica') : ctx.holding ? 'leader' : 'unknown',
    healthy: db.healthy,
    timeline: db.timeline,
    wal_position: db.walPosition,
    replay_position: db.replayPosition,
    lag_bytes: lag.bytes,
    lag_seconds: lag.seconds,
    replication_state: replicationState(db),
    upstream: isReplica ? db.upstream : null,
    eligible: eligibility(ctx.memberId, db, s, snap, ctx.deps.leadBlocker?.()).eligible,
    nofailover: s.noFailover,
    leader_seen: leaderSeen,
    lease: ctx.lease ?? '0',
    updated: ctx.clock.wallNow(),
  };
}

/** Publishes this member's report (a follower's turn); the election compares what it wrote. */
export async function publishReport(ctx: HaContext, db: DatabaseStatus, s: HaSettings, snap: ClusterSnapshot, leaderSeen: string | null): Promise<void> {
  if (!ctx.lease) return;
  const report = memberReport(ctx, db, s, leaderSeen, snap);
  try {
    await ctx.deps.store.publishReport(report, ctx.lease, { timeoutMs: s.retryTimeoutMs });
    // Our own entry in the snapshot is what we just wrote (the election compares it).
    snap.members.set(ctx.memberId, { report, modRevision: snap.revision + 1, lease: ctx.lease });
  } catch (err) {
    ctx.decide(`cannot publish this member's report: ${(err as Error).message}`, 'warn');
  }
}

/** The facts the load-balancer checks and the role rumor read. */
export function updateLeadership(ctx: HaContext, db: DatabaseStatus | null): void {
  const snap = ctx.snapshot;
  const s = ctx.settings();
  const isReplica = !!db?.running && db.inRecovery === true;
  const isPrimary = !!db?.running && db.inRecovery === false;
  const lag = replicaLag(ctx, db, snap);
  ctx.deps.leadership.update({
    present: true,
    role: isPrimary && ctx.holding ? 'leader' : isReplica ? 'replica' : 'unknown',
    holdsLease: ctx.holding,
    primaryWritable: isPrimary && !!db?.healthy,
    replication: isReplica ? { state: replicationState(db!) as ReplicationState, lagBytes: lag.bytes, lagS: lag.seconds } : null,
    timeline: db?.timeline ?? null,
    leader: snap?.leader?.member ?? null,
    syncRole: s.synchronousMode && isReplica ? (snap?.sync?.members.includes(ctx.memberId) ? 'sync' : 'async') : null,
    syncDegraded: s.synchronousMode && isPrimary && ctx.holding && ctx.appliedSync === null,
    reason: ctx.decision || 'starting',
  });
}

/**
 * How far a replica is behind, in bytes and seconds. A replica's bytes are
 * behind the leader's last published position; a standby leader's optime is
 * its own, so its bytes are behind the primary cluster as its upstream last
 * said. Nulls for a primary or when unknown.
 */
export function replicaLag(ctx: HaContext, db: DatabaseStatus | null, snap: ClusterSnapshot | null): { bytes: number | null; seconds: number | null } {
  if (!db?.running || db.inRecovery !== true || db.replayPosition === null) return { bytes: null, seconds: null };
  const seconds = db.replayLagS ?? null;
  if (ctx.holding) return { bytes: db.upstreamWalEnd != null ? Math.max(0, db.upstreamWalEnd - db.replayPosition) : null, seconds };
  return { bytes: snap?.optime ? Math.max(0, snap.optime.wal_position - db.replayPosition) : null, seconds };
}

export function replicationState(db: DatabaseStatus): string | null {
  if (!db.running) return 'stopped';
  if (db.inRecovery !== true) return null;
  return db.streaming ? 'streaming' : 'in archive recovery';
}
