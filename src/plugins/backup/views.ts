import type { RepoArchiveState } from './repos.js';
import type { ArchiveReport, ScheduleReport } from '../../supervisor/rumors/backup.js';
import { STANZA } from './files.js';
import type { ArchiveRange, BackupInfo, BackupType, StanzaInfo } from './info.js';
import type { BackupSetJson } from './set-views.js';
import { sourceOf, type BackupSourceRole } from './standby.js';
import { segmentNumber, type VerifyReport, type WalRange } from './verify.js';

/**
 * What the backup routes answer and the CLI prints, as plain JSON (times as
 * ISO strings, sizes in bytes), built from pgBackRest's answers by pure
 * functions: the listing with its recoverability window, and the verdict of
 * a verify run with hasup's own checks added to pgBackRest's.
 */
export interface BackupJson {
  label: string;
  type: BackupType;
  repo: number;
  started_at: string;
  stopped_at: string;
  /** The database's size when it was backed up. */
  database_bytes: number;
  /** What this backup copied (all of it for a full backup). */
  backup_bytes: number;
  /** This backup as stored (compressed) in the repository. */
  repo_bytes: number;
  /** It and the backups it needs, as stored. */
  repo_set_bytes: number;
  wal_start: string | null;
  wal_stop: string | null;
  lsn_start: string | null;
  lsn_stop: string | null;
  prior: string | null;
  /** pgBackRest saw a page checksum error while copying. */
  error: boolean;
  /** Where it was taken (a follower, with backup-standby, or the leader), from hasup's annotations; null for a backup hasup did not annotate. */
  source?: { role: BackupSourceRole; member: string } | null;
}

export function backupJson(b: BackupInfo): BackupJson {
  return {
    label: b.label,
    type: b.type,
    repo: b.repo,
    started_at: b.startedAt.toISOString(),
    stopped_at: b.stoppedAt.toISOString(),
    database_bytes: b.databaseSize,
    backup_bytes: b.backupSize,
    repo_bytes: b.repoBackupSize,
    repo_set_bytes: b.repoSetSize,
    wal_start: b.walStart,
    wal_stop: b.walStop,
    lsn_start: b.lsnStart,
    lsn_stop: b.lsnStop,
    prior: b.prior,
    error: b.error,
    source: sourceOf(b.annotations),
  };
}

/**
 * The span a point-in-time restore could reach from one repository: from
 * the end of its oldest backup to the end of its newest archived WAL
 * segment. That the WAL between them is all there is what `verify`
 * checks; the listing only reads pgBackRest's catalogue.
 */
export interface RecoveryWindow {
  repo: number;
  /** The earliest consistent point: when the oldest backup ended. */
  from: string;
  from_backup: string;
  /** The newest archived segment; a restore can replay to its end. */
  to_wal: string;
  /** When the leader archived that segment, if this member knows (the leader's report). */
  to: string | null;
}

export interface BackupListing {
  /** The member that read the repository. */
  member: string;
  repo_path: string;
  stanza: { name: string; exists: boolean; status: { code: number; message: string }; system_id: string | null; pg_version: string | null; cipher: string[] };
  /** A backup holds this member's pgBackRest lock now. */
  backup_running: boolean;
  /** Oldest first. */
  backups: BackupJson[];
  /** The oldest and newest archived WAL segment, per repository. */
  archives: ArchiveRange[];
  /** Per repository with a backup. */
  recoverable: RecoveryWindow[];
  /** The backup sets (each backup with its Elasticsearch snapshot, or none), oldest first; absent when snapshots are off on the member that read the repository. */
  sets?: BackupSetJson[];
  /** Why the sets are unknown (the snapshots could not be listed); absent otherwise. */
  sets_error?: string;
  /** The second repository's path, when there is one. */
  repo_path_2?: string;
  /** With two repositories, each one's WAL archive: ok, behind, failing (the archive-push's error naming it) or unreadable. */
  repo_archive?: RepoArchiveState[];
}

