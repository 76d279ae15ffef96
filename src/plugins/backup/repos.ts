import type { ArchiveRange, BackupInfo, RepoStatus } from './info.js';
import type { BackupSettings } from './settings.js';

/**
 * The two repositories (`repo_path`, `repo2_path`), the pure parts:
 * which are configured, an operator's `--repo`, each repository's archive
 * state (from `pgbackrest info` and the async archive-push's error files)
 * and which repository a restore reads.
 *
 * pgBackRest 2.45 pushes every WAL segment to every repository. With
 * archive-async, the background process tries each repository in turn: a
 * segment that one repository refuses still reaches the other, but the
 * push as a whole fails (its `.error` file in the spool names the
 * repository), so PostgreSQL keeps the segment's `.ready` file, retries,
 * and counts a failure in pg_stat_archiver. pg_wal grows until the queue
 * passes `archive_push_queue_max` (one limit for the whole queue, not per
 * repository); pgBackRest then drops the oldest segments (says so in
 * PostgreSQL's log) and tells PostgreSQL they are archived, in every
 * repository's name.
 */
export type RepoNumber = 1 | 2;

export class RepoRefused extends Error {}

/** The repositories configured: [1], or [1, 2] with repo2_path. */
export function configuredRepos(s: Pick<BackupSettings, 'repoPath' | 'repo2Path'>): RepoNumber[] {
  if (s.repoPath === '') return [];
  return s.repo2Path === '' ? [1] : [1, 2];
}

export function repoPath(s: Pick<BackupSettings, 'repoPath' | 'repo2Path'>, repo: number): string {
  return repo === 2 ? s.repo2Path : s.repoPath;
}

/**
 * An operator's `--repo` (a number or its text); undefined stays undefined.
 * Refused unless it is 1, or 2 with repo2_path set.
 */
export function parseRepo(v: unknown, s: Pick<BackupSettings, 'repoPath' | 'repo2Path'>): RepoNumber | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\s*\d+\s*$/.test(v) ? Number(v) : NaN;
  if (n !== 1 && n !== 2) throw new RepoRefused(`repository must be 1 or 2, got ${JSON.stringify(typeof v === 'string' ? v.slice(0, 40) : v)}`);
  if (n === 2 && s.repo2Path === '') throw new RepoRefused('repository 2 is not configured: set [service.postgresql.backup] repo2_path on every member');
  return n;
}

/** A segment the async archive-push could not push, as its spool `.error` file says. */
export interface PushError {
  segment: string;
  message: string;
  /** When pgBackRest wrote it (ms since the epoch). */
  at: number;
}

/**
 * A spool `.error` file: its first line is pgBackRest's error code, the rest
 * the message. With two repositories 2.45 says which refused it, e.g.
 * `repo1: [FileOpenError] unable to open file ...`; a message naming no
 * repository is counted against every repository.
 */
export function parsePushError(segment: string, text: string, at: number): PushError {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  const body = /^\d+$/.test(lines[0] ?? '') ? lines.slice(1) : lines;
  return { segment, message: body.join(' ').replace(/\s+/g, ' ').slice(0, 600), at };
}

/** The repositories a push error names (`repo1:`, `repo2:`, `repository 1`), or every one when it names none. */
export function reposNamed(message: string, repos: readonly RepoNumber[]): RepoNumber[] {
  const named = repos.filter((r) => new RegExp(`\\brepo${r}\\b|\\brepository ${r}\\b`).test(message));
  return named.length > 0 ? named : [...repos];
}

export type RepoArchiveCondition = 'ok' | 'behind' | 'failing' | 'unreadable';

export interface RepoArchiveState {
  repo: RepoNumber;
  path: string;
  /** ok; behind: its newest segment is older than another repository's; failing: the archive-push fails for it now; unreadable: info cannot read it. */
  state: RepoArchiveCondition;
  /** The newest WAL segment it holds (info), null when none or unreadable. */
  newest_wal: string | null;
  /** Segments behind the newest any repository holds (same timeline); null when unknown. */
  behind: number | null;
  /** Why: the push error naming it (the newest), or info's status of it. */
  detail: string | null;
}

/** A segment's position on its timeline (TTTTTTTT LLLLLLLL SSSSSSSS, 16 MiB segments: 256 a log). */
function segmentNumber(wal: string): number {
  return parseInt(wal.slice(8, 16), 16) * 256 + parseInt(wal.slice(16, 24), 16);
}

/**
 * Each configured repository's archive: its newest segment and how far
 * behind the other it is, failing while the newest push error names it
 * (errors older than `since`, the last successful push, are over), and
 * unreadable when info says it cannot read it (status 99).
 */
