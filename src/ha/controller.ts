import { bootstrapPlan } from './bootstrap.js';
import { HaContext, type HaControllerDeps, type PhaseChange } from './context.js';
import type { BootstrapPlan, DatabaseStatus } from './database.js';
import { Election } from './election.js';
import { LeaseKeeper } from './lease.js';
import { ReplicationKeeper } from './replication.js';
import { RestoreKeeper } from './restore.js';
import { StandbyLeader } from './standby-cluster.js';
import { RogueWatch } from './rogues.js';
import type { HaSettings } from './settings.js';
import type { ClusterSnapshot, RestoreRequest, RestoreTarget } from './store.js';
import { carryOutSwitchover, requestSwitchover, STALE_SWITCHOVER_MS, type SwitchoverResult } from './switchover.js';
import { haView, memberReport, publishReport, updateLeadership, type HaView } from './view.js';

export type { HaControllerDeps } from './context.js';

/**
 * The HA loop of one member for one replicated service group. Every
 * loop_wait (sooner when the leader key changes) it looks at the database
 * and the store and acts:
 *
 *   leader:   confirms the leader key is still its own (and publishes its
 *             report and WAL position in the same transaction), promotes
 *             a standby it just became leader with, keeps the synchronous
 *             set and the replication slots, carries out a switchover;
 *   follower: publishes its report, follows the leader, and when there is
 *             no leader takes part in the election.
 *
 * The jobs live in their own modules over one shared HaContext: lease
 * keeping and fencing (lease.ts), the election (election.ts), replication
 * upkeep (replication.ts), switchover (switchover.ts), the rogue-primary
 * watch (rogues.ts), reports and views (view.ts), bootstrap (bootstrap.ts),
 * a cluster restore from backup (restore.ts), the leader of a standby
 * cluster (standby-cluster.ts).
 */
const BUSY_LOOP_MS = 100;
/**
 * How often a leader checks whether it also leads etcd (when etcd runs on
 * the members): every second, so the two roles share a node for about a
 * second after a failover at most. Pausing a node that has both costs a
 * second failover with etcd 3.4.23 (docs/ha.md: a resumed raft leader
 * revokes every lease).
 */
const YIELD_CHECK_MS = 1000;

export class HaController {
  private readonly ctx: HaContext;
  private readonly lease: LeaseKeeper;
  private readonly election: Election;
  private readonly replication: ReplicationKeeper;
  private readonly rogues: RogueWatch;
  private readonly restoring: RestoreKeeper;
  private readonly standby: StandbyLeader;
  private loops: Promise<void>[] = [];
  private stopWatchdog: (() => void) | null = null;
  private unhealthySince: number | null = null;
  private yielding = false;
  private yieldedAt = -Infinity;

  constructor(deps: HaControllerDeps) {
    this.ctx = new HaContext(deps);
    this.lease = new LeaseKeeper(this.ctx);
    this.election = new Election(this.ctx, this.lease);
    this.replication = new ReplicationKeeper(this.ctx);
    this.rogues = new RogueWatch(this.ctx);
    this.restoring = new RestoreKeeper(this.ctx, this.lease);
    this.standby = new StandbyLeader(this.ctx, this.lease);
  }

  start(): void {
    const ctx = this.ctx;
    ctx.fence.onFenced((cause) => {
      // The supervisor was late (a stall): the database is gone; catch up with what the fence did.
      if (ctx.holding) void this.lease.fence(`the fence process stopped PostgreSQL (${cause})`);
    });
    this.loops.push(this.lease.renewLoop(), this.mainLoop());
    this.stopWatchdog = this.lease.startWatchdog();
    ctx.deps.store.watch((keys) => {
      if (keys.some((k) => k === 'leader' || k === 'switchover' || k === 'pause' || k === 'sync' || k === 'restore')) ctx.wake();
    }, ctx.stop.signal);
  }

