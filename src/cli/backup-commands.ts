import { InvalidArgumentError, Option, type Command } from 'commander';
import type { JobView } from '../plugins/backup/coordinator.js';
import type { BackupType } from '../plugins/backup/info.js';
import { formatBytes } from '../plugins/backup/pgbackrest.js';
import { describeRepoState } from '../plugins/backup/repos.js';
import type { BackupListing, VerifyOutcome } from '../plugins/backup/views.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { ApiClient, ApiError } from './api-client.js';

/**
 * Backups from the command line, through the local daemon's API
 * (docs/backup.md):
 *
 *   hasup backup create [--type full|diff|incr] [--repo 1|2] [--wait]   on the leader (a follower names it; the command goes there), into repository 1 unless told
 *   hasup backup list [--json]                              the repository's backups (with their Elasticsearch snapshots: backup sets), archive and recoverability window
 *   hasup backup verify [--repo 1|2] [--json]               pgBackRest's verify and hasup's checks, of every repository unless told; exit 1 when anything is wrong
 */
export interface Flags {
  stateDir: string;
  api?: string;
  secrets?: string;
  json?: boolean;
}

export function withFlags(cmd: Command): Command {
  return cmd
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .option('--json', 'print the answer as JSON');
}

export const client = (flags: Flags) => ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });

/** The API's own words for a refusal (it names what to do), without the method and status. */
export function plain(err: unknown): Error {
  return err instanceof ApiError && typeof err.body.error === 'string' ? new Error(err.body.error) : (err as Error);
}

const POLL_MS = 2000;
/** The daemon answers a verify within this; longer ones are polled as jobs. */
const VERIFY_WAIT_S = 240;

export function registerBackupCommands(program: Command): void {
  const backup = program.command('backup').description('backups of the PostgreSQL cluster with pgBackRest (set [service.postgresql.backup] repo_path on every member)');

  withFlags(backup.command('create'))
    .description('take a backup on the PostgreSQL leader (asked of a follower, the command goes to the leader)')
    .addOption(new Option('--type <type>', 'full, diff (changes since the last full) or incr (changes since the last backup)').choices(['full', 'diff', 'incr']).default('full'))
    .addOption(repoOption('the repository the backup goes into: 1 (repo_path, the default) or 2 (repo2_path)'))
    .option('--wait', 'wait for the backup to end, printing its progress')
    .action(async (flags: Flags & { type: BackupType; repo?: 1 | 2; wait?: boolean }) => {
      const body = { type: flags.type, ...(flags.repo ? { repo: flags.repo } : {}) };
      let api = client(flags);
      let answer: { job: JobView };
      try {
        answer = await api.request<{ job: JobView }>('POST', '/backup', body);
      } catch (err) {
        const leader = err instanceof ApiError && err.status === 421 ? (err.body.leader as { member?: string; api?: string | null } | undefined) : undefined;
        if (!leader) throw plain(err);
        if (!leader.api) throw new Error(`backups are taken on the leader, member ${leader.member ?? '?'}, whose API address this member does not know; run the command there`);
        if (!flags.json) console.error(`this member is not the leader; asking the leader ${leader.member ?? ''} at ${leader.api}`);
        api = api.at(leader.api);
        answer = await api.request<{ job: JobView }>('POST', '/backup', body).catch((e: unknown) => {
          throw plain(e);
        });
      }
      let job = answer.job;
      if (!flags.wait) {
        console.log(flags.json ? JSON.stringify(job, null, 2) : `backup job ${job.id} (${job.type}${flags.repo ? `, repository ${flags.repo}` : ''}) started on member ${job.member}; follow it at ${api.url}/backup/jobs/${job.id}, or run with --wait`);
        return;
      }
      if (!flags.json) console.log(`backup job ${job.id} (${job.type}) started on member ${job.member}`);
      job = await follow(api, `/backup/jobs/${job.id}`, job, progressText, (j) => {
        if (!flags.json) console.log(`  ${progressText(j)}`);
      });
      if (flags.json) console.log(JSON.stringify(job, null, 2));
      if (job.state === 'failed') throw new Error(`backup job ${job.id} failed: ${job.error ?? 'no reason given'}`);
      // An incomplete set is said beside the backup, which stands: the exit status is the backup's.
      if (!flags.json) console.log(backupDoneText(job));
    });

  withFlags(backup.command('list'))
    .description("the repository's backups (label, type, start and stop, sizes, WAL range) with their Elasticsearch snapshots when snapshots are on (backup sets), the archive's first and last WAL segment, and the recoverability window")
    .action(async (flags: Flags) => {
      const listing = await client(flags)
        .request<BackupListing>('GET', '/backups')
        .catch((err: unknown) => {
          throw plain(err);
        });
      console.log(flags.json ? JSON.stringify(listing, null, 2) : listingText(listing));
    });

  withFlags(backup.command('verify'))
    .description("check every backup file and archived WAL segment against its checksum (pgBackRest verify) and hasup's checks (WAL gaps, unusable backups, each backup's WAL, the repository's system id, the leader's archiving); exits 1 when anything is wrong")
    .option('--timeout <seconds>', 'give verify up after this long (default 6 hours, each repository)', positiveInt)
    .addOption(repoOption('verify this repository only (default: every configured one)'))
    .action(async (flags: Flags & { timeout?: number; repo?: 1 | 2 }) => {
      const api = client(flags);
      const body = { wait_s: VERIFY_WAIT_S, ...(flags.timeout ? { timeout_s: flags.timeout } : {}), ...(flags.repo ? { repo: flags.repo } : {}) };
      let job = (
        await api.request<{ job: JobView }>('POST', '/backup/verify', body, { timeoutMs: (VERIFY_WAIT_S + 30) * 1000 }).catch((err: unknown) => {
          throw plain(err);
        })
      ).job;
      if (job.state === 'running') {
        if (!flags.json) console.error(`verify job ${job.id} still runs on member ${job.member}; waiting for it`);
        job = await follow(api, `/backup/jobs/${job.id}`, job, progressText, () => undefined);
      }
      if (job.state === 'failed' || !job.verify) throw new Error(`verify job ${job.id} could not run: ${job.error ?? 'no verdict'}`);
      const outcomes = job.verify_repos ?? [job.verify];
      console.log(flags.json ? JSON.stringify(job.verify_repos ?? job.verify, null, 2) : outcomes.map(verifyText).join('\n\n'));
      for (const v of outcomes.filter((o) => !o.ok)) {
        console.error(`hasup: repository ${v.repo} (${v.repo_path}) has ${v.problems.length} problem(s)${v.problems[0] ? `, first: ${v.problems[0]}` : ''}`);
        process.exitCode = 1;
      }
    });
}

