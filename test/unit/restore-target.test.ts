/**
 * Restore targets as operators type them, and the recoverability window
 * they are checked against before any member stops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkTargetInWindow, parseRestoreTarget, restoreWindow, RestoreTargetRefused } from '../../src/plugins/backup/restore-target.js';
import type { BackupListing } from '../../src/plugins/backup/views.js';
import { refusalMessage } from '../support/refused.js';

const listing: BackupListing = {
  member: 'a',
  repo_path: '/repo',
  stanza: { name: 'hasup', exists: true, status: { code: 0, message: 'ok' }, system_id: '1', pg_version: '15', cipher: ['none'] },
  backup_running: false,
  backups: [
    {
      label: '20261207-030000F',
      type: 'full',
      repo: 1,
      started_at: '2026-12-07T03:00:00.000Z',
      stopped_at: '2026-12-07T03:00:05.000Z',
      database_bytes: 1,
      backup_bytes: 1,
      repo_bytes: 1,
      repo_set_bytes: 1,
      wal_start: '000000010000000000000003',
      wal_stop: '000000010000000000000003',
      lsn_start: '0/3000028',
      lsn_stop: '0/3000138',
      prior: null,
      error: false,
    },
  ],
  archives: [{ repo: 1, id: '15-1', min: '000000010000000000000001', max: '000000020000000000000007' }],
  recoverable: [{ repo: 1, from: '2026-12-07T03:00:05.000Z', from_backup: '20261207-030000F', to_wal: '000000020000000000000007', to: '2026-12-07T04:00:00.000Z' }],
};

const refusal = (fn: () => unknown) => refusalMessage(RestoreTargetRefused, fn);

test('targets: exactly one of latest, a time with a zone (normalised to UTC), a WAL position', () => {
  assert.deepEqual(parseRestoreTarget({ latest: true }), { kind: 'latest' });
  assert.deepEqual(parseRestoreTarget({ time: '2026-12-07T03:30:00Z' }), { kind: 'time', time: '2026-12-07 03:30:00.000+00' });
  assert.deepEqual(parseRestoreTarget({ time: '2026-12-07 04:30:00.25+01' }), { kind: 'time', time: '2026-12-07 03:30:00.250+00' });
  assert.deepEqual(parseRestoreTarget({ time: '2026-12-07T05:00+0130' }), { kind: 'time', time: '2026-12-07 03:30:00.000+00' });
  assert.deepEqual(parseRestoreTarget({ lsn: '0/5000a8' }), { kind: 'lsn', lsn: '0/5000A8' });
  assert.match(refusal(() => parseRestoreTarget({})), /exactly one target: latest, time, lsn or set \(got none\)/);
  assert.match(refusal(() => parseRestoreTarget({ latest: true, lsn: '0/1' })), /got latest and lsn/);
  assert.match(refusal(() => parseRestoreTarget({ time: '2026-12-07 03:30:00' })), /not a time with a zone/);
  assert.match(refusal(() => parseRestoreTarget({ time: "'; DROP TABLE x; --" })), /not a time with a zone/);
  assert.match(refusal(() => parseRestoreTarget({ time: '2026-13-45T03:30:00Z' })), /not a valid time/);
  assert.match(refusal(() => parseRestoreTarget({ lsn: '0/5000A8 recovery_target_action=shutdown' })), /not a WAL position/);
});

test('the window: a time or position outside it is refused naming it; inside passes; latest needs a backup', () => {
  const w = restoreWindow(listing);
  const now = Date.parse('2026-12-07T05:00:00Z');
  checkTargetInWindow({ kind: 'time', time: '2026-12-07 03:30:00.000+00' }, w, listing, now);
  checkTargetInWindow({ kind: 'lsn', lsn: '0/7FFFFFF' }, w, listing, now);
  checkTargetInWindow({ kind: 'latest' }, w, listing, now);
  const before = refusal(() => checkTargetInWindow({ kind: 'time', time: '2026-12-07 02:59:00.000+00' }, w, listing, now));
  assert.equal(
    before,
    'time 2026-12-07 02:59:00.000+00 is before the recoverability window: the repository can restore from 2026-12-07T03:00:05.000Z (the end of backup 20261207-030000F, WAL 0/3000138) to the end of WAL 000000020000000000000007 (0/8000000, archived 2026-12-07T04:00:00.000Z)',
  );
  assert.match(refusal(() => checkTargetInWindow({ kind: 'time', time: '2026-12-07 04:00:01.000+00' }, w, listing, now)), /is after the recoverability window/);
  assert.match(refusal(() => checkTargetInWindow({ kind: 'lsn', lsn: '0/3000000' }, w, listing, now)), /WAL position 0\/3000000 is before the recoverability window/);
  assert.match(refusal(() => checkTargetInWindow({ kind: 'lsn', lsn: '0/8000001' }, w, listing, now)), /is after the recoverability window/);
  assert.match(refusal(() => restoreWindow({ ...listing, recoverable: [] })), /holds no usable backup: nothing to restore/);
  assert.match(refusal(() => restoreWindow({ ...listing, stanza: { ...listing.stanza, exists: false } })), /holds no stanza yet/);
});
