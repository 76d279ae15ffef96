/**
 * `hasup restore --set LABEL`: the target parsed and checked against the
 * repository (a label it does not hold is refused naming those it does),
 * pgBackRest's options for it, and POST /restore through fastify's inject
 * with the HA core and the coordinator faked and real SnapshotJobs over a
 * fake Elasticsearch: PostgreSQL is restored first, then the set's
 * snapshot with mode replace (hasup's own logs and metrics left alone);
 * nothing of Elasticsearch is touched when PostgreSQL's restore fails; a
 * set without a whole snapshot restores PostgreSQL alone and says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeTarget, type HaOperations, type HaView, type RestoreRequest, type RestoreTarget } from '../../src/ha/index.js';
import type { BackupOperations, JobView } from '../../src/plugins/backup/coordinator.js';
import { restoreTargetArgs } from '../../src/plugins/backup/pgbackrest.js';
import { checkSetInRepository, parseRestoreTarget, RestoreTargetRefused } from '../../src/plugins/backup/restore-target.js';
import { setIndices, SnapshotJobs, type ClusterRestoreState } from '../../src/plugins/backup/snapshot-jobs.js';
import type { BackupJson, BackupListing } from '../../src/plugins/backup/views.js';
import { SnapshotError } from '../../src/plugins/elasticsearch/snapshot-error.js';
import { restoreRoutes } from '../../src/plugins/http/restore.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { createLogger } from '../../src/supervisor/log.js';
import { eventually } from '../support/eventually.js';
import { FakeSearch, snapshot } from '../support/fake-search-snapshots.js';
import { refusalMessage } from '../support/refused.js';

const TOKEN = 'restore-set-token';

function backup(label: string, stopped: string): BackupJson {
  return {
    label,
    type: label.endsWith('F') ? 'full' : 'incr',
    repo: 1,
    started_at: stopped,
    stopped_at: stopped,
    database_bytes: 1,
    backup_bytes: 1,
    repo_bytes: 1,
    repo_set_bytes: 1,
    wal_start: null,
    wal_stop: null,
    lsn_start: null,
    lsn_stop: '0/5000100',
    prior: null,
    error: false,
  };
}

function listingWith(sets: BackupListing['sets'], setsError?: string): BackupListing {
  return {
    member: 'a',
    repo_path: '/repo',
    stanza: { name: 'hasup', exists: true, status: { code: 0, message: 'ok' }, system_id: '1', pg_version: '15', cipher: ['none'] },
    backup_running: false,
    backups: [backup('20261207-030000F', '2026-12-07T03:00:05.000Z'), backup('20261207-030000F_20261207-040000I', '2026-12-07T04:00:05.000Z')],
    archives: [],
    recoverable: [],
    ...(sets ? { sets } : {}),
    ...(setsError ? { sets_error: setsError } : {}),
  };
}

const refusal = (fn: () => unknown) => refusalMessage(RestoreTargetRefused, fn);

test('a set target: a backup label, checked against the repository; pgBackRest restores that backup to its end and promotes', () => {
  assert.deepEqual(parseRestoreTarget({ set: ' 20261207-030000F ' }), { kind: 'set', label: '20261207-030000F' });
  assert.deepEqual(parseRestoreTarget({ set: '20261207-030000F_20261207-040000I' }), { kind: 'set', label: '20261207-030000F_20261207-040000I' });
  assert.match(refusal(() => parseRestoreTarget({ set: 'yesterday' })), /^"yesterday" is not a backup label such as 20261207-003702F/);
  assert.match(refusal(() => parseRestoreTarget({ set: '20261207-030000F', latest: true })), /exactly one target: latest, time, lsn or set \(got latest and set\)/);
  const listing = listingWith(undefined);
  checkSetInRepository('20261207-030000F', listing);
  assert.equal(
    refusal(() => checkSetInRepository('20261201-000000F', listing)),
    'there is no backup 20261201-000000F in the repository /repo; it holds 20261207-030000F, 20261207-030000F_20261207-040000I',
  );
  assert.deepEqual(restoreTargetArgs({ kind: 'set', label: '20261207-030000F' }), ['--set=20261207-030000F', '--type=immediate', '--target-action=promote']);
  assert.equal(describeTarget({ kind: 'set', label: '20261207-030000F' }), 'the end of backup 20261207-030000F');
});

test("a set's restore leaves dot indices and hasup's own logs and metrics alone", () => {
  const search = new FakeSearch();
  assert.deepEqual(setIndices(['.kibana_1', 'hasup-logs-2026.12.07', 'hasup-metrics-2026.12.07', 'orders', 'app-docs'], (i) => search.ownIndex(i)), ['app-docs', 'orders']);
});

/** The HA core as the route sees it: a restore asked for, then moved along by the test. */
class FakeHa {
  current: RestoreRequest | null = null;
  asked: RestoreTarget[] = [];
  ops(): HaOperations {
    return {
      restore: async (target) => {
        this.asked.push(target);
        this.current = { id: `r${this.asked.length}`, member: 'a', target, requested: Date.now(), state: 'stopping', detail: 'stopping PostgreSQL on every member', updated: Date.now() };
        return { ...this.current };
      },
      view: () => ({ restore: this.current }) as unknown as HaView,
      switchover: async () => {
        throw new Error('not here');
      },
      setPaused: async () => undefined,
      fence: () => {
        throw new Error('not here');
      },
    };
  }
  move(state: ClusterRestoreState['state'], detail: string): void {
    this.current = { ...this.current!, state, detail };
  }
}

