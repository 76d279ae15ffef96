import type { RestoreTarget } from '../../ha/index.js';
import { lsnText, parseLsn } from '../postgresql/replication-tools.js';
import { chooseRestoreRepo, RepoRefused, type RepoNumber } from './repos.js';
import type { BackupListing, RecoveryWindow } from './views.js';

/**
 * A restore target as an operator gives it (`--latest`, `--time T`,
 * `--lsn L`, `--set LABEL`), checked against the repository before
 * anything stops: a time or position the repository cannot reach is
 * refused with the recoverability window, a backup it does not hold with
 * the labels it does, and the cluster runs on untouched.
 */
export class RestoreTargetRefused extends Error {}

export interface RestoreTargetInput {
  latest?: boolean;
  time?: string;
  lsn?: string;
  /** A backup's label: restored to its end (a backup set, with its snapshot). */
  set?: string;
  /** The repository to restore from (1 or 2); with two repositories, hasup chooses when absent. */
  repo?: number;
}


/**
 * The repository a restore reads: none to choose with one repository
 * (pgBackRest's default; `repo` 2 refused); with two, the one asked for if
 * it holds a backup for the target, else the first that does and is not
 * failing (repos.ts). A target only a failing repository can serve is
 * refused naming it.
 */
export function withRestoreRepo(target: RestoreTarget, asked: number | undefined, listing: BackupListing): RestoreTarget {
  const two = listing.repo_path_2 !== undefined;
  if (asked !== undefined && asked !== 1 && asked !== 2) throw new RestoreTargetRefused(`repository must be 1 or 2, got ${asked}`);
  if (!two) {
    if (asked === 2) throw new RestoreTargetRefused('repository 2 is not configured (backup.repo2_path is empty)');
    return target;
  }
  try {
    const repo = chooseRestoreRepo({
      need: target.kind === 'time' ? { kind: 'time', time: target.time } : target,
      asked: asked as RepoNumber | undefined,
      repos: [1, 2],
      backups: listing.backups.map((b) => ({ label: b.label, repo: b.repo, error: b.error, stoppedAt: new Date(b.stopped_at), lsnStop: b.lsn_stop })),
      states: listing.repo_archive ?? [],
      lsnValue: parseLsn,
    });
    return { ...target, repo };
  } catch (err) {
    if (err instanceof RepoRefused) throw new RestoreTargetRefused(err.message);
    throw err;
  }
}

/** pgBackRest's labels: a full backup's, or a differential or incremental one's after the full it builds on. */
const BACKUP_LABEL = /^\d{8}-\d{6}F(_\d{8}-\d{6}[DI])?$/;

/** WAL segment size of the clusters hasup creates (initdb's default). */
const SEGMENT_BYTES = 16 * 1024 * 1024;

export function parseRestoreTarget(input: RestoreTargetInput): RestoreTarget {
  const given = [input.latest ? 'latest' : null, input.time !== undefined ? 'time' : null, input.lsn !== undefined ? 'lsn' : null, input.set !== undefined ? 'set' : null].filter((x) => x !== null);
  if (given.length !== 1) throw new RestoreTargetRefused(`give exactly one target: latest, time, lsn or set (got ${given.length === 0 ? 'none' : given.join(' and ')})`);
  if (input.latest) return { kind: 'latest' };
  if (input.set !== undefined) {
    const label = input.set.trim();
    if (!BACKUP_LABEL.test(label)) throw new RestoreTargetRefused(`${JSON.stringify(input.set.slice(0, 80))} is not a backup label such as 20261207-003702F or 20261207-003702F_20261207-013702I (hasup backup list shows them)`);
    return { kind: 'set', label };
  }
  if (input.time !== undefined) {
    const t = input.time.trim();
    // An explicit zone: a bare "03:00" would mean the server's zone to PostgreSQL and something else to the operator.
    if (!/^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)$/.test(t)) {
      throw new RestoreTargetRefused(`"${input.time}" is not a time with a zone, such as 2026-12-07T03:00:00Z or "2026-12-07 03:00:00+01"`);
    }
    const ms = Date.parse(t.replace(' ', 'T').replace(/([+-]\d{2})$/, '$1:00').replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
    if (Number.isNaN(ms)) throw new RestoreTargetRefused(`"${input.time}" is not a valid time`);
    return { kind: 'time', time: pgTime(ms) };
  }
  const lsn = input.lsn!.trim();
  if (!/^[0-9A-Fa-f]{1,8}\/[0-9A-Fa-f]{1,8}$/.test(lsn)) throw new RestoreTargetRefused(`"${input.lsn}" is not a WAL position such as 0/3000060`);
  return { kind: 'lsn', lsn: lsn.toUpperCase() };
}

