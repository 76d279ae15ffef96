import { EventEmitter } from 'node:events';
import { nextRumorVersion } from './rumors/key.js';
import { roleRumorFor } from './rumors/role.js';
import type { ServiceStatus } from './service.js';

/**
 * What the load-balancer checks and the cluster views need to know about
 * this member's place in its PostgreSQL service group. The checks answer
 * thousands of times a second and must never wait on a child, so an
 * implementation keeps this in memory, up to date from the health loop and
 * the election's own events; `state()` is a synchronous read.
 *
 * StandaloneLeadership (below) serves a single node. The HA issue replaces it
 * with the etcd-lease-based election, which alone can say "lease in doubt".
 */
export type PostgresRole = 'leader' | 'replica' | 'unknown';

/** Patroni's names for a follower's replication state; unknown when nobody has looked. */
export type ReplicationState = 'streaming' | 'in archive recovery' | 'stopped' | 'unknown';

export interface LeadershipState {
  /** The PostgreSQL service group this member runs (postgresql.default), null when it runs none. */
  serviceGroup: string | null;
  role: PostgresRole;
  /** This member holds the leader lease. */
  holdsLease: boolean;
  /**
   * This member cannot tell whether its lease is still valid (etcd
   * unreachable, renewal overdue): it must stop taking writes now, so the
   * write checks answer 503 while this is true whatever else holds.
   */
  leaseInDoubt: boolean;
  /** PostgreSQL accepts writes here (running, healthy, not in recovery). */
  writable: boolean;
  /** For a replica: its WAL receiver state and how far it is behind the leader, in bytes. */
  replication: { state: ReplicationState; lagBytes: number | null; lagS?: number | null } | null;
  timeline: number | null;
  /** Member id of the group's leader as this member knows it, null when none is known. */
  leader: string | null;
  /**
   * In synchronous mode: 'sync' when this replica is in the synchronous set
   * (commits may wait for it; it may be promoted), else 'async'. Undefined
   * or null outside synchronous mode and on the leader.
   */
  syncRole?: 'sync' | 'async' | null;
  /** The leader runs in synchronous mode but commits asynchronously: no healthy follower to wait for. */
  syncDegraded?: boolean;
  /** Peers whose PostgreSQL takes writes without the leader lease, as this member sees them, and what it did. */
  roguePrimaries?: { member: string; since: number; action: string | null }[];
  /** ms since the epoch of the last change of `role`. */
  since: number;
  /** Why the role is what it is, for operators (never a secret). */
  reason: string;
}

export interface Leadership {
  /** The current state, from memory; O(1), never blocks. */
  state(): LeadershipState;
  /** Called after every change of role, lease, doubt or writability. Returns the unsubscriber. */
  onChange(listener: (state: LeadershipState) => void): () => void;
  close(): void;
}

/** The part of the Supervisor a StandaloneLeadership reads. */
export interface ServiceSource {
  get(name: string): { status(): ServiceStatus } | undefined;
  on(event: 'status', listener: (s: ServiceStatus) => void): unknown;
  off(event: 'status', listener: (s: ServiceStatus) => void): unknown;
}

/** How often derived state is re-read, to catch details (in_recovery) that change without a status event. */
const RECHECK_INTERVAL_MS = 1000;

/**
 * A single node is its own leader while its PostgreSQL runs, is healthy and
 * is not in recovery; a server in recovery (a standby.signal put there by
 * hand) is a replica whose replication state it does not know. There is no
 * lease to doubt. Everything is derived from the service's last health
 * result, which the supervisor's health loop keeps in memory.
 */
export class StandaloneLeadership implements Leadership {
  private readonly events = new EventEmitter<{ change: [LeadershipState] }>();
  /** The postmaster last seen, and the health details that were current when it appeared. */
  private process: { pid: number | undefined; detailsAtStart: unknown } = { pid: undefined, detailsAtStart: undefined };
  private last: LeadershipState;
  private readonly timer: NodeJS.Timeout;
  private readonly onStatus = (s: ServiceStatus) => {
    if (s.name === this.serviceName) this.recheck();
  };

  constructor(
    private readonly services: ServiceSource,
    private readonly memberId: string,
    private readonly serviceName = 'postgresql',
    private readonly now: () => number = Date.now,
  ) {
    this.last = this.derive(now());
    services.on('status', this.onStatus);
    this.timer = setInterval(() => this.recheck(), RECHECK_INTERVAL_MS).unref();
  }

