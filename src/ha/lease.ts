import { every } from './clock.js';
import type { HaContext } from './context.js';

/**
 * Lease keeping and fencing. The session lease is renewed every loop_wait,
 * independently of the HA loop; while this member leads, every confirmed
 * renewal arms the fence, and a watchdog on the clock fences the leader
 * (stops PostgreSQL) once no renewal has been confirmed for loop_wait +
 * retry_timeout, counted from when the confirmed renewal was sent: the lease
 * cannot expire before ttl ≥ loop_wait + 2 × retry_timeout after that, so
 * the old leader has stopped taking writes before anyone else can take it.
 */
const RENEW_RETRY_MS = 100;
const WATCHDOG_MS = 50;

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
          ctx.renewedAt = sentAt;
          ctx.renewalFailing = false;
          if (ctx.holding) this.armFence().catch((err: unknown) => ctx.log.error({ event: 'fence_arm_failed', err }, `cannot arm the fence: ${(err as Error).message}`));
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
   * How long one renewal may take: until the watchdog would fence, at least
   * `attemptMs`. A renewal counts from when it was sent (etcd extends the
   * lease later, never earlier), so a slow answer weakens nothing: the
   * lease still cannot expire before renewedAt + ttl. Cutting a renewal
   * short would not help either: under packet loss its request is usually
   * waiting out a TCP retransmission, and a retry would start over on a
   * new connection, whose lost SYN costs a whole second.
   */
  private renewalTimeout(sentAt: number, attemptMs: number): number {
    const s = this.ctx.settings();
    const untilFence = this.ctx.renewedAt + s.loopWaitMs + s.retryTimeoutMs - sentAt;
    return Math.round(Math.max(attemptMs, Math.min(untilFence, s.loopWaitMs + s.retryTimeoutMs)));
  }

  /**
   * Arms the fence from the last confirmed renewal: it stops PostgreSQL
   * loop_wait + 1.5 × retry_timeout after that renewal was sent (half a
   * retry_timeout after this process would have fenced itself, half a
   * retry_timeout before the lease can expire), and feeds the kernel
   * watchdog only while a reboot would still come a quarter retry_timeout
   * before the lease's earliest expiry.
   */
  armFence() {
    const s = this.ctx.settings();
    const deadline = this.ctx.renewedAt + s.loopWaitMs + 1.5 * s.retryTimeoutMs;
    const expiry = this.ctx.renewedAt + s.ttlS * 1000 - s.retryTimeoutMs / 4;
    return this.ctx.fence.arm(deadline, expiry);
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
    const s = ctx.settings();
    const since = ctx.clock.now() - ctx.renewedAt;
    if (since > s.loopWaitMs + s.retryTimeoutMs) void this.fence(`no lease renewal confirmed for ${Math.round(since)} ms`);
  }

  private publishLeaseFacts(): void {
    const { leadership } = this.ctx.deps;
    const f = leadership.current;
    if (f.renewedAt !== this.ctx.renewedAt || f.renewalFailing !== this.ctx.renewalFailing) leadership.update({ renewedAt: this.ctx.renewedAt, renewalFailing: this.ctx.renewalFailing });
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
    ctx.transition('fencing', reason);
    ctx.appliedSync = undefined;
    ctx.deps.leadership.update({ fenced: true, holdsLease: false, primaryWritable: false, reason: `fenced: ${reason}` });
    ctx.log.warn({ event: 'ha_fenced', reason }, `leader fencing itself: ${reason}`);
    const started = ctx.clock.now();
    ctx.fencing = ctx.deps.db
      .demote(reason)
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