export function backupListing(input: { member: string; repoPath: string; info: StanzaInfo; archive: ArchiveReport | null }): BackupListing {
  const { info } = input;
  return {
    member: input.member,
    repo_path: input.repoPath,
    stanza: { name: info.name, exists: info.exists, status: info.status, system_id: info.systemId, pg_version: info.pgVersion, cipher: info.repos.map((r) => r.cipher) },
    backup_running: info.backupRunning,
    backups: info.backups.map(backupJson),
    archives: info.archives,
    recoverable: recoveryWindows(info, input.archive),
  };
}

export function recoveryWindows(info: StanzaInfo, archive: ArchiveReport | null): RecoveryWindow[] {
  const repos = [...new Set(info.backups.map((b) => b.repo))].sort((a, b) => a - b);
  const out: RecoveryWindow[] = [];
  for (const repo of repos) {
    const usable = info.backups.filter((b) => b.repo === repo && !b.error).sort((a, b) => a.stoppedAt.getTime() - b.stoppedAt.getTime());
    const oldest = usable[0];
    if (!oldest) continue;
    let max: string | null = null;
    for (const a of info.archives) if (a.repo === repo && a.max !== null && (max === null || a.max > max)) max = a.max;
    const toWal = max !== null && (oldest.walStop === null || max >= oldest.walStop) ? max : (oldest.walStop ?? max);
    if (toWal === null) continue;
    const to = archive && archive.last_archived_wal === toWal && archive.last_archived_at !== null ? new Date(archive.last_archived_at).toISOString() : null;
    out.push({ repo, from: oldest.stoppedAt.toISOString(), from_backup: oldest.label, to_wal: toWal, to });
  }
  return out;
}

// ---- verify -------------------------------------------------------------------

export type CheckStatus = 'ok' | 'failed' | 'warning' | 'skipped';

export interface VerifyCheck {
  name: string;
  status: CheckStatus;
  detail: string;
}

export interface VerifyOutcome {
  /** No check failed (warnings allowed). */
  ok: boolean;
  member: string;
  repo: number;
  repo_path: string;
  checked_at: string;
  took_ms: number;
  /** pgBackRest's report, with the WAL gaps and unusable backups hasup adds (verify.ts). */
  report: VerifyReport;
  checks: VerifyCheck[];
  /** Every fault, one line each, files named with their path in the repository. */
  problems: string[];
  warnings: string[];
}

export interface VerifyInput {
  member: string;
  repo: number;
  repoPath: string;
  report: VerifyReport;
  /** `info` read after verify; null when it could not be read. */
  info: StanzaInfo | null;
  /** The local PostgreSQL's system identifier, or why it is unknown. */
  localSystemId: string | { unknown: string };
  /** The leader's archiver as the cluster's backup report has it, if any. */
  leaderArchive: { member: string; archive: ArchiveReport } | null;
  startedAt: number;
  endedAt: number;
}

/**
 * pgBackRest's verdict and hasup's own checks, each named:
 *  - files: every backup file and archived segment matches its checksum and size (pgBackRest);
 *  - wal-continuity: no hole in the archived WAL (hasup, from pgBackRest's ranges);
 *  - backups-usable: no backup is invalid or depends on one (hasup);
 *  - backup-wal: the WAL each backup needs to be consistent is in the archive (hasup);
 *  - system-id: the repository belongs to this cluster's database (hasup);
 *  - archive-current: the leader archives, and the repository holds what it says it archived (hasup);
 *  - usable-full: a full backup to restore from exists (a warning when not).
 */
