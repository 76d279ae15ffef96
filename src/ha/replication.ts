import type { HaContext } from './context.js';
import type { DatabaseStatus, PeerEndpoint } from './database.js';
import { desiredSyncSet } from './decisions.js';
import type { ClusterSnapshot } from './store.js';

/**
 * Replication upkeep: the leader's synchronous set, every member's
 * replication slots, and a follower pointing its database at the leader.
 */

/** A follower pointed at the right leader but not streaming for this long gets its replication checked again. */
const NOT_STREAMING_RECHECK_MS = 5000;
const SLOT_RECHECK_MS = 10_000;

export class ReplicationKeeper {
  private notStreamingSince: number | null = null;
  private slotsFor = '';
  private slotsAt = -Infinity;

  constructor(private readonly ctx: HaContext) {}

  /**
   * Keeps the database's synchronous standbys (S) and the recorded sync set
   * (E) such that S ⊆ E at every moment: E grows before S does and shrinks
   * after it; so whatever was acknowledged is on a member that may be
   * promoted.
   */
  async keepSynchronous(db: DatabaseStatus, snap: ClusterSnapshot): Promise<void> {
    const ctx = this.ctx;
    const { store } = ctx.deps;
    const s = ctx.settings();
    const desired = desiredSyncSet(ctx.memberId, db, snap, s);
    const recorded = snap.sync?.members ?? [];
    const desiredList = desired ?? [];
    const inForce = ctx.appliedSync !== undefined && sameNullableSet(ctx.appliedSync, desired);
    const isRecorded = snap.sync ? snap.sync.leader === ctx.memberId && sameSet(recorded, desiredList) : !s.synchronousMode;
    if (inForce && isRecorded) return;
    const union = [...new Set([...recorded, ...desiredList])].sort();
    if (!sameSet(union, recorded) || snap.sync?.leader !== ctx.memberId) {
      if (!(await store.setSync(ctx.memberId, union))) return;
    }
    await ctx.deps.db.setSynchronous(desired, ctx.timeout(Math.max(2000, s.retryTimeoutMs)));
    ctx.appliedSync = desired;
    if (!sameSet(union, desiredList)) await store.setSync(ctx.memberId, desiredList);
    if (desired === null && s.synchronousMode) {
      ctx.log.warn({ event: 'ha_sync_degraded', standbys: null }, 'synchronous mode, but no healthy streaming follower: committing asynchronously until one is back');
    } else {
      ctx.log.info({ event: 'ha_sync', standbys: desired }, desired === null ? 'replicating asynchronously' : desired.length === 0 ? 'no synchronous standby available: commits wait (strict)' : `synchronous standbys: ANY 1 (${desired.join(', ')})`);
    }
  }

  /**
   * Slots for every other member seen lately, on leader and followers alike.
   * The leader checks on every turn (a rewound or copied data directory has
   * none, and a follower without its slot cannot stream); a follower when
   * the member set changes, or every SLOT_RECHECK_MS.
   */
  async keepSlots(db: DatabaseStatus, lazily: boolean): Promise<void> {
    const ctx = this.ctx;
    if (!db.running) return;
    const wanted = [...ctx.lastSeen.keys()].filter((m) => m !== ctx.memberId).sort();
    const key = wanted.join(',');
    if (lazily && key === this.slotsFor && ctx.clock.now() - this.slotsAt < SLOT_RECHECK_MS) return;
    try {
      await ctx.deps.db.syncSlots(wanted, ctx.timeout(5000));
      this.slotsFor = key;
      this.slotsAt = ctx.clock.now();
    } catch (err) {
      ctx.decide(`replication slots: ${(err as Error).message}`, 'warn');
    }
  }

  /** A follower's database streams from `leader`: re-pointed, rewound or copied as needed. */
  async followLeader(leader: string, snap: ClusterSnapshot, db: DatabaseStatus): Promise<void> {
    const ctx = this.ctx;
    const report = snap.members.get(leader)?.report;
    if (!report) {
      ctx.decide(`following ${leader}, which publishes no report yet`);
      return;
    }
    const endpoint: PeerEndpoint = { member: leader, host: report.host, port: report.port };
    let needed: string | undefined;
    const now = ctx.clock.now();
    if (!db.running) needed = `PostgreSQL is not running (${db.reason ?? 'no reason known'})`;
    else if (db.upstream !== leader) needed = `it follows ${db.upstream ?? 'nobody'}`;
    else if (!db.streaming) {
      this.notStreamingSince ??= now;
      if (now - this.notStreamingSince > NOT_STREAMING_RECHECK_MS && (report.role === 'leader' || report.role === 'standby_leader')) needed = 'it does not stream from the leader';
    } else this.notStreamingSince = null;
    if (!needed) {
      await this.keepSlots(db, true);
      ctx.decide(`following ${leader}`);
      return;
    }
    ctx.log.info({ event: 'ha_follow', leader, reason: needed }, `following ${leader} (${needed})`);
    this.notStreamingSince = null;
    try {
      await ctx.deps.db.follow(endpoint, { leaderIsPrimary: report.role === 'leader' }, ctx.stop.signal);
      ctx.decide(`following ${leader}`);
    } catch (err) {
      ctx.decide(`cannot follow ${leader} yet: ${(err as Error).message}`, 'warn');
    }
  }

  /** No leader to follow: the streaming check starts over with the next one. */
  noLeader(): void {
    this.notStreamingSince = null;
  }
}

function sameNullableSet(a: string[] | null, b: string[] | null): boolean {
  return (a === null) === (b === null) && sameSet(a ?? [], b ?? []);
}

function sameSet(a: string[], b: string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((x) => set.has(x));
}
