import type { HaContext } from './context.js';
import type { DatabaseStatus } from './database.js';
import { electionOutcome, eligibility } from './decisions.js';
import type { LeaseKeeper } from './lease.js';
import { isStandbyCluster, type HaSettings } from './settings.js';
import type { ClusterSnapshot } from './store.js';
import { updateLeadership } from './view.js';

/**
 * The election (no leader: is this member the best candidate?) and the
 * promotion that follows taking the key.
 */
const ELECTION_POLL_MS = 50;

export class Election {
  constructor(
    private readonly ctx: HaContext,
    private readonly lease: LeaseKeeper,
  ) {}

  /** No leader: if this member may be promoted, find out whether it is the best, and if so take the key and promote. */
  async elect(db: DatabaseStatus, first: ClusterSnapshot): Promise<void> {
    const ctx = this.ctx;
    const s = ctx.settings();
    const mine = eligibility(ctx.memberId, db, s, first, ctx.deps.leadBlocker?.());
    if (!mine.eligible) {
      ctx.decide(`no leader; this member may not be promoted: ${mine.why}`);
      return;
    }
    ctx.transition('candidate', 'no leader, and this member may be promoted');
    const started = ctx.clock.now();
    const deadline = started + (s.synchronousMode ? s.ttlS * 1000 + s.retryTimeoutMs : s.retryTimeoutMs);
    let snap = first;
    try {
      for (;;) {
        const outcome = electionOutcome(ctx.memberId, snap, ctx.clock.now() > deadline);
        if (outcome.kind === 'lost') {
          ctx.decide(`no leader; ${outcome.to} is further ahead or first in order`);
          return;
        }
        if (outcome.kind === 'nobody') {
          ctx.decide('no leader and no candidate');
          return;
        }
        if (outcome.kind === 'won') break;
        ctx.decide(`no leader; waiting for the positions of ${outcome.pending.join(', ')}`);
        await ctx.sleep(ELECTION_POLL_MS);
        if (ctx.closed) return;
        snap = await ctx.deps.store.snapshot({ timeoutMs: s.retryTimeoutMs });
        ctx.setSnapshot(snap);
        if (snap.leader) return;
      }
      if (!ctx.lease || !(await ctx.deps.store.acquireLeader(ctx.memberId, ctx.lease, { timeoutMs: s.retryTimeoutMs }))) {
        ctx.decide('another member took the leader key first');
        return;
      }
      ctx.transition('leader', 'won the election');
    } finally {
      if (ctx.phase === 'candidate') ctx.settle('the election ended without this member');
    }
    ctx.log.info({ event: 'ha_leader', how: 'elected', position: db.walPosition, election_ms: Math.round(ctx.clock.now() - started) }, 'won the election: this member holds the leader key');
    // Every member keeps slots for the others, so the followers' slots are already here; the leader turn checks again.
    await this.promote(snap, s);
  }

  /** Holding the key with a standby: arm the fence, set the synchronous policy, promote. */
  async promote(snap: ClusterSnapshot, s: HaSettings): Promise<void> {
    const ctx = this.ctx;
    if (isStandbyCluster(s)) {
      // A standby cluster's leader never promotes: the leader turn keeps it following the primary cluster.
      ctx.decide('standby leader: holds the key, follows the primary cluster');
      return;
    }
    const started = ctx.clock.now();
    // The new primary's first commit already waits for the synchronous set the old leader kept.
    const carried = s.synchronousMode ? (snap.sync?.members ?? []).filter((m) => m !== ctx.memberId) : [];
    const initialSync = !s.synchronousMode ? null : carried.length > 0 ? carried : s.synchronousModeStrict ? [] : null;
    // The fence guards the primary before it can take its first write.
    try {
      const armed = await this.lease.armFence();
      if (s.watchdog === 'required' && armed.watchdog !== 'active') return this.lease.giveUpKey(`the kernel watchdog ${s.watchdogDevice} is required but could not be opened`);
    } catch (err) {
      return this.lease.giveUpKey(`the fence cannot be armed (${(err as Error).message})`);
    }
    await ctx.deps.db.prepareSynchronous(initialSync);
    ctx.appliedSync = initialSync;
    await ctx.deps.db.promote(ctx.timeout(60_000));
    if (!ctx.holding) return; // fenced while promoting: the fencing stops it again
    ctx.db = await ctx.deps.db.status(ctx.timeout(Math.max(1000, s.retryTimeoutMs)));
    updateLeadership(ctx, ctx.db);
    ctx.log.info({ event: 'ha_promoted', took_ms: Math.round(ctx.clock.now() - started), timeline: ctx.db.timeline }, `promoted to primary (timeline ${ctx.db.timeline})`);
    ctx.decide('leader');
  }
}