  state(): LeadershipState {
    const fresh = this.derive(this.last.since);
    if (sameLeadershipState(fresh, this.last)) return fresh;
    // The health loop changed something no event told us about yet.
    this.recheck();
    return this.last;
  }

  onChange(listener: (state: LeadershipState) => void): () => void {
    this.events.on('change', listener);
    return () => this.events.off('change', listener);
  }

  close(): void {
    clearInterval(this.timer);
    this.services.off('status', this.onStatus);
    this.events.removeAllListeners();
  }

  private recheck(): void {
    const fresh = this.derive(this.last.since);
    if (sameLeadershipState(fresh, this.last)) {
      this.last = fresh;
      return;
    }
    this.last = { ...fresh, since: this.now() };
    this.events.emit('change', this.last);
  }

  private derive(since: number): LeadershipState {
    const status = this.services.get(this.serviceName)?.status();
    const base: LeadershipState = {
      serviceGroup: status ? `${status.name}.${status.group}` : null,
      role: 'unknown',
      holdsLease: false,
      leaseInDoubt: false,
      writable: false,
      replication: null,
      timeline: null,
      leader: null,
      since,
      reason: '',
    };
    if (!status) return { ...base, reason: `this member runs no ${this.serviceName}` };
    // Noted on the status event of every new process, before any health check of it can finish.
    if (status.pid !== this.process.pid) this.process = { pid: status.pid, detailsAtStart: status.details };
    if (status.state !== 'running') return { ...base, reason: `${this.serviceName} is ${status.state}` };
    if (status.health !== 'ok' && status.health !== 'warning') {
      return { ...base, reason: `${this.serviceName} health is ${status.health}${status.healthMessage ? ` (${status.healthMessage})` : ''}` };
    }
    if (status.details === this.process.detailsAtStart) {
      // Every health check yields a new details object; the one we hold was
      // about the previous postmaster (which might have been a primary while
      // this one came up in recovery), so wait for a check of this one.
      return { ...base, reason: `waiting for the first health check of ${this.serviceName} pid ${status.pid ?? '?'}` };
    }
    const inRecovery = status.details?.in_recovery;
    if (inRecovery === false) {
      return { ...base, role: 'leader', holdsLease: true, writable: true, leader: this.memberId, reason: 'standalone: this node is its own leader' };
    }
    if (inRecovery === true) {
      return { ...base, role: 'replica', replication: { state: 'unknown', lagBytes: null }, reason: 'in recovery; a standalone node does not know its upstream' };
    }
    return { ...base, reason: `${this.serviceName} health does not say whether it is in recovery` };
  }
}

/**
 * Two states that say the same about this member's role, lease, doubt,
 * writability, leader, timeline, synchronous mode and replication (`since`
 * and `reason` aside): a Leadership announces a change only when this is
 * false. Fields an implementation never sets compare equal.
 */
type RogueList = NonNullable<LeadershipState['roguePrimaries']>;

/** Field by field: this runs on every load-balancer check, where serialising would cost. */
export function sameRogues(a: RogueList, b: RogueList): boolean {
  return a.length === b.length && a.every((r, i) => r.member === b[i]!.member && r.since === b[i]!.since && r.action === b[i]!.action);
}

export function sameLeadershipState(a: LeadershipState, b: LeadershipState): boolean {
  return (
    a.serviceGroup === b.serviceGroup &&
    a.role === b.role &&
    a.holdsLease === b.holdsLease &&
    a.leaseInDoubt === b.leaseInDoubt &&
    a.writable === b.writable &&
    a.leader === b.leader &&
    a.timeline === b.timeline &&
    a.syncRole === b.syncRole &&
    a.syncDegraded === b.syncDegraded &&
    sameRogues(a.roguePrimaries ?? [], b.roguePrimaries ?? []) &&
    a.replication?.state === b.replication?.state &&
    a.replication?.lagBytes === b.replication?.lagBytes &&
    a.replication?.lagS === b.replication?.lagS
  );
}

/**
 * Gossips this member's role (rumors/role.ts) on every change (and once at
 * start), so every member's census shows who leads each service group.
 * Returns the stopper.
 */
export function gossipRoles(
  leadership: Leadership,
  memberId: string,
  ring: { publish(r: { kind: string; key: string; version: number; payload: Uint8Array }): boolean },
): () => void {
  let version = 0;
  const publish = (s: LeadershipState) => {
    if (!s.serviceGroup) return;
    version = nextRumorVersion(version);
    const rumor = roleRumorFor(memberId, s, version);
    if (rumor) ring.publish(rumor);
  };
  publish(leadership.state());
  return leadership.onChange(publish);
}
