/**
 * A warm spare kept current by restores, and a restore into a new cluster,
 * on namespace nodes with real PostgreSQL, etcd, pgBackRest and HAProxy:
 *
 *  - a primary cluster (one node, backups on) takes a full backup; rows
 *    are written and archived; its repository is copied into a directory
 *    of the spare's (as a site without a network link would receive it);
 *  - the spare, made by `hasup cluster create --standby-of-repo COPY
 *    --primary-secrets FILE --restore-schedule "* * * * *"` on two nodes:
 *    its first member restores the copy's newest backup as a standby, the
 *    other copies it; its leader is a standby leader replaying the copy's
 *    archive (no upstream), the rows are on both, no write is taken, and
 *    `hasup status` says so;
 *  - more rows and a new backup on the primary, shipped into the copy: the
 *    next slot re-bases the spare on the new backup, its rows are on both
 *    members (read only), and the copy was not written by the spare;
 *  - `hasup cluster promote`: the spare takes writes through its HAProxy;
 *  - `hasup restore --to-new-cluster --time T` (T between two batches of
 *    rows) prepares node 1 of a third cluster from the primary's
 *    repository: it leads with the first batch only, takes writes, a
 *    second node joins and copies it; the primary's repository is not
 *    written.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { HaView } from '../../src/ha/index.js';
import type { SpareView } from '../../src/node/spare.js';
import { resolveServiceUser } from '../../src/supervisor/process-runner.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { hasupCli } from '../support/hasup-cli.js';
import { treeHash } from '../support/tree-hash.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (existsSync('/usr/bin/pgbackrest') ? null : 'pgBackRest is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');


describe('a warm spare kept current by restores, and a restore into a new cluster', { skip: skip ?? false }, () => {
  let primary: HaCluster;
  let spare: HaCluster | undefined;
  let restored: HaCluster | undefined;
  let copy: string;
  /** Between the rows of batch 1 and those of batch 2. */
  let between: string;

  async function countOn(ha: HaCluster, i: number): Promise<number> {
    const rows = await ha.sql<{ n: string }>(i, 'SELECT count(*)::text AS n FROM spare_rows').catch(() => [{ n: '-1' }]);
    return Number(rows[0]!.n);
  }

  /** Switches the primary's WAL and waits until the segment is archived. */
  async function archived(): Promise<void> {
    const [{ seg }] = await primary.sql<{ seg: string }>(1, 'SELECT pg_walfile_name(pg_current_wal_lsn()) AS seg');
    await primary.sql(1, 'SELECT pg_switch_wal()');
    await eventually(async () => {
      const [{ w }] = await primary.sql<{ w: string | null }>(1, 'SELECT last_archived_wal AS w FROM pg_stat_archiver');
      return w !== null && w >= seg;
    }, 60_000, `segment ${seg} archived`);
  }

  async function backup(): Promise<string> {
    const r = await hasupCli(primary, 1, ['backup', 'create', '--type', 'full', '--wait', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const label = /\b(\d{8}-\d{6}F)\b/.exec(r.stdout)?.[1];
    assert.ok(label, r.stdout);
    return label;
  }

  /** The copy as the site's own means deliver it: every file of the repository, as the primary wrote it. */
  function ship(): void {
    const r = spawnSync('cp', ['-a', `${primary.backupRepo!}/.`, `${copy}/`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  }

  function spareOf(v: HaView): SpareView | null {
    return (v.spare ?? null) as SpareView | null;
  }

  before(async () => {
    primary = await HaCluster.create({ nodes: 1, backup: {} });
    primary.startNode(1);
    await primary.whole(180_000);
    await primary.sql(1, 'CREATE TABLE spare_rows (id int PRIMARY KEY, batch int)');
    await backup();
    await primary.sql(1, 'INSERT INTO spare_rows SELECT g, 1 FROM generate_series(1, 200) g');
    await new Promise((r) => setTimeout(r, 1500));
    between = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1500));
    await archived();
    copy = join(primary.cluster.baseDir, 'repo-copy');
    mkdirSync(copy, { mode: 0o750 });
    const user = await resolveServiceUser('hasup');
    chownSync(copy, user.uid, user.gid);
    ship();
  });

  destroyAfterSuite('spare-restore', () => [
    [restored, 'restored-'],
    [spare, 'spare-'],
    [primary, 'primary-'],
  ]);

  test('the spare restores the copy and replays its archive: a standby leader with no upstream, its follower cascading, the rows read only on both', async () => {
    spare = await HaCluster.create({ nodes: 2, standbyOfRepo: { repo: copy, primarySecrets: primary.secretsFile, schedule: '* * * * *' } });
    const started = Date.now();
    for (const i of [1, 2]) spare.startNode(i);
    await spare.startHaproxy();
    const s = spare;
    const sl = (
      await eventually(
        async () => {
          const views = await Promise.all([1, 2].map((i) => s.view(i).catch(() => undefined)));
          const v = views.find((x) => x?.leader);
          const leader = v?.members.find((m) => m.member === v.leader);
          const follower = v?.members.find((m) => m.member !== v.leader);
          if (leader?.role !== 'standby_leader' || leader.upstream !== null || follower?.role !== 'replica' || follower.upstream !== v!.leader || follower.replication_state !== 'streaming') return undefined;
          return [1, 2].find((_, k) => views[k]?.member_id === v!.leader);
        },
        240_000,
        'a standby leader replaying the copy, the other member streaming from it',
        500,
      )
    ).value;
    console.log(`# spare formed from the copy, node ${sl} its standby leader, ${Date.now() - started} ms after its members started`);
    for (const i of [1, 2]) await eventually(async () => (await countOn(s, i)) === 200 || undefined, 60_000, `the rows on spare node ${i}`);
    assert.deepEqual(await s.primaries(), [], 'no member of the spare takes writes');
    await assert.rejects(s.sql(sl, 'INSERT INTO spare_rows VALUES (9999, 9)'), /read-only/);
    const v = await s.view(sl);
    assert.equal(v.standby_of_repo, copy);
    assert.equal(v.standby_of, null);
    await eventually(async () => spareOf(await s.view(sl))?.replay?.segment ?? undefined, 30_000, 'the last replayed WAL recorded');
    // The follower shows what the standby leader recorded (it reads the record every 10 s).
    const line = new RegExp(`^standby cluster \\(restore mode\\): a warm spare of the repository copy ${copy.replace(/[/.]/g, '\\$&')}; standby leader ${v.leader} \\(in archive recovery\\); last restored backup \\d{8}-\\d{6}F.*; replayed WAL up to [0-9A-F]{24}`, 'm');
    let shown = '';
    await eventually(async () => {
      const status = await hasupCli(s, sl === 1 ? 2 : 1, ['status']);
      shown = `${status.code} ${status.stdout} ${status.stderr}`;
      return (status.code === 0 && line.test(status.stdout)) || undefined;
    }, 45_000, 'the spare line in hasup status on the follower').catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${shown}`);
    });
  });

  test('a new backup shipped into the copy: the next slot re-bases the spare on it; the spare wrote nothing into the copy', async () => {
    const s = spare!;
    await primary.sql(1, 'INSERT INTO spare_rows SELECT g, 2 FROM generate_series(201, 300) g');
    const label = await backup();
    await archived();
    ship();
    const shipped = treeHash(copy);
    const started = Date.now();
    await eventually(async () => {
      const views = await Promise.all([1, 2].map((i) => s.view(i).catch(() => undefined)));
      return views.some((x) => x && spareOf(x)?.last_restore?.label === label && !spareOf(x)?.last_restore?.unchanged) || undefined;
    }, 180_000, `the spare re-based on backup ${label}`, 1000);
    console.log(`# re-based on ${label} ${Date.now() - started} ms after it was shipped (slots every minute)`);
    for (const i of [1, 2]) await eventually(async () => (await countOn(s, i)) === 300 || undefined, 90_000, `the new rows on spare node ${i}`);
    assert.deepEqual(await s.primaries(), [], 'still no writes');
    const sl = (await s.view(1)).leader;
    assert.ok(sl);
    assert.deepEqual(treeHash(copy), shipped, 'not one file of the copy changed');
  });

  test('`hasup cluster promote` on the spare: it takes writes through its HAProxy, and still never writes into the copy', async () => {
    const s = spare!;
    const before = treeHash(copy);
    const started = Date.now();
    const r = await hasupCli(s, 1, ['cluster', 'promote']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /standby_of_repo cleared/);
    const leader = await s.soleLeader(60_000);
    console.log(`# promoted: node ${leader} takes writes ${Date.now() - started} ms after cluster promote started`);
    await s.sql(leader, 'INSERT INTO spare_rows VALUES (10000, 3)');
    const v = await s.view(leader);
    assert.equal(v.standby_of_repo, null);
    assert.equal(await countOn(s, leader), 301);
    assert.deepEqual(treeHash(copy), before, 'the promoted spare has no repository: nothing went into the copy');
    // Resources for the next test.
    await s.destroy();
    spare = undefined;
  });

  test('`hasup restore --to-new-cluster --time T`: a new cluster from the primary\'s repository, the first batch only, writable; a member joins and copies it', async () => {
    // The primary stopped, so that its own archiving cannot change the repository meanwhile: what changes it would be the restore.
    await primary.killNode(1);
    const repoBefore = treeHash(primary.backupRepo!);
    restored = await HaCluster.create({ nodes: 2, backup: {}, restoreFrom: { repo: primary.backupRepo!, sourceSecrets: primary.secretsFile, target: ['--time', between] } });
    const r = restored;
    assert.notEqual(r.secrets.api_token, primary.secrets.api_token, 'a new cluster identity');
    assert.notEqual(r.backupRepo, primary.backupRepo);
    r.startNode(1);
    const leader = await r.soleLeader(180_000);
    assert.equal(leader, 1, 'the restored member leads');
    const rows = await r.sql<{ batch: number; n: string }>(1, 'SELECT batch, count(*)::text AS n FROM spare_rows GROUP BY batch ORDER BY batch');
    assert.deepEqual(rows.map((x) => [x.batch, x.n]), [[1, '200']], 'the rows written before T, none after');
    await r.sql(1, 'INSERT INTO spare_rows VALUES (20000, 4)');
    r.startNode(2);
    await r.whole(180_000);
    await eventually(async () => (await countOn(r, 2)) === 201 || undefined, 60_000, 'the joined member copied the restored database');
    assert.deepEqual(treeHash(primary.backupRepo!), repoBefore, "the primary's repository was not written");
  });
});
