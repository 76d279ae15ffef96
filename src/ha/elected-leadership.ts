import { EventEmitter } from 'node:events';
import { sameLeadershipState, type Leadership, type LeadershipState, type PostgresRole, type ReplicationState } from '../supervisor/leadership.js';

/**
 * The Leadership the load-balancer checks read on a member of an HA
 * cluster. The HA loop feeds it facts; whether the lease is in doubt is
 * computed from the monotonic clock on every read, so /primary turns 503
 * as soon as a renewal is overdue even if the loop itself is stuck.
 */
export interface LeadershipFacts {
  /** This member runs the service at all (else it has no place in the group). */
  present: boolean;
  role: PostgresRole;
  holdsLease: boolean;
  /** performance.now() at which the last confirmed renewal was sent. */
  renewedAt: number;
  /** A renewal attempt failed since the last confirmed one. */
  renewalFailing: boolean;
  /**
   * Monotonic instant (the HA clock's) at which a leader stops taking writes
   * unless a renewal is confirmed first: the fence's freeze deadline, a
   * retry_timeout before the lease can expire. Whatever must never outlive
   * the lease stops then too (the leader VIP). -Infinity before a renewal.
   */
  writesStopAt: number;
  /** Writes are being refused on purpose (fencing, switchover) whatever PostgreSQL says. */
  fenced: boolean;
  /** PostgreSQL runs, is healthy and not in recovery. */
  primaryWritable: boolean;
  replication: { state: ReplicationState; lagBytes: number | null; lagS?: number | null } | null;
  timeline: number | null;
  leader: string | null;
  syncRole: 'sync' | 'async' | null;
  /** Leader in synchronous mode running asynchronously (no healthy follower to wait for). */
  syncDegraded: boolean;
  /** Peers whose database takes writes without the lease, as this member sees them. */
  rogues: RogueSighting[];
  reason: string;
}

export interface RogueSighting {
  member: string;
  since: number;
  action: string | null;
}

export class ElectedLeadership implements Leadership {
  private readonly events = new EventEmitter<{ change: [LeadershipState] }>();
  private facts: LeadershipFacts = {
    present: false,
    role: 'unknown',
    holdsLease: false,
    renewedAt: 0,
    renewalFailing: false,
    writesStopAt: -Infinity,
    fenced: false,
    primaryWritable: false,
    replication: null,
    timeline: null,
    leader: null,
    syncRole: null,
    syncDegraded: false,
    rogues: [],
    reason: 'starting',
  };
  private last: LeadershipState;

  constructor(
    private readonly serviceGroup: string,
    /** A renewal not confirmed this long after the previous one puts the lease in doubt. */
    private readonly doubtAfterMs: () => number,
    private readonly monotonic: () => number = () => performance.now(),
    private readonly wallClock: () => number = Date.now,
  ) {
    this.last = this.derive(wallClock());
  }

  state(): LeadershipState {
    this.recheck();
    return this.last;
  }

  onChange(listener: (state: LeadershipState) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  close(): void {
    this.events.removeAllListeners();
  }

  /** The HA loop's view changed. */
  update(change: Partial<LeadershipFacts>): void {
    this.facts = { ...this.facts, ...change };
    this.recheck();
  }

  get current(): Readonly<LeadershipFacts> {
    return this.facts;
  }

  /** Re-evaluates time-dependent state (doubt), emitting a change if it flipped. */
  recheck(): void {
    const fresh = this.derive(this.last.since);
    if (same(fresh, this.last)) {
      this.last = fresh;
      return;
    }
    this.last = { ...fresh, since: fresh.role !== this.last.role ? this.wallClock() : this.last.since };
    this.events.emit('change', this.last);
  }

  /** True when this member holds the lease but cannot be sure it still does. */
  inDoubt(): boolean {
    const f = this.facts;
    if (!f.holdsLease) return false;
    return f.renewalFailing || this.monotonic() - f.renewedAt > this.doubtAfterMs();
  }

  private derive(since: number): LeadershipState {
    const f = this.facts;
    const doubt = this.inDoubt();
    return {
      serviceGroup: f.present ? this.serviceGroup : null,
      role: f.role,
      holdsLease: f.holdsLease,
      leaseInDoubt: doubt,
      writable: f.role === 'leader' && f.primaryWritable && !f.fenced && !doubt,
      replication: f.replication,
      timeline: f.timeline,
      leader: f.leader,
      syncRole: f.syncRole,
      syncDegraded: f.syncDegraded,
      roguePrimaries: f.rogues,
      since,
      reason: doubt ? `lease renewal overdue or failing; ${f.reason}` : f.reason,
    };
  }
}

/** The reason counts here too: an operator watching /events wants to see why. */
function same(a: LeadershipState, b: LeadershipState): boolean {
  return sameLeadershipState(a, b) && a.reason === b.reason;
}