/** `--repo 1|2`: the number (the daemon refuses 2 when repo2_path is not set). */
export function repoOption(what: string): Option {
  return new Option('--repo <n>', what).choices(['1', '2']).argParser((v) => {
    if (v !== '1' && v !== '2') throw new InvalidArgumentError('1 or 2');
    return Number(v) as 1 | 2;
  });
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 10 || n > 86_400) throw new InvalidArgumentError('a whole number of seconds from 10 to 86400');
  return n;
}

/** Polls a job (at `path`, on the member that runs it) until it ends, telling `onChange` each new progress as `text` words it. */
export async function follow<J extends { id: string; kind: string; state: string }>(api: ApiClient, path: string, job: J, text: (j: J) => string, onChange: (j: J) => void): Promise<J> {
  let shown = '';
  let failures = 0;
  while (job.state === 'running') {
    await new Promise((r) => setTimeout(r, POLL_MS));
    try {
      job = (await api.request<{ job: J }>('GET', path, undefined, { timeoutMs: 10_000 })).job;
      failures = 0;
    } catch (err) {
      // The member that runs it may be busy for a moment; gone for good, the job is lost with it.
      if (++failures >= 5) throw new Error(`lost track of ${job.kind} job ${job.id} on ${api.url}: ${plain(err).message}`);
      continue;
    }
    const now = text(job);
    if (job.state === 'running' && now !== shown) {
      shown = now;
      onChange(job);
    }
  }
  return job;
}

/** e.g. `42% (10.1 MiB of 24.0 MiB)`, or `running (no progress yet)`. */
export function progressText(j: JobView): string {
  const p = j.progress;
  if (p.detail) return p.detail;
  if (p.percent === null) return `running${p.bytes_total !== null ? ` (database ${formatBytes(p.bytes_total)}; no progress reported yet)` : ' (no progress reported yet)'}`;
  const bytes = p.bytes_done !== null && p.bytes_total !== null ? ` (${formatBytes(p.bytes_done)} of ${formatBytes(p.bytes_total)})` : '';
  return `${p.percent.toFixed(p.percent % 1 === 0 ? 0 : 1)}%${bytes}`;
}

export function backupDoneText(j: JobView): string {
  const b = j.backup;
  if (!b) return `backup job ${j.id} done`;
  const took = j.took_ms !== null ? ` in ${(j.took_ms / 1000).toFixed(1)} s` : '';
  const upgraded = j.type !== null && j.type !== b.type ? ` (asked for ${j.type}: pgBackRest takes a full backup when there is none to build on)` : '';
  const done = `backup ${b.label} (${b.type}) done${took}${upgraded}${sourceText(j.source)}: database ${formatBytes(b.database_bytes)}, copied ${formatBytes(b.backup_bytes)}, ${formatBytes(b.repo_bytes)} in the repository; WAL ${b.wal_start ?? '?'} to ${b.wal_stop ?? '?'}`;
  return j.snapshot ? `${done}\n${snapshotOutcomeText(j.snapshot)}` : done;
}