export function verifyOutcome(input: VerifyInput): VerifyOutcome {
  const { report, info, repoPath, repo } = input;
  const checks: VerifyCheck[] = [];
  const problems: string[] = [];
  const warnings: string[] = [];
  /** `lines`: the problems it adds (its detail when not given; none when they are already said by another check). */
  const check = (name: string, status: CheckStatus, detail: string, lines?: string[]) => {
    checks.push({ name, status, detail });
    if (status === 'failed') problems.push(...(lines ?? [detail]));
    if (status === 'warning') warnings.push(detail);
  };
  const stanzaDir = (what: 'backup' | 'archive') => `${repoPath.replace(/\/+$/, '')}/${what}/${STANZA}`;
  const where = (file: string) => `${/^\d{8}-\d{6}F/.test(file) ? stanzaDir('backup') : stanzaDir('archive')}/${file}`;

  // files
  const invalid = report.backups.filter((b) => b.status === 'invalid' || b.status === 'manifest missing');
  const fileLines = [
    ...report.problems.map((p) => `${p.fault}: ${where(p.file)}${p.detail ? ` (${p.detail})` : ''}`),
    ...invalid.map((b) => `backup ${b.label} is ${b.status}`),
  ];
  if (report.pgbackrestOk && fileLines.length === 0) {
    const files = report.backups.reduce((n, b) => n + b.checked, 0);
    const wal = report.archives.reduce((n, a) => n + a.checked, 0);
    check('files', 'ok', `${report.backups.length} backup(s), ${files} file(s) and ${wal} WAL segment(s) match their checksums and sizes`);
  } else {
    const lines = fileLines.length > 0 ? fileLines : [`pgBackRest verify reported errors: ${report.messages.join('; ') || 'no detail'}`];
    const detail = [`${report.problems.length} file(s) at fault`, ...(invalid.length > 0 ? [`invalid backup(s): ${invalid.map((b) => b.label).join(', ')}`] : [])].join('; ');
    check('files', 'failed', detail, lines);
  }

  // wal-continuity
  if (report.walGaps.length === 0) check('wal-continuity', 'ok', report.walRanges.length > 0 ? `archived WAL is continuous (${report.walRanges.length} range(s) across timelines)` : 'no archived WAL to check');
  else {
    const lines = report.walGaps.map((g) => `WAL missing from the archive between ${g.after} and ${g.before} (archive ${g.archiveId}): no point-in-time recovery across it`);
    check('wal-continuity', 'failed', `${report.walGaps.length} gap(s) in the archived WAL`, lines);
  }

  // backups-usable
  const invalidLabels = new Set(invalid.map((b) => b.label));
  const dependents = report.unusable.filter((l) => !invalidLabels.has(l));
  if (report.unusable.length === 0) check('backups-usable', 'ok', 'every backup can be restored as far as its files and WAL go');
  else {
    // The invalid ones are said by the files check; the others are named here.
    const lines = dependents.map((l) => `backup ${l} cannot be restored: it needs WAL missing from the archive or depends on a backup that is unusable`);
    check('backups-usable', 'failed', `unusable backups: ${report.unusable.join(', ')}`, lines);
  }

  // backup-wal
  const backups = (info?.backups ?? []).filter((b) => b.repo === repo);
  const walChecked = report.archives.reduce((n, a) => n + a.checked, 0);
  if (info === null) check('backup-wal', 'skipped', 'pgbackrest info could not be read');
  else if (backups.length === 0) check('backup-wal', 'skipped', 'no backup in the repository');
  else if (report.walRanges.length === 0 && walChecked > 0) check('backup-wal', 'skipped', "pgBackRest's log named no WAL ranges");
  else {
    const missing = backups.filter((b) => b.walStart !== null && b.walStop !== null && !covered(report.walRanges, b.walStart, b.walStop));
    if (missing.length === 0) check('backup-wal', 'ok', `the WAL of each of ${backups.length} backup(s) is in the archive`);
    else check('backup-wal', 'failed', `${missing.length} backup(s) lack WAL`, missing.map((b) => `backup ${b.label} needs WAL ${b.walStart} to ${b.walStop}, which the archive does not hold`));
  }

  // system-id
  if (typeof input.localSystemId !== 'string') check('system-id', 'skipped', `the local PostgreSQL's system identifier is unknown (${input.localSystemId.unknown})`);
  else if (info === null || info.systemId === null) check('system-id', 'skipped', 'the repository names no system identifier yet');
  else if (info.systemId === input.localSystemId) check('system-id', 'ok', `the repository is this cluster's (system identifier ${info.systemId})`);
  else check('system-id', 'failed', `the repository belongs to another database: its system identifier is ${info.systemId}, this cluster's is ${input.localSystemId}`);

  // archive-current
  const leader = input.leaderArchive;
  const repoMax = (info?.archives ?? []).filter((a) => a.repo === repo && a.max !== null).map((a) => a.max!).sort().pop() ?? null;
  if (!leader) check('archive-current', 'skipped', "no leader's archiver report is known here");
  else if (leader.archive.failing) {
    const when = leader.archive.last_failed_at === null ? '' : ` at ${new Date(leader.archive.last_failed_at).toISOString()}`;
    check('archive-current', 'failed', `archiving fails on the leader ${leader.member}: segment ${leader.archive.last_failed_wal ?? '?'} failed${when}, no success since`);
  } else if (leader.archive.last_archived_wal !== null && (repoMax === null || repoMax < leader.archive.last_archived_wal)) {
    check('archive-current', 'failed', `the leader ${leader.member} archived ${leader.archive.last_archived_wal}, but the repository's newest segment is ${repoMax ?? 'none'}`);
  } else check('archive-current', 'ok', leader.archive.last_archived_wal ? `the leader archives; the repository holds its newest segment ${leader.archive.last_archived_wal}` : 'the leader has archived nothing yet');

  // usable-full
  const unusable = new Set(report.unusable);
  const fulls = backups.filter((b) => b.type === 'full' && !b.error && !unusable.has(b.label));
  if (info === null) check('usable-full', 'skipped', 'pgbackrest info could not be read');
  else if (fulls.length === 0) check('usable-full', 'warning', 'no usable full backup in the repository: there is nothing to restore from (hasup backup create --type full)');
  else check('usable-full', 'ok', `${fulls.length} usable full backup(s), newest ${fulls[fulls.length - 1]!.label}`);

  return {
    ok: !checks.some((c) => c.status === 'failed'),
    member: input.member,
    repo,
    repo_path: repoPath,
    checked_at: new Date(input.endedAt).toISOString(),
    took_ms: input.endedAt - input.startedAt,
    report,
    checks,
    problems,
    warnings,
  };
}

