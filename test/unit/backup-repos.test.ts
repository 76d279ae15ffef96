/**
 * The second repository's decisions: --repo, each repository's archive
 * state from info and the async archive-push's error files (pgBackRest
 * 2.45's own words, seen in test/integration/pgbackrest-two-repos.test.ts),
 * and which repository a restore reads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { VirtualClock } from '../../src/gossip/sim/virtual-clock.js';
import type { JobView } from '../../src/plugins/backup/coordinator.js';
import { parseInfo, type BackupType } from '../../src/plugins/backup/info.js';
import { BackupScheduler } from '../../src/plugins/backup/scheduler.js';
import { backupSettingsFrom, checkBackupSettings } from '../../src/plugins/backup/settings.js';
import { MemorySlotClaims } from '../../src/plugins/backup/slot-claims.js';
import type { LeadershipState } from '../../src/supervisor/leadership.js';
import type { ClusterSecrets } from '../../src/supervisor/secrets.js';
import { restoreTargetArgs } from '../../src/plugins/backup/pgbackrest.js';
import { chooseRestoreRepo, configuredRepos, describeRepoState, parsePushError, parseRepo, repoArchiveStates, RepoRefused, reposNamed, type RepoArchiveState } from '../../src/plugins/backup/repos.js';
import { parseRestoreTarget, restoreWindow, RestoreTargetRefused, withRestoreRepo } from '../../src/plugins/backup/restore-target.js';
import { backupListing } from '../../src/plugins/backup/views.js';
import { parseLsn } from '../../src/plugins/postgresql/replication-tools.js';
import * as out from '../fixtures/pgbackrest-2.45.js';
import { refusalMessage } from '../support/refused.js';

const TWO = { repoPath: '/r1', repo2Path: '/r2' };
const ONE = { repoPath: '/r1', repo2Path: '' };

/** A spool .error file as pgBackRest 2.45 wrote it with repository 1's archive directory read-only. */
const REPO1_DENIED =
  "103\nraised from local-1 protocol: archive-push command encountered error(s): repo1: [FileOpenError] unable to open file '/r1/archive/hasup/15-1/0000000100000000/000000010000000000000009-0f92.zst' for write: [13] Permission denied\n[CommandError] on retry after 0ms\n";

test('--repo: 1, or 2 only with repo2_path; anything else refused', () => {
  assert.deepEqual(configuredRepos(TWO), [1, 2]);
  assert.deepEqual(configuredRepos(ONE), [1]);
  assert.deepEqual(configuredRepos({ repoPath: '', repo2Path: '' }), []);
  assert.equal(parseRepo(undefined, TWO), undefined);
  assert.equal(parseRepo(2, TWO), 2);
  assert.equal(parseRepo(' 1 ', ONE), 1);
  assert.match(refusalMessage(RepoRefused, () => parseRepo(2, ONE)), /repository 2 is not configured: set \[service.postgresql.backup\] repo2_path/);
  for (const bad of [0, 3, '2x', 'two', 1.5, '']) assert.match(refusalMessage(RepoRefused, () => parseRepo(bad, TWO)), /repository must be 1 or 2/);
});

test("a push error: pgBackRest's code line dropped, the repository it names found; one naming none counts for both", () => {
  const e = parsePushError('000000010000000000000009', REPO1_DENIED, 1000);
  assert.equal(e.segment, '000000010000000000000009');
  assert.match(e.message, /^raised from local-1 protocol: archive-push command encountered error\(s\): repo1: \[FileOpenError\] .* Permission denied \[CommandError\]/);
  assert.deepEqual(reposNamed(e.message, [1, 2]), [1]);
  assert.deepEqual(reposNamed('repo2: [FileWriteError] no space', [1, 2]), [2]);
  assert.deepEqual(reposNamed('repo1: [X] a; repo2: [Y] b', [1, 2]), [1, 2]);
  assert.deepEqual(reposNamed('[ArchiveTimeoutError] timeout', [1, 2]), [1, 2]);
  // repo10 is not repo1.
  assert.deepEqual(reposNamed('repo10: nothing', [1, 2]), [1, 2]);
});

