import type { Clock, LeadershipFacts, Timer } from '../../ha/index.js';
import type { LeadershipState } from '../../supervisor/leadership.js';
import type { Logger } from '../../supervisor/log.js';
import type { VipReport } from '../../supervisor/rumors/vip.js';
import type { AddressManager, Vip } from './addresses.js';

/**
 * The leader VIP: an address that is on the PostgreSQL leader and nowhere
 * else. It follows the leader lease (vip-manager's model for Patroni, not
 * an election of its own as keepalived's VRRP would hold, which can
 * disagree with the database's leader): this member holds the VIP while it
 * holds the lease, its PostgreSQL runs as the primary, and it is neither
 * fencing nor handing over, and never past the instant its writes stop
 * (the fence's freeze deadline, a retry_timeout before the lease can
 * expire). So two members never hold it: the next leader can take the key
 * only once the lease has expired, after this one dropped the address.
 *
 * When this process is stalled the fence process removes the address at
 * the same deadline (ProcessFence.guardAddress); this class does it while
 * the process runs, plus everything the fence cannot know: claiming it,
 * announcing it, a switchover, a shutdown, an address found here without
 * the lease (a crashed leader's, or added by hand), which is removed.
 */
export interface VipClaim {
  /** This member may hold the VIP (until `until`). */
  hold: boolean;
  /** Monotonic ms on the clock after which it may not, whatever else holds (Infinity: no lease to run out). */
  until: number;
  /** Why, for the report. */
  why: string;
}

/** A member of an HA cluster: from the HA loop's facts (the lease, the fence's freeze deadline). */
export function claimFromFacts(f: Pick<LeadershipFacts, 'holdsLease' | 'role' | 'fenced' | 'writesStopAt'>): VipClaim {
  if (!f.holdsLease) return { hold: false, until: -Infinity, why: 'not the leader' };
  if (f.fenced) return { hold: false, until: -Infinity, why: 'the leader is fencing itself or handing over' };
  if (f.role !== 'leader') return { hold: false, until: -Infinity, why: 'leader, PostgreSQL not yet a primary' };
  return { hold: true, until: f.writesStopAt, why: 'the PostgreSQL leader' };
}

/** A member on its own (no etcd): it is its own leader while its PostgreSQL is the writable primary. */
export function claimFromState(s: LeadershipState): VipClaim {
  return s.role === 'leader' && s.writable ? { hold: true, until: Infinity, why: 'standalone: this node is its own leader' } : { hold: false, until: -Infinity, why: s.reason || 'not the leader' };
}

export interface LeaderVipOptions {
  vip: Vip;
  addresses: AddressManager;
  /** What this member may do with the VIP now. */
  claim: () => VipClaim;
  /** Subscribes to changes of leadership; returns the unsubscriber. */
  onChange: (listener: () => void) => () => void;
  /** Hands the VIP to (null: takes it from) what removes it when this process stalls: the fence. */
  guard?: (vip: Vip | null) => void;
  clock: Clock;
  log: Logger;
  /** How often the interface is looked at to find the address added or removed behind our back. */
  checkIntervalMs?: number;
  /**
   * How often the claim is re-read in memory, besides every change event:
   * a fact can change without the Leadership announcing it (fenced while
   * already not writable), and this bounds how long that goes unseen.
   */
  pollMs?: number;
  /** Called with every change of the report. */
  onReport?: (report: VipReport) => void;
}

const CHECK_INTERVAL_MS = 5000;
const POLL_MS = 250;
const RETRY_MS = 1000;

export class LeaderVip {
  private state: VipReport['state'] = 'starting';
  private reason = 'starting';
  private since: number;
  /** What this member believes is on the interface; null: unknown, look. */
  private onInterface: boolean | null = null;
  /** This member added the address (and has not removed it since): a removal is a release, not a stray found. */
  private claimed = false;
  private dirty = false;
  private running: Promise<void> | null = null;
  private stopped = false;
  private unsubscribe: (() => void) | null = null;
  private deadline: Timer | null = null;
  private deadlineAt = NaN;
  private retry: Timer | null = null;
  private check: Timer | null = null;
  private poll: Timer | null = null;
  private announcing: AbortController | null = null;
  private readonly log: Logger;

  constructor(private readonly opts: LeaderVipOptions) {
    this.log = opts.log.child({ component: 'vip', vip: opts.vip.text, interface: opts.vip.interface });
    this.since = opts.clock.wallNow();
  }

  /**
   * Checks the host can carry the VIP: if not, says why and never touches
   * the address (the member runs on without it). Otherwise removes it if
   * it is here without the lease, and follows leadership from now on.
   */
  async start(): Promise<void> {
    const { vip, addresses } = this.opts;
    const refused = await addresses.check(vip).catch((err: unknown) => `cannot check the interface: ${(err as Error).message}`);
    if (this.stopped) return;
    if (refused) {
      this.setState('refused', refused);
      this.log.error({ event: 'vip_refused', reason: refused }, `leader VIP ${vip.text} on ${vip.interface} refused: ${refused}; this member runs on without it`);
      return;
    }
    this.opts.guard?.(vip);
    this.unsubscribe = this.opts.onChange(() => this.poke());
    this.scheduleCheck();
    this.schedulePoll();
    this.poke();
    await this.running;
  }