const timeline = (segment: string) => parseInt(segment.slice(0, 8), 16);

/** A range holds every segment from start to stop (on the timelines it spans). */
function covered(ranges: WalRange[], start: string, stop: string): boolean {
  return ranges.some(
    (r) =>
      segmentNumber(r.start) <= segmentNumber(start) &&
      segmentNumber(r.stop) >= segmentNumber(stop) &&
      timeline(r.start) <= timeline(start) &&
      timeline(r.stop) >= timeline(stop),
  );
}

// ---- schedules ------------------------------------------------------------------

/** How far behind its schedule a type's newest backup may fall before the status warns: two periods. */
export const STALE_PERIODS = 2;

export interface ScheduleLine {
  type: BackupType;
  next_at: number | null;
  /** The newest backup of this type or a larger one is older than two of the schedule's periods. */
  stale: { last_ok_at: number; period_ms: number } | null;
}

/**
 * Per scheduled type: the next slot, and whether backups keep up with the
 * schedule. A type with no backup at all is not called stale (a schedule
 * newer than its first slot would be); the status says "no full backup
 * yet" already.
 */
export function scheduleLines(s: ScheduleReport, now: number): ScheduleLine[] {
  return s.types.map((t) => ({
    type: t.type,
    next_at: t.next_at,
    stale: t.last_ok_at !== null && t.period_ms !== null && now - t.last_ok_at > STALE_PERIODS * t.period_ms ? { last_ok_at: t.last_ok_at, period_ms: t.period_ms } : null,
  }));
}
