import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InfoParseError, newestArchived, parseInfo, parseProgress } from '../../src/plugins/backup/info.js';
import { formatBytes, PgBackRestError, stderrTail } from '../../src/plugins/backup/pgbackrest.js';
import { describeVerify, parseVerify, VerifyParseError, walGaps, withDependents } from '../../src/plugins/backup/verify.js';
import * as out from '../fixtures/pgbackrest-2.45.js';

test('info: backups of every type in two repositories, with sizes, times, WAL and the backup each depends on', () => {
  const info = parseInfo(out.INFO_TWO_REPOS, 'hasup');
  assert.equal(info.exists, true);
  assert.equal(info.status.code, 0);
  assert.equal(info.backupRunning, false);
  assert.deepEqual(info.backups.map((b) => [b.type, b.repo]), [['full', 1], ['incr', 1], ['full', 2], ['diff', 1]]);
  const [full, incr, , diff] = info.backups;
  // Labels say the type (F, I, D) and, for incr and diff, the full backup they hang on.
  assert.match(full!.label, /^\d{8}-\d{6}F$/);
  assert.equal(incr!.prior, full!.label);
  assert.ok(incr!.label.startsWith(`${full!.label}_`) && incr!.label.endsWith('I'));
  assert.ok(diff!.label.endsWith('D'));
  assert.equal(full!.prior, null);
  for (const b of info.backups) {
    assert.ok(b.startedAt.getTime() <= b.stoppedAt.getTime(), `${b.label} starts before it stops`);
    assert.ok(b.startedAt.getFullYear() >= 2020, 'seconds were read as seconds, not milliseconds');
    assert.ok(b.walStart !== null && b.walStop !== null && b.walStart <= b.walStop);
    assert.ok(b.repoBackupSize <= b.repoSetSize && b.repoSetSize < b.databaseSize, 'stored compressed');
    assert.equal(b.error, false);
  }
  assert.equal(full!.backupSize, full!.databaseSize, 'a full backup copies the whole database');
  assert.ok(incr!.backupSize < incr!.databaseSize, 'an incremental one only what changed');
  assert.deepEqual(info.archives.map((a) => a.repo), [1, 2]);
  assert.equal(newestArchived(info), info.archives[0]!.max);
});

test("info: PostgreSQL's 64-bit system id keeps every digit (a JSON number would not)", () => {
  const info = parseInfo(out.INFO_ENCRYPTED_EMPTY, 'hasup');
  const written = /"system-id":(\d+)/.exec(out.INFO_ENCRYPTED_EMPTY)![1]!;
  assert.equal(info.systemId, written);
  assert.notEqual(String(Number(written)), written, 'this id is beyond what a double holds exactly');
  assert.equal(info.pgVersion, '15');
});

test('info: right after stanza-create (encrypted, nothing archived) and before it', () => {
  const empty = parseInfo(out.INFO_ENCRYPTED_EMPTY, 'hasup');
  assert.equal(empty.exists, true);
  assert.equal(empty.status.message, 'no valid backups');
  assert.deepEqual(empty.repos.map((r) => r.cipher), ['aes-256-cbc']);
  assert.deepEqual(empty.backups, []);
  assert.equal(newestArchived(empty), null);
  const none = parseInfo(out.INFO_MISSING_STANZA, 'hasup');
  assert.equal(none.exists, false);
  assert.equal(none.systemId, null);
});

test('info: output that is not what pgBackRest documents is an error naming what is wrong', () => {
  assert.throws(() => parseInfo('WARN: something\n[]', 'hasup'), (err: Error) => err instanceof InfoParseError && /did not print JSON.*WARN: something/.test(err.message));
  assert.throws(() => parseInfo(out.INFO_TWO_REPOS, 'other'), /stanza "other" is not in the answer/);
  const broken = out.INFO_TWO_REPOS.replace('"size":53491482}', '"size":"53491482"}');
  assert.notEqual(broken, out.INFO_TWO_REPOS);
  assert.throws(() => parseInfo(broken, 'hasup'), /backup\[0\]: "size" should be a number, got "53491482"/);
  assert.throws(() => parseInfo(out.INFO_TWO_REPOS.replace('"type":"full"', '"type":"weekly"'), 'hasup'), /unknown type "weekly"/);
});

test('progress: a running backup and its percentage come from the text form of info', () => {
  assert.deepEqual(parseProgress(out.INFO_TEXT_RUNNING), { running: true, percent: 0 });
  assert.deepEqual(parseProgress(out.INFO_TEXT_RUNNING.replace('0.00% complete', '42.17% complete')), { running: true, percent: 42.17 });
  assert.deepEqual(parseProgress(out.INFO_TEXT_RUNNING.replace(' - 0.00% complete', '')), { running: true });
  assert.deepEqual(parseProgress(out.INFO_TEXT_RUNNING.replace(' (backup/expire running - 0.00% complete)', '')), { running: false });
  // Before the first backup the stanza's status is an error, and the lock goes inside its parentheses.
  const first = out.INFO_TEXT_RUNNING.replace('status: ok (backup/expire running - 0.00% complete)', 'status: error (no valid backups, backup/expire running - 3.50% complete)');
  assert.deepEqual(parseProgress(first), { running: true, percent: 3.5 });
  assert.deepEqual(parseProgress(first.replace(', backup/expire running - 3.50% complete', '')), { running: false });
});

