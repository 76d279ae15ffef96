/**
 * Backup sets on three namespace nodes behind HAProxy sharing one
 * pgBackRest repository, with Elasticsearch on node 1 (HaClusterOptions
 * .elasticsearch: a one-node Elasticsearch cluster, its snapshot
 * repository a shared directory named as [snapshot] repo_path):
 *
 *  - node 1 leads PostgreSQL (a switchover when it does not): the leader
 *    reads its snapshot settings from its own Elasticsearch config;
 *  - `hasup backup create --type full --wait` ends with an Elasticsearch
 *    snapshot naming the backup: `hasup backup list` shows the set (text and
 *    --json), `hasup status` on a follower says it is complete, `hasup
 *    snapshot list` has the snapshot with the backup's label;
 *  - a snapshot restore that would overwrite an index is refused, nothing
 *    changed; a --set label the repository does not hold is refused naming
 *    the one it does, nothing stopped;
 *  - a row and a document written after the backup: `hasup restore --set
 *    LABEL` brings both sides back to the set (the row and the document
 *    written before are there, those after are gone), and the cluster is
 *    whole again, led by the restorer.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { JobView } from '../../src/plugins/backup/coordinator.js';
import type { SnapshotListing } from '../../src/plugins/backup/snapshot-jobs.js';
import type { BackupListing } from '../../src/plugins/backup/views.js';
import type { ClusterView } from '../../src/plugins/http/cluster-view.js';
import { installRoot } from '../../src/supervisor/install-paths.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { hasupCli } from '../support/hasup-cli.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (existsSync('/usr/bin/pgbackrest') ? null : 'pgBackRest is not installed') ??
  (existsSync(join(installRoot(), 'vendor', 'elasticsearch', 'home')) ? null : 'Elasticsearch is not fetched (npm run bootstrap)') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const ES_NODE = 1;
const INDEX = 'app-docs';

describe('backup sets: a pgBackRest backup and an Elasticsearch snapshot, listed and restored as one', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  const ids = new Map<number, string>();
  let label = '';
  let snapshot = '';

  const cli = (i: number, args: string[], timeoutMs?: number) => hasupCli(ha, i, args, timeoutMs ? { timeoutMs } : {});

  /** Node 1's Elasticsearch (its security on by default: HTTPS and hasup's admin user). */
  const es = <T>(method: 'GET' | 'PUT' | 'POST', path: string, body?: unknown): Promise<T> => ha.es<T>(method, path, body);

  const docIds = async () => (await es<{ hits: { hits: Array<{ _id: string }> } }>('GET', `/${INDEX}/_search?size=100`)).hits.hits.map((h) => h._id).sort();

  const noSecret = (text: string) => {
    for (const s of [ha.secrets.api_token, ha.secrets.postgresql.superuser_password, ha.secrets.postgresql.replication_password, ha.secrets.backup?.repo_cipher_pass]) {
      if (s) assert.ok(!text.includes(s), 'a secret in the output');
    }
  };

  before(async () => {
    ha = await HaCluster.create({ nodes: 3, backup: {}, elasticsearch: { snapshots: true } });
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) {
      await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
      ids.set(i, await ha.memberId(i));
    }
    await ha.startHaproxy();
  });

  destroyAfterSuite('backup-sets', () => [[ha, '']]);

  test('node 1 leads PostgreSQL with its repository ready, and its Elasticsearch answers', async () => {
    let leader = await ha.whole(180_000);
    if (leader !== ES_NODE) {
      // Node 1's health check can fail for a moment while its Elasticsearch starts (both on this 2-core machine):
      // the switchover is refused then (412), as it would be for an operator, who asks again.
      const { value: r } = await eventually(
        async () => {
          const a = await cli(leader, ['switchover', '--to', ids.get(ES_NODE)!]);
          return a.code === 0 || !/412 .*its health check failing/.test(a.stderr) ? a : undefined;
        },
        60_000,
        'a switchover to node 1 accepted',
        2000,
      );
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      leader = await ha.whole(120_000);
    }
    assert.equal(leader, ES_NODE);
    await eventually(async () => ((await ha.member(ES_NODE).api<ClusterView>('/cluster')).backup?.stanza === 'ok' ? true : undefined), 120_000, 'the stanza ready on node 1', 500);
    const { ms } = await eventually(
      async () => {
        const h = await es<{ status: string }>('GET', '/_cluster/health');
        return h.status === 'green' || h.status === 'yellow' ? h : undefined;
      },
      240_000,
      'Elasticsearch on node 1 answering',
      1000,
    );
    console.log(`# Elasticsearch answered ${ms} ms after the cluster was whole`);
    // auto_create_index allows only hasup's own indices: the application's is made explicitly.
    await es('PUT', `/${INDEX}`, { settings: { number_of_shards: 1, number_of_replicas: 0 } });
  });

  test('a backup makes a set: the snapshot names the backup; backup list, status and snapshot list say so', async () => {
    await ha.sql(ES_NODE, 'CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)');
    await ha.sql(ES_NODE, "INSERT INTO orders VALUES (1, 'written before the backup')");
    await es('PUT', `/${INDEX}/_doc/before?refresh=true`, { note: 'written before the backup' });

    const r = await cli(ES_NODE, ['backup', 'create', '--type', 'full', '--wait', '--json'], 10 * 60_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    noSecret(r.stdout + r.stderr);
    const job = JSON.parse(r.stdout) as JobView;
    assert.equal(job.state, 'done');
    label = job.backup!.label;
    assert.ok(job.snapshot, 'the job carries its snapshot');
    assert.equal(job.snapshot.error, null, job.snapshot.error ?? '');
    assert.equal(job.snapshot.state, 'SUCCESS');
    snapshot = job.snapshot.name!;
    console.log(`# backup ${label} and snapshot ${snapshot} (${job.snapshot.took_ms} ms) in ${job.took_ms} ms`);
    assert.ok(readdirSync(ha.esSnapshotRepo!).length > 0, 'the snapshot is in the shared directory');

    const list = await cli(2, ['backup', 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    const l = JSON.parse(list.stdout) as BackupListing;
    // Node 2 runs no Elasticsearch: its listing has no sets. The leader's has.
    assert.equal(l.sets, undefined);
    const onLeader = await cli(ES_NODE, ['backup', 'list', '--json']);
    const sets = (JSON.parse(onLeader.stdout) as BackupListing).sets;
    assert.deepEqual(
      sets?.map((s) => [s.backup, s.snapshot?.name, s.snapshot?.state, s.paired_by, s.complete]),
      [[label, snapshot, 'SUCCESS', 'label', true]],
    );
    const text = await cli(ES_NODE, ['backup', 'list']);
    assert.match(text.stdout, new RegExp(`^${label} .* ${snapshot} SUCCESS$`, 'm'));

    const status = await eventually(
      async () => {
        const s = await cli(2, ['status']);
        return s.stdout.includes(`last set ${label} + ${snapshot} complete`) ? s : undefined;
      },
      30_000,
      'the set in hasup status on a follower',
      1000,
    );
    assert.match(status.value.stdout, /^backups: .*stanza ok, last full /m);

    const snaps = await cli(ES_NODE, ['snapshot', 'list', '--json']);
    assert.equal(snaps.code, 0, snaps.stderr);
    const found = (JSON.parse(snaps.stdout) as SnapshotListing).snapshots.find((s) => s.name === snapshot);
    assert.equal(found?.pg_backup, label);
    assert.ok(found?.indices.includes(INDEX), `the snapshot holds ${INDEX}: ${found?.indices.join(', ')}`);
  });

  test('bad input changes nothing: a snapshot restore onto an existing index with refuse, a --set label the repository does not hold', async () => {
    const refused = await cli(ES_NODE, ['snapshot', 'restore', snapshot, '--indices', INDEX, '--mode', 'refuse', '--yes']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, new RegExp(`would overwrite an existing index: ${INDEX}\\. Nothing was changed`));
    const unsure = await cli(ES_NODE, ['restore', '--set', label]);
    assert.notEqual(unsure.code, 0);
    assert.match(unsure.stderr, /its indices are then restored with mode replace: the existing indices of those names are deleted first/);
    const missing = await cli(ES_NODE, ['restore', '--set', '20200101-000000F', '--yes']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, new RegExp(`there is no backup 20200101-000000F in the repository \\S+; it holds ${label}`));
    assert.deepEqual(await ha.primaries(), [ES_NODE], 'nothing stopped');
    assert.deepEqual(await docIds(), ['before']);
  });

  test('hasup restore --set brings both sides back: what was written before the backup is there, what came after is gone', async () => {
    await ha.sql(ES_NODE, "INSERT INTO orders VALUES (2, 'written after the backup')");
    await es('PUT', `/${INDEX}/_doc/after?refresh=true`, { note: 'written after the backup' });
    // The row after the backup reaches the archive; the set's restore must still stop at the backup's end.
    await ha.sql(ES_NODE, 'SELECT pg_switch_wal()');
    assert.deepEqual(await docIds(), ['after', 'before']);

    const started = Date.now();
    const r = await cli(ES_NODE, ['restore', '--set', label, '--yes'], 15 * 60_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    noSecret(r.stdout + r.stderr);
    assert.match(r.stdout, new RegExp(`cluster restore \\w+ to the end of backup ${label} started, member ${ids.get(ES_NODE)} restoring`));
    assert.match(r.stdout, new RegExp(`then snapshot ${snapshot} \\([^)]*${INDEX}[^)]*, replacing the existing ones\\)`));
    assert.match(r.stdout, new RegExp(`snapshot ${snapshot} restored in [\\d.]+ s: .*${INDEX}`));
    const leader = await ha.whole(180_000);
    console.log(`# restore --set ${label}: the cluster whole ${Date.now() - started} ms after the command started\n${r.stdout.trim()}`);
    assert.equal(leader, ES_NODE, 'the restorer leads');

    const rows = await ha.sql<{ id: number }>(leader, 'SELECT id FROM orders ORDER BY id');
    assert.deepEqual(rows.map((x) => x.id), [1], 'the row written before the backup is there, the one after is gone');
    assert.deepEqual(await docIds(), ['before'], 'the document written before the backup is there, the one after is gone');
    // The cluster takes writes again, through HAProxy.
    await eventually(async () => (await ha.primaries()).length === 1 || undefined, 30_000, 'one writable leader');
    await ha.sql(leader, "INSERT INTO orders VALUES (3, 'written after the restore')");
  });
});
