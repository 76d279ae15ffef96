import { randomBytes } from 'node:crypto';
import type { HaContext } from './context.js';
import type { DatabaseStatus } from './database.js';
import type { LeaseKeeper } from './lease.js';
import type { ClusterSnapshot, RestoreRequest, RestoreTarget } from './store.js';
import { publishReport } from './view.js';

/** A restore that cannot start (none configured here, one already running): nothing was stopped. */
export class RestoreRefused extends Error {}

/** How often the restorer rewrites the request's detail while it works (progress for the CLI). */
const PROGRESS_MIN_MS = 1000;

/**
 * A cluster restore from the backup repository, carried out by the HA loops
 * of every member over one `restore` key in the store:
 *
 *   stopping   every member stops PostgreSQL; the leader gives its key up
 *              first (and no member elects itself while a restore is on)
 *   restoring  once no member holds the leader key, the asked member
 *              restores its data to the target, lets PostgreSQL replay to
 *              it and end recovery there, then takes the leader key
 *   done       the others follow it, rewinding or copying it afresh
 *   failed     the restorer says why; the loops go back to normal (the
 *              other members' data is untouched, so they elect as usual)
 *
 * Safety: the restored server ends recovery (and takes writes) only after
 * every other member has given the leader key up, so there is never a
 * second primary. The others' data is never deleted: a copy that cannot be
 * rewound is set aside, as after any failover.
 */
export class RestoreKeeper {
  private job: Promise<void> | null = null;
  private jobFor: string | null = null;
  private lastProgressAt = -Infinity;
  private lastStep = '';
  /** The restore this member stopped its PostgreSQL for. */
  private stoppedFor: string | null = null;

  constructor(
    private readonly ctx: HaContext,
    private readonly lease: LeaseKeeper,
  ) {}

  /** The restore in progress (neither done nor failed), if any. */
  static active(snap: ClusterSnapshot | null): RestoreRequest | null {
    const r = snap?.restore ?? null;
    return r && (r.state === 'stopping' || r.state === 'restoring') ? r : null;
  }

  /** Asks for a cluster restore with this member as the restorer. */
  async request(target: RestoreTarget): Promise<RestoreRequest> {
    const ctx = this.ctx;
    if (!ctx.deps.db.restore) throw new RestoreRefused('this member has no backups configured to restore from');
    const now = ctx.clock.wallNow();
    const req: RestoreRequest = { id: randomBytes(6).toString('hex'), member: ctx.memberId, target, requested: now, state: 'stopping', detail: 'stopping PostgreSQL on every member', updated: now };
    if (!(await ctx.deps.store.requestRestore(req, { timeoutMs: 5000 }))) {
      const current = (await ctx.deps.store.snapshot({ timeoutMs: 5000 })).restore;
      throw new RestoreRefused(`a restore is already in progress (${current ? `${current.id} by ${current.member}: ${current.detail}` : 'unknown'})`);
    }
    ctx.log.warn({ event: 'restore_requested', id: req.id, target }, `cluster restore ${req.id} asked for (${describeTarget(target)}): every member stops PostgreSQL`);
    ctx.wake();
    return req;
  }

  /**
   * One turn of the HA loop while a restore is on: true when it took the
   * turn (the caller does nothing else: no election, no following).
   */
  async turn(db: DatabaseStatus, snap: ClusterSnapshot): Promise<boolean> {
    const r = RestoreKeeper.active(snap);
    const ctx = this.ctx;
    if (!r) {
      if (this.stoppedFor !== null && snap.restore?.id === this.stoppedFor && snap.restore.state === 'failed' && !db.running && !ctx.holding) {
        // The old cluster goes on: its members start again, to elect a leader among themselves.
        ctx.log.warn({ event: 'restore_abandoned', id: this.stoppedFor }, `cluster restore ${this.stoppedFor} failed: PostgreSQL starts again here as a standby`);
        await ctx.deps.db.startStandby(ctx.stop.signal);
      }
      // After a restore that is done, following the restored leader starts PostgreSQL (rewound or copied).
      this.stoppedFor = null;
      return false;
    }
    const restoringHere = r.member === ctx.memberId && r.state === 'restoring' && this.jobFor === r.id;
    if (ctx.holding && !restoringHere) {
      await ctx.deps.store.releaseLeader(ctx.memberId, { timeoutMs: ctx.settings().retryTimeoutMs }).catch(() => undefined);
      await this.lease.fence(`cluster restore ${r.id} asked for by ${r.member}`);
      return true;
    }
    if (!restoringHere && db.running) {
      this.stoppedFor = r.id;
      await ctx.deps.db.stopForRestore(`cluster restore ${r.id}`);
      ctx.log.warn({ event: 'restore_stopped', id: r.id }, `PostgreSQL stopped for cluster restore ${r.id} by ${r.member}`);
    }
    await publishReport(ctx, db, ctx.settings(), snap, snap.leader?.member ?? null);
    if (r.member !== ctx.memberId) {
      ctx.decide(`cluster restore ${r.id} by ${r.member} (${r.state}: ${r.detail}); PostgreSQL stays stopped here`);
      return true;
    }
    if (r.state === 'stopping') {
      if (snap.leader) {
        ctx.decide(`cluster restore ${r.id}: waiting for ${snap.leader.member} to give the leader key up`);
        return true;
      }
      await this.update(r, { state: 'restoring', detail: 'restoring the data directory from the repository' });
      return true;
    }
    if (this.jobFor !== r.id) this.startJob(r);
    ctx.decide(`cluster restore ${r.id}: ${r.detail}`);
    return true;
  }

