/**
 * Backup sets (src/plugins/backup/backup-sets.ts): a pgBackRest backup and
 * the Elasticsearch snapshot taken with it, paired by the label in the
 * snapshot's metadata or, failing that, by time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pairBackupSets, type PairableBackup, type PairableSnapshot } from '../../src/plugins/backup/backup-sets.js';

const backup = (label: string, stopIso: string): PairableBackup => ({ label, stoppedAt: new Date(stopIso) });
const snapshot = (name: string, startIso: string | null, pgBackup: string | null = null, state = 'SUCCESS'): PairableSnapshot => ({ name, state, startedAt: startIso ? new Date(startIso) : null, pgBackup });

const view = (sets: ReturnType<typeof pairBackupSets>) => sets.map((s) => [s.pg?.label ?? null, s.es?.name ?? null, s.pairedBy, s.complete]);

test('a snapshot naming the backup pairs with it, however long after; several naming it: the successful one, then the newest', () => {
  const backups = [backup('20261207-010000F', '2026-12-07T01:05:00Z'), backup('20261207-010000F_20261207-020000I', '2026-12-07T02:01:00Z')];
  const snapshots = [
    snapshot('s-late', '2026-12-07T05:00:00Z', '20261207-010000F'),
    snapshot('s-retry-failed', '2026-12-07T02:02:00Z', '20261207-010000F_20261207-020000I', 'FAILED'),
    snapshot('s-retry-ok', '2026-12-07T02:03:00Z', '20261207-010000F_20261207-020000I'),
    snapshot('s-retry-partial', '2026-12-07T02:04:00Z', '20261207-010000F_20261207-020000I', 'PARTIAL'),
  ];
  assert.deepEqual(view(pairBackupSets(backups, snapshots)), [
    ['20261207-010000F', 's-late', 'label', true],
    ['20261207-010000F_20261207-020000I', 's-retry-ok', 'label', true],
    [null, 's-retry-failed', null, false],
    [null, 's-retry-partial', null, false],
  ]);
});

test('without a label: the snapshot that started closest after the backup ended, within the window; closer pairs first; never one before the backup', () => {
  const backups = [backup('A', '2026-12-07T01:00:00Z'), backup('B', '2026-12-07T01:04:00Z'), backup('C', '2026-12-07T03:00:00Z')];
  const snapshots = [
    snapshot('s1', '2026-12-07T01:05:00Z'), // 5 min after A, 1 min after B: B's
    snapshot('s2', '2026-12-07T01:08:00Z'), // then A's (8 min)
    snapshot('s-before-c', '2026-12-07T02:59:00Z'), // before C ended: not C's
    snapshot('s-too-late', '2026-12-07T03:30:00Z'), // past the 10 min window
  ];
  assert.deepEqual(view(pairBackupSets(backups, snapshots)), [
    ['A', 's2', 'time', true],
    ['B', 's1', 'time', true],
    [null, 's-before-c', null, false],
    ['C', null, null, false],
    [null, 's-too-late', null, false],
  ]);
  assert.deepEqual(view(pairBackupSets([backups[2]!], snapshots, { windowMs: 60 * 60_000 })), [
    [null, 's1', null, false],
    [null, 's2', null, false],
    [null, 's-before-c', null, false],
    ['C', 's-too-late', 'time', true],
  ], 'a wider window reaches it');
});

test('a snapshot naming another backup (expired from pgBackRest) is never given to a backup by time; a failed one pairs but the set is not complete', () => {
  const backups = [backup('NEW', '2026-12-07T01:00:00Z')];
  const snapshots = [snapshot('s-old', '2026-12-07T01:01:00Z', 'EXPIRED'), snapshot('s-failed', '2026-12-07T01:02:00Z', null, 'FAILED'), snapshot('s-no-start', null)];
  assert.deepEqual(view(pairBackupSets(backups, snapshots)), [
    [null, 's-no-start', null, false],
    ['NEW', 's-failed', 'time', false],
    [null, 's-old', null, false],
  ]);
  assert.deepEqual(pairBackupSets([], []), []);
  const alone = pairBackupSets([backup('ONLY', '2026-12-07T01:00:00Z')], []);
  assert.deepEqual(view(alone), [['ONLY', null, null, false]]);
  assert.equal(alone[0]!.at?.toISOString(), '2026-12-07T01:00:00.000Z');
});
