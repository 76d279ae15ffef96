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
 *  - every node of the primary cluster killed: `hasup cluster promote` (refused
 *    while the primary cluster was alive) makes the spare the primary
 *    cluster; writes go through the spare's HAProxy;
 *  - switch back: the old site's members demoted while stopped (`hasup
 *    cluster demote --offline`) come back as a standby of the new primary,
 *    never taking a write; then the spare is demoted and the old site
 *    promoted, and the spare follows it again.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { memberTlsFiles } from '../../src/supervisor/pki/member-files.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
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

  destroyAfterSuite('standby', () => [
    [spare, 'spare-'],
    [primary, 'primary-'],
  ]);

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
    // The primary's CA came from its secrets at create: the stream checks the primary's certificates (verify-ca).
    assert.doesNotMatch(status.stdout, /not verified/);
    assert.match((await spare.sql<{ conninfo: string }>(sl, 'SELECT conninfo FROM pg_stat_wal_receiver'))[0]!.conninfo, /sslmode=verify-ca/);
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

  const spareWriteAddress = () => `${spare.cluster.hostAddress}:${spare.haproxyPort}`;
  const primaryWriteAddress = () => `${primary.cluster.hostAddress}:${primary.haproxyPort}`;

  test('disaster: every node of the primary cluster killed; `hasup cluster promote` on the spare, writes go through its HAProxy', async () => {
    const sl = await spare.standbyWhole(60_000);
    const pl = await primary.whole(60_000);
    await primary.sql(pl, 'INSERT INTO dr_rows SELECT generate_series(701, 800)');
    await eventually(async () => (await countOn(spare, sl, 'dr_rows')) === 800 || undefined, 30_000, 'the last rows on the spare');
    const refused = await hasupCli(spare, sl, ['cluster', 'promote', '--no-wait']);
    assert.equal(refused.code, 1, 'promote is refused while the primary cluster is alive');
    assert.match(refused.stderr, /still streams from the primary cluster .* Demote it first .* --force/);
    assert.equal((await spare.view(sl)).standby_of, primaryWriteAddress(), 'the refused promote changed nothing');
    for (const i of [1, 2, 3]) await primary.killNode(i);
    // The standby leader reports the lost stream within a turn or two.
    await eventually(async () => {
      const v = await spare.view(sl);
      return v.members.find((m) => m.member === v.leader)?.replication_state !== 'streaming' || undefined;
    }, 30_000, 'the spare sees the primary cluster gone');
    const started = Date.now();
    const w = new WriteChecker({ user: 'hasup', password: spare.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    const [r] = await Promise.all([
      hasupCli(spare, sl, ['cluster', 'promote']),
      // The first write through the spare's HAProxy (setup retries its CREATE TABLE until one goes through).
      w.setup(spare.haproxyTarget, 60_000),
    ]);
    const promoteS = (Date.now() - started) / 1000;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /is the primary cluster: leader \w+, timeline \d+, takes writes/);
    w.start([spare.haproxyTarget]);
    await eventually(async () => w.acks.length > 20 || undefined, 10_000, 'writes through the spare\'s HAProxy');
    await w.stop();
    console.log(`# DR: hasup cluster promote; first write through the spare's HAProxy ${promoteS.toFixed(1)} s after it started`);
    const leader = await spare.whole(120_000);
    assert.equal(await countOn(spare, leader, 'dr_rows'), 800, 'every row the spare had is there');
    assert.ok(promoteS < 15, `promoted within 15 s (${promoteS.toFixed(1)} s)`);
    await spare.sql(leader, 'INSERT INTO dr_rows SELECT generate_series(801, 900)');
  });

  test('switch back: the old primary cluster comes back demoted (--offline) and follows the spare; then the spare is demoted and the old primary promoted', async () => {
    // The spare's CA, as its operator would hand it over: the old primary then checks the spare's certificates.
    const spareCa = join(primary.cluster.baseDir, 'spare-ca.pem');
    writeFileSync(spareCa, spare.secrets.tls!.ca_cert);
    const memberCert = memberTlsFiles(spare.cluster.node(1).stateDir).cert;
    const notCa = await hasupCli(primary, 1, ['cluster', 'demote', '--offline', '--follow', spareWriteAddress(), '--follow-ca', memberCert]);
    assert.notEqual(notCa.code, 0, "a member's certificate in place of the CA's is refused");
    assert.match(notCa.stderr, /--follow-ca .*member\.pem: certificate 1 .* is not a CA certificate/);
    for (const i of [1, 2, 3]) {
      const r = await hasupCli(primary, i, ['cluster', 'demote', '--offline', '--follow', spareWriteAddress(), '--follow-ca', spareCa]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const i of [1, 2, 3]) primary.startNode(i);
    // Never a writable member on the old site while it comes back.
    const watching = { stop: false, seen: [] as number[] };
    const watcher = (async () => {
      while (!watching.stop) {
        watching.seen.push(...(await primary.primaries()));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const pl = await primary.standbyWhole(240_000);
    watching.stop = true;
    await watcher;
    assert.deepEqual(watching.seen, [], 'no member of the returning site took writes');
    await eventually(async () => (await countOn(primary, pl, 'dr_rows')) === 900 || undefined, 60_000, 'the rows written on the promoted spare, on the old primary site');
    assert.match((await primary.sql<{ conninfo: string }>(pl, 'SELECT conninfo FROM pg_stat_wal_receiver'))[0]!.conninfo, /sslmode=verify-ca/, "the returning site checks the spare's certificates");

    // Planned switch back: demote the spare first (it stops taking writes), then promote the old primary.
    const sl = await spare.whole(60_000);
    const demoted = await hasupCli(spare, sl, ['cluster', 'demote', '--follow', primaryWriteAddress()]);
    assert.equal(demoted.code, 0, demoted.stderr);
    assert.match(demoted.stdout, /is a standby cluster of .*, no member takes writes/);
    assert.deepEqual(await spare.primaries(), [], 'the demoted spare takes no writes');
    await assert.rejects(spare.sql(sl, 'INSERT INTO dr_rows VALUES (-1)'), /read-only transaction/, 'not even straight to the node');
    const promoted = await hasupCli(primary, pl, ['cluster', 'promote']);
    assert.equal(promoted.code, 0, promoted.stderr);
    const leader = await primary.whole(120_000);
    await primary.sql(leader, 'INSERT INTO dr_rows SELECT generate_series(901, 1000)');
    assert.equal(await countOn(primary, leader, 'dr_rows'), 1000);
    const back = await spare.standbyWhole(180_000);
    await eventually(async () => (await countOn(spare, back, 'dr_rows')) === 1000 || undefined, 60_000, 'the spare follows the old primary again');
    const status = await hasupCli(spare, back, ['status']);
    assert.match(status.stdout, new RegExp(`^standby cluster: follows the primary cluster at ${primaryWriteAddress().replace(/\./g, '\\.')}; standby leader \\w+ \\(streaming, received up to [0-9A-F]+/[0-9A-F]+, \\d+(\\.\\d)? [KMG]?i?B behind it\\)`, 'm'));
    // Demoted without --follow-ca: encrypted, not verified, and status says so.
    assert.match(demoted.stderr, /without --follow-ca the stream .* is encrypted but its server is not verified/);
    assert.match(status.stdout, /certificates are not verified: no \[ha\] standby_of_ca/);
    assert.match((await spare.sql<{ conninfo: string }>(back, 'SELECT conninfo FROM pg_stat_wal_receiver'))[0]!.conninfo, /sslmode=require/);
  });
});
