import { every } from './clock.js';
import type { HaContext } from './context.js';
import type { FenceDeadlines } from './fence.js';

/**
 * Lease keeping and fencing. The session lease is renewed every loop_wait,
 * independently of the HA loop; while this member leads, every confirmed
 * renewal arms the fence. Once no renewal has been confirmed for loop_wait
 * + retry_timeout, counted from when the confirmed renewal was sent, the
 * leader stops taking writes: the lease cannot expire before ttl ≥
 * loop_wait + 2 × retry_timeout after that, so the old leader has stopped
 * before anyone else can take it.
 *
 * With a fence that freezes (the fence process), stopping is reversible:
 * PostgreSQL is frozen, the member stays leader ('suspended') and goes on
 * renewing, and a renewal confirmed within the hold (2 × ttl after the last
 * one) thaws it: no failover, no lost session, only a pause in commits.
 * That is what keeps a leader in place while etcd elects a leader of its
 * own under packet loss (it cannot answer for seconds, and gives every
 * lease a whole ttl again once it has a leader). A renewal that finds the
 * lease gone, or none within the hold, ends it: the fence kills
 * PostgreSQL and it comes back as a standby. Without such a fence the
 * leader demotes at once.
 */
const RENEW_RETRY_MS = 100;
const WATCHDOG_MS = 50;
/** A frozen leader waits this many ttls after its last confirmed renewal for the next one. */
const HOLD_TTLS = 2;

export class LeaseKeeper {
  constructor(private readonly ctx: HaContext) {}

  /** Starts the watchdog; returns its stopper. */
  startWatchdog(): () => void {
    return every(this.ctx.clock, WATCHDOG_MS, () => this.watchdog());
  }

  async renewLoop(): Promise<void> {
    const ctx = this.ctx;
    const { store, db } = ctx.deps;
    while (!ctx.closed) {
      const s = ctx.settings();
      if (!db.present() && !ctx.holding) {
        // No database here: no lease, no report, no traffic to the store.
        await ctx.sleep(s.loopWaitMs);
        continue;
      }
      const attemptMs = Math.max(200, Math.floor(s.retryTimeoutMs / 2));
      const sentAt = ctx.clock.now();
      try {
        if (!ctx.lease) {
          ctx.lease = await store.grantLease(s.ttlS, { timeoutMs: attemptMs, signal: ctx.stop.signal });
          ctx.renewedAt = sentAt;
          ctx.renewalFailing = false;
          if (ctx.phase === 'no-lease') ctx.transition('follower', 'session lease granted');
        } else if (await store.renewLease(ctx.lease, { timeoutMs: this.renewalTimeout(sentAt, attemptMs), signal: ctx.stop.signal })) {
          const overdueMs = sentAt - ctx.renewedAt;
          ctx.renewedAt = sentAt;
          ctx.renewalFailing = false;
          // Moves an armed fence's deadlines on; a standby leader's (nothing to guard) stays disarmed.
          if (ctx.holding && ctx.fence.armed()) {
            this.armFence().then(
              () => this.resume(overdueMs),
              (err: unknown) => ctx.log.error({ event: 'fence_arm_failed', err }, `cannot arm the fence: ${(err as Error).message}`),
            );
          }
        } else {
          ctx.log.warn({ event: 'ha_lease_gone', holding: ctx.holding }, 'the session lease has expired');
          ctx.lease = null;
          if (ctx.holding) void this.fence('the leader lease expired');
          else if (!ctx.fencing) ctx.settle('the session lease expired');
          continue;
        }
      } catch (err) {
        if (ctx.closed) break;
        if (!ctx.renewalFailing) ctx.log.warn({ event: 'ha_renew_failed', reason: (err as Error).message }, 'lease renewal failed; retrying');
        ctx.renewalFailing = true;
      }
      this.publishLeaseFacts();
      // Renewals are due loop_wait after the last one was sent, not after it was answered: a slow
      // answer must not eat into the next renewal's time before the watchdog's limit.
      await ctx.sleep(ctx.renewalFailing ? RENEW_RETRY_MS : Math.max(0, s.loopWaitMs - (ctx.clock.now() - sentAt)));
    }
  }

  /**
   * How long one renewal may take: until the leader would give up, at
   * least `attemptMs`, at most loop_wait + retry_timeout. A renewal counts
   * from when it was sent (etcd extends the lease later, never earlier),
   * so a slow answer weakens nothing: the lease still cannot expire before
   * renewedAt + ttl. Cutting a renewal short would not help either: under
   * packet loss its request is usually waiting out a TCP retransmission,
   * and a retry would start over on a new connection, whose lost SYN costs
   * a whole second.
   */
  private renewalTimeout(sentAt: number, attemptMs: number): number {
    const s = this.ctx.settings();
    const untilGiveUp = this.deadlines().kill - sentAt;
    return Math.round(Math.max(attemptMs, Math.min(untilGiveUp, s.loopWaitMs + s.retryTimeoutMs)));
  }

