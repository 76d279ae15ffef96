/**
 * The composition root's adapter of EsSnapshots to the backup plugin's
 * SearchSnapshots port (src/node/search-snapshots.ts): off unless this
 * member runs Elasticsearch with [snapshot] repo_path set; a snapshot
 * taken with the configured indices and the backup's label, its
 * partial end said as a problem rather than thrown; retention with the
 * configured count and pgBackRest's labels; hasup's own indices known.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { adapt, searchSnapshotsFrom } from '../../src/node/search-snapshots.js';
import { snapshotSettingsFrom } from '../../src/plugins/elasticsearch/snapshot-settings.js';
import { EsSnapshots, type EsRequest } from '../../src/plugins/elasticsearch/snapshots.js';
import type { DriverContext } from '../../src/supervisor/driver.js';

test('off unless Elasticsearch runs here with [snapshot] repo_path set; one adapter per config in force', () => {
  let ctx: DriverContext | undefined;
  const search = searchSnapshotsFrom({ context: () => ctx, peers: () => [] });
  assert.equal(search(), undefined, 'Elasticsearch not loaded here');
  ctx = { cfg: { http_port: 9200, network_host: '', snapshot: { repo_path: '' } }, ip: '10.0.0.1' } as unknown as DriverContext;
  assert.equal(search(), undefined, 'repo_path empty');
  ctx = { cfg: { http_port: 9200, network_host: '', snapshot: { repo_path: 'relative' } }, ip: '10.0.0.1' } as unknown as DriverContext;
  assert.equal(search(), undefined, 'a refused [snapshot] table');
  const cfg = { http_port: 9200, network_host: '', snapshot: { repo_path: '/srv/es-snapshots' } };
  ctx = { cfg, ip: '10.0.0.1' } as unknown as DriverContext;
  const first = search();
  assert.equal(first?.repoPath, '/srv/es-snapshots');
  ctx = { cfg, ip: '10.0.0.1' } as unknown as DriverContext;
  assert.equal(search(), first, 'the same config: the same adapter');
  ctx = { cfg: { ...cfg, snapshot: { repo_path: '/srv/other' } }, ip: '10.0.0.1' } as unknown as DriverContext;
  assert.equal(search()?.repoPath, '/srv/other');
});

test("take: the configured indices and the backup's label in the request; a partial snapshot is returned with its problem; retention gets the count and the labels", async () => {
  const sent: Array<{ method: string; path: string; body: unknown }> = [];
  const snapshots: Array<Record<string, unknown>> = [];
  const request: EsRequest = async (method, path, opts = {}) => {
    sent.push({ method, path, body: opts.body });
    if (path === '/_snapshot/hasup') return { status: 200, json: { hasup: { type: 'fs', settings: { location: '/srv/es-snapshots' } } } };
    if (path === '/_snapshot/hasup/_verify') return { status: 200, json: { nodes: { n1: { name: 'm1' } } } };
    const create = /^\/_snapshot\/hasup\/(hasup-[\w-]+)\?wait_for_completion=false$/.exec(path);
    if (create && method === 'POST') {
      const body = opts.body as { indices: string; metadata: unknown };
      snapshots.push({ snapshot: create[1], uuid: 'u', state: 'PARTIAL', indices: ['orders'], metadata: body.metadata, start_time_in_millis: 1, end_time_in_millis: 2, shards: { total: 2, successful: 1, failed: 1 }, failures: [{ index: 'orders', shard_id: 1, reason: 'primary shard is not allocated' }] });
      return { status: 200, json: { accepted: true } };
    }
    if (method === 'GET' && path.startsWith('/_snapshot/hasup/')) return { status: 200, json: { snapshots } };
    if (method === 'DELETE') return { status: 200, json: { acknowledged: true } };
    return { status: 400, json: { error: `no route ${method} ${path}` } };
  };
  const settings = snapshotSettingsFrom({ snapshot: { repo_path: '/srv/es-snapshots', retention: 3, indices: 'orders,invoices' } });
  const search = adapt(new EsSnapshots({ request, repoPath: settings.repoPath, sleep: async () => undefined }), settings);
  const { snapshot, problem } = await search.take({ pgBackup: '20261207-030000F', member: 'm1' });
  const create = sent.find((s) => s.method === 'POST' && s.path.includes('wait_for_completion'));
  assert.deepEqual(create?.body, { indices: 'orders,invoices', ignore_unavailable: true, include_global_state: true, metadata: { taken_by: 'hasup', member: 'm1', pg_backup: '20261207-030000F' } });
  assert.equal(snapshot.state, 'PARTIAL');
  assert.equal(snapshot.pgBackup, '20261207-030000F');
  assert.match(problem!, /^snapshot hasup-\S+ is partial: 1 of 2 shards are not in it \(orders\[1\]: primary shard is not allocated\)$/);

  // The snapshot names a backup pgBackRest no longer lists: retention deletes it even under the count, unless it is the newest good one (it is not: it is partial).
  sent.length = 0;
  const { deleted } = await search.applyRetention(new Set(['20261208-030000F']));
  assert.deepEqual(deleted, [snapshot.name]);
  assert.deepEqual(sent.filter((s) => s.method === 'DELETE').map((s) => s.path), [`/_snapshot/hasup/${snapshot.name}`]);
});

test("hasup's own indices are its daily logs and metrics", () => {
  const search = adapt(new EsSnapshots({ request: async () => ({ status: 500, json: {} }), repoPath: '/x' }), snapshotSettingsFrom({ snapshot: { repo_path: '/x' } }));
  assert.equal(search.ownIndex('hasup-logs-2026.12.07'), true);
  assert.equal(search.ownIndex('hasup-metrics-2026.12.07'), true);
  assert.equal(search.ownIndex('hasup-logs-archive'), false);
  assert.equal(search.ownIndex('orders'), false);
});