  /**
   * Stops the loops. A leader that is `leaving` (the member shuts down)
   * first stops its database and gives the leader key up, so a follower
   * takes over at once instead of after the lease runs out.
   */
  async close(opts: { leaving: boolean }): Promise<void> {
    const ctx = this.ctx;
    if (ctx.closed) return;
    const wasHolding = ctx.holding;
    ctx.transition('closed', opts.leaving ? 'member leaving' : 'member stopping');
    this.stopWatchdog?.();
    ctx.stop.abort();
    ctx.wake();
    await Promise.allSettled(this.loops);
    await this.restoring.settled();
    if (ctx.fencing) await ctx.fencing.catch(() => undefined);
    const { store, db, leadership } = ctx.deps;
    if (opts.leaving && wasHolding) {
      leadership.update({ fenced: true, holdsLease: false, reason: 'member shutting down' });
      await db.demote('member shutting down', { stayDown: true }).catch((err: unknown) => ctx.log.warn({ err }, 'stopping PostgreSQL on shutdown failed'));
      await this.lease.disarmFence();
      await store.releaseLeader(ctx.memberId, { timeoutMs: 2000 }).catch(() => undefined);
      ctx.log.info({ event: 'ha_released' }, 'gave up the leader key on shutdown');
    }
    if (opts.leaving && ctx.lease) await store.revokeLease(ctx.lease, { timeoutMs: 2000 }).catch(() => undefined);
  }

  // ---- API --------------------------------------------------------------------

  bootstrap(signal: AbortSignal): Promise<BootstrapPlan> {
    return bootstrapPlan(this.ctx, signal);
  }

  /** The member that created the database failed to: let another try. */
  async bootstrapFailed(): Promise<void> {
    await this.ctx.deps.store.releaseInitialize(this.ctx.memberId).catch(() => undefined);
  }

  async setPaused(paused: boolean): Promise<void> {
    await this.ctx.deps.store.setPaused(paused, this.ctx.memberId);
    this.ctx.log.info({ event: paused ? 'ha_paused' : 'ha_resumed' }, paused ? 'automatic failover paused' : 'automatic failover resumed');
  }

  switchover(to: string | null, timeoutMs = 30_000): Promise<SwitchoverResult> {
    return requestSwitchover(this.ctx, to, timeoutMs);
  }

  /** Asks for a cluster restore from the backup repository, carried out by this member. */
  restore(target: RestoreTarget): Promise<RestoreRequest> {
    return this.restoring.request(target);
  }

  view(): HaView {
    return haView(this.ctx, this.rogues.list());
  }

  /** Every phase change so far (the last few hundred), for tests and diagnostics. */
  phases(): readonly PhaseChange[] {
    return this.ctx.phases;
  }

  // ---- the loop ----------------------------------------------------------------

  private async mainLoop(): Promise<void> {
    const ctx = this.ctx;
    while (!ctx.closed) {
      let next = ctx.settings().loopWaitMs;
      try {
        if (ctx.fencing) await ctx.fencing;
        if (!ctx.closed) next = await this.turn();
      } catch (err) {
        ctx.decide(`loop error: ${(err as Error).message}`, 'warn');
      }
      await ctx.sleepWakeable(next);
    }
  }

  /** One turn; returns how long to wait before the next one. */
  private async turn(): Promise<number> {
    const ctx = this.ctx;
    const s = ctx.settings();
    const { db: database, leadership } = ctx.deps;
    if (database.present()) ctx.fence.standBy();
    if (!database.present() && !ctx.holding) {
      leadership.update({ present: false, role: 'unknown', holdsLease: false, primaryWritable: false, replication: null, reason: 'this member runs no PostgreSQL' });
      return s.loopWaitMs;
    }
    const db = await database.status(ctx.timeout(Math.max(1000, s.retryTimeoutMs)));
    ctx.db = db;
    if (!ctx.lease) {
      updateLeadership(ctx, db);
      return BUSY_LOOP_MS;
    }
    if (ctx.holding) await this.leaderTurn(db, s);
    else await this.followerTurn(db, s);
    updateLeadership(ctx, ctx.db);
    // During a restore the restored server takes writes a moment before its member holds the key: no rogue.
    if (!RestoreKeeper.active(ctx.snapshot)) this.rogues.poke();
    const snap = ctx.snapshot;
    // No leader during a restore is expected (it may take hours): no hurry then.
    const hurry = snap && !RestoreKeeper.active(snap) && ((!snap.leader && !snap.paused) || snap.switchover);
    return hurry ? BUSY_LOOP_MS : s.loopWaitMs;
  }