  /**
   * The fence's instants, from the last confirmed renewal: writes stop
   * (freeze) loop_wait + retry_timeout after it was sent, a retry_timeout
   * before the lease can expire; a fence that freezes kills PostgreSQL at
   * the end of the hold (without one, the in-process fence demotes at the
   * freeze instant); and the kernel watchdog is fed only while a reboot
   * would still come a quarter retry_timeout before the lease's earliest
   * expiry.
   */
  private deadlines(): FenceDeadlines {
    const s = this.ctx.settings();
    const at = this.ctx.renewedAt;
    return { freeze: at + s.loopWaitMs + s.retryTimeoutMs, kill: at + HOLD_TTLS * s.ttlS * 1000, expiry: at + s.ttlS * 1000 - s.retryTimeoutMs / 4 };
  }

  armFence() {
    return this.ctx.fence.arm(this.deadlines());
  }

  async disarmFence(): Promise<void> {
    const ctx = this.ctx;
    if (!ctx.fence.armed()) return;
    await ctx.fence.disarm().catch((err: unknown) => ctx.log.warn({ event: 'fence_disarm_failed', err }, `cannot disarm the fence: ${(err as Error).message}`));
  }

  /** Holding the key but unable to lead safely: hand the key back before the database ever takes a write. */
  async giveUpKey(reason: string): Promise<void> {
    const ctx = this.ctx;
    ctx.settle(`cannot lead: ${reason}`);
    ctx.log.error({ event: 'ha_cannot_lead', reason }, `giving the leader key back: ${reason}`);
    await ctx.deps.store.releaseLeader(ctx.memberId).catch(() => undefined);
    await this.disarmFence();
    ctx.decide(`cannot lead: ${reason}`, 'warn');
  }

  private watchdog(): void {
    const ctx = this.ctx;
    if (ctx.closed) return;
    this.publishLeaseFacts();
    if (!ctx.holding) return;
    const now = ctx.clock.now();
    const at = this.deadlines();
    if (now <= at.freeze) return;
    const since = Math.round(now - ctx.renewedAt);
    if (ctx.fence.freezes && ctx.fence.armed() && now <= at.kill) {
      if (ctx.phase === 'leader') {
        ctx.transition('suspended', `no lease renewal confirmed for ${since} ms: writes frozen until one is`);
        ctx.log.warn({ event: 'ha_suspended', since_ms: since }, `no lease renewal confirmed for ${since} ms: PostgreSQL frozen by the fence until one is (killed ${Math.round(at.kill - now)} ms from now otherwise)`);
      }
      return;
    }
    void this.fence(`no lease renewal confirmed for ${since} ms`);
  }

  /** A renewal was confirmed and the fence re-armed (so thawed): a suspended leader takes writes again. */
  private resume(overdueMs: number): void {
    const ctx = this.ctx;
    if (ctx.phase !== 'suspended') return;
    ctx.transition('leader', `lease renewal confirmed after ${Math.round(overdueMs)} ms`);
    ctx.log.warn({ event: 'ha_resumed', overdue_ms: Math.round(overdueMs) }, `lease renewal confirmed after ${Math.round(overdueMs)} ms: PostgreSQL thawed, still the leader`);
    ctx.wake();
  }

  private publishLeaseFacts(): void {
    const { leadership } = this.ctx.deps;
    const f = leadership.current;
    const writesStopAt = this.deadlines().freeze;
    if (f.renewedAt !== this.ctx.renewedAt || f.renewalFailing !== this.ctx.renewalFailing || f.writesStopAt !== writesStopAt) {
      leadership.update({ renewedAt: this.ctx.renewedAt, renewalFailing: this.ctx.renewalFailing, writesStopAt });
    }
    else leadership.recheck();
  }

  /**
   * Stops taking writes now: the checks answer 503 at once, the database is
   * stopped (fast shutdown: sessions are cut, no new commit starts) and
   * comes back as a read-only standby to wait for the next leader.
   */
  fence(reason: string): Promise<void> {
    const ctx = this.ctx;
    if (ctx.fencing) return ctx.fencing;
    // Past the freeze instant the fence may have stopped PostgreSQL, which then cannot shut down: kill it.
    const frozen = ctx.fence.freezes && ctx.fence.armed() && ctx.clock.now() > this.deadlines().freeze;
    ctx.transition('fencing', reason);
    ctx.appliedSync = undefined;
    ctx.deps.leadership.update({ fenced: true, holdsLease: false, primaryWritable: false, reason: `fenced: ${reason}` });
    ctx.log.warn({ event: 'ha_fenced', reason }, `leader fencing itself: ${reason}`);
    const started = ctx.clock.now();
    const killed = frozen ? ctx.fence.kill().catch((err: unknown) => ctx.log.error({ event: 'fence_kill_failed', err }, `cannot have the fence kill PostgreSQL: ${(err as Error).message}`)) : Promise.resolve();
    ctx.fencing = killed
      .then(() => ctx.deps.db.demote(reason))
      .then(
        async () => {
          ctx.log.info({ event: 'ha_demoted', took_ms: Math.round(ctx.clock.now() - started) }, 'PostgreSQL demoted to a read-only standby');
          // Stays armed if the demotion failed: then the fence stops PostgreSQL at its deadline.
          await this.disarmFence();
        },
        (err: unknown) => ctx.log.error({ event: 'ha_demote_failed', err }, 'demoting PostgreSQL failed'),
      )
      .finally(() => {
        ctx.fencing = null;
        if (ctx.phase === 'fencing') ctx.settle('demoted');
        ctx.deps.leadership.update({ fenced: false });
        ctx.wake();
      });
    return ctx.fencing;
  }
}
