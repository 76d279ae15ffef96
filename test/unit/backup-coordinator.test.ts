/**
 * The backup coordinator (src/plugins/backup/coordinator.ts) and its job
 * book (jobs.ts), with pgBackRest, the local PostgreSQL and the leadership
 * faked: the leader makes the repository ready by itself and retries with
 * backoff, a follower leaves it alone, a new repository is made ready
 * again; backup jobs one at a time with progress, a failure reported
 * without secrets, a backup cancelled when the member stops leading;
 * archiving failures in the report; verify with hasup's checks.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BackupRefused } from '../../src/plugins/backup/coordinator.js';
import { parseInfo } from '../../src/plugins/backup/info.js';
import { JobBook, JobBusy } from '../../src/plugins/backup/jobs.js';
import { PgBackRestError } from '../../src/plugins/backup/pgbackrest.js';
import { parseVerify, withDependents } from '../../src/plugins/backup/verify.js';
import * as out from '../fixtures/pgbackrest-2.45.js';
import { OTHER, PASSWORD, SELF, setup } from '../support/backup-fakes.js';
import { eventually } from '../support/eventually.js';

test('JobBook: one job of a kind at a time, progress with bytes, a failure kept with its reason, old jobs pruned', async () => {
  const changes: string[] = [];
  const book = new JobBook<string>({ member: SELF, keep: 2, onChange: (j) => changes.push(`${j.id.split('-')[0]} ${j.state} ${j.progress.percent ?? '-'}`) });
  let finish!: (v: string) => void;
  const first = book.start('backup', 'full', async (progress) => {
    progress({ bytesTotal: 2000 });
    progress({ percent: 25 });
    return new Promise<string>((r) => (finish = r));
  });
  assert.equal(first.state, 'running');
  assert.throws(() => book.start('backup', 'incr', async () => 'x'), (err: unknown) => err instanceof JobBusy && err.job.id === first.id && /backup job backup-[0-9a-f]{8} \(full\) is running since/.test(err.message));
  const verify = book.start('verify', null, async () => 'verified');
  assert.equal((await book.wait(verify.id, 1000))?.state, 'done', 'a verify runs beside a backup');
  await eventually(async () => (book.get(first.id)!.progress.percent === 25 ? true : undefined), 1000, 'progress');
  assert.deepEqual(book.get(first.id)!.progress, { percent: 25, bytesTotal: 2000, bytesDone: 500 });
  finish('20261207-100000F');
  const done = await book.wait(first.id, 1000);
  assert.equal(done?.state, 'done');
  assert.equal(done?.result, '20261207-100000F');
  assert.equal(done?.progress.percent, 100);
  const failed = book.start('backup', 'incr', async () => {
    throw new Error('repository 1 is full');
  });
  const after = await book.wait(failed.id, 1000);
  assert.equal(after?.state, 'failed');
  assert.equal(after?.error, 'repository 1 is full');
  assert.ok(after!.endedAt! >= after!.startedAt);
  assert.equal(book.latest('backup')?.id, failed.id);
  book.start('verify', null, async () => 'again');
  await book.settle();
  assert.equal(book.get(first.id), undefined, 'the oldest finished job was pruned (keep: 2)');
  assert.ok(changes.includes('backup running 25') && changes.includes('backup failed -'), changes.join(', '));
});

test('the leader makes the repository ready by itself (stanza-create, check), retrying with backoff; the error is reported without secrets', async () => {
  const t = setup();
  t.fake.stanzaFailures = 2;
  t.coordinator.start();
  try {
    assert.equal(t.coordinator.report()?.stanza, 'unknown', 'a follower does not touch the repository');
    assert.equal(t.coordinator.report()?.active, false);
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(t.fake.calls, []);
    t.leadership.lead();
    const failed = await eventually(async () => {
      const r = t.coordinator.report();
      return r?.stanza === 'failed' ? r : undefined;
    }, 2000, 'the first failure reported', 2);
    assert.ok(failed.last_error && /^stanza: pgbackrest stanza-create \(stanza hasup\) failed with exit code 41: .*unable to open/.test(failed.last_error.message), failed.last_error?.message);
    assert.ok(!failed.last_error!.message.includes(PASSWORD), 'no secret in the report');
    assert.match(failed.last_error!.message, /password=\[redacted\]/);
    assert.ok(failed.retry_at !== null && failed.retry_at > failed.last_error!.at, 'it says when it tries again');
    const ok = await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? t.coordinator.report() : undefined), 2000, 'the stanza ready');
    assert.deepEqual(t.fake.calls, ['stanza-create /repo', 'stanza-create /repo', 'stanza-create /repo', 'check /repo']);
    assert.equal(ok!.last_error, null, 'the stanza error is cleared once it works');
    assert.equal(ok!.active, true);
    assert.ok(t.reports.some((r) => r.stanza === 'failed') && t.reports.some((r) => r.stanza === 'ok'), 'both told to the gossip');
    assert.ok(t.reports.every((r) => !JSON.stringify(r).includes(PASSWORD)));
  } finally {
    await t.coordinator.close();
  }
});

test('a new leader, a new repository (config reload) and backups turned off: the repository is made ready again or left alone', async () => {
  const t = setup();
  t.coordinator.start();
  try {
    t.leadership.lead();
    await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
    t.state.cfg = { ...t.state.cfg, backup: { repo_path: '/repo-b' } };
    await eventually(async () => (t.fake.calls.includes('check /repo-b') ? true : undefined), 2000, 'the new repository made ready at the next poll');
    assert.equal(t.coordinator.report()?.repo_path, '/repo-b');
    t.leadership.follow();
    assert.equal(t.coordinator.report()?.active, false);
    assert.equal(t.coordinator.report()?.stanza, 'unknown');
    const before = t.fake.calls.length;
    t.leadership.lead();
    await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready again');
    assert.deepEqual(t.fake.calls.slice(before), ['stanza-create /repo-b', 'check /repo-b'], 'leading again makes it ready again (idempotent)');
    t.state.cfg = { ...t.state.cfg, backup: { repo_path: '' } };
    await eventually(async () => (t.coordinator.report()?.stanza === 'off' ? true : undefined), 2000, 'off');
    assert.equal(t.coordinator.report()?.enabled, false);
    assert.throws(() => t.coordinator.startBackup('full'), (err: unknown) => err instanceof BackupRefused && err.reason === 'off' && /set \[service\.postgresql\.backup\] repo_path/.test(err.message));
  } finally {
    await t.coordinator.close();
  }
});

test('backup jobs: on the leader only (a follower names it), one at a time, progress in percent and bytes, the label when done, the last full in the report', async () => {
  const t = setup();
  t.coordinator.start();
  try {
    assert.throws(() => t.coordinator.startBackup('full'), (err: unknown) => err instanceof BackupRefused && err.reason === 'not-leader' && err.leader === OTHER);
    t.leadership.set({ role: 'unknown', leader: null, reason: 'electing' });
    assert.throws(() => t.coordinator.startBackup('full'), (err: unknown) => err instanceof BackupRefused && err.reason === 'no-leader' && /electing/.test(err.message));
    t.leadership.lead();
    await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
    const job = t.coordinator.startBackup('full');
    assert.equal(job.state, 'running');
    assert.equal(job.member, SELF);
    assert.throws(
      () => t.coordinator.startBackup('incr'),
      (err: unknown) => err instanceof BackupRefused && err.reason === 'busy' && err.job?.id === job.id && new RegExp(`backup job ${job.id} \\(full\\) is running`).test(err.message),
    );
    const running = await eventually(async () => {
      const j = t.coordinator.job(job.id);
      return j?.progress.percent === 40 ? j : undefined;
    }, 2000, 'progress');
    assert.deepEqual(running.progress, { percent: 40, bytes_total: 1000, bytes_done: 400 });
    assert.equal(t.coordinator.report()?.job?.percent, 40);
    t.fake.finishBackup();
    const done = await t.coordinator.waitJob(job.id, 2000);
    assert.equal(done?.state, 'done');
    assert.equal(done?.backup?.label, '20261207-100000F');
    assert.equal(done?.backup?.type, 'full');
    assert.equal(done?.progress.percent, 100);
    assert.ok(done!.took_ms! >= 0);
    const r = t.coordinator.report()!;
    assert.equal(r.last_full?.label, '20261207-100000F');
    assert.equal(r.job?.state, 'done');
    assert.deepEqual(t.fake.calls.filter((c) => c.startsWith('backup')), ['backup full']);
    const incr = t.coordinator.startBackup('incr');
    assert.notEqual(incr.id, job.id, 'a new job once the first ended');
    await eventually(async () => (t.coordinator.job(incr.id)?.progress.percent === 40 ? true : undefined), 2000, 'the incremental running');
    t.fake.finishBackup();
    await t.coordinator.waitJob(incr.id, 2000);
    assert.equal(t.coordinator.report()?.last_backup?.type, 'incr');
    assert.equal(t.coordinator.report()?.last_full?.label, '20261207-100000F');
  } finally {
    await t.coordinator.close();
  }
});

test("a failed backup keeps pgBackRest's reason, without secrets; a leader that loses its place cancels its running backup", async () => {
  const t = setup();
  t.coordinator.start();
  try {
    t.leadership.lead();
    await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
    t.fake.backupError = new PgBackRestError('pgbackrest backup --type=full', 64, null, [`ERROR: [064]: unable to write '/repo/x' (pass ${PASSWORD})`], undefined, 'repository 1 (/repo) is full: 0 B free of 64.0 MiB');
    const job = t.coordinator.startBackup('full');
    await eventually(async () => (t.coordinator.job(job.id)?.progress.percent === 40 ? true : undefined), 2000, 'running');
    t.fake.finishBackup();
    const failed = await t.coordinator.waitJob(job.id, 2000);
    assert.equal(failed?.state, 'failed');
    assert.match(failed!.error!, /^pgbackrest backup --type=full \(stanza hasup\) failed with exit code 64: .*\[repository 1 \(\/repo\) is full/);
    assert.ok(!failed!.error!.includes(PASSWORD));
    assert.match(t.coordinator.report()!.last_error!.message, new RegExp(`^backup job ${job.id}: `));
    assert.equal(t.coordinator.report()?.job?.state, 'failed');

    t.fake.backupError = undefined;
    const second = t.coordinator.startBackup('full');
    await eventually(async () => (t.coordinator.job(second.id)?.progress.percent === 40 ? true : undefined), 2000, 'running');
    t.leadership.follow();
    const cancelled = await t.coordinator.waitJob(second.id, 2000);
    assert.equal(cancelled?.state, 'failed');
    assert.match(cancelled!.error!, /^cancelled: this member is no longer the PostgreSQL leader \(pgbackrest backup --type=full \(stanza hasup\) was cancelled\)/);
  } finally {
    await t.coordinator.close();
  }
});

test('archiving: the leader reads pg_stat_archiver each poll; a failing archive_command is in the report, and its recovery', async () => {
  const t = setup();
  t.coordinator.start();
  try {
    t.leadership.lead();
    const first = await eventually(async () => t.coordinator.report()?.archive ?? undefined, 2000, 'the archiver read');
    assert.equal(first.last_archived_wal, '000000010000000000000005');
    assert.equal(first.failing, false);
    t.db.archiverStats = { ...t.db.archiverStats, failedCount: 3, lastFailedWal: '000000010000000000000006', lastFailedAt: Date.UTC(2026, 11, 7, 9, 5) };
    const failing = await eventually(async () => (t.coordinator.report()?.archive?.failing ? t.coordinator.report()!.archive! : undefined), 2000, 'failing seen');
    assert.equal(failing.last_failed_wal, '000000010000000000000006');
    assert.equal(failing.failed_count, 3);
    assert.ok(t.reports.some((r) => r.archive?.failing), 'told at once (a change of failing is major)');
    t.db.archiverStats = { ...t.db.archiverStats, lastArchivedWal: '000000010000000000000007', lastArchivedAt: Date.UTC(2026, 11, 7, 9, 6) };
    await eventually(async () => (t.coordinator.report()?.archive?.failing === false ? true : undefined), 2000, 'recovered');
    // A backup history file stands for its segment; a timeline history file (a promotion) for none.
    t.db.archiverStats = { ...t.db.archiverStats, lastArchivedWal: '000000010000000000000008.00000028.backup', lastArchivedAt: Date.UTC(2026, 11, 7, 9, 7) };
    await eventually(async () => (t.coordinator.report()?.archive?.last_archived_wal === '000000010000000000000008' ? true : undefined), 2000, 'the segment of a backup history file');
    t.db.archiverStats = { ...t.db.archiverStats, lastArchivedWal: '00000002.history', lastArchivedAt: Date.UTC(2026, 11, 7, 9, 8) };
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(t.coordinator.report()?.archive?.last_archived_wal, '000000010000000000000008');
    assert.equal(t.coordinator.report()?.archive?.last_archived_at, Date.UTC(2026, 11, 7, 9, 7));
    t.leadership.follow();
    assert.equal(t.coordinator.report()?.archive, null, 'a follower has no archiver to report');
  } finally {
    await t.coordinator.close();
  }
});

test("verify runs on any member: pgBackRest's report with hasup's checks, the faulty file named with its path", async () => {
  const t = setup();
  t.coordinator.start();
  try {
    const tool = t.fake;
    tool.infoOverride = parseInfo(out.INFO_TWO_REPOS, 'hasup');
    tool.verifyReport = withDependents(parseVerify(out.VERIFY_BAD_STDOUT, out.VERIFY_BAD_STDERR), tool.infoOverride.backups.filter((b) => b.repo === 1));
    const job = t.coordinator.startVerify();
    assert.equal(job.kind, 'verify');
    assert.throws(() => t.coordinator.startVerify(), (err: unknown) => err instanceof BackupRefused && err.reason === 'busy');
    const done = await t.coordinator.waitJob(job.id, 2000);
    assert.equal(done?.state, 'done', done?.error ?? '');
    const v = done!.verify!;
    assert.equal(v.ok, false);
    assert.equal(v.member, SELF);
    assert.ok(v.problems.includes('invalid checksum: /repo/backup/hasup/20261206-234928F/pg_data/base/5/16388.zst'), v.problems.join('\n'));
    const status = Object.fromEntries(v.checks.map((c) => [c.name, c.status]));
    assert.equal(status.files, 'failed');
    assert.equal(status['wal-continuity'], 'failed');
    assert.equal(status['system-id'], 'ok');
    assert.equal(status['archive-current'], 'skipped', 'a follower with no leader report skips it');
  } finally {
    await t.coordinator.close();
  }
});
