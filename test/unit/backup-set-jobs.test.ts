/**
 * Backup sets in the backup coordinator (src/plugins/backup/coordinator.ts,
 * backup-snapshot.ts), with pgBackRest, PostgreSQL, the leadership and
 * Elasticsearch snapshots (the SearchSnapshots port) faked: a backup job
 * ends with a snapshot naming the new label and snapshot retention paired
 * with pgBackRest's; a partial or failed snapshot, or none at all, is said
 * beside the backup, which stands; the listing pairs backups and
 * snapshots; the report and `hasup status` say the last set; with
 * snapshots off nothing of this happens.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backupSummary } from '../../src/cli/census.js';
import { backupDoneText, listingText, progressText } from '../../src/cli/backup-commands.js';
import type { JobView } from '../../src/plugins/backup/coordinator.js';
import type { SearchSnapshots } from '../../src/plugins/backup/search-snapshots.js';
import { SnapshotError } from '../../src/plugins/elasticsearch/snapshot-error.js';
import { setup } from '../support/backup-fakes.js';
import { eventually } from '../support/eventually.js';
import { FakeSearch, snapshot } from '../support/fake-search-snapshots.js';

async function leading(search: SearchSnapshots | undefined) {
  const t = setup({ search: () => search });
  t.coordinator.start();
  t.leadership.lead();
  await eventually(async () => (t.coordinator.report()?.stanza === 'ok' ? true : undefined), 2000, 'ready');
  return t;
}

/** A backup job run to its end; with `snapshotGate`, the job as it was while its snapshot ran. */
async function backupJob(t: Awaited<ReturnType<typeof leading>>, search?: FakeSearch): Promise<{ done: JobView; during: JobView | undefined }> {
  const job = t.coordinator.startBackup('full');
  await eventually(async () => (t.coordinator.job(job.id)?.progress.percent === 40 ? true : undefined), 2000, 'the backup running');
  let release = () => {};
  if (search) search.takeGate = new Promise<void>((r) => (release = r));
  t.fake.finishBackup();
  const during = search ? await eventually(async () => (t.coordinator.job(job.id)?.progress.detail?.includes('shards') ? t.coordinator.job(job.id) : undefined), 2000, 'the snapshot under way') : undefined;
  release();
  const done = await t.coordinator.waitJob(job.id, 2000);
  assert.ok(done, 'the job is there');
  return { done, during };
}

test('a backup job ends with a snapshot naming the new label, then retention paired with pgBackRest; the set is in the report, the listing and the status', async () => {
  const search = new FakeSearch();
  search.indices.add('orders');
  // A snapshot of a backup pgBackRest has expired, and one of a backup it still lists.
  search.snapshots.push(snapshot('hasup-20261201-000000-0001', 'SUCCESS', '2026-12-01T00:00:00Z', '20261201-000000F'));
  const t = await leading(search);
  try {
    const { done, during } = await backupJob(t, search);
    assert.equal(done.state, 'done', done.error ?? '');
    assert.equal(done.backup?.label, '20261207-100000F');
    assert.deepEqual(search.calls.filter((c) => c.startsWith('take')), ['take 20261207-100000F'], 'the snapshot names the backup just made');
    assert.equal(done.snapshot?.state, 'SUCCESS');
    assert.equal(done.snapshot?.error, null);
    assert.match(done.snapshot!.name!, /^hasup-/);
    assert.deepEqual(done.snapshot?.retention, { deleted: ['hasup-20261201-000000-0001'], error: null }, "the snapshot whose backup pgBackRest no longer lists is deleted");
    assert.deepEqual([...search.retentionLive[0]!], ['20261207-100000F'], "retention is told the labels pgBackRest lists after the backup's expire");
    assert.equal(during?.state, 'running', 'the job runs on while its snapshot is taken');
    assert.equal(during?.progress.detail, 'taking an Elasticsearch snapshot for backup 20261207-100000F: 1 of 2 shards');
    assert.equal(progressText(during!), 'taking an Elasticsearch snapshot for backup 20261207-100000F: 1 of 2 shards');
    assert.equal(done.progress.detail, undefined, 'a done job says nothing is under way');
    assert.match(backupDoneText(done), /\nElasticsearch snapshot hasup-\S+ taken in [\d.]+ s: the backup set is complete; retention deleted hasup-20261201-000000-0001$/);

    const report = await eventually(async () => (t.coordinator.report()?.last_set?.label === '20261207-100000F' ? t.coordinator.report() : undefined), 2000, 'the last set in the report');
    assert.deepEqual(report!.last_set, { label: '20261207-100000F', snapshot: done.snapshot!.name, state: 'SUCCESS', complete: true });
    const line = backupSummary({ ...report!, member: 'm1', from_leader: true }, Date.UTC(2026, 11, 7, 10, 5));
    assert.match(line, new RegExp(`last set 20261207-100000F \\+ ${done.snapshot!.name} complete`));

    const listing = await t.coordinator.list();
    assert.deepEqual(listing.sets, [{ backup: '20261207-100000F', snapshot: { name: done.snapshot!.name!, state: 'SUCCESS' }, paired_by: 'label', at: '2026-12-07T10:00:00.000Z', complete: true }]);
    assert.match(listingText(listing), new RegExp(`SNAPSHOT\\n.*20261207-100000F .* ${done.snapshot!.name} SUCCESS$`, 'm'));
  } finally {
    await t.coordinator.close();
  }
});