  private startJob(r: RestoreRequest): void {
    const ctx = this.ctx;
    this.jobFor = r.id;
    const started = ctx.clock.now();
    ctx.log.warn({ event: 'restore_started', id: r.id, target: r.target }, `restoring this member's data (${describeTarget(r.target)})`);
    this.job = (async () => {
      try {
        await ctx.deps.db.restore!(r.target, ctx.stop.signal, (detail) => void this.progress(r, detail));
        if (!(await ctx.deps.store.acquireLeader(ctx.memberId, ctx.lease!, { timeoutMs: ctx.settings().retryTimeoutMs }))) {
          throw new Error('another member holds the leader key: the restored database is left stopped');
        }
        ctx.transition('leader', `restored (cluster restore ${r.id})`);
        const tookS = Math.round((ctx.clock.now() - started) / 1000);
        await this.update(r, { state: 'done', detail: `restored on ${ctx.memberId} in ${tookS} s; the other members follow it` });
        ctx.log.warn({ event: 'restore_done', id: r.id, took_s: tookS }, `cluster restore ${r.id} done in ${tookS} s: this member leads; the others rewind or copy it`);
      } catch (err) {
        const why = (err as Error).message;
        if (ctx.holding) {
          await ctx.deps.store.releaseLeader(ctx.memberId).catch(() => undefined);
          ctx.settle('restore failed');
        }
        this.stoppedFor = r.id;
        await ctx.deps.db.stopForRestore(`cluster restore ${r.id} failed`).catch(() => undefined);
        await this.update(r, { state: 'failed', detail: why }).catch(() => undefined);
        ctx.log.error({ event: 'restore_failed', id: r.id, err }, `cluster restore ${r.id} failed: ${why}`);
      } finally {
        this.job = null;
        ctx.wake();
      }
    })();
  }

  private async progress(r: RestoreRequest, detail: string): Promise<void> {
    const now = this.ctx.clock.now();
    // A new step is always told; the same step's updates (the replay position) at most every PROGRESS_MIN_MS.
    const step = detail.split(':')[0]!;
    if (step === this.lastStep && now - this.lastProgressAt < PROGRESS_MIN_MS) return;
    this.lastStep = step;
    this.lastProgressAt = now;
    this.ctx.log.info({ event: 'restore_progress', id: r.id, detail }, `cluster restore ${r.id}: ${detail}`);
    await this.update(r, { detail }).catch(() => undefined);
  }

  private async update(r: RestoreRequest, patch: Partial<Pick<RestoreRequest, 'state' | 'detail'>>): Promise<void> {
    Object.assign(r, patch, { updated: this.ctx.clock.wallNow() });
    await this.ctx.deps.store.updateRestore(r, { timeoutMs: this.ctx.settings().retryTimeoutMs });
  }

  /** Waits for a running restore job (the controller is closing). */
  async settled(): Promise<void> {
    await this.job?.catch(() => undefined);
  }
}

export function describeTarget(t: RestoreTarget): string {
  switch (t.kind) {
    case 'latest':
      return 'the end of the archive';
    case 'time':
      return `time ${t.time}`;
    case 'lsn':
      return `WAL position ${t.lsn}`;
    case 'set':
      return `the end of backup ${t.label}`;
  }
}