  private async leaderTurn(db: DatabaseStatus, s: HaSettings): Promise<void> {
    const ctx = this.ctx;
    const { store } = ctx.deps;
    const lease = ctx.lease!;
    const report = memberReport(ctx, db, s, ctx.memberId, null);
    const optime = { member: ctx.memberId, wal_position: db.walPosition ?? 0, timeline: db.timeline, updated: ctx.clock.wallNow() };
    let result;
    try {
      result = await store.leaderTurn(ctx.memberId, lease, report, optime, { timeoutMs: s.retryTimeoutMs });
    } catch (err) {
      // The watchdog fences once renewals stop; a failed turn alone changes nothing.
      ctx.decide(`leader turn failed: ${(err as Error).message}`, 'warn');
      return;
    }
    ctx.setSnapshot(result.snapshot);
    const snap = result.snapshot;
    if (!result.stillLeader) {
      await this.lease.fence(snap.leader ? `the leader key now names ${snap.leader.member}` : 'the leader key is gone');
      return;
    }
    if (await this.restoring.turn(db, snap)) return;
    if (ctx.phase === 'suspended') {
      // PostgreSQL is frozen: nothing to look after until the lease keeper resumes or fences.
      ctx.decide('leader, writes frozen until a lease renewal is confirmed', 'warn');
      return;
    }
    if (db.busy) {
      // A warm spare's standby leader re-basing on a backup: stopped on purpose, and it keeps the key meanwhile.
      this.unhealthySince = null;
      ctx.decide(`leader: ${db.busy}`);
      return;
    }
    if (!db.running || !db.healthy) {
      const now = ctx.clock.now();
      this.unhealthySince ??= now;
      const down = now - this.unhealthySince;
      ctx.decide(`leader, but PostgreSQL is not healthy (${db.reason ?? 'unknown'}) for ${Math.round(down)} ms`, 'warn');
      if (!snap.paused && down > s.ttlS * 1000) {
        ctx.log.warn({ event: 'ha_release', reason: db.reason }, 'giving up leadership: PostgreSQL stayed unhealthy for a whole ttl');
        await store.releaseLeader(ctx.memberId).catch(() => undefined);
        await this.lease.fence('PostgreSQL unhealthy on the leader');
      }
      return;
    }
    this.unhealthySince = null;
    if (!ctx.fence.armed() && db.inRecovery === false) {
      // A primary this member leads (reclaimed after a restart, or a fence that came back): guard it now.
      try {
        await this.lease.armFence();
      } catch (err) {
        await this.lease.fence(`the fence cannot be armed (${(err as Error).message})`);
        return;
      }
    }
    await this.replication.keepSlots(db, false);
    if (s.standbyOf) {
      await this.standby.turn(db, s.standbyOf);
      return;
    }
    if (s.standbyOfRepo) {
      await this.standby.turnFromRepo(db, s.standbyOfRepo);
      return;
    }
    if (db.inRecovery) {
      await this.election.promote(snap, s);
      return;
    }
    await this.replication.keepSynchronous(db, snap);
    this.yieldStoreLeadership();
    const sw = snap.switchover;
    if (sw && sw.from === ctx.memberId && !sw.failed) await carryOutSwitchover(ctx, this.lease, sw, snap);
    else if (sw && sw.from !== ctx.memberId && ctx.clock.wallNow() - sw.requested > STALE_SWITCHOVER_MS) await store.clearSwitchover(sw.id).catch(() => undefined);
    else ctx.decide('leader');
  }