/** Where a backup job's backup was taken: ` on follower X` (backup-standby), or ` on the leader X (why no follower took it)`. */
export function sourceText(source: JobView['source']): string {
  if (!source) return '';
  if (source.role === 'follower') return ` on follower ${source.member}${source.leader ? ` (a standby of the leader ${source.leader})` : ''}`;
  return ` on the leader ${source.member}${source.reason ? ` (${source.reason})` : ''}`;
}

/** The snapshot after a backup: the set complete, or why not; what retention deleted. */
export function snapshotOutcomeText(s: NonNullable<JobView['snapshot']>): string {
  const head = s.error === null ? `Elasticsearch snapshot ${s.name} taken in ${(s.took_ms / 1000).toFixed(1)} s: the backup set is complete` : `WARNING: the backup set is incomplete: ${s.error}`;
  const r = s.retention;
  const retention = r === null ? '' : r.error !== null ? `; snapshot retention stopped: ${r.error}` : r.deleted.length > 0 ? `; retention deleted ${r.deleted.join(', ')}` : '';
  return head + retention;
}

const when = (iso: string) => `${iso.slice(0, 19).replace('T', ' ')}Z`;

export function listingText(l: BackupListing): string {
  const st = l.stanza;
  const head = `repository ${l.repo_path} (stanza ${st.name}: ${st.exists ? st.status.message : 'not created yet'}${st.cipher.some((c) => c !== 'none') ? `, encrypted ${st.cipher.join('/')}` : ''}), read by member ${l.member}${l.backup_running ? '; a backup is running' : ''}`;
  const lines = [head];
  if (l.backups.length === 0) lines.push('no backups yet (hasup backup create --type full)');
  else {
    const sets = l.sets;
    // Where each backup was taken (a follower or the leader), when hasup annotated any of them.
    const sourced = l.backups.some((b) => b.source);
    const rows = [['LABEL', 'TYPE', 'REPO', ...(sourced ? ['TAKEN ON'] : []), 'STARTED', 'STOPPED', 'DATABASE', 'COPIED', 'IN REPO', 'WAL START', 'WAL STOP', ...(sets ? ['SNAPSHOT'] : [])]];
    for (const b of l.backups) {
      const set = sets?.find((s) => s.backup === b.label);
      rows.push([
        `${b.label}${b.error ? ' (page checksum errors)' : ''}`,
        b.type,
        String(b.repo),
        ...(sourced ? [b.source ? `${b.source.role} ${b.source.member}` : '-'] : []),
        when(b.started_at),
        when(b.stopped_at),
        formatBytes(b.database_bytes),
        formatBytes(b.backup_bytes),
        formatBytes(b.repo_bytes),
        b.wal_start ?? '-',
        b.wal_stop ?? '-',
        ...(sets ? [set?.snapshot ? `${set.snapshot.name} ${set.snapshot.state}${set.paired_by === 'time' ? ' (by time)' : ''}` : 'no snapshot'] : []),
      ]);
    }
    lines.push('', table(rows), '');
  }
  const alone = (l.sets ?? []).filter((s) => s.backup === null && s.snapshot);
  if (alone.length > 0) lines.push(`snapshots without a backup: ${alone.map((s) => `${s.snapshot!.name} ${s.snapshot!.state}`).join(', ')}`);
  if (l.sets_error) lines.push(`WARNING: the backup sets are unknown: ${l.sets_error}`);
  for (const a of l.archives) lines.push(`archive (repository ${a.repo}, ${a.id}): ${a.min === null ? 'no WAL yet' : `${a.min} to ${a.max}`}`);
  if (l.repo_path_2) lines.push(`repository 2: ${l.repo_path_2}`);
  for (const r of l.repo_archive ?? []) if (r.state !== 'ok') lines.push(`${r.state === 'behind' ? '' : 'WARNING: '}${describeRepoState(r)}`);
  for (const w of l.recoverable) {
    lines.push(`recoverable (repository ${w.repo}): from ${when(w.from)} (end of backup ${w.from_backup}) to the end of WAL ${w.to_wal}${w.to ? ` (archived ${when(w.to)})` : ''}; hasup backup verify checks the WAL between is all there`);
  }
  return lines.join('\n');
}

export function verifyText(v: VerifyOutcome): string {
  const lines = [`repository ${v.repo_path} (repository ${v.repo}) verified from member ${v.member} in ${(v.took_ms / 1000).toFixed(1)} s: ${v.ok ? 'OK' : 'PROBLEMS FOUND'}`];
  const rows = v.checks.map((c) => [c.status === 'ok' ? 'ok' : c.status.toUpperCase(), c.name, c.detail]);
  lines.push(table(rows));
  if (v.problems.length > 0) lines.push('', 'problems:', ...v.problems.map((p) => `  ${p}`));
  if (v.warnings.length > 0) lines.push('', 'warnings:', ...v.warnings.map((w) => `  ${w}`));
  return lines.join('\n');
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}
