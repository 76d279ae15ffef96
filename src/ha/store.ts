/**
 * What the election keeps in the consensus store (etcd), per service group,
 * under one prefix (e.g. /hasup/<cluster>/postgresql/default/):
 *
 *   leader          member id of the leader, attached to its session lease
 *   members/<id>    each member's report, attached to its own session lease
 *   optime          the leader's last WAL position (no lease: outlives it)
 *   initialize      who created the database (no lease)
 *   sync            the synchronous set the leader runs with (no lease)
 *   pause           present while automatic failover is paused
 *   switchover      a pending planned leader change
 *   restore         a cluster restore from a backup, in progress or ended (no lease)
 *
 * The interface is the election's; src/plugins/etcd/ha-store.ts implements it.
 */

/** standby_leader: the leader of a standby cluster (holds the key, streams from the primary cluster, never promoted). */
export type MemberRole = 'leader' | 'standby_leader' | 'replica' | 'starting' | 'stopped' | 'unknown';

/** What a member tells the others about itself (JSON in members/<id>; never a secret). */
export interface MemberReport {
  member: string;
  /** Where peers reach this member's database. */
  host: string;
  port: number;
  role: MemberRole;
  /** Running and its health check passes. */
  healthy: boolean;
  timeline: number | null;
  /** Leader: its flushed WAL position; replica: the position it has received and flushed. */
  wal_position: number | null;
  replay_position: number | null;
  /** Replica: WAL bytes it has not replayed behind the leader; standby leader: behind the primary cluster (its upstream's last report); null when unknown. */
  lag_bytes: number | null;
  /** The same in whole seconds (DatabaseStatus.replayLagS); absent from members that predate it. */
  lag_seconds?: number | null;
  /** Replica: 'streaming', 'in archive recovery', 'stopped'. */
  replication_state: string | null;
  /** The member it replicates from. */
  upstream: string | null;
  /** This member may be promoted now (healthy replica, within the lag bound, in the sync set when one is kept). */
  eligible: boolean;
  /** Configured never to be promoted (so never a synchronous standby either). */
  nofailover: boolean;
  /**
   * The leader key's value when the report was measured; null means "no
   * leader": the position is final for the election that follows.
   */
  leader_seen: string | null;
  /** Its session lease: a planned switchover hands the leader key over to it. */
  lease: string;
  /** ms since the epoch, for operators. */
  updated: number;
}

export interface OpTime {
  member: string;
  wal_position: number;
  timeline: number | null;
  updated: number;
}

export interface SyncState {
  leader: string;
  /** Members whose acknowledgement a commit may wait for; the only ones that may be promoted. */
  members: string[];
}

export interface SwitchoverRequest {
  from: string;
  /** Target member, or null for the most up-to-date healthy replica. */
  to: string | null;
  id: string;
  requested: number;
  /** Set by the leader when it could not carry the request out. */
  failed?: string;
}

/** Where a restore brings the database: the end of the archive, a moment, a WAL position, or the end of one backup (its label). */
export type RestoreTarget = ({ kind: 'latest' } | { kind: 'time'; time: string } | { kind: 'lsn'; lsn: string } | { kind: 'set'; label: string }) & {
  /** With two pgBackRest repositories: the one to restore from (docs/backup.md, "Two repositories"). */
  repo?: 1 | 2;
};

/**
 * A cluster restore. While it is neither done nor failed, no member elects
 * itself, the leader gives its key up and every member stops PostgreSQL;
 * `member` restores its data from the repository and, once PostgreSQL
 * there has replayed to the target and takes writes, holds the leader key;
 * the others then follow it (rewinding or copying it afresh).
 */
export interface RestoreRequest {
  id: string;
  /** The member that restores (the one asked). */
  member: string;
  target: RestoreTarget;
  requested: number;
  state: 'stopping' | 'restoring' | 'done' | 'failed';
  /** What is happening now, or why it failed. */
  detail: string;
  updated: number;
}

