/**
 * What the election needs from the replicated database on this member. The
 * election decides who leads; only the implementation
 * (src/plugins/postgresql/ha-node.ts) knows how PostgreSQL is promoted,
 * stopped, re-pointed, rewound and cloned.
 */
import type { RestoreTarget } from './store.js';

export interface PeerEndpoint {
  member: string;
  host: string;
  port: number;
  /** The CA (PEM) its certificate must come from when that is not this cluster's: another cluster's (a standby cluster's upstream). */
  ca?: string;
}

export interface ConnectedReplica {
  member: string;
  /** 'streaming', 'catchup', ... as the primary sees it. */
  state: string;
  /** 'sync', 'quorum', 'potential', 'async'. */
  syncState: string;
  flushPosition: number | null;
  replayPosition: number | null;
}

export interface DatabaseStatus {
  /** The server answers queries. */
  running: boolean;
  /** Running, and the supervisor's health check passes. */
  healthy: boolean;
  /** null when not running. */
  inRecovery: boolean | null;
  timeline: number | null;
  /** Primary: flushed WAL position; standby: received-and-flushed position (or replayed, without a receiver). */
  walPosition: number | null;
  replayPosition: number | null;
  /** Standby: its WAL receiver streams. */
  streaming: boolean;
  /** Standby: the member its replication config points at. */
  upstream: string | null;
  /**
   * Standby, streaming: the upstream's WAL end as its last message said
   * (pg_stat_wal_receiver.latest_end_lsn); what a standby leader is behind
   * the primary cluster is this minus its replay position. Absent when unknown.
   */
  upstreamWalEnd?: number | null;
  /**
   * Standby: how far behind in time, in whole seconds: 0 when it has replayed
   * all WAL it received, else the age of the last transaction it replayed
   * (PostgreSQL keeps no better clock of a standby's delay). Absent when unknown.
   */
  replayLagS?: number | null;
  /** Primary: its connected standbys (by application_name = member id). */
  replicas: ConnectedReplica[];
  /** Why it is not running or not healthy. */
  reason?: string;
  /**
   * The database is being re-based on a backup (a warm spare's scheduled
   * restore): stopped on purpose; the loop leaves it alone (no restart, no
   * giving up the leader key for an unhealthy database) until it is back.
   */
  busy?: string;
}

/** How a member without data gets some: create the database, copy the leader's, or restore it from the backup repository (a cluster restore names this member). */
export type BootstrapPlan =
  | { kind: 'init' }
  | { kind: 'clone'; leader: PeerEndpoint }
  | { kind: 'restore'; target: RestoreTarget }
  /** A warm spare's first member: the newest backup of the repository copy, restored as a standby that replays its archive. */
  | { kind: 'standby-restore'; repo: string };

export interface ReplicatedDatabase {
  /** The database service is loaded on this member (a member without it stays out of the election). */
  present(): boolean;
  /** Where peers reach this member's database. */
  endpoint(): { host: string; port: number };
  status(signal: AbortSignal): Promise<DatabaseStatus>;
  /** The data directory holds a database (false while it is empty or still being created). */
  dataPresent(): Promise<boolean>;
  /** Makes the local standby the primary; resolves once it accepts writes. */
  promote(signal: AbortSignal): Promise<void>;
  /**
   * Fencing: stops the server at once (no new commit after this starts),
   * then brings it back as a read-only standby with no upstream unless
   * `stayDown`. `handingOver` (a switchover) waits longer for the standbys
   * to receive the last records. Resolves with the WAL position the stopped server ended at
   * when known (a clean stop's checkpoint).
   */
  demote(reason: string, opts?: { stayDown?: boolean; handingOver?: boolean }): Promise<{ stoppedAt: number | null }>;
  /**
   * Restores this member's data from the backup repository to `target`
   * (the server must be stopped) and starts PostgreSQL on it; resolves once
   * it has replayed to the target and takes writes. Absent where the
   * database has no backups.
   */
  restore?(target: RestoreTarget, signal: AbortSignal, progress: (detail: string) => void): Promise<void>;
  /** Stops the server for a cluster restore; before it follows anyone again its data is rewound or copied afresh. */
  stopForRestore(reason: string): Promise<void>;
  /** Starts a stopped server as a read-only standby with no upstream (after demote with stayDown). */
  startStandby(signal: AbortSignal): Promise<void>;
  /** Becomes (or stays) a streaming standby of `leader`: re-points, rewinds or re-clones as needed; starts the server if stopped. */
  follow(leader: PeerEndpoint, opts: { leaderIsPrimary: boolean }, signal: AbortSignal): Promise<void>;
  /**
   * A warm spare's standby leader: a standby with no upstream that replays
   * the WAL archived in the repository copy (restore_command); starts the
   * server if stopped. Absent where the database cannot.
   */
  replayArchive?(signal: AbortSignal): Promise<void>;
  /** The data was restored from a backup before the cluster's first start (hasup restore --to-new-cluster): it is the cluster's database. */
  restoredForNewCluster?(): Promise<boolean>;
  /** Primary: commits wait for ANY 1 of `members`; null = asynchronous; [] = wait for a standby that is not there (strict). */
  setSynchronous(members: string[] | null, signal: AbortSignal): Promise<void>;
  /**
   * One physical replication slot per member listed, none for anyone else.
   * Kept on standbys too (unused slots there hold no WAL), so a new
   * leader already has the slots its followers will stream from.
   */
  syncSlots(members: string[], signal: AbortSignal): Promise<void>;
  /** Before a promotion, so the new primary's first commit already follows the policy. */
  prepareSynchronous(members: string[] | null): Promise<void>;
  /** What a peer's database is right now. */
  peerRole(peer: PeerEndpoint, signal: AbortSignal): Promise<'primary' | 'standby' | 'unreachable'>;
  /** Makes a peer's database that takes writes without the lease unable to acknowledge a commit; says what it did. */
  fencePeer(peer: PeerEndpoint, signal: AbortSignal): Promise<string>;
}
