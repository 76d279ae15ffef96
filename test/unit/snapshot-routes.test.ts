/**
 * The snapshot routes (src/plugins/http/snapshots.ts) through fastify's
 * inject, over the real SnapshotJobs (snapshot-jobs.ts) and a fake
 * Elasticsearch behind the SearchSnapshots port: the token, the listing,
 * snapshots off, every bad body refused with its reason and nothing
 * changed, refusals answered with the SnapshotError's code, a restore as a
 * job with progress and what it restored, one at a time; the CLI's text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snapshotListText, snapshotProgressText, snapshotRestoreDoneText } from '../../src/cli/snapshot-commands.js';
import { SnapshotJobs } from '../../src/plugins/backup/snapshot-jobs.js';
import { createHttpServer } from '../../src/plugins/http/server.js';
import { snapshotRoutes } from '../../src/plugins/http/snapshots.js';
import { createLogger } from '../../src/supervisor/log.js';
import { eventually } from '../support/eventually.js';
import { FakeSearch, snapshot } from '../support/fake-search-snapshots.js';

const TOKEN = 'snapshot-route-token';
const SNAP = 'hasup-20261207-030010-abcd';

function fakeEs(): FakeSearch {
  const search = new FakeSearch();
  search.snapshots.push(snapshot(SNAP, 'SUCCESS', '2026-12-07T03:00:10Z', '20261207-030000F', ['invoices', 'orders']));
  search.snapshots.push(snapshot('hasup-20261207-040010-beef', 'PARTIAL', '2026-12-07T04:00:10Z', '20261207-030000F_20261207-040000I', ['orders']));
  search.indices.add('orders');
  return search;
}

async function server(search: FakeSearch | undefined) {
  const jobs = new SnapshotJobs({ memberId: '0000000000000001', search: () => search, clusterRestore: () => null, log: createLogger({ level: 'silent' }) });
  const app = await createHttpServer({ log: createLogger({ level: 'silent' }), token: TOKEN, plugins: [{ plugin: snapshotRoutes, options: { snapshots: jobs } }] });
  const call = (method: 'GET' | 'POST', url: string, payload?: unknown, token: string | null = TOKEN) =>
    app.inject({ method, url, ...(payload !== undefined ? { payload: payload as object } : {}), headers: token ? { authorization: `Bearer ${token}` } : {} });
  return {
    app,
    call,
    jobs,
    close: async () => {
      await jobs.close();
      await app.close();
    },
  };
}

test('GET /snapshots: every snapshot with its state, backup and what is wrong with one that is not whole; the token; snapshots off is 409 with code off', async () => {
  const s = await server(fakeEs());
  assert.equal((await s.call('GET', '/snapshots', undefined, null)).statusCode, 401);
  const res = await s.call('GET', '/snapshots');
  assert.equal(res.statusCode, 200);
  const body = res.json();
  assert.equal(body.repo_path, '/srv/es-snapshots');
  assert.deepEqual(
    body.snapshots.map((x: { name: string; state: string; pg_backup: string; problem: string | null }) => [x.name, x.state, x.pg_backup, x.problem]),
    [
      [SNAP, 'SUCCESS', '20261207-030000F', null],
      ['hasup-20261207-040010-beef', 'PARTIAL', '20261207-030000F_20261207-040000I', 'orders[0]: primary shard is not allocated'],
    ],
  );
  const text = snapshotListText(body);
  assert.match(text, new RegExp(`^${SNAP}\\s+SUCCESS\\s+2026-12-07 03:00:10Z\\s+20261207-030000F\\s+2\\s+1000 B$`, 'm'));
  assert.match(text, /not whole:\n {2}hasup-20261207-040010-beef: orders\[0\]: primary shard is not allocated/);
  assert.equal((await s.call('GET', '/snapshots?all=1')).statusCode, 400);
  await s.close();

  const off = await server(undefined);
  const refused = await off.call('GET', '/snapshots');
  assert.equal(refused.statusCode, 409);
  assert.equal(refused.json().code, 'off');
  assert.match(refused.json().error, /Elasticsearch snapshots are off on this member: set \[service\.elasticsearch\.snapshot\] repo_path/);
  await off.close();
});

test('POST /snapshot/restore: bad bodies are refused with the reason, and nothing is planned or restored', async () => {
  const search = fakeEs();
  const s = await server(search);
  const bad: Array<[unknown, RegExp]> = [
    [{ name: SNAP, indices: 'orders' }, /body must have required property 'mode'|mode/],
    [{ name: SNAP, indices: 'orders', mode: 'overwrite' }, /body\/mode must be one of "refuse", "replace", "rename"/],
    [{ name: SNAP, indices: 'orders', mode: 'replace', force: true }, /unknown field "force"/],
    [{ name: '../etc', indices: 'orders', mode: 'replace' }, /body\/name must match pattern/],
    [{ name: SNAP, indices: 'orders', mode: 'replace', rename_prefix: 'old-' }, /^rename_prefix goes with mode rename, not replace$/],
    [{ name: SNAP, indices: 'orders,,invoices', mode: 'replace' }, /has an empty name/],
  ];
  for (const [body, why] of bad) {
    const res = await s.call('POST', '/snapshot/restore', body);
    assert.equal(res.statusCode, 400, JSON.stringify(body));
    assert.match(res.json().error, why);
  }
  assert.deepEqual(search.calls, [], 'Elasticsearch was not even asked');
  await s.close();
});

test('POST /snapshot/restore: refusals carry the SnapshotError code (missing 404, not in the snapshot 422, an index in the way 409), nothing changed', async () => {
  const search = fakeEs();
  const s = await server(search);
  const missing = await s.call('POST', '/snapshot/restore', { name: 'hasup-20200101-000000-0000', indices: 'all', mode: 'refuse' });
  assert.equal(missing.statusCode, 404);
  assert.equal(missing.json().code, 'missing');
  const notThere = await s.call('POST', '/snapshot/restore', { name: SNAP, indices: 'customers', mode: 'replace' });
  assert.equal(notThere.statusCode, 422);
  assert.equal(notThere.json().code, 'not-in-snapshot');
  assert.match(notThere.json().error, /"customers" is not in snapshot hasup-20261207-030010-abcd, which holds invoices, orders\. Nothing was changed/);
  const inTheWay = await s.call('POST', '/snapshot/restore', { name: SNAP, indices: 'all', mode: 'refuse' });
  assert.equal(inTheWay.statusCode, 409);
  assert.equal(inTheWay.json().code, 'index-exists');
  assert.match(inTheWay.json().error, /would overwrite an existing index: orders\. Nothing was changed\. Restore with replace .* or with rename/);
  assert.deepEqual(search.restored, []);
  assert.deepEqual([...search.indices], ['orders']);
  await s.close();
});

test('POST /snapshot/restore: 202 with the job and the plan; progress in primaries while it runs; done with what it restored; one at a time', async () => {
  const search = fakeEs();
  let open = () => {};
  search.restoreGate = new Promise<void>((r) => (open = r));
  const s = await server(search);
  try {
    const res = await s.call('POST', '/snapshot/restore', { name: SNAP, indices: 'orders, invoices', mode: 'rename', rename_prefix: 'old-' });
    assert.equal(res.statusCode, 202, res.body);
    const { job, plan, href } = res.json();
    assert.deepEqual(plan, { sources: ['invoices', 'orders'], targets: ['old-invoices', 'old-orders'], delete_first: [] });
    assert.equal(href, `/snapshot/jobs/${job.id}`);
    assert.deepEqual(job.request, { indices: ['orders', 'invoices'], mode: 'rename', rename_prefix: 'old-' });
    const running = await eventually(async () => {
      const j = (await s.call('GET', href)).json().job;
      return j.progress.detail?.includes('primary shards') ? j : undefined;
    }, 2000, 'progress');
    assert.equal(running.state, 'running');
    assert.equal(snapshotProgressText(running), `restoring snapshot ${SNAP}: 0 of 2 primary shards active`);
    const second = await s.call('POST', '/snapshot/restore', { name: SNAP, indices: 'orders', mode: 'replace' });
    assert.equal(second.statusCode, 409);
    assert.equal(second.json().code, 'busy');
    assert.match(second.json().error, /snapshot-restore job snapshot-restore-[0-9a-f]{8} is running since .*one snapshot restore at a time/);
    open();
    const done = await eventually(async () => {
      const j = (await s.call('GET', href)).json().job;
      return j.state === 'done' ? j : undefined;
    }, 2000, 'done');
    assert.deepEqual(done.restored, { sources: ['invoices', 'orders'], targets: ['old-invoices', 'old-orders'], deleted_first: [] });
    assert.equal(done.progress.percent, 100);
    assert.match(snapshotRestoreDoneText(done), new RegExp(`^snapshot ${SNAP} restored in [\\d.]+ s: old-invoices, old-orders$`));
    assert.deepEqual([...search.indices].sort(), ['old-invoices', 'old-orders', 'orders'], 'the live index untouched');
    assert.equal((await s.call('GET', '/snapshot/jobs/snapshot-restore-00000000')).statusCode, 404);
    assert.equal((await s.call('GET', '/snapshot/jobs/backup-00000000')).statusCode, 400);
  } finally {
    open();
    await s.close();
  }
});