  /** Drops the VIP if held and stops following leadership (the member stops). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    for (const t of [this.deadline, this.retry, this.check, this.poll]) t?.cancel();
    this.announcing?.abort();
    await this.running;
    if (this.state !== 'refused' && this.onInterface !== false) {
      await this.opts.addresses.remove(this.opts.vip).then(
        () => this.log.info({ event: 'vip_released', reason: 'member stopping' }, `removed the leader VIP ${this.opts.vip.text}: this member stops`),
        (err: unknown) => this.log.error({ event: 'vip_release_failed', err }, `cannot remove the leader VIP ${this.opts.vip.text}: ${(err as Error).message}`),
      );
    }
    if (this.state !== 'refused') this.setState('stopped', 'this member stopped');
    this.opts.guard?.(null);
  }

  report(): VipReport {
    return { address: this.opts.vip.text, interface: this.opts.vip.interface, state: this.state, reason: this.reason, since: this.since };
  }

  /** Re-evaluates soon (leadership changed, a deadline or a retry came). */
  private poke(): void {
    if (this.stopped) return;
    this.dirty = true;
    this.running ??= this.loop().finally(() => (this.running = null));
  }

  private async loop(): Promise<void> {
    while (this.dirty && !this.stopped) {
      this.dirty = false;
      try {
        await this.reconcile();
      } catch (err) {
        this.failed(err as Error);
      }
    }
  }

  private async reconcile(): Promise<void> {
    const { vip, addresses, clock } = this.opts;
    const claim = this.opts.claim();
    const want = claim.hold && clock.now() < claim.until;
    if (this.onInterface === null) this.onInterface = await addresses.present(vip);
    if (want) {
      this.watchDeadline(claim.until);
      if (!this.onInterface) {
        await addresses.add(vip);
        this.onInterface = true;
        this.claimed = true;
        this.log.info({ event: 'vip_claimed' }, `added the leader VIP ${vip.text} to ${vip.interface}: ${claim.why}`);
        this.announce();
      }
      this.setState('held', claim.why);
      return;
    }
    this.deadline?.cancel();
    this.deadline = null;
    this.announcing?.abort();
    if (this.onInterface) {
      const why = claim.hold ? 'the lease renewal is overdue: writes stop now' : claim.why;
      await addresses.remove(vip);
      this.onInterface = false;
      const stray = !this.claimed;
      this.claimed = false;
      if (stray) this.log.warn({ event: 'vip_removed_stray', reason: why }, `the leader VIP ${vip.text} was on ${vip.interface} without the leader lease: removed it`);
      else this.log.warn({ event: 'vip_released', reason: why }, `removed the leader VIP ${vip.text}: ${why}`);
    }
    this.setState('standby', claim.hold ? 'the lease renewal is overdue' : claim.why);
  }

  /** A timer at the instant the claim runs out (moved on by every renewal: re-read when it fires). */
  private watchDeadline(until: number): void {
    if (!Number.isFinite(until) || (this.deadline && this.deadlineAt === until)) return;
    this.deadline?.cancel();
    this.deadlineAt = until;
    this.deadline = this.opts.clock.setTimeout(() => {
      this.deadline = null;
      this.poke();
    }, Math.max(0, until - this.opts.clock.now()));
  }

  private announce(): void {
    const ac = new AbortController();
    this.announcing?.abort();
    this.announcing = ac;
    this.opts.addresses.announce(this.opts.vip, ac.signal).then(
      () => {
        if (!ac.signal.aborted) this.log.info({ event: 'vip_announced' }, `announced the leader VIP ${this.opts.vip.text} (${this.opts.vip.family === 4 ? 'gratuitous ARP' : 'unsolicited neighbour advertisement'})`);
      },
      (err: unknown) => this.log.warn({ event: 'vip_announce_failed', err }, `cannot announce the leader VIP: ${(err as Error).message}; neighbours find it when their caches expire`),
    );
  }

  private failed(err: Error): void {
    // Unknown again: look at the interface before the next try.
    this.onInterface = null;
    this.setState('failing', err.message);
    this.log.error({ event: 'vip_failed', err }, `leader VIP ${this.opts.vip.text}: ${err.message}; retrying`);
    this.retry?.cancel();
    this.retry = this.opts.clock.setTimeout(() => {
      this.retry = null;
      this.poke();
    }, RETRY_MS);
  }

  /** Now and then: an address added or removed behind our back (by hand, by networkd) is put right. */
  private scheduleCheck(): void {
    this.check = this.opts.clock.setTimeout(() => {
      if (this.stopped) return;
      this.onInterface = null;
      this.poke();
      this.scheduleCheck();
    }, this.opts.checkIntervalMs ?? CHECK_INTERVAL_MS);
  }

  private schedulePoll(): void {
    this.poll = this.opts.clock.setTimeout(() => {
      if (this.stopped) return;
      const claim = this.opts.claim();
      const want = claim.hold && this.opts.clock.now() < claim.until;
      // Not while failing: the retry timer paces those.
      if ((this.state === 'held' || this.state === 'standby') && want !== (this.state === 'held')) this.poke();
      this.schedulePoll();
    }, this.opts.pollMs ?? POLL_MS);
  }

  private setState(state: VipReport['state'], reason: string): void {
    if (state === this.state && reason === this.reason) return;
    if (state !== this.state) this.since = this.opts.clock.wallNow();
    this.state = state;
    this.reason = reason;
    this.opts.onReport?.(this.report());
  }
}
