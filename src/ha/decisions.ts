import type { DatabaseStatus } from './database.js';
import { isStandbyCluster, type HaSettings } from './settings.js';
import type { ClusterSnapshot, MemberReport } from './store.js';

/**
 * The election's decisions as pure functions of what a member knows, so
 * they can be tested without etcd or PostgreSQL.
 */

export interface Eligibility {
  eligible: boolean;
  why: string;
}

/**
 * May this member be promoted if the leader went away now? A healthy
 * standby, not excluded by configuration, within maximum_lag_on_failover of
 * the last position the leader published, and in synchronous mode a member
 * of the recorded synchronous set (when one is recorded: an empty set means
 * the leader ran asynchronously and nobody holds more than anybody else).
 */
export function eligibility(me: string, db: DatabaseStatus, settings: HaSettings, snap: ClusterSnapshot | null, fenceProblem?: string): Eligibility {
  if (settings.noFailover) return { eligible: false, why: 'configured nofailover' };
  if (fenceProblem) return { eligible: false, why: fenceProblem };
  if (!db.running || !db.healthy) return { eligible: false, why: db.reason ?? 'database not healthy' };
  if (db.inRecovery !== true) return { eligible: false, why: 'not a standby' };
  const optime = snap?.optime;
  if (optime && optime.member !== me) {
    const lag = optime.wal_position - (db.walPosition ?? 0);
    if (lag > settings.maximumLagOnFailover) return { eligible: false, why: `${lag} bytes behind the last leader position (maximum_lag_on_failover ${settings.maximumLagOnFailover})` };
  }
  // In a standby cluster nothing commits here: a synchronous set left from its days as a primary protects nothing.
  if (settings.synchronousMode && !isStandbyCluster(settings) && snap?.sync && snap.sync.members.length > 0 && !snap.sync.members.includes(me)) {
    return { eligible: false, why: `not in the synchronous set (${snap.sync.members.join(', ')})` };
  }
  const sw = snap?.switchover;
  if (sw && sw.to !== null && sw.to !== me) return { eligible: false, why: `a switchover to ${sw.to} is pending` };
  return { eligible: true, why: 'healthy standby' };
}

export type ElectionOutcome =
  | { kind: 'wait'; pending: string[] }
  | { kind: 'won' }
  | { kind: 'lost'; to: string }
  | { kind: 'nobody' };

const position = (r: MemberReport) => r.wal_position ?? -1;

/**
 * Who should take a vacant leader key, as seen by `me`. Every live member
 * that said it could be promoted is waited for until it reports a final
 * position (measured while no leader existed) or `deadlinePassed`; then the
 * highest position among the final, eligible reports wins, ties going to
 * the lowest member id, so every member computes the same winner.
 */
export function electionOutcome(me: string, snap: ClusterSnapshot, deadlinePassed: boolean): ElectionOutcome {
  const reports = [...snap.members.values()].map((s) => s.report);
  const relevant = reports.filter((r) => r.eligible);
  const final = relevant.filter((r) => r.leader_seen === null);
  const pending = relevant.filter((r) => r.leader_seen !== null).map((r) => r.member);
  if (pending.length > 0 && !deadlinePassed) return { kind: 'wait', pending };
  const ranked = [...final].sort((a, b) => position(b) - position(a) || a.member.localeCompare(b.member));
  const best = ranked[0];
  if (!best) return { kind: 'nobody' };
  return best.member === me ? { kind: 'won' } : { kind: 'lost', to: best.member };
}

/**
 * The synchronous standbys the leader wants: connected, streaming replicas
 * that report healthy and may be promoted. null means asynchronous (not in
 * synchronous mode, or none available and not strict); [] means strict
 * with none available, so commits wait.
 */
export function desiredSyncSet(leader: string, db: DatabaseStatus, snap: ClusterSnapshot, settings: HaSettings): string[] | null {
  if (!settings.synchronousMode) return null;
  const streaming = new Set(db.replicas.filter((r) => r.state === 'streaming').map((r) => r.member));
  const members = [...snap.members.values()]
    .map((s) => s.report)
    .filter((r) => r.member !== leader && streaming.has(r.member) && r.healthy && r.role === 'replica' && !r.nofailover)
    .map((r) => r.member)
    .sort();
  if (members.length > 0) return members;
  return settings.synchronousModeStrict ? [] : null;
}

/**
 * The switchover target: the requested member if it is a healthy streaming
 * replica, otherwise (none requested) the healthy streaming replica
 * furthest ahead. A reason when there is none.
 */
export function switchoverTarget(leader: string, requested: string | null, snap: ClusterSnapshot): { target: string; lease: string } | { error: string } {
  const usable = (r: MemberReport) => r.member !== leader && r.role === 'replica' && r.healthy && r.replication_state === 'streaming' && !r.nofailover;
  if (requested !== null) {
    const stored = snap.members.get(requested);
    if (!stored) return { error: `member ${requested} is not reporting (is it running?)` };
    if (!usable(stored.report)) {
      const r = stored.report;
      const why = [r.role, r.replication_state ?? 'no replication', r.healthy ? 'healthy' : 'its health check failing', ...(r.nofailover ? ['nofailover set'] : [])].join(', ');
      return { error: `member ${requested} is not a healthy streaming replica (${why})` };
    }
    return { target: requested, lease: stored.lease };
  }
  const ranked = [...snap.members.values()].filter((s) => usable(s.report)).sort((a, b) => position(b.report) - position(a.report) || a.report.member.localeCompare(b.report.member));
  const best = ranked[0];
  return best ? { target: best.report.member, lease: best.lease } : { error: 'no healthy streaming replica to hand over to' };
}