test('a partial snapshot, a failed one, or none (Elasticsearch unreachable) is reported beside the backup, which does not fail; the set is incomplete', async () => {
  const search = new FakeSearch();
  search.indices.add('orders');
  const t = await leading(search);
  try {
    search.takeEnds = 'PARTIAL';
    const partial = (await backupJob(t)).done;
    assert.equal(partial.state, 'done', 'the backup stands');
    assert.equal(partial.error, null);
    assert.equal(partial.snapshot?.state, 'PARTIAL');
    assert.match(partial.snapshot!.error!, /^snapshot hasup-\S+ is partial: 1 of 1 shards are not in it$/);
    assert.match(backupDoneText(partial), /\nWARNING: the backup set is incomplete: snapshot hasup-\S+ is partial/);
    const report = await eventually(async () => (t.coordinator.report()?.last_set?.state === 'PARTIAL' ? t.coordinator.report() : undefined), 2000, 'the incomplete set reported');
    assert.equal(report!.last_set!.complete, false);
    assert.match(backupSummary({ ...report!, member: 'm1', from_leader: true }, Date.UTC(2026, 11, 7, 10, 5)), /WARNING: last set 20261207-100000F incomplete \(snapshot hasup-\S+ PARTIAL\)/);

    search.takeEnds = new SnapshotError('elasticsearch', 'starting snapshot hasup-x: no Elasticsearch node answered (http://10.0.0.1:9200: ECONNREFUSED)');
    const none = (await backupJob(t)).done;
    assert.equal(none.state, 'done');
    assert.equal(none.backup?.label, '20261207-100001F');
    assert.deepEqual({ name: none.snapshot?.name, state: none.snapshot?.state }, { name: null, state: null });
    assert.match(none.snapshot!.error!, /no Elasticsearch node answered/);
    assert.ok(none.snapshot!.retention !== null, 'retention is still tried');
    const last = await eventually(async () => (t.coordinator.report()?.last_set?.label === '20261207-100001F' ? t.coordinator.report()!.last_set : undefined), 2000, 'the set without a snapshot');
    assert.deepEqual(last, { label: '20261207-100001F', snapshot: null, state: null, complete: false });
    assert.match(backupSummary({ ...t.coordinator.report()!, member: 'm1', from_leader: true }, Date.UTC(2026, 11, 7, 10, 5)), /WARNING: last set 20261207-100001F incomplete \(no snapshot\)/);
    assert.match(listingText(await t.coordinator.list()), /^20261207-100001F .* no snapshot$/m);

    search.takeEnds = 'SUCCESS';
    search.retentionError = new SnapshotError('elasticsearch', 'deleting snapshot hasup-y (retention 7; 0 older deleted before it): disk I/O error');
    const kept = (await backupJob(t)).done;
    assert.equal(kept.snapshot?.error, null);
    assert.deepEqual(kept.snapshot?.retention, { deleted: [], error: 'deleting snapshot hasup-y (retention 7; 0 older deleted before it): disk I/O error' });
  } finally {
    await t.coordinator.close();
  }
});

test('snapshots off: a backup takes none, the job, listing and report are as without sets', async () => {
  const t = await leading(undefined);
  try {
    const { done } = await backupJob(t);
    assert.equal(done.state, 'done');
    assert.ok(!('snapshot' in done), 'no snapshot field');
    const listing = await t.coordinator.list();
    assert.ok(!('sets' in listing) && !('sets_error' in listing));
    assert.doesNotMatch(listingText(listing), /SNAPSHOT/);
    assert.ok(!('last_set' in t.coordinator.report()!));
    assert.doesNotMatch(backupDoneText(done), /snapshot/i);
  } finally {
    await t.coordinator.close();
  }
});

test('the listing says why the sets are unknown when Elasticsearch cannot be read, and still lists the backups', async () => {
  const search = new FakeSearch();
  const t = await leading(search);
  try {
    await backupJob(t);
    search.listError = new SnapshotError('elasticsearch', 'listing snapshots: no Elasticsearch node answered');
    const listing = await t.coordinator.list();
    assert.equal(listing.backups.length, 1);
    assert.equal(listing.sets, undefined);
    assert.equal(listing.sets_error, 'cannot list the Elasticsearch snapshots in /srv/es-snapshots: listing snapshots: no Elasticsearch node answered');
    assert.match(listingText(listing), /WARNING: the backup sets are unknown: cannot list the Elasticsearch snapshots/);
  } finally {
    await t.coordinator.close();
  }
});