test('verify: a sound repository', () => {
  const r = parseVerify(out.VERIFY_OK_STDOUT, out.VERIFY_OK_STDERR);
  assert.equal(r.ok, true);
  assert.equal(r.backups.length, 3);
  for (const b of r.backups) {
    assert.equal(b.status, 'valid');
    assert.ok(b.checked > 0);
    assert.equal(b.valid, b.checked);
  }
  assert.deepEqual(r.problems, []);
  assert.equal(r.archives[0]!.checked, r.archives[0]!.valid);
  assert.match(describeVerify(r), /^repository verified: 3 backup\(s\)/);
});

test('verify: a flipped byte names the file; a deleted WAL segment is a gap; backups on either are unusable', () => {
  const r = parseVerify(out.VERIFY_BAD_STDOUT, out.VERIFY_BAD_STDERR);
  assert.equal(r.pgbackrestOk, false);
  assert.equal(r.ok, false);
  assert.deepEqual(r.problems, [{ fault: 'invalid checksum', file: '20261206-234928F/pg_data/base/5/16388.zst' }]);
  const full = r.backups.find((b) => b.label === '20261206-234928F')!;
  assert.equal(full.status, 'invalid');
  assert.equal(full.checksumInvalid, 1);
  assert.equal(full.valid, full.checked - 1);
  assert.deepEqual(r.walGaps, [{ archiveId: '15-1', after: '000000010000000000000026', before: '000000010000000000000028' }]);

  const backups = parseInfo(out.INFO_TWO_REPOS, 'hasup').backups.filter((b) => b.repo === 1);
  // The incremental and differential backups reference the full one's files; the incremental also needs segment ...27.
  assert.deepEqual(withDependents(r, backups).unusable, backups.map((b) => b.label).sort());
  const onlyGap = withDependents({ ...r, backups: r.backups.map((b) => ({ ...b, status: 'valid' })) }, backups);
  assert.deepEqual(onlyGap.unusable, backups.filter((b) => b.walStart! <= '000000010000000000000027' && b.walStop! >= '000000010000000000000027').map((b) => b.label));
  assert.equal(onlyGap.unusable.length, 1);

  const text = describeVerify(withDependents(r, backups));
  assert.match(text, /invalid checksum 20261206-234928F\/pg_data\/base\/5\/16388\.zst/);
  assert.match(text, /WAL missing between 000000010000000000000026 and 000000010000000000000028/);
});

test('verify: gaps are counted across log boundaries and timeline switches, not at them', () => {
  const r = (start: string, stop: string) => ({ archiveId: '15-1', start, stop });
  assert.deepEqual(walGaps([r('0000000100000000000000FE', '0000000100000000000000FF'), r('000000010000000100000000', '000000010000000100000003')]), []);
  // Timeline 2 begins at the segment where timeline 1 was left.
  assert.deepEqual(walGaps([r('000000010000000000000010', '000000010000000000000030'), r('000000020000000000000030', '000000020000000000000040')]), []);
  assert.deepEqual(walGaps([r('000000010000000000000010', '000000010000000000000030'), r('000000020000000000000033', '000000020000000000000040')]), [
    { archiveId: '15-1', after: '000000010000000000000030', before: '000000020000000000000033' },
  ]);
});

test('verify: a report without a verdict is an error, not a pass', () => {
  assert.throws(() => parseVerify('', ''), VerifyParseError);
});

test('errors say the command, how it ended and the last lines pgBackRest wrote', () => {
  const stderr = [
    "ERROR: [064]: unable to write '/repo/backup/hasup/20261206-234038F/backup.manifest.copy.pgbackrest.tmp': [28] No space left on device",
    '       HINT: is the repository full?',
  ].join('\n');
  const err = new PgBackRestError('pgbackrest backup --type=full', 64, null, stderrTail(stderr));
  assert.match(err.message, /^pgbackrest backup --type=full \(stanza hasup\) failed with exit code 64: ERROR: \[064\]: unable to write .*No space left on device \| HINT: is the repository full\?$/);
  assert.deepEqual(stderrTail('a\n\nb\nc\nd\ne\nf\ng\n'), ['b', 'c', 'd', 'e', 'f', 'g']);
  const noted = err.withNote('repository 1 (/repo) is full: 0 B free of 64.0 MiB');
  assert.equal(noted.message, `${err.message} [repository 1 (/repo) is full: 0 B free of 64.0 MiB]`);
  assert.equal(noted.exitCode, 64);
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(1536), '1.5 KiB');
  assert.equal(formatBytes(64 * 1024 * 1024), '64.0 MiB');
});
