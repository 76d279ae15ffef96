/**
 * A warm spare: two three-node clusters in their own namespaces, each with
 * its etcd and HAProxy. The spare is made by `hasup cluster create
 * --standby-of PRIMARY_HAPROXY --primary-secrets FILE` and shares the
 * primary's backup repository:
 *
 *  - its first member copies the primary cluster, the others copy it; its
 *    leader is a standby leader streaming from the primary cluster through
 *    that cluster's HAProxy, its followers cascade from it; its HAProxy
 *    takes no writes;
 *  - rows written on the primary cluster appear on the spare, also after
 *    the primary cluster failed over (the spare follows it through its
 *    HAProxy, never pinned to one node);
 *  - every node of the primary cluster killed: `standby_of = ""` applied on
 *    the spare promotes it; writes go through the spare's HAProxy.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { eventually, HaCluster } from '../support/ha-cluster.js';
import { hasupCli } from '../support/hasup-cli.js';
import { WriteChecker } from '../support/write-checker.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (existsSync('/usr/bin/pgbackrest') ? null : 'pgBackRest is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

describe('a standby cluster (warm spare) of a primary cluster', { skip: skip ?? false }, () => {
  let primary: HaCluster;
  let spare: HaCluster;

  async function countOn(ha: HaCluster, i: number, table: string): Promise<number> {
    const rows = await ha.sql<{ n: string }>(i, `SELECT count(*)::text AS n FROM ${table}`).catch(() => [{ n: '-1' }]);
    return Number(rows[0]!.n);
  }

  before(async () => {
    primary = await HaCluster.create({ nodes: 3, backup: {} });
    for (const i of [1, 2, 3]) primary.startNode(i);
    await primary.startHaproxy();
    await primary.whole(180_000);
    spare = await HaCluster.create({
      nodes: 3,
      backup: { repo: primary.backupRepo! },
      standbyOf: { endpoint: `${primary.cluster.hostAddress}:${primary.haproxyPort}`, primarySecrets: primary.secretsFile },
    });
    for (const i of [1, 2, 3]) spare.startNode(i);
    await spare.startHaproxy();
  });

  let failed = false;
  afterEach((t) => {
    if ((t as unknown as { passed?: boolean }).passed === false) failed = true;
  });

  after(async () => {
    if (failed || process.env.HASUP_HA_LOGS) {
      const dir = mkdtempSync(join(tmpdir(), 'hasup-standby-logs-'));
      primary?.saveMemberLogs(dir, 'primary-');
      spare?.saveMemberLogs(dir, 'spare-');
      console.log(`# member logs in ${dir}`);
    }
    await spare?.destroy();
    await primary?.destroy();
  });

  test('the spare copies the primary cluster and streams from it: a standby leader, followers cascading from it, no writes through its HAProxy', async () => {
    const started = Date.now();
    const sl = await spare.standbyWhole(240_000);
    console.log(`# spare formed, node ${sl} its standby leader, ${Date.now() - started} ms after the spare's members started`);
    assert.deepEqual(await spare.primaries(), [], 'no member of the spare takes writes');
    const v = await spare.view(sl);
    assert.equal(v.members.find((m) => m.member === v.leader)?.upstream, 'primary-cluster');
    const status = await hasupCli(spare, 1, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^standby cluster: follows the primary cluster at ${primary.cluster.hostAddress}:${primary.haproxyPort}; standby leader ${v.leader} \\(streaming`, 'm'));
    const pl = await primary.whole(60_000);
    await primary.sql(pl, 'CREATE TABLE dr_rows (id int PRIMARY KEY)');
    await primary.sql(pl, 'INSERT INTO dr_rows SELECT generate_series(1, 500)');
    await eventually(async () => (await countOn(spare, sl, 'dr_rows')) === 500 || undefined, 30_000, 'the rows on the spare');
    for (const i of [1, 2, 3].filter((x) => x !== sl)) await eventually(async () => (await countOn(spare, i, 'dr_rows')) === 500 || undefined, 30_000, `the rows on spare node ${i} (cascaded)`);
  });

  test('the primary cluster fails over: the spare follows its new leader through its HAProxy', async () => {
    const pl = await primary.whole(60_000);
    await primary.killNode(pl);
    const next = await primary.soleLeader(30_000, pl);
    await primary.sql(next, 'INSERT INTO dr_rows SELECT generate_series(501, 700)');
    const sl = await spare.standbyWhole(120_000);
    await eventually(async () => (await countOn(spare, sl, 'dr_rows')) === 700 || undefined, 60_000, 'rows written after the failover on the spare');
    primary.startNode(pl);
    await primary.whole(180_000);
  });

  test('disaster: every node of the primary cluster killed; standby_of = "" applied on the spare promotes it, writes go through its HAProxy', async () => {
    const sl = await spare.standbyWhole(60_000);
    const pl = await primary.whole(60_000);
    await primary.sql(pl, 'INSERT INTO dr_rows SELECT generate_series(701, 800)');
    await eventually(async () => (await countOn(spare, sl, 'dr_rows')) === 800 || undefined, 30_000, 'the last rows on the spare');
    for (const i of [1, 2, 3]) await primary.killNode(i);
    const patch = join(spare.cluster.baseDir, 'promote.toml');
    writeFileSync(patch, '[ha]\nstandby_of = ""\n');
    const started = Date.now();
    const r = await hasupCli(spare, sl, ['config', 'apply', 'postgresql.default', '1', patch]);
    assert.equal(r.code, 0, r.stderr);
    const w = new WriteChecker({ user: 'hasup', password: spare.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    // The first write through the spare's HAProxy (setup retries its CREATE TABLE until one goes through).
    await w.setup(spare.haproxyTarget, 60_000);
    const promoteS = (Date.now() - started) / 1000;
    w.start([spare.haproxyTarget]);
    await eventually(async () => w.acks.length > 20 || undefined, 10_000, 'writes through the spare\'s HAProxy');
    await w.stop();
    console.log(`# DR: standby_of = "" applied; first write through the spare's HAProxy ${promoteS.toFixed(1)} s later`);
    const leader = await spare.whole(120_000);
    assert.equal(await countOn(spare, leader, 'dr_rows'), 800, 'every row the spare had is there');
    assert.ok(promoteS < 15, `promoted within 15 s (${promoteS.toFixed(1)} s)`);
  });
});
