/**
 * `hasup rolling-restart elasticsearch` under write and shipping load
 * (docs/maintenance.md): three namespace nodes behind HAProxy, Elasticsearch
 * with its security on node 1 (this machine's open-files limit keeps
 * Elasticsearch from passing its production bootstrap checks on other
 * addresses, so it is a cluster of one node) and every member shipping into
 * it. While the rollout restarts it (shard allocation held, green awaited)
 * every node's PostgreSQL logs a numbered line twice a second and the
 * members collect metrics every 10 s: afterwards every line is in
 * Elasticsearch, every member's CPU samples go on without a hole, the
 * PostgreSQL leader never changed and no acknowledged write was lost.
 * Then `hasup upgrade elasticsearch --to` another home (a copy of this one:
 * the machine has one Elasticsearch build): Elasticsearch runs from it,
 * green, and the shipping goes on; a path that is no home is refused with
 * nothing changed.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { installRoot } from '../../src/supervisor/install-paths.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { hasupCli } from '../support/hasup-cli.js';
import { WriteChecker } from '../support/write-checker.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0 ? null : 'no java for Elasticsearch') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The collector's interval (docs/shipping.md, metrics_interval_s). */
const METRICS_MS = 10_000;

describe('rolling restart of Elasticsearch under write and shipping load', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  destroyAfterSuite('rolling-es', () => [[ha, 'rolling-es']]);

  /** Elasticsearch on node 1, as hasup's admin user over HTTPS verified against the cluster CA. */
  const es = <T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> => ha.es<T>(method, path, body);

  before(async () => {
    ha = await HaCluster.create({ nodes: 3, elasticsearch: { security: true } });
    // Every member ships (nodes 2 and 3 run no Elasticsearch: shipping is off there unless asked for).
    for (const i of [1, 2, 3]) appendFileSync(ha.configFile(i), `\n[shipping]\nenabled = true\nmetrics_interval_s = ${METRICS_MS / 1000}\nflush_interval_ms = 500\n`);
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    await ha.whole(180_000);
    await eventually(async () => ((await es<{ status: string }>('GET', '/_cluster/health').catch(() => undefined))?.status === 'green' ? true : undefined), 180_000, 'Elasticsearch green', 2000);
    // Every member's metrics are in before the rollout (the templates installed, the spool empty).
    const ids = await Promise.all([1, 2, 3].map((i) => ha.memberId(i)));
    await eventually(
      async () => {
        // No aggregations in the answer while no metrics index exists yet.
        const r = await es<{ aggregations?: { m: { buckets: Array<{ key: string }> } } }>('POST', '/hasup-metrics-*/_search', { size: 0, aggs: { m: { terms: { field: 'hasup.member.id', size: 10 } } } }).catch(() => undefined);
        const seen = new Set(r?.aggregations?.m.buckets.map((b) => b.key));
        return ids.every((id) => seen.has(id)) || undefined;
      },
      120_000,
      'metrics from every member',
      2000,
    );
  });

  test('every line logged and every metric sample collected during the restart reaches Elasticsearch; no leader change, 0 lost writes', async () => {
    const leader = await ha.soleLeader(30_000);
    const ids = await Promise.all([1, 2, 3].map((i) => ha.memberId(i)));
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    w.start([{ ...ha.haproxyTarget, connections: 2 }]);
    // Numbered lines in every node's PostgreSQL log, twice a second, from before the rollout to after it.
    const run = `esroll${Date.now().toString(36)}`;
    const logged: number[] = [];
    let logging = true;
    const logger = (async () => {
      for (let n = 0; logging; n++) {
        const node = (n % 3) + 1;
        const ok = await ha.sql(node, `DO $$ BEGIN RAISE LOG '${run} line ${n} on node ${node}'; END $$`).then(
          () => true,
          () => false,
        );
        if (ok) logged.push(n);
        await sleep(500);
      }
    })();
    await sleep(3000);
    const started = Date.now();
    const r = await hasupCli(ha, 2, ['rolling-restart', 'elasticsearch']);
    const ended = Date.now();
    console.log(`# rolling-restart elasticsearch (${ended - started} ms):\n${r.stdout.replace(/^/gm, '#   ')}`);
    await sleep(3000);
    logging = false;
    await logger;
    await w.stop();
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /is back, cluster green/);

    // Every line: shipped from the spools once Elasticsearch took requests again, searchable after a refresh.
    const found = await eventually(
      async () => {
        const res = await es<{ hits: { hits: Array<{ _source: { message: string } }> } }>('POST', '/hasup-logs-*/_search', { size: 2000, _source: ['message'], query: { match: { message: run } } }).catch(() => undefined);
        if (!res) return undefined;
        const numbers = new Set(res.hits.hits.flatMap((h) => [...h._source.message.matchAll(new RegExp(`${run} line (\\d+) on`, 'g'))].map((m) => Number(m[1]))));
        return logged.every((n) => numbers.has(n)) ? numbers : undefined;
      },
      120_000,
      `all ${logged.length} logged lines in Elasticsearch`,
      3000,
    ).catch(async (err: unknown) => {
      throw new Error(`${(err as Error).message} (logged ${logged.length})`);
    });
    console.log(`# ${logged.length} lines logged around the restart, all ${found.value.size} found in Elasticsearch ${found.ms} ms after the rollout`);

    // Every member's CPU samples through the restart: none missing (a hole would be over two intervals wide).
    for (const [k, id] of ids.entries()) {
      const res = await es<{ hits: { hits: Array<{ _source: { '@timestamp': string } }> } }>('POST', '/hasup-metrics-*/_search', {
        size: 500,
        _source: ['@timestamp'],
        sort: [{ '@timestamp': 'asc' }],
        query: { bool: { filter: [{ term: { 'hasup.member.id': id } }, { term: { 'metricset.name': 'cpu' } }, { range: { '@timestamp': { gte: new Date(started - 2 * METRICS_MS).toISOString(), lte: new Date(ended).toISOString() } } }] } },
      });
      const times = res.hits.hits.map((h) => Date.parse(h._source['@timestamp']));
      const gaps = times.slice(1).map((t, i) => t - times[i]!);
      assert.ok(times.length >= Math.floor((ended - started) / METRICS_MS), `node ${k + 1}: ${times.length} CPU samples over ${ended - started + 2 * METRICS_MS} ms`);
      assert.ok(Math.max(0, ...gaps) < 2 * METRICS_MS, `node ${k + 1}: a hole of ${Math.max(...gaps)} ms in its CPU samples`);
    }

    assert.equal(await ha.soleLeader(10_000), leader, 'the PostgreSQL leader did not change');
    const servers = new Set(w.acks.map((a) => a.server));
    assert.equal(servers.size, 1, `writes went to one server (${[...servers].join(', ')})`);
    assert.deepEqual(await w.missing(ha.nodeTarget(leader)), [], 'no acknowledged write lost');
  });

  test('upgrade elasticsearch --to another home: it runs from there, green, the shipping goes on; a path that is no home is refused', async () => {
    const home = join(ha.cluster.baseDir, 'elasticsearch-home-2');
    assert.equal(spawnSync('cp', ['-a', join(installRoot(), 'vendor', 'elasticsearch', 'home'), home]).status, 0, 'a copy of the home');
    const refused = await hasupCli(ha, 2, ['upgrade', 'elasticsearch', '--to', join(ha.cluster.baseDir, 'nowhere')]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /nowhere\/bin\/elasticsearch does not exist on this member.*nothing was changed/);
    const homeOf = async () => Object.values((await es<{ nodes: Record<string, { settings: { path: { home: string } } }> }>('GET', '/_nodes/_local/settings')).nodes)[0]!.settings.path.home;
    assert.notEqual(await homeOf(), home);
    const started = Date.now();
    const r = await hasupCli(ha, 2, ['upgrade', 'elasticsearch', '--to', home]);
    console.log(`# upgrade elasticsearch (${Date.now() - started} ms):\n${r.stdout.replace(/^/gm, '#   ')}`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.equal(await homeOf(), home, 'Elasticsearch runs from the new home');
    assert.equal((await es<{ status: string }>('GET', '/_cluster/health')).status, 'green');
    // A line logged after the upgrade is shipped into it.
    const mark = `esupgraded${Date.now().toString(36)}`;
    await ha.sql(1, `DO $$ BEGIN RAISE LOG '${mark}'; END $$`);
    await eventually(
      async () => ((await es<{ hits: { total: { value: number } } }>('POST', '/hasup-logs-*/_search', { size: 0, query: { match: { message: mark } } }).catch(() => undefined))?.hits.total.value ?? 0) > 0 || undefined,
      60_000,
      'a line logged after the upgrade, in Elasticsearch',
      2000,
    );
  });
});
