import type { DriverContext } from '../../supervisor/driver.js';
import { superuserTarget, withClient } from '../postgresql/connect.js';
import type { ReplicaRow } from './standby.js';

/**
 * What the backup coordinator asks of the local PostgreSQL, over one
 * short-lived connection per question (connect.ts): the archiver's
 * statistics (on the leader), the system identifier (is the repository
 * this cluster's?), and the databases' size (what a backup will read).
 */
export interface ArchiverStats {
  lastArchivedWal: string | null;
  lastArchivedAt: number | null;
  failedCount: number;
  lastFailedWal: string | null;
  lastFailedAt: number | null;
  /** Completed segments not archived yet (pg_wal/archive_status/*.ready), and when the oldest of them was completed. */
  waiting: number;
  oldestWaitingAt: number | null;
}

export interface LocalDatabase {
  archiver(signal: AbortSignal): Promise<ArchiverStats>;
  systemId(signal: AbortSignal): Promise<string>;
  databaseBytes(signal: AbortSignal): Promise<number>;
  /**
   * Right after a promotion pg_control still names the old timeline until
   * the first checkpoint on the new one completes, and pgBackRest refuses a
   * backup then ("WAL timeline 3 does not match pg_control timeline 2"). Runs
   * that checkpoint now when it is due; true when one was needed.
   */
  checkpointNewTimeline(signal: AbortSignal): Promise<boolean>;
  /** On the leader: its followers as pg_stat_replication shows them (application_name is the member id), for a backup from one of them. */
  replicas(signal: AbortSignal): Promise<ReplicaRow[]>;
}

export function localDatabase(ctx: DriverContext): LocalDatabase {
  const target = superuserTarget(ctx);
  return {
    archiver: (signal) =>
      withClient(target, signal, async (c) => {
        const row = (
          await c.query<{ last_archived_wal: string | null; last_archived_ms: string | null; failed_count: string; last_failed_wal: string | null; last_failed_ms: string | null; waiting: string; oldest_waiting_ms: string | null }>(
            `SELECT last_archived_wal, (extract(epoch FROM last_archived_time) * 1000)::bigint::text AS last_archived_ms,
                    failed_count::text, last_failed_wal, (extract(epoch FROM last_failed_time) * 1000)::bigint::text AS last_failed_ms,
                    w.n::text AS waiting, (extract(epoch FROM w.oldest) * 1000)::bigint::text AS oldest_waiting_ms
               FROM pg_stat_archiver,
                    (SELECT count(*) AS n, min(modification) AS oldest FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready') AS w`,
          )
        ).rows[0];
        if (!row) throw new Error('pg_stat_archiver returned no row');
        return {
          lastArchivedWal: row.last_archived_wal,
          lastArchivedAt: row.last_archived_ms === null ? null : Number(row.last_archived_ms),
          failedCount: Number(row.failed_count),
          lastFailedWal: row.last_failed_wal,
          lastFailedAt: row.last_failed_ms === null ? null : Number(row.last_failed_ms),
          waiting: Number(row.waiting),
          oldestWaitingAt: row.oldest_waiting_ms === null ? null : Number(row.oldest_waiting_ms),
        };
      }),
    systemId: (signal) => withClient(target, signal, async (c) => (await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]!.id),
    checkpointNewTimeline: (signal) =>
      withClient(target, signal, async (c) => {
        const row = (
          await c.query<{ control: number; current: number }>(
            `SELECT (SELECT timeline_id FROM pg_control_checkpoint()) AS control,
                    ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS current`,
          )
        ).rows[0]!;
        if (row.control >= row.current) return false;
        await c.query('CHECKPOINT');
        return true;
      }),
    replicas: (signal) =>
      withClient(target, signal, async (c) =>
        (
          await c.query<{ member: string; state: string; sync_state: string; lag: string | null }>(
            `SELECT application_name AS member, state, sync_state,
                    (CASE WHEN replay_lsn IS NULL THEN NULL ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) END)::bigint::text AS lag
               FROM pg_stat_replication`,
          )
        ).rows.map((r) => ({ member: r.member, state: r.state, syncState: r.sync_state, replayLagBytes: r.lag === null ? null : Math.max(0, Number(r.lag)) })),
      ),
    databaseBytes: (signal) => withClient(target, signal, async (c) => Number((await c.query<{ n: string }>('SELECT sum(pg_database_size(oid))::text AS n FROM pg_database')).rows[0]!.n)),
  };
}

/** The archiver fails now: its last failure is newer than its last success. */
export function archiverFailing(a: ArchiverStats): boolean {
  if (a.lastFailedAt === null) return false;
  return a.lastArchivedAt === null || a.lastFailedAt > a.lastArchivedAt;
}

/**
 * The WAL segment an archived file stands for: a segment's own name, or the
 * segment a backup history file (SEGMENT.OFFSET.backup) is named after, which
 * PostgreSQL archives after that segment. A timeline history file and the
 * old timeline's last partial segment (archived by a new leader) stand for
 * none: undefined, and the last segment seen stays the one to go by.
 */
export function archivedSegment(name: string | null): string | undefined {
  const m = name === null ? null : /^([0-9A-F]{24})(\.[0-9A-F]{8}\.backup)?$/.exec(name);
  return m ? m[1] : undefined;
}