/** The window of the repository given (else the first with a usable backup), or a refusal saying why there is none. */
export function restoreWindow(listing: BackupListing, repo?: number): RecoveryWindow {
  const where = repo === 2 && listing.repo_path_2 ? `repository 2 (${listing.repo_path_2})` : `the repository ${listing.repo_path}`;
  if (!listing.stanza.exists) throw new RestoreTargetRefused(`${where} holds no stanza yet: nothing to restore`);
  const w = repo === undefined ? listing.recoverable[0] : listing.recoverable.find((x) => x.repo === repo);
  if (!w) throw new RestoreTargetRefused(`${where} holds no usable backup: nothing to restore`);
  return w;
}

/** Refuses a target outside `w` (time and LSN targets), naming the window. */
export function checkTargetInWindow(target: RestoreTarget, w: RecoveryWindow, listing: BackupListing, nowMs: number): void {
  const oldest = listing.backups.find((b) => b.label === w.from_backup);
  const lsnFrom = oldest?.lsn_stop ?? null;
  const lsnTo = segmentEnd(w.to_wal);
  const window = `the repository can restore from ${w.from} (the end of backup ${w.from_backup}${lsnFrom ? `, WAL ${lsnFrom}` : ''}) to the end of WAL ${w.to_wal} (${lsnText(lsnTo)}${w.to ? `, archived ${w.to}` : ''})`;
  if (target.kind === 'time') {
    const t = Date.parse(target.time.replace(' ', 'T').replace(/\+00$/, 'Z'));
    if (t < Date.parse(w.from)) throw new RestoreTargetRefused(`time ${target.time} is before the recoverability window: ${window}`);
    const to = w.to ? Date.parse(w.to) : nowMs;
    if (t > to) throw new RestoreTargetRefused(`time ${target.time} is after the recoverability window: ${window}`);
  } else if (target.kind === 'lsn') {
    const at = parseLsn(target.lsn);
    if (lsnFrom && at < parseLsn(lsnFrom)) throw new RestoreTargetRefused(`WAL position ${target.lsn} is before the recoverability window: ${window}`);
    if (at > lsnTo) throw new RestoreTargetRefused(`WAL position ${target.lsn} is after the recoverability window: ${window}`);
  }
}

/** Refuses a backup the repository does not hold, naming the ones it does (and one with page checksum errors). */
export function checkSetInRepository(label: string, listing: BackupListing): void {
  if (!listing.stanza.exists) throw new RestoreTargetRefused(`the repository ${listing.repo_path} holds no stanza yet: nothing to restore`);
  const backup = listing.backups.find((b) => b.label === label);
  if (!backup) {
    const labels = listing.backups.map((b) => b.label);
    throw new RestoreTargetRefused(`there is no backup ${label} in the repository ${listing.repo_path}; it holds ${labels.length === 0 ? 'no backup' : labels.join(', ')}`);
  }
  if (backup.error) throw new RestoreTargetRefused(`backup ${label} had page checksum errors when it was taken: restore another one (${listing.backups.filter((b) => !b.error).map((b) => b.label).join(', ') || 'none is clean'})`);
}

/** "2026-12-07 03:00:00.123+00", as PostgreSQL's recovery_target_time reads it. */
function pgTime(ms: number): string {
  return `${new Date(ms).toISOString().replace('T', ' ').replace('Z', '')}+00`;
}

/** The position just past a WAL segment (TTTTTTTTXXXXXXXXYYYYYYYY). */
function segmentEnd(segment: string): number {
  const log = parseInt(segment.slice(8, 16), 16);
  const seg = parseInt(segment.slice(16, 24), 16);
  return log * 2 ** 32 + (seg + 1) * SEGMENT_BYTES;
}
