import { jsonObjectPayload, memberServiceKey } from './key.js';

/**
 * The backup rumor: what a member's backup coordinator says about backups
 * of its PostgreSQL service group (key MEMBER/SVC.GROUP, beside its service
 * and role rumors). The leader's says the most: it creates the stanza,
 * watches archiving and runs backup jobs; a follower's says only whether
 * backups are on in its config. Published by the daemon when the report
 * changes (src/plugins/backup/coordinator.ts makes it); /cluster and
 * `hasup status` show the leader's (pickBackupReport). It must fit in one
 * gossip datagram with room to spare: messages are cut (encodeBackupReport).
 */
export const RUMOR_BACKUP = 'backup';

/** off: backups are off here; unknown: not the leader, so not looked at; creating: stanza-create and check run; ok; failed: the last try failed (retried with backoff). */
export type StanzaState = 'off' | 'unknown' | 'creating' | 'ok' | 'failed';

export interface ArchiveReport {
  /** The newest WAL segment the leader archived (pg_stat_archiver; a timeline history or partial file archived since leaves the segment before it). */
  last_archived_wal: string | null;
  last_archived_at: number | null;
  /** Failures since the statistics were reset (PostgreSQL counts them all). */
  failed_count: number;
  last_failed_wal: string | null;
  last_failed_at: number | null;
  /** The last attempt failed: no success since the last failure. */
  failing: boolean;
  /** While failing: pgBackRest's reason (with two repositories it names the one that refuses), secrets scrubbed; absent when unknown. */
  failing_reason?: string;
  /** Completed segments waiting to be archived, and when the oldest was completed; absent from members before them. */
  waiting?: number;
  oldest_waiting_at?: number | null;
}

export interface BackupBrief {
  label: string;
  type: 'full' | 'diff' | 'incr';
  stopped_at: number;
  /** The member it was taken on, and whether that was a follower (backup-standby) or the leader; absent for a backup hasup did not annotate. */
  taken_on?: { role: 'leader' | 'follower'; member: string };
}

/** The newest backup set: a pgBackRest backup and the Elasticsearch snapshot paired with it (docs/backup.md, "Backup sets"). */
export interface SetBrief {
  /** The backup's label. */
  label: string;
  /** The snapshot paired with it, or null when it has none. */
  snapshot: string | null;
  /** The snapshot's state (SUCCESS, PARTIAL, FAILED, IN_PROGRESS), null without one. */
  state: string | null;
  /** Both sides there and the snapshot whole: the set restores the cluster as it was. */
  complete: boolean;
}

export interface JobBrief {
  id: string;
  kind: 'backup' | 'verify';
  type: 'full' | 'diff' | 'incr' | null;
  state: 'running' | 'done' | 'failed';
  percent: number | null;
  started_at: number;
  ended_at: number | null;
  /** Why it failed (cut short), null otherwise. */
  error: string | null;
}

/** The leader's backup schedules (backup.schedule_*), for the status: what runs next and whether backups keep up. */
export interface ScheduleReport {
  /** Per scheduled type, largest first. */
  types: Array<{
    type: 'full' | 'diff' | 'incr';
    cron: string;
    /** The next slot (ms since the epoch); null when the expression fires no more. */
    next_at: number | null;
    /** Between its next two slots; null when unknown. */
    period_ms: number | null;
    /** When the newest successful backup of this type or a larger one ended; null when none is known. */
    last_ok_at: number | null;
  }>;
  /** The last scheduled slot that did not go as planned (failed, interrupted, missed, not started), until a scheduled backup succeeds. */
  last_problem: { at: number; message: string } | null;
}

export interface BackupReport {
  /** repo_path is set in this member's PostgreSQL config. */
  enabled: boolean;
  repo_path: string;
  /** This member is the PostgreSQL leader and looks after the stanza, archiving and backup jobs. */
  active: boolean;
  stanza: StanzaState;
  /** When stanza-create and check last succeeded. */
  stanza_ok_at: number | null;
  /** The last failure of the stanza, a check or a backup job, and when. Never a secret. */
  last_error: { at: number; message: string } | null;
  /** When the stanza is retried next, while it is failing. */
  retry_at: number | null;
  /** The leader's archiver; null elsewhere or before its first look. */
  archive: ArchiveReport | null;
  last_full: BackupBrief | null;
  last_backup: BackupBrief | null;
  /** The start of the recoverability window: when the oldest usable backup (first repository) ended; absent from members before it. */
  window_from?: number | null;
  /** The running backup job, or the last one. */
  job: JobBrief | null;
  /** The leader's schedules; null when none is set, on a follower, and in reports of members from before schedules. */
  schedule?: ScheduleReport | null;
  /** The newest backup set, on the leader when Elasticsearch snapshots are on; absent otherwise (and from members before backup sets). */
  last_set?: SetBrief | null;
  /** This member's pgBackRest TLS server, which a follower's backup reaches the leader through; absent where none is kept. */
  server?: { state: 'off' | 'starting' | 'running' | 'failing'; reason: string | null };
  /** When this report was made (ms since the epoch). */
  at: number;
}