test('archive states: both current; one failing (named by the push error) and behind; one that info cannot read', () => {
  const info = parseInfo(out.INFO_TWO_REPOS, 'hasup');
  const ok = repoArchiveStates({ settings: TWO, repos: info.repos, archives: info.archives, pushErrors: [] });
  assert.deepEqual(ok.map((s) => [s.repo, s.path, s.state, s.newest_wal, s.behind]), [
    [1, '/r1', 'ok', '00000001000000000000002B', 0],
    [2, '/r2', 'ok', '00000001000000000000002B', 0],
  ]);
  const archives = [
    { repo: 1, id: '15-1', min: '000000010000000000000001', max: '000000010000000000000006' },
    { repo: 2, id: '15-1', min: '000000010000000000000001', max: '000000010000000000000109' },
  ];
  const errors = [parsePushError('000000010000000000000108', 'repo1: older', 1000), parsePushError('000000010000000000000109', REPO1_DENIED, 2000)];
  const [one, two] = repoArchiveStates({ settings: TWO, repos: info.repos, archives, pushErrors: errors });
  assert.equal(one!.state, 'failing');
  assert.equal(one!.behind, 0x109 - 6, 'segments counted across a log boundary');
  assert.match(one!.detail!, /^segment 000000010000000000000109: .*repo1: \[FileOpenError\]/, 'the newest error');
  assert.equal(two!.state, 'ok');
  assert.match(describeRepoState(one!), /^repository 1 \(\/r1\): WAL archiving to it fails \(segment .*\); archived up to 000000010000000000000006$/);
  // Behind without an error (pgBackRest dropped WAL past the queue limit, or a push in flight).
  const [behind] = repoArchiveStates({ settings: TWO, repos: info.repos, archives, pushErrors: [] });
  assert.deepEqual([behind!.state, behind!.behind], ['behind', 0x103]);
  assert.match(describeRepoState(behind!), /259 segment\(s\) behind the other repository/);
  // info's status 99 for a repository it cannot read.
  const repos = [info.repos[0]!, { key: 2, cipher: 'none', code: 99, message: "[PathOpenError] unable to list file info for path '/r2/backup': [13] Permission denied" }];
  const unreadable = repoArchiveStates({ settings: TWO, repos, archives: archives.filter((a) => a.repo === 1), pushErrors: [] });
  assert.deepEqual(unreadable.map((s) => s.state), ['ok', 'unreadable']);
  assert.match(describeRepoState(unreadable[1]!), /repository 2 \(\/r2\): cannot be read \(\[PathOpenError\]/);
  // One repository: one state.
  assert.equal(repoArchiveStates({ settings: ONE, repos: info.repos, archives: info.archives, pushErrors: [] }).length, 1);
});

const failing1: RepoArchiveState[] = [
  { repo: 1, path: '/r1', state: 'failing', newest_wal: '000000010000000000000006', behind: 3, detail: 'segment 000000010000000000000009: repo1: [FileOpenError] denied' },
  { repo: 2, path: '/r2', state: 'ok', newest_wal: '000000010000000000000009', behind: 0, detail: null },
];
const backups = [
  { label: '20261207-030000F', repo: 1, error: false, stoppedAt: new Date('2026-12-07T03:00:05Z'), lsnStop: '0/3000138' },
  { label: '20261207-040000F', repo: 2, error: false, stoppedAt: new Date('2026-12-07T04:00:05Z'), lsnStop: '0/5000138' },
];
const choose = (need: Parameters<typeof chooseRestoreRepo>[0]['need'], asked?: 1 | 2, states: RepoArchiveState[] = failing1) =>
  chooseRestoreRepo({ need, asked, repos: [1, 2], backups, states, lsnValue: parseLsn });

test('the restore repository: the one holding the backup, a healthy one first; only a failing one holds it: refused naming it; --repo obeyed if it holds it', () => {
  assert.equal(choose({ kind: 'set', label: '20261207-040000F' }), 2);
  assert.equal(choose({ kind: 'latest' }), 2, 'repository 1 fails: the healthy repository 2');
  assert.equal(choose({ kind: 'latest' }, undefined, []), 1, 'both healthy: the first');
  assert.match(
    refusalMessage(RepoRefused, () => choose({ kind: 'set', label: '20261207-030000F' })),
    /^only repository 1 holds backup 20261207-030000F, and it fails: repository 1 \(\/r1\): WAL archiving to it fails \(segment 000000010000000000000009: repo1: \[FileOpenError\] denied\).*; give --repo 1 to restore from it anyway$/,
  );
  // A time before repository 2's backup ended: only repository 1's backup reaches it.
  assert.match(refusalMessage(RepoRefused, () => choose({ kind: 'time', time: '2026-12-07 03:30:00.000+00' })), /^only repository 1 holds a backup that ended before 2026-12-07 03:30:00.000\+00, and it fails/);
  assert.equal(choose({ kind: 'time', time: '2026-12-07 03:30:00.000+00' }, 1), 1, 'asked for: taken');
  assert.equal(choose({ kind: 'lsn', lsn: '0/6000000' }), 2);
  assert.match(refusalMessage(RepoRefused, () => choose({ kind: 'lsn', lsn: '0/4000000' }, 2)), /^repository 2 holds no backup that ended before 0\/4000000; repository 1 does$/);
  assert.match(refusalMessage(RepoRefused, () => choose({ kind: 'set', label: '20261207-040000F' }, 1)), /^repository 1 holds no backup 20261207-040000F; repository 2 does$/);
  assert.match(refusalMessage(RepoRefused, () => choose({ kind: 'set', label: '20991207-040000F' })), /^no repository holds backup 20991207-040000F$/);
});

test('a restore request: the repository rides on the target to pgBackRest --repo; one repository: unchanged, repository 2 refused', () => {
  const info = parseInfo(out.INFO_TWO_REPOS, 'hasup');
  const one = backupListing({ member: 'a', repoPath: '/r1', info, archive: null });
  assert.deepEqual(withRestoreRepo({ kind: 'latest' }, undefined, one), { kind: 'latest' });
  assert.match(refusalMessage(RestoreTargetRefused, () => withRestoreRepo({ kind: 'latest' }, 2, one)), /repository 2 is not configured/);
  const two = { ...one, repo_path_2: '/r2', repo_archive: failing1 };
  const target = withRestoreRepo(parseRestoreTarget({ set: '20261206-234933F' }), undefined, two);
  assert.deepEqual(target, { kind: 'set', label: '20261206-234933F', repo: 2 });
  assert.equal(restoreWindow(two, 2).from_backup, '20261206-234933F', "the chosen repository's window");
  assert.match(refusalMessage(RestoreTargetRefused, () => withRestoreRepo(parseRestoreTarget({ set: '20261206-234928F' }), undefined, two)), /only repository 1 holds backup 20261206-234928F, and it fails/);
  assert.match(refusalMessage(RestoreTargetRefused, () => withRestoreRepo({ kind: 'latest' }, 3, two)), /repository must be 1 or 2/);
  // restoreTargetArgs is unchanged; PgBackRest.restore adds --repo from the target.
  assert.deepEqual(restoreTargetArgs(target), ['--set=20261206-234933F', '--type=immediate', '--target-action=promote']);
});

test('schedule_repo: 1 by default, 2 only with repo2_path; a scheduled slot starts its backup in that repository', async () => {
  assert.equal(backupSettingsFrom({ backup: { repo_path: '/r1' } }).scheduleRepo, 1);
  const two = backupSettingsFrom({ backup: { repo_path: '/r1', repo2_path: '/r2', schedule_repo: 2, schedule_full: '0 1 * * *' } });
  assert.equal(two.scheduleRepo, 2);
  assert.equal(checkBackupSettings(two, {} as ClusterSecrets), undefined);
  assert.equal(checkBackupSettings(backupSettingsFrom({ backup: { repo_path: '/r1', schedule_repo: 2 } }), {} as ClusterSecrets), 'backup.schedule_repo = 2 needs backup.repo2_path (the second repository)');
  assert.match(checkBackupSettings(backupSettingsFrom({ backup: { repo_path: '/r1', schedule_repo: 3 } }), {} as ClusterSecrets) ?? '', /schedule_repo/);

  const clock = new VirtualClock({ startWallMs: Date.UTC(2026, 11, 7, 0, 59, 30) });
  const started: Array<[string, number | undefined]> = [];
  const state: LeadershipState = { serviceGroup: 'postgresql.default', role: 'leader', holdsLease: true, leaseInDoubt: false, writable: true, replication: null, timeline: 1, leader: 'a', since: 0, reason: 'test' };
  const ops = {
    startBackup(type: BackupType, opts: { repo?: 1 | 2 } = {}): JobView {
      started.push([type, opts.repo]);
      return { id: 'backup-00000001', kind: 'backup', type, member: 'a', state: 'running', started_at: new Date(clock.wallNow()).toISOString(), ended_at: null, took_ms: null, progress: { percent: null, bytes_total: null, bytes_done: null }, backup: null, verify: null, error: null };
    },
    job: () => undefined,
    report: () => undefined,
    lastBackups: () => ({}),
  };
  const scheduler = new BackupScheduler({
    memberId: 'a',
    leadership: { state: () => state, onChange: () => () => undefined, close: () => undefined },
    settings: () => two,
    ops,
    claims: new MemorySlotClaims(),
    clock,
    log: pino({ level: 'silent' }),
  });
  await scheduler.tick();
  for (let i = 0; i < 6 && started.length === 0; i++) {
    await clock.advance(10_000);
    await scheduler.tick();
  }
  assert.deepEqual(started, [['full', 2]]);
});