function backups(listing: BackupListing): BackupOperations {
  return {
    report: () => undefined,
    startBackup: (): JobView => {
      throw new Error('not here');
    },
    startVerify: (): JobView => {
      throw new Error('not here');
    },
    job: () => undefined,
    waitJob: async () => undefined,
    list: async () => listing,
  };
}

async function server(listing: BackupListing, search: FakeSearch | undefined) {
  const ha = new FakeHa();
  const jobs = new SnapshotJobs({ memberId: 'a', search: () => search, clusterRestore: () => ha.current, log: createLogger({ level: 'silent' }), pollMs: 5 });
  const app = await createHttpServer({ log: createLogger({ level: 'silent' }), token: TOKEN, plugins: [{ plugin: restoreRoutes, options: { ha: ha.ops(), backup: backups(listing), snapshots: jobs } }] });
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown) => app.inject({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}), headers: { authorization: `Bearer ${TOKEN}` } });
  return { app, call, ha, jobs };
}

const SNAP = 'hasup-20261207-030010-abcd';

function withSnapshot(state = 'SUCCESS'): { search: FakeSearch; listing: BackupListing } {
  const search = new FakeSearch();
  search.snapshots.push(snapshot(SNAP, state, '2026-12-07T03:00:10Z', '20261207-030000F', ['.kibana_1', 'hasup-logs-2026.12.07', 'orders']));
  for (const i of ['.kibana_1', 'hasup-logs-2026.12.07', 'orders']) search.indices.add(i);
  const listing = listingWith([
    { backup: '20261207-030000F', snapshot: { name: SNAP, state }, paired_by: 'label', at: '2026-12-07T03:00:05.000Z', complete: state === 'SUCCESS' },
    { backup: '20261207-030000F_20261207-040000I', snapshot: null, paired_by: null, at: '2026-12-07T04:00:05.000Z', complete: false },
  ]);
  return { search, listing };
}

test('POST /restore {set}: a label not in the repository is 422 naming those that are, and nothing is asked of the cluster', async () => {
  const { search, listing } = withSnapshot();
  const { app, call, ha } = await server(listing, search);
  const res = await call('POST', '/restore', { set: '20261201-000000F' });
  assert.equal(res.statusCode, 422);
  assert.match(res.json().error, /no backup 20261201-000000F in the repository \/repo; it holds 20261207-030000F, 20261207-030000F_20261207-040000I/);
  assert.deepEqual(ha.asked, []);
  assert.deepEqual(search.calls, [], 'Elasticsearch untouched');
  await app.close();
});