/** A report's rumor stays this small, so it rides in a gossip datagram (1400 bytes) beside others. */
export const MAX_BACKUP_RUMOR_BYTES = 900;

/** How much of the free-text fields is kept, tried in turn until the rumor fits. */
const CUTS: Array<[path: number, message: number, jobError: number]> = [
  [200, 240, 120],
  [120, 120, 60],
  [80, 40, 0],
  [40, 0, 0],
];

function cut(text: string, chars: number): string {
  if (text.length <= chars) return text;
  return chars === 0 ? '' : `${text.slice(0, chars - 1)}…`;
}

/** The report as a rumor payload: null fields left out (decoding restores them), free text cut to fit MAX_BACKUP_RUMOR_BYTES. */
export function encodeBackupReport(r: BackupReport): Uint8Array {
  let bytes = Buffer.alloc(0);
  for (const [path, message, jobError] of CUTS) {
    const small: Record<string, unknown> = {
      ...r,
      repo_path: cut(r.repo_path, path),
      last_error: r.last_error ? { at: r.last_error.at, message: cut(r.last_error.message, message) } : null,
      job: r.job ? { ...r.job, error: r.job.error === null ? null : cut(r.job.error, jobError) } : null,
      ...(r.server ? { server: { state: r.server.state, reason: r.server.reason === null ? null : cut(r.server.reason, jobError) } } : {}),
      schedule: r.schedule ? { ...r.schedule, types: r.schedule.types.map((t) => ({ ...t, cron: cut(t.cron, path / 4) })), last_problem: r.schedule.last_problem ? { at: r.schedule.last_problem.at, message: cut(r.schedule.last_problem.message, message) } : null } : null,
    };
    for (const key of Object.keys(small)) if (small[key] === null) delete small[key];
    bytes = Buffer.from(JSON.stringify(small));
    if (bytes.length <= MAX_BACKUP_RUMOR_BYTES) break;
  }
  return bytes;
}

export function backupRumorFor(memberId: string, serviceGroup: string, r: BackupReport, version: number): { kind: string; key: string; version: number; payload: Uint8Array } {
  return { kind: RUMOR_BACKUP, key: memberServiceKey(memberId, serviceGroup), version, payload: encodeBackupReport(r) };
}

/** A peer's report, or undefined when the payload is not a JSON object with the fields every report has. Never throws. */
export function decodeBackupReport(payload: Uint8Array): BackupReport | undefined {
  const data = jsonObjectPayload(payload);
  if (!data) return undefined;
  const d = data as Partial<BackupReport>;
  if (typeof d.enabled !== 'boolean' || typeof d.active !== 'boolean' || typeof d.stanza !== 'string' || typeof d.repo_path !== 'string' || typeof d.at !== 'number') return undefined;
  return {
    ...(d as BackupReport),
    stanza_ok_at: d.stanza_ok_at ?? null,
    last_error: d.last_error ?? null,
    retry_at: d.retry_at ?? null,
    archive: d.archive ?? null,
    last_full: d.last_full ?? null,
    last_backup: d.last_backup ?? null,
    job: d.job ?? null,
  };
}

export interface MemberBackupReport {
  member: string;
  report: BackupReport;
}

/**
 * The report to show for the cluster: the leader's when it has an active
 * one; else the newest active report (a leader that just lost its place, or
 * one this member does not know as leader yet); else this member's own;
 * else the newest of any (a member without PostgreSQL has none of its own).
 */
export function pickBackupReport(reports: MemberBackupReport[], leader: string | null, self: string): (MemberBackupReport & { from_leader: boolean }) | undefined {
  const fromLeader = leader === null ? undefined : reports.find((r) => r.member === leader && r.report.active);
  if (fromLeader) return { ...fromLeader, from_leader: true };
  const active = reports.filter((r) => r.report.active).sort((a, b) => b.report.at - a.report.at)[0];
  if (active) return { ...active, from_leader: false };
  const own = reports.find((r) => r.member === self) ?? [...reports].sort((a, b) => b.report.at - a.report.at)[0];
  return own ? { ...own, from_leader: false } : undefined;
}