export interface StoredReport {
  report: MemberReport;
  modRevision: number;
  lease: string;
}

export interface ClusterSnapshot {
  revision: number;
  leader: { member: string; lease: string; modRevision: number } | null;
  members: Map<string, StoredReport>;
  optime: OpTime | null;
  initialize: { member: string } | null;
  sync: SyncState | null;
  paused: boolean;
  switchover: SwitchoverRequest | null;
  restore: RestoreRequest | null;
}

export interface StoreCall {
  signal?: AbortSignal;
  timeoutMs?: number;
}

export interface ClusterStore {
  snapshot(o?: StoreCall): Promise<ClusterSnapshot>;
  /** A new session lease of ttlS seconds. */
  grantLease(ttlS: number, o?: StoreCall): Promise<string>;
  /** Renews a lease; false when it no longer exists. */
  renewLease(lease: string, o?: StoreCall): Promise<boolean>;
  revokeLease(lease: string, o?: StoreCall): Promise<void>;
  publishReport(report: MemberReport, lease: string, o?: StoreCall): Promise<void>;
  /** Creates the leader key for `member` if there is none. */
  acquireLeader(member: string, lease: string, o?: StoreCall): Promise<boolean>;
  /**
   * The leader's turn: if the leader key still names `member` on `lease`,
   * writes its report and the optime; in any case returns the snapshot.
   */
  leaderTurn(member: string, lease: string, report: MemberReport, optime: OpTime, o?: StoreCall): Promise<{ stillLeader: boolean; snapshot: ClusterSnapshot }>;
  /** Re-attaches a leader key that names `member` to its new lease (a restarted leader). */
  reclaimLeader(member: string, lease: string, o?: StoreCall): Promise<boolean>;
  /** Deletes the leader key if it names `member`. */
  releaseLeader(member: string, o?: StoreCall): Promise<boolean>;
  /** Moves the leader key from `from` (on fromLease) to `to` on toLease, and clears the switchover request. */
  handOver(from: string, fromLease: string, to: string, toLease: string, o?: StoreCall): Promise<boolean>;
  /** Creates the initialize key for `member` if there is none. */
  claimInitialize(member: string, o?: StoreCall): Promise<boolean>;
  releaseInitialize(member: string, o?: StoreCall): Promise<void>;
  /** Records the synchronous set, only while `leader` holds the leader key. */
  setSync(leader: string, members: string[], o?: StoreCall): Promise<boolean>;
  setPaused(paused: boolean, by: string, o?: StoreCall): Promise<void>;
  /** Creates the request if none is pending. */
  requestSwitchover(req: SwitchoverRequest, o?: StoreCall): Promise<boolean>;
  /** Marks a pending request as failed (the requester reads why and clears it). */
  failSwitchover(req: SwitchoverRequest, reason: string, o?: StoreCall): Promise<void>;
  clearSwitchover(id: string | null, o?: StoreCall): Promise<void>;
  /** Creates the request unless one is in progress (a done or failed one is replaced). */
  requestRestore(req: RestoreRequest, o?: StoreCall): Promise<boolean>;
  /** Rewrites the request `req.id` names (nothing when another has replaced it). */
  updateRestore(req: RestoreRequest, o?: StoreCall): Promise<void>;
  /**
   * When the consensus store runs on the members and the one on `localHost`
   * leads it, hands that leadership to another member, so that losing this
   * node does not also cost the store an election (and every lease an
   * extension) on top of the failover. Returns the new store leader, or
   * null when nothing needed moving.
   */
  yieldConsensusLeadership?(localHost: string, o?: StoreCall): Promise<string | null>;
  /**
   * Calls `onChange` with the names of the keys that changed (relative to
   * the prefix: 'leader', 'members/<id>', ...) until `signal` aborts;
   * re-watches after a broken stream.
   */
  watch(onChange: (keys: string[]) => void, signal: AbortSignal): void;
}