test("POST /restore {set}: PostgreSQL first, then the set's snapshot with mode replace once PostgreSQL is back; GET /restore shows both", async () => {
  const { search, listing } = withSnapshot();
  const { app, call, ha, jobs } = await server(listing, search);
  try {
    const res = await call('POST', '/restore', { set: '20261207-030000F' });
    assert.equal(res.statusCode, 202, res.body);
    assert.deepEqual(ha.asked, [{ kind: 'set', label: '20261207-030000F' }]);
    const job = res.json().snapshot_restore;
    assert.equal(job.snapshot, SNAP);
    assert.deepEqual(job.request, { indices: ['orders'], mode: 'replace', rename_prefix: null }, "every index but the dot ones and hasup's own logs");
    assert.equal(job.after_restore, 'r1');
    assert.equal(res.json().snapshot_note, null);

    await new Promise((r) => setTimeout(r, 40));
    assert.deepEqual(search.restored, [], 'nothing restored while PostgreSQL is being restored');
    const waiting = (await call('GET', '/restore')).json();
    assert.equal(waiting.restore.state, 'stopping');
    assert.match(waiting.snapshot_restore.progress.detail, /^waiting for PostgreSQL's restore r1 to be done$/);

    ha.move('restoring', 'replaying');
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(search.restored, []);
    ha.move('done', 'restored on a');
    const done = await eventually(async () => (jobs.job(job.id)?.state === 'done' ? jobs.job(job.id) : undefined), 2000, 'the snapshot restored');
    assert.deepEqual(search.restored, [{ name: SNAP, req: { indices: ['orders'], mode: 'replace' } }]);
    assert.deepEqual(done!.restored, { sources: ['orders'], targets: ['orders'], deleted_first: ['orders'] });
    assert.ok(search.indices.has('hasup-logs-2026.12.07') && search.indices.has('.kibana_1'), 'left alone');
    assert.equal((await call('GET', '/restore')).json().snapshot_restore.state, 'done');
  } finally {
    await jobs.close();
    await app.close();
  }
});

test("POST /restore {set}: when PostgreSQL's restore fails, Elasticsearch is left as it was", async () => {
  const { search, listing } = withSnapshot();
  const { app, call, ha, jobs } = await server(listing, search);
  try {
    const res = await call('POST', '/restore', { set: '20261207-030000F' });
    const id = res.json().snapshot_restore.id as string;
    ha.move('failed', 'pgbackrest restore failed with exit code 75');
    const failed = await eventually(async () => (jobs.job(id)?.state === 'failed' ? jobs.job(id) : undefined), 2000, 'the snapshot side given up');
    assert.equal(failed!.error, `PostgreSQL's restore r1 failed (pgbackrest restore failed with exit code 75); snapshot ${SNAP} was not restored: Elasticsearch is as it was`);
    assert.deepEqual(search.calls.filter((c) => c.startsWith('restore')), []);
  } finally {
    await jobs.close();
    await app.close();
  }
});

test('POST /restore {set}: a set without a whole snapshot, or with snapshots off, restores PostgreSQL alone and says why; unreadable snapshots refuse before anything stops', async () => {
  const partial = withSnapshot('PARTIAL');
  const a = await server(partial.listing, partial.search);
  const res = await a.call('POST', '/restore', { set: '20261207-030000F' });
  assert.equal(res.statusCode, 202);
  assert.equal(res.json().snapshot_restore, null);
  assert.match(res.json().snapshot_note, new RegExp(`the snapshot of backup set 20261207-030000F, ${SNAP}, is PARTIAL, not whole: PostgreSQL alone is restored`));
  await a.app.close();

  const none = withSnapshot();
  const b = await server(none.listing, none.search);
  const bare = await b.call('POST', '/restore', { set: '20261207-030000F_20261207-040000I' });
  assert.equal(bare.statusCode, 202);
  assert.match(bare.json().snapshot_note, /backup set 20261207-030000F_20261207-040000I has no Elasticsearch snapshot: PostgreSQL alone is restored/);
  assert.deepEqual(b.ha.asked, [{ kind: 'set', label: '20261207-030000F_20261207-040000I' }]);
  await b.app.close();

  const off = await server(listingWith(undefined), undefined);
  const alone = await off.call('POST', '/restore', { set: '20261207-030000F' });
  assert.equal(alone.statusCode, 202);
  assert.match(alone.json().snapshot_note, /Elasticsearch snapshots are off on this member: PostgreSQL alone is restored/);
  await off.app.close();

  const unreadable = await server(listingWith(undefined, 'cannot list the Elasticsearch snapshots in /srv/es-snapshots: no Elasticsearch node answered'), new FakeSearch());
  const refused = await unreadable.call('POST', '/restore', { set: '20261207-030000F' });
  assert.equal(refused.statusCode, 503);
  assert.match(refused.json().error, /no Elasticsearch node answered; nothing was stopped\. Restore PostgreSQL alone .* with --lsn/);
  assert.deepEqual(unreadable.ha.asked, []);
  await unreadable.app.close();
});

test("POST /restore {set}: the snapshot checked again before anything stops: gone since the listing, PostgreSQL alone (said); Elasticsearch unreachable, 503 and nothing stops", async () => {
  const gone = withSnapshot();
  gone.search.snapshots = [];
  const a = await server(gone.listing, gone.search);
  const res = await a.call('POST', '/restore', { set: '20261207-030000F' });
  assert.equal(res.statusCode, 202);
  assert.match(res.json().snapshot_note, /is no longer in the repository: PostgreSQL alone is restored/);
  await a.app.close();

  const down = withSnapshot();
  down.search.listError = new SnapshotError('elasticsearch', 'listing snapshots: no Elasticsearch node answered (http://10.0.0.1:9200: ECONNREFUSED)');
  const b = await server(down.listing, down.search);
  const refused = await b.call('POST', '/restore', { set: '20261207-030000F' });
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.json().code, 'elasticsearch');
  assert.match(refused.json().error, /^cannot check the backup set's Elasticsearch snapshot \(elasticsearch\): listing snapshots: no Elasticsearch node answered .*; nothing was stopped$/);
  assert.deepEqual(b.ha.asked, [], 'the cluster was not asked to restore');
  await b.app.close();
});
