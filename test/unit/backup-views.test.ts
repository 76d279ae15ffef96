/**
 * What the backup routes answer and the CLI prints, from pgBackRest 2.45's
 * captured output (test/fixtures/pgbackrest-2.45.ts): hasup's verify checks
 * on a sound and a damaged repository, the recoverability window, the
 * backup rumor (round trip, size, the report /cluster picks), and the text
 * of `hasup backup list|verify`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backupDoneText, listingText, progressText, verifyText } from '../../src/cli/backup-commands.js';
import type { JobView } from '../../src/plugins/backup/coordinator.js';
import { parseInfo } from '../../src/plugins/backup/info.js';
import { parseVerify, withDependents } from '../../src/plugins/backup/verify.js';
import { backupListing, recoveryWindows, verifyOutcome, type VerifyInput } from '../../src/plugins/backup/views.js';
import { clusterBackupView, type CensusInput } from '../../src/plugins/http/cluster-view.js';
import { MAX_DATAGRAM_BYTES } from '../../src/gossip/transport.js';
import { backupRumorFor, decodeBackupReport, encodeBackupReport, MAX_BACKUP_RUMOR_BYTES, pickBackupReport, RUMOR_BACKUP, type ArchiveReport, type BackupReport } from '../../src/supervisor/rumors/backup.js';
import * as out from '../fixtures/pgbackrest-2.45.js';

const INFO = parseInfo(out.INFO_TWO_REPOS, 'hasup');
const SYSTEM_ID = '7716339342733519476';
const ARCHIVE: ArchiveReport = { last_archived_wal: '00000001000000000000002B', last_archived_at: Date.UTC(2026, 11, 6, 23, 50), failed_count: 0, last_failed_wal: null, last_failed_at: null, failing: false };

function input(over: Partial<VerifyInput> = {}): VerifyInput {
  const repo1 = INFO.backups.filter((b) => b.repo === 1);
  return {
    member: 'm1',
    repo: 1,
    repoPath: '/srv/repo',
    report: withDependents(parseVerify(out.VERIFY_OK_STDOUT, out.VERIFY_OK_STDERR), repo1),
    info: INFO,
    localSystemId: SYSTEM_ID,
    leaderArchive: { member: 'm2', archive: ARCHIVE },
    startedAt: 1000,
    endedAt: 4500,
    ...over,
  };
}

const statuses = (checks: { name: string; status: string }[]) => Object.fromEntries(checks.map((c) => [c.name, c.status]));

test('verify on a sound repository: every check passes (backup-wal skipped when pgBackRest named no WAL ranges)', () => {
  const v = verifyOutcome(input());
  assert.equal(v.ok, true);
  assert.deepEqual(v.problems, []);
  assert.deepEqual(statuses(v.checks), { files: 'ok', 'wal-continuity': 'ok', 'backups-usable': 'ok', 'backup-wal': 'skipped', 'system-id': 'ok', 'archive-current': 'ok', 'usable-full': 'ok' });
  assert.equal(v.took_ms, 3500);
  assert.match(v.checks[0]!.detail, /^3 backup\(s\), 2907 file\(s\) and 8 WAL segment\(s\) match/);
});

test('verify on a damaged repository: the flipped file by its path, the WAL gap, the backups that cannot be restored, the backup whose WAL is gone', () => {
  const repo1 = INFO.backups.filter((b) => b.repo === 1);
  const v = verifyOutcome(input({ report: withDependents(parseVerify(out.VERIFY_BAD_STDOUT, out.VERIFY_BAD_STDERR), repo1) }));
  assert.equal(v.ok, false);
  assert.deepEqual(statuses(v.checks), { files: 'failed', 'wal-continuity': 'failed', 'backups-usable': 'failed', 'backup-wal': 'failed', 'system-id': 'ok', 'archive-current': 'ok', 'usable-full': 'warning' });
  assert.deepEqual(v.problems, [
    'invalid checksum: /srv/repo/backup/hasup/20261206-234928F/pg_data/base/5/16388.zst',
    'backup 20261206-234928F is invalid',
    'WAL missing from the archive between 000000010000000000000026 and 000000010000000000000028 (archive 15-1): no point-in-time recovery across it',
    'backup 20261206-234928F_20261206-234931I cannot be restored: it needs WAL missing from the archive or depends on a backup that is unusable',
    'backup 20261206-234928F_20261206-234937D cannot be restored: it needs WAL missing from the archive or depends on a backup that is unusable',
    'backup 20261206-234928F_20261206-234931I needs WAL 000000010000000000000027 to 000000010000000000000027, which the archive does not hold',
  ]);
  assert.deepEqual(v.warnings, ['no usable full backup in the repository: there is nothing to restore from (hasup backup create --type full)']);
});

test('an invalid backup nothing depends on is said once, by the files check', () => {
  const full = INFO.backups.filter((b) => b.label === '20261206-234928F');
  const report = withDependents(parseVerify(out.VERIFY_BAD_STDOUT, out.VERIFY_BAD_STDERR.replace(/^DETAIL: .*$/gm, '')), full);
  const v = verifyOutcome(input({ report, info: { ...INFO, backups: full } }));
  assert.deepEqual(v.problems, ['invalid checksum: /srv/repo/backup/hasup/20261206-234928F/pg_data/base/5/16388.zst', 'backup 20261206-234928F is invalid']);
  assert.equal(statuses(v.checks)['backups-usable'], 'failed');
});

test("another cluster's repository, a leader whose archiving fails, a repository behind what the leader archived", () => {
  assert.match(verifyOutcome(input({ localSystemId: '1' })).problems.join('\n'), /belongs to another database: its system identifier is 7716339342733519476, this cluster's is 1/);
  assert.equal(statuses(verifyOutcome(input({ localSystemId: { unknown: 'PostgreSQL at 10.0.0.1:5432: connection refused' } })).checks)['system-id'], 'skipped');
  const failing = verifyOutcome(input({ leaderArchive: { member: 'm2', archive: { ...ARCHIVE, failing: true, last_failed_wal: '00000001000000000000002C', last_failed_at: Date.UTC(2026, 11, 6, 23, 55) } } }));
  assert.equal(failing.ok, false);
  assert.deepEqual(failing.problems, ['archiving fails on the leader m2: segment 00000001000000000000002C failed at 2026-12-06T23:55:00.000Z, no success since']);
  const behind = verifyOutcome(input({ leaderArchive: { member: 'm2', archive: { ...ARCHIVE, last_archived_wal: '000000020000000000000030' } } }));
  assert.deepEqual(behind.problems, ["the leader m2 archived 000000020000000000000030, but the repository's newest segment is 00000001000000000000002B"]);
  assert.equal(statuses(verifyOutcome(input({ leaderArchive: null })).checks)['archive-current'], 'skipped');
});

test('the recoverability window: from the end of the oldest backup to the newest archived segment, with its time when the leader said it', () => {
  assert.deepEqual(recoveryWindows(INFO, ARCHIVE), [
    { repo: 1, from: '2026-12-06T23:49:30.000Z', from_backup: '20261206-234928F', to_wal: '00000001000000000000002B', to: '2026-12-06T23:50:00.000Z' },
    { repo: 2, from: '2026-12-06T23:49:36.000Z', from_backup: '20261206-234933F', to_wal: '00000001000000000000002B', to: '2026-12-06T23:50:00.000Z' },
  ]);
  assert.equal(recoveryWindows(INFO, null)[0]!.to, null, 'no time without the leader');
  assert.deepEqual(recoveryWindows(parseInfo(out.INFO_ENCRYPTED_EMPTY, 'hasup'), ARCHIVE), [], 'no backup, no window');
  const listing = backupListing({ member: 'm1', repoPath: '/srv/repo', info: INFO, archive: ARCHIVE });
  assert.equal(listing.backups.length, 4);
  assert.equal(listing.backups[1]!.prior, '20261206-234928F');
  assert.equal(listing.stanza.system_id, SYSTEM_ID);
  const text = listingText(listing);
  assert.match(text, /^repository \/srv\/repo \(stanza hasup: ok\), read by member m1$/m);
  assert.match(text, /^20261206-234928F_20261206-234931I +incr +1 +2026-12-06 23:49:31Z +2026-12-06 23:49:32Z +51\.0 MiB +29\.0 MiB +12\.6 MiB +000000010000000000000027 +000000010000000000000027$/m);
  assert.match(text, /^archive \(repository 1, 15-1\): 000000010000000000000024 to 00000001000000000000002B$/m);
  assert.match(text, /^recoverable \(repository 1\): from 2026-12-06 23:49:30Z \(end of backup 20261206-234928F\) to the end of WAL 00000001000000000000002B \(archived 2026-12-06 23:50:00Z\)/m);
  assert.match(listingText(backupListing({ member: 'm1', repoPath: '/r', info: parseInfo(out.INFO_ENCRYPTED_EMPTY, 'hasup'), archive: null })), /encrypted aes-256-cbc[\s\S]*no backups yet \(hasup backup create --type full\)/);
});

function report(over: Partial<BackupReport> = {}): BackupReport {
  return { enabled: true, repo_path: '/srv/repo', active: false, stanza: 'unknown', stanza_ok_at: null, last_error: null, retry_at: null, archive: null, last_full: null, last_backup: null, job: null, at: 1000, ...over };
}

test('the backup rumor: a round trip, long messages cut so it fits a datagram, garbage refused', () => {
  const full = report({
    active: true,
    stanza: 'failed',
    repo_path: `/${'r'.repeat(400)}`,
    last_error: { at: 5, message: 'x'.repeat(5000) },
    archive: ARCHIVE,
    last_full: { label: '20261206-234928F', type: 'full', stopped_at: 1 },
    last_backup: { label: '20261206-234928F_20261206-234931I', type: 'incr', stopped_at: 2 },
    job: { id: 'backup-0000beef', kind: 'backup', type: 'full', state: 'failed', percent: 40, started_at: 1, ended_at: 2, error: 'y'.repeat(5000) },
  });
  const rumor = backupRumorFor('0000000000000001', 'postgresql.default', full, 7);
  assert.equal(rumor.kind, RUMOR_BACKUP);
  assert.equal(rumor.key, '0000000000000001/postgresql.default');
  assert.ok(rumor.payload.length <= MAX_BACKUP_RUMOR_BYTES && MAX_BACKUP_RUMOR_BYTES < MAX_DATAGRAM_BYTES - 400, `payload of ${rumor.payload.length} bytes leaves room in a datagram`);
  const back = decodeBackupReport(rumor.payload)!;
  assert.equal(back.archive?.last_archived_wal, ARCHIVE.last_archived_wal);
  assert.equal(back.last_full?.label, '20261206-234928F');
  assert.ok(back.last_error!.message.length < 240, 'the message was cut');
  const usual = report({ active: true, stanza: 'failed', last_error: { at: 5, message: 'm'.repeat(300) }, archive: ARCHIVE });
  assert.equal(decodeBackupReport(encodeBackupReport(usual))!.last_error!.message, `${'m'.repeat(239)}…`, 'a usual report keeps 240 characters of its error');
  assert.deepEqual(decodeBackupReport(encodeBackupReport(report())), report());
  assert.equal(decodeBackupReport(Buffer.from('not json')), undefined);
  assert.equal(decodeBackupReport(Buffer.from('{"enabled":"yes"}')), undefined);
});

test("the report shown: the leader's, else the newest active one, else this member's own", () => {
  const leader = { member: 'm2', report: report({ active: true, stanza: 'ok', at: 10 }) };
  const stale = { member: 'm3', report: report({ active: true, stanza: 'ok', at: 20 }) };
  const own = { member: 'm1', report: report({ at: 30 }) };
  assert.deepEqual(pickBackupReport([own, stale, leader], 'm2', 'm1'), { ...leader, from_leader: true });
  assert.deepEqual(pickBackupReport([own, stale, leader], null, 'm1'), { ...stale, from_leader: false });
  assert.deepEqual(pickBackupReport([own, { ...leader, report: report({ at: 40 }) }], 'm2', 'm1'), { ...own, from_leader: false });
  assert.equal(pickBackupReport([], 'm2', 'm1'), undefined);

  const rumors = [backupRumorFor('m2', 'postgresql.default', leader.report, 1), backupRumorFor('m3', 'postgresql.default', stale.report, 1), backupRumorFor('m4', 'postgresql.default', report({ active: true, at: 99 }), 1)];
  const member = (id: string, state: 'alive' | 'dead') => ({ id, addr: '10.0.0.1', port: 9638, incarnation: 1, state, meta: new Uint8Array(), since: 0 });
  const census: CensusInput = {
    memberId: 'm1',
    members: [member('m1', 'alive'), member('m2', 'alive'), member('m3', 'alive'), member('m4', 'dead')],
    rumors: (kind) => (kind === RUMOR_BACKUP ? rumors.map((r) => ({ ...r, originId: r.key.split('/')[0]! })) : []),
    localServices: [],
    leadership: { serviceGroup: 'postgresql.default', role: 'replica', holdsLease: false, leaseInDoubt: false, writable: false, replication: null, timeline: 2, leader: null, since: 0, reason: '' },
    localBackup: own.report,
  };
  assert.equal(clusterBackupView(census, 'm2')?.member, 'm2', 'the group leader from the census');
  assert.equal(clusterBackupView(census, null)?.member, 'm3', "a dead member's report is not shown, however new");
  assert.equal(clusterBackupView({ ...census, leadership: { ...census.leadership, leader: 'm3' } }, 'm2')?.member, 'm3', "the HA's leader first");
});

test('the text of a job and of a verdict', () => {
  const job: JobView = {
    id: 'backup-0000beef',
    kind: 'backup',
    type: 'full',
    member: 'm1',
    state: 'running',
    started_at: '2026-12-07T10:00:00.000Z',
    ended_at: null,
    took_ms: null,
    progress: { percent: null, bytes_total: 25 * 1024 * 1024, bytes_done: null },
    backup: null,
    verify: null,
    error: null,
  };
  assert.equal(progressText(job), 'running (database 25.0 MiB; no progress reported yet)');
  assert.equal(progressText({ ...job, progress: { percent: 42.5, bytes_total: 25 * 1024 * 1024, bytes_done: 11141120 } }), '42.5% (10.6 MiB of 25.0 MiB)');
  const done = { ...job, state: 'done' as const, took_ms: 2600, backup: backupListing({ member: 'm1', repoPath: '/r', info: INFO, archive: null }).backups[0]! };
  assert.equal(backupDoneText(done), 'backup 20261206-234928F (full) done in 2.6 s: database 51.0 MiB, copied 51.0 MiB, 15.3 MiB in the repository; WAL 000000010000000000000025 to 000000010000000000000025');
  assert.match(backupDoneText({ ...done, type: 'incr' }), /^backup 20261206-234928F \(full\) done in 2\.6 s \(asked for incr: pgBackRest takes a full backup when there is none to build on\): /);
  const repo1 = INFO.backups.filter((b) => b.repo === 1);
  const bad = verifyText(verifyOutcome(input({ report: withDependents(parseVerify(out.VERIFY_BAD_STDOUT, out.VERIFY_BAD_STDERR), repo1) })));
  assert.match(bad, /^repository \/srv\/repo \(repository 1\) verified from member m1 in 3\.5 s: PROBLEMS FOUND$/m);
  assert.match(bad, /^FAILED +files +1 file\(s\) at fault; invalid backup\(s\): 20261206-234928F$/m);
  assert.match(bad, /^problems:\n {2}invalid checksum: \/srv\/repo\/backup\/hasup\/20261206-234928F\/pg_data\/base\/5\/16388\.zst$/m);
  assert.match(verifyText(verifyOutcome(input())), /verified from member m1 in 3\.5 s: OK\nok +files/);
});
