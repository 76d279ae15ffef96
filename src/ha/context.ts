import type { Logger } from '../supervisor/log.js';
import { realClock, sleep, timeoutSignal, type Clock } from './clock.js';
import type { DatabaseStatus, PeerEndpoint, ReplicatedDatabase } from './database.js';
import type { ElectedLeadership } from './elected-leadership.js';
import { NoFence, type LeaderFence } from './fence.js';
import { effectiveSettings, type HaSettings } from './settings.js';
import type { ClusterSnapshot, ClusterStore } from './store.js';

/**
 * The ports the HA core runs against: the cluster store (etcd in
 * production, an in-memory store in unit tests), the replicated database
 * (PostgreSQL, or a fake), the fence, the leadership the load-balancer
 * checks read, and the clock.
 */
export interface HaControllerDeps {
  memberId: string;
  /** e.g. postgresql.default, for logs and views. */
  serviceGroup: string;
  store: ClusterStore;
  db: ReplicatedDatabase;
  settings: () => HaSettings;
  leadership: ElectedLeadership;
  /** Guards the primary from outside this process while this member leads (default: none). */
  fence?: LeaderFence;
  /** Why this member may not lead now (a required kernel watchdog is missing), or undefined. */
  leadBlocker?: () => string | undefined;
  log: Logger;
  /** Default: the real clock. */
  clock?: Clock;
}

/**
 * Where the member stands, one value at a time:
 *
 *   no-lease      no session lease yet (starting, or the lease expired)
 *   follower      holds a lease, not the leader key; follows the leader if any
 *   candidate     no leader: this member may be promoted and is comparing positions
 *   leader        holds the leader key (promoting, or a primary)
 *   suspended     leader whose lease renewal is overdue: PostgreSQL frozen by
 *                 the fence, thawed by the next confirmed renewal
 *   handing-over  leader carrying out a switchover (PostgreSQL stopped)
 *   fencing       gave up the key, PostgreSQL being stopped or demoted
 *   closed        the controller was stopped
 */
export type HaPhase = 'no-lease' | 'follower' | 'candidate' | 'leader' | 'suspended' | 'handing-over' | 'fencing' | 'closed';

export interface PhaseChange {
  phase: HaPhase;
  /** ms on the controller's clock. */
  at: number;
  why: string;
}

/** Slots, addresses and the member count of "auto" synchronous mode forget a member not seen for this long. */
export const MEMBER_RETENTION_MS = 10 * 60_000;
const PHASE_LOG_MAX = 200;

/**
 * The state the HA jobs (lease, election, replication, switchover, rogue
 * watch, view) share, and the few helpers they all use. One object, so each
 * job is a small module over it rather than a method of one large class.
 */
export class HaContext {
  readonly memberId: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly fence: LeaderFence;
  readonly stop = new AbortController();

  private phaseNow: HaPhase = 'no-lease';
  readonly phases: PhaseChange[] = [];

  lease: string | null = null;
  /** clock.now() at which the last confirmed renewal was sent. */
  renewedAt = -Infinity;
  renewalFailing = false;
  fencing: Promise<void> | null = null;
  snapshot: ClusterSnapshot | null = null;
  /** wallNow() of the last snapshot. */
  snapshotAt: number | null = null;
  db: DatabaseStatus | null = null;
  /** The synchronous standbys set in the database by this member as leader; undefined = not known. */
  appliedSync: string[] | null | undefined = undefined;
  /** Members seen reporting (wallNow), and where they serve their database. */
  readonly lastSeen = new Map<string, number>();
  readonly addresses = new Map<string, PeerEndpoint>();
  private lastDecision = '';
  private wakeup: (() => void) | null = null;

  constructor(readonly deps: HaControllerDeps) {
    this.memberId = deps.memberId;
    this.clock = deps.clock ?? realClock;
    this.fence = deps.fence ?? new NoFence();
    this.log = deps.log.child({ component: 'ha', service_group: deps.serviceGroup });
  }

  get phase(): HaPhase {
    return this.phaseNow;
  }

  /** This member holds the leader key (as far as it knows). */
  get holding(): boolean {
    return this.phaseNow === 'leader' || this.phaseNow === 'suspended' || this.phaseNow === 'handing-over';
  }

  get closed(): boolean {
    return this.phaseNow === 'closed';
  }

  transition(to: HaPhase, why: string): void {
    if (to === this.phaseNow || this.phaseNow === 'closed') return;
    this.phaseNow = to;
    this.phases.push({ phase: to, at: this.clock.now(), why });
    if (this.phases.length > PHASE_LOG_MAX) this.phases.splice(0, this.phases.length - PHASE_LOG_MAX);
  }

  /** Not leading: follower with a lease, or waiting for one. */
  settle(why: string): void {
    this.transition(this.lease ? 'follower' : 'no-lease', why);
  }

  /**
   * The settings in force. synchronous_mode = "auto" counts the members seen
   * reporting in the last MEMBER_RETENTION_MS, not only the live ones: a
   * member that just died still counts, so a failover does not change the
   * mode under the election that follows it.
   */
  settings(): HaSettings {
    const known = new Set([this.memberId, ...this.lastSeen.keys()]);
    return effectiveSettings(this.deps.settings(), known.size);
  }

  setSnapshot(snap: ClusterSnapshot): void {
    this.snapshot = snap;
    const now = this.clock.wallNow();
    this.snapshotAt = now;
    for (const [m, stored] of snap.members) {
      this.lastSeen.set(m, now);
      this.addresses.set(m, { member: m, host: stored.report.host, port: stored.report.port });
    }
    for (const [m, at] of this.lastSeen) {
      if (now - at > MEMBER_RETENTION_MS) {
        this.lastSeen.delete(m);
        this.addresses.delete(m);
      }
    }
  }

  /** Records what the loop decided; logs it when it changes. */
  decide(what: string, level: 'info' | 'warn' = 'info'): void {
    if (what === this.lastDecision) return;
    this.lastDecision = what;
    this.log[level]({ event: 'ha_state', state: what }, what);
  }

  get decision(): string {
    return this.lastDecision;
  }

  /** A signal that aborts after `ms` on the clock, or when the controller stops. */
  timeout(ms: number): AbortSignal {
    return timeoutSignal(this.clock, ms, this.stop.signal);
  }

  sleep(ms: number): Promise<void> {
    return sleep(this.clock, ms, this.stop.signal);
  }

  /** Sleeps `ms`, or less when woken (the leader key changed) or stopped. */
  sleepWakeable(ms: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const stop = this.stop.signal;
      const previous = this.wakeup;
      const finish = () => {
        timer.cancel();
        stop.removeEventListener('abort', finish);
        resolve();
      };
      const timer = this.clock.setTimeout(finish, ms);
      this.wakeup = () => {
        previous?.();
        finish();
      };
      stop.addEventListener('abort', finish, { once: true });
    });
  }

  wake(): void {
    const w = this.wakeup;
    this.wakeup = null;
    w?.();
  }
}