  private async followerTurn(db: DatabaseStatus, s: HaSettings): Promise<void> {
    const ctx = this.ctx;
    const { store } = ctx.deps;
    let snap: ClusterSnapshot;
    try {
      snap = await store.snapshot({ timeoutMs: s.retryTimeoutMs });
    } catch (err) {
      ctx.decide(`cannot read the cluster state: ${(err as Error).message}`, 'warn');
      return;
    }
    ctx.setSnapshot(snap);
    if (await this.restoring.turn(db, snap)) return;
    const leader = snap.leader;
    await publishReport(ctx, db, s, snap, leader?.member ?? null);

    if (leader?.member === ctx.memberId) {
      // Restarted while the key still names us, or handed the key by a switchover.
      const handedOver = leader.lease === ctx.lease;
      if (!handedOver && !(await ctx.deps.db.dataPresent())) {
        // Its data is gone (a new disk, a wiped directory): it cannot lead; let the others, or a restore, go on now.
        await store.releaseLeader(ctx.memberId, { timeoutMs: s.retryTimeoutMs }).catch(() => undefined);
        ctx.log.warn({ event: 'ha_released', reason: 'no data' }, "the leader key names this member, whose data is gone: gave it up");
        return;
      }
      if (handedOver || (await store.reclaimLeader(ctx.memberId, ctx.lease!))) {
        ctx.transition('leader', handedOver ? 'handed the leader key' : 'reclaimed the leader key');
        ctx.log.info({ event: 'ha_leader', how: handedOver ? 'handed over' : 'reclaimed' }, 'this member holds the leader key');
        await this.leaderTurn(db, s);
      }
      return;
    }
    if (db.inRecovery === false) {
      await this.lease.fence(leader ? `running as a primary while ${leader.member} leads` : 'running as a primary without the leader key');
      return;
    }
    // Not leading and no primary here: nothing to guard (an arm that raced a demotion ends here).
    if (!ctx.fencing) await this.lease.disarmFence();
    if (leader) {
      await this.replication.followLeader(leader.member, snap, db);
      return;
    }
    this.replication.noLeader();
    if (!snap.initialize && db.running && (await ctx.deps.db.restoredForNewCluster?.())) {
      // A database that exists without the record of who made it (restored into a new cluster before its
      // first start: hasup restore --to-new-cluster): recorded, so a joining member copies it rather than
      // creating another one.
      if (await store.claimInitialize(ctx.memberId, { timeoutMs: s.retryTimeoutMs }).catch(() => false)) {
        ctx.log.info({ event: 'ha_bootstrap', plan: 'existing' }, "this member's database is the cluster's (it was there before the cluster's first leader)");
      }
    }
    if (snap.paused) {
      ctx.decide('no leader, and automatic failover is paused');
      return;
    }
    await this.election.elect(db, snap);
  }

  /** Now and then, in the background: see ClusterStore.yieldConsensusLeadership. */
  private yieldStoreLeadership(): void {
    const ctx = this.ctx;
    const { store } = ctx.deps;
    if (!store.yieldConsensusLeadership || this.yielding || ctx.clock.now() - this.yieldedAt < YIELD_CHECK_MS) return;
    this.yielding = true;
    this.yieldedAt = ctx.clock.now();
    store
      .yieldConsensusLeadership(ctx.deps.db.endpoint().host, { timeoutMs: 2000 })
      .then((to) => {
        if (to) ctx.log.info({ event: 'ha_etcd_leader_moved', to }, `moved etcd's leadership to ${to}, off the PostgreSQL leader's node`);
      })
      .catch(() => undefined)
      .finally(() => (this.yielding = false));
  }
}