export function repoArchiveStates(input: {
  settings: Pick<BackupSettings, 'repoPath' | 'repo2Path'>;
  repos: RepoStatus[];
  archives: ArchiveRange[];
  pushErrors: PushError[];
}): RepoArchiveState[] {
  const repos = configuredRepos(input.settings);
  const newestOf = (r: number): string | null => {
    let max: string | null = null;
    for (const a of input.archives) if (a.repo === r && a.max !== null && (max === null || a.max > max)) max = a.max;
    return max;
  };
  const newest = repos.map(newestOf).reduce<string | null>((m, x) => (x !== null && (m === null || x > m) ? x : m), null);
  const lastError = new Map<number, PushError>();
  for (const e of [...input.pushErrors].sort((a, b) => a.at - b.at)) for (const r of reposNamed(e.message, repos)) lastError.set(r, e);
  return repos.map((repo) => {
    const path = repoPath(input.settings, repo);
    const status = input.repos.find((x) => x.key === repo);
    const mine = newestOf(repo);
    const behind = mine !== null && newest !== null && mine.slice(0, 8) === newest.slice(0, 8) ? segmentNumber(newest) - segmentNumber(mine) : mine === null && newest !== null ? null : 0;
    const err = lastError.get(repo);
    if (status && status.code === 99) return { repo, path, state: 'unreadable', newest_wal: null, behind: null, detail: status.message };
    if (err) return { repo, path, state: 'failing', newest_wal: mine, behind, detail: `segment ${err.segment}: ${err.message}` };
    if (newest !== null && mine !== newest) return { repo, path, state: 'behind', newest_wal: mine, behind, detail: null };
    return { repo, path, state: 'ok', newest_wal: mine, behind, detail: null };
  });
}

/** One line per repository that is not ok, for warnings and refusals. */
export function describeRepoState(s: RepoArchiveState): string {
  const where = `repository ${s.repo} (${s.path})`;
  switch (s.state) {
    case 'ok':
      return `${where}: WAL archived up to ${s.newest_wal ?? 'none yet'}`;
    case 'behind':
      return `${where}: WAL archived up to ${s.newest_wal ?? 'none'}, ${s.behind ?? '?'} segment(s) behind the other repository`;
    case 'failing':
      return `${where}: WAL archiving to it fails (${s.detail ?? 'no detail'}); archived up to ${s.newest_wal ?? 'none'}`;
    case 'unreadable':
      return `${where}: cannot be read (${s.detail ?? 'no detail'})`;
  }
}

export type RestoreNeed = { kind: 'latest' } | { kind: 'time'; time: string } | { kind: 'lsn'; lsn: string } | { kind: 'set'; label: string };

/**
 * Which repository a restore reads. `asked` (the operator's --repo) must
 * hold a backup for the target; otherwise the first repository that does
 * and is not failing. A target only a failing (or unreadable) repository
 * can serve is refused naming that repository and why. `reaches(b)` says
 * whether a backup can start a restore to the target (time and LSN: it
 * ended before it); `lsnOrder` compares LSN text.
 */
export function chooseRestoreRepo(input: {
  need: RestoreNeed;
  asked: RepoNumber | undefined;
  repos: readonly RepoNumber[];
  backups: readonly Pick<BackupInfo, 'label' | 'repo' | 'error' | 'stoppedAt' | 'lsnStop'>[];
  states: readonly RepoArchiveState[];
  lsnValue: (lsn: string) => number;
}): RepoNumber {
  const { need } = input;
  const serves = (b: (typeof input.backups)[number]): boolean => {
    if (b.error) return false;
    switch (need.kind) {
      case 'set':
        return b.label === need.label;
      case 'latest':
        return true;
      case 'time':
        return b.stoppedAt.getTime() <= Date.parse(need.time.replace(' ', 'T').replace(/\+00$/, 'Z'));
      case 'lsn':
        return b.lsnStop !== null && input.lsnValue(b.lsnStop) <= input.lsnValue(need.lsn);
    }
  };
  const holding = input.repos.filter((r) => input.backups.some((b) => b.repo === r && serves(b)));
  const noun = need.kind === 'set' ? `backup ${need.label}` : need.kind === 'latest' ? 'usable backup' : `backup that ended before ${need.kind === 'time' ? need.time : need.lsn}`;
  const what = need.kind === 'set' ? noun : `a ${noun}`;
  if (input.asked !== undefined) {
    if (!holding.includes(input.asked)) {
      throw new RepoRefused(`repository ${input.asked} holds no ${noun}${holding.length > 0 ? `; repository ${holding.join(' and ')} does` : ''}`);
    }
    return input.asked;
  }
  const bad = (r: RepoNumber) => input.states.find((s) => s.repo === r && (s.state === 'failing' || s.state === 'unreadable'));
  const good = holding.find((r) => !bad(r));
  if (good !== undefined) return good;
  const only = holding[0];
  if (only === undefined) throw new RepoRefused(`no repository holds ${what}`);
  throw new RepoRefused(`only repository ${only} holds ${what}, and it fails: ${describeRepoState(bad(only)!)}; give --repo ${only} to restore from it anyway`);
}
