/**
 * Backups on three namespace nodes behind HAProxy, formed by `hasup cluster
 * create` and two `hasup cluster join`s, every node's hasup.toml naming one
 * shared, encrypted repository ([service.postgresql.backup] repo_path, a
 * directory under the cluster's base dir owned by the service user):
 *
 *  - the leader makes the repository ready by itself (stanza-create, check),
 *    and every member's `hasup status` says so (the leader's gossiped report);
 *  - `hasup backup create --type full --wait`, asked of a follower, goes to
 *    the leader and succeeds; a second backup while one runs is refused
 *    naming it; `hasup backup list --json` shows the backup;
 *  - that backup is taken on a streaming follower (pgBackRest's
 *    backup-standby, backup_standby = "prefer" by default): the job and
 *    `backup list` name the follower, its pgBackRest log shows
 *    --backup-standby and the label, the leader's has no backup at all;
 *    with backup_standby = "off" (config apply) the leader takes it and
 *    says why; the restores below restore these backups;
 *  - under writes the leader node is killed: the new leader archives on its
 *    new timeline without any operator action, and an incremental backup
 *    after the failover succeeds;
 *  - `hasup backup verify` passes, and a byte flipped in a backup file makes
 *    it exit non-zero naming the file;
 *  - a table dropped by mistake comes back with `hasup restore --time`, run
 *    on a follower (every member stops, the follower restores and leads on a
 *    new timeline, the others rewind); targets outside the recoverability
 *    window are refused first, and nothing stops.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { JobView } from '../../src/plugins/backup/coordinator.js';
import type { BackupListing, VerifyOutcome } from '../../src/plugins/backup/views.js';
import type { ClusterView } from '../../src/plugins/http/cluster-view.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { hasupCli } from '../support/hasup-cli.js';
import { WriteChecker } from '../support/write-checker.js';
import { tlsRequest } from '../support/tls-request.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (existsSync('/usr/bin/pgbackrest') ? null : 'pgBackRest is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

/** The timeline a WAL segment name is on (its first 8 hex digits). */
const timelineOf = (segment: string) => parseInt(segment.slice(0, 8), 16);

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...filesUnder(path));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function flipByte(file: string, at: number): void {
  const bytes = readFileSync(file);
  bytes[at] = bytes[at]! ^ 0xff;
  writeFileSync(file, bytes);
}

describe('backups: three nodes sharing one repository', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  const ids = new Map<number, string>();
  let full: string;
  /** The follower the first backup was taken on. */
  let standbyMember: string;

  /** `hasup ARGS` from the host against node i's API (its state dir), without blocking the event loop. */
  const cli = (i: number, args: string[]) => hasupCli(ha, i, args);

  /** A POST to node i's API, its status and body whatever they are. */
  async function post(i: number, path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    // The API serves HTTPS with the member certificate (docs/tls.md).
    const ca = ha.member(i).tlsCa();
    const res = await tlsRequest(`${ha.member(i).apiUrl}${path}`, { method: 'POST', body, token: ha.secrets.api_token, timeoutMs: 5000, ...(ca ? { tls: { ca } } : {}) });
    return { status: res.status, body: res.json<Record<string, unknown>>() };
  }

  async function backupOf(i: number): Promise<ClusterView['backup']> {
    return (await ha.member(i).api<ClusterView>('/cluster')).backup;
  }

  async function listing(i: number): Promise<BackupListing> {
    const r = await cli(i, ['backup', 'list', '--json']);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as BackupListing;
  }

  const noSecret = (text: string) => {
    for (const s of [ha.secrets.api_token, ha.secrets.postgresql.superuser_password, ha.secrets.postgresql.replication_password, ha.secrets.backup?.repo_cipher_pass]) {
      if (s) assert.ok(!text.includes(s), 'a secret in the output');
    }
  };

  before(async () => {
    ha = await HaCluster.create({ nodes: 3, backup: { settings: ['cipher = true'] } });
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) {
      await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
      ids.set(i, await ha.memberId(i));
    }
    await ha.startHaproxy();
  });

  destroyAfterSuite('backup', () => [[ha, '']]);

  test('the leader makes the repository ready by itself; every member shows it in /cluster and hasup status', async () => {
    const leader = await ha.whole(180_000);
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const { ms } = await eventually(async () => {
      const b = await backupOf(leader);
      return b?.stanza === 'ok' && b.member === ids.get(leader) ? b : undefined;
    }, 120_000, 'the stanza ready on the leader', 500);
    console.log(`# stanza ready ${ms} ms after the cluster was whole`);
    assert.ok(existsSync(join(ha.backupRepo!, 'backup', 'hasup', 'backup.info')), 'the stanza is in the shared repository');
    // The leader's report reaches the followers by gossip.
    await eventually(async () => {
      const b = await backupOf(follower);
      return b?.from_leader && b.member === ids.get(leader) && b.stanza === 'ok' ? b : undefined;
    }, 30_000, "the leader's report on a follower", 500);
    const status = await cli(follower, ['status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^backups: repository ${ha.backupRepo!.replace(/[/.]/g, '\\$&')}, stanza ok, no full backup yet`, 'm'));
    // pgbackrest check made the leader archive a segment, and its archiver says so.
    const { value: archive } = await eventually(async () => {
      const a = (await backupOf(leader))?.archive;
      return a?.last_archived_wal ? a : undefined;
    }, 30_000, 'a segment archived');
    assert.equal(archive.failing, false);
  });

  test('hasup backup create --type full --wait, asked of a follower, is the leader\'s job and is taken on a streaming follower (backup-standby); a second backup meanwhile is refused naming it; list shows it and where it was taken; the leader\'s pgBackRest ran no backup', async () => {
    const leader = await ha.whole(90_000);
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    try {
      const pending = cli(follower, ['backup', 'create', '--type', 'full', '--wait']);
      // While it runs, the leader refuses a second one and names the first.
      const { value: first } = await eventually(async () => {
        const job = (await backupOf(leader))?.job;
        return job?.state === 'running' && job.type === 'full' ? job : undefined;
      }, 60_000, 'the full backup running on the leader', 50);
      const busy = await post(leader, '/backup', { type: 'incr' });
      assert.equal(busy.status, 409, JSON.stringify(busy.body));
      assert.match(String(busy.body.error), new RegExp(`^backup job ${first.id} \\(full\\) is running since `));
      assert.equal((busy.body.job as JobView).id, first.id);
      // A follower sends the caller to the leader.
      const misdirected = await post(follower, '/backup', { type: 'incr' });
      assert.equal(misdirected.status, 421);
      assert.deepEqual(misdirected.body.leader, { member: ids.get(leader), api: ha.member(leader).apiUrl });
      const r = await pending;
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      noSecret(r.stdout + r.stderr);
      assert.match(r.stderr, new RegExp(`this member is not the leader; asking the leader ${ids.get(leader)} at https://`));
      assert.match(r.stdout, new RegExp(`^backup job ${first.id} \\(full\\) started on member ${ids.get(leader)}$`, 'm'));
      // Taken on a follower (backup-standby): the leader's job names it.
      const done = /^backup (\S+F) \(full\) done in [\d.]+ s on follower ([0-9a-f]{16}): database .* WAL (\S+) to (\S+)$/m.exec(r.stdout);
      assert.ok(done, r.stdout);
      full = done[1]!;
      standbyMember = done[2]!;
      assert.notEqual(standbyMember, ids.get(leader));
      assert.ok([...ids.values()].includes(standbyMember), `${standbyMember} is a member`);
    } finally {
      await w.stop();
    }
    assert.ok(w.acks.length > 20, `writes went on during the backup (${w.acks.length})`);
    const l = await listing(follower);
    assert.deepEqual(l.backups.map((b) => [b.label, b.type]), [[full, 'full']]);
    assert.deepEqual(l.backups[0]!.source, { role: 'follower', member: standbyMember }, 'backup list names the follower it was taken on');
    const text = await cli(follower, ['backup', 'list']);
    assert.match(text.stdout, new RegExp(`^${full} +full +1 +follower ${standbyMember} `, 'm'));
    // pgBackRest ran the backup on the follower, from the standby, and never on the leader.
    const nodeOf = (member: string) => [...ids.entries()].find(([, id]) => id === member)![0];
    const pgbrLogs = (i: number) => join(ha.cluster.node(i).stateDir, 'svc', 'postgresql', 'logs');
    const standbyLog = readFileSync(join(pgbrLogs(nodeOf(standbyMember)), 'hasup-backup.log'), 'utf8');
    assert.match(standbyLog, /backup command begin 2\.45: .*--backup-standby /);
    assert.match(standbyLog, /wait for replay on the standby to reach/);
    assert.match(standbyLog, new RegExp(`new backup label = ${full}`));
    assert.ok(!existsSync(join(pgbrLogs(leader), 'hasup-backup.log')), "the leader's pgBackRest ran no backup");
    assert.ok(ha.member(leader).events.some((e) => e.event === 'backup_source' && e.source === 'follower' && e.follower === standbyMember), 'the leader logged which follower takes it');
    assert.deepEqual(l.stanza.cipher, ['aes-256-cbc']);
    assert.ok(l.backups[0]!.repo_bytes > 0 && l.backups[0]!.database_bytes > l.backups[0]!.repo_bytes);
    assert.equal(l.recoverable[0]?.from_backup, full);
    const status = await cli(leader, ['status']);
    assert.match(status.stdout, /^backups: .*stanza ok, last full \S+Z \([^)]+ ago\)/m);
    assert.match(status.stdout, new RegExp(`^backups: .*last full \\S+Z \\([^)]+ ago\\) on follower ${standbyMember}`, 'm'));
    assert.doesNotMatch(status.stdout, /pgBackRest server is not running/);
  });

  test('the leader killed under writes: the new leader archives on its new timeline by itself, and an incremental backup after the failover works', async () => {
    const leader = await ha.whole(90_000);
    const before = (await ha.view(leader)).timeline!;
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    let next: number;
    try {
      await new Promise((r) => setTimeout(r, 1000));
      const killed = Date.now();
      await ha.killNode(leader);
      next = await ha.soleLeader(30_000, leader);
      await eventually(async () => w.firstAckAfter(killed, 'haproxy', ha.address(next)), 20_000, 'writes on the new leader');
    } finally {
      await w.stop();
    }
    const timeline = (await ha.view(next)).timeline!;
    assert.ok(timeline > before, `a new timeline (${before} -> ${timeline})`);
    // No operator action: the new leader's coordinator makes the repository ready (its check switches a segment).
    const { value: archived, ms } = await eventually(
      async () => {
        const l = await listing(next);
        const max = l.archives.map((a) => a.max ?? '').sort().pop() ?? '';
        return max && timelineOf(max) === timeline ? max : undefined;
      },
      120_000,
      `a segment of timeline ${timeline} in the archive`,
      1000,
    );
    console.log(`# node ${next} leads on timeline ${timeline}; the archive reached ${archived} ${ms} ms later`);
    const b = await eventually(async () => {
      const x = await backupOf(next);
      return x?.stanza === 'ok' ? x : undefined;
    }, 60_000, 'the new leader reporting the repository ready');
    assert.equal(b.value.member, ids.get(next));

    const r = await cli(next, ['backup', 'create', '--type', 'incr', '--wait']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^backup \S+I \(incr\) done/m);
    const l = await listing(next);
    assert.deepEqual(l.backups.map((x) => x.type), ['full', 'incr']);
    assert.equal(l.backups[1]!.prior, full);
    assert.equal(timelineOf(l.backups[1]!.wal_start!), timeline, 'the incremental backup is of the new timeline');

    ha.startNode(leader);
    await ha.whole(180_000);
  });

  test('hasup backup verify passes; a byte flipped in a backup file makes it exit non-zero naming the file', async () => {
    const ok = await cli(2, ['backup', 'verify']);
    assert.equal(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
    assert.match(ok.stdout, /verified from member \S+ in [\d.]+ s: OK$/m);
    const json = await cli(3, ['backup', 'verify', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const outcome = JSON.parse(json.stdout) as VerifyOutcome;
    assert.equal(outcome.ok, true);
    assert.equal(outcome.checks.find((c) => c.name === 'system-id')?.status, 'ok');
    assert.equal(outcome.checks.find((c) => c.name === 'wal-continuity')?.status, 'ok', 'the failover left no hole in the archived WAL');
    noSecret(ok.stdout + ok.stderr + json.stdout);

    const stanzaDir = join(ha.backupRepo!, 'backup', 'hasup');
    const victim = filesUnder(join(stanzaDir, full, 'pg_data')).sort((a, b) => statSync(b).size - statSync(a).size)[0]!;
    const at = Math.floor(statSync(victim).size / 2);
    flipByte(victim, at);
    try {
      const bad = await cli(1, ['backup', 'verify']);
      assert.notEqual(bad.code, 0, bad.stdout);
      const name = relative(stanzaDir, victim);
      assert.ok(bad.stdout.includes(name), `the report names ${name}:\n${bad.stdout}`);
      assert.match(bad.stdout, /PROBLEMS FOUND/);
      assert.match(bad.stderr, new RegExp(`repository 1 \\(.*\\) has \\d+ problem\\(s\\), first: .*${name.replace(/[.]/g, '\\.')}`));
    } finally {
      flipByte(victim, at);
    }
  });

  test('point in time: a table dropped by mistake comes back with hasup restore --time, run on a follower; a target outside the window is refused and nothing stops', async () => {
    const leader = await ha.whole(90_000);
    const restorer = [1, 2, 3].find((i) => i !== leader)!;
    const early = await cli(restorer, ['restore', '--time', '2000-01-01T00:00:00Z', '--yes']);
    assert.notEqual(early.code, 0, early.stdout);
    assert.match(early.stderr, /time 2000-01-01 00:00:00\.000\+00 is before the recoverability window: the repository can restore from \S+ \(the end of backup \S+F, WAL [0-9A-F/]+\) to the end of WAL [0-9A-F]{24}/);
    const unsure = await cli(restorer, ['restore', '--latest']);
    assert.notEqual(unsure.code, 0);
    assert.match(unsure.stderr, /Run again with --yes/);
    const bad = await cli(restorer, ['restore', '--time', 'yesterday', '--yes']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /"yesterday" is not a time with a zone/);
    assert.deepEqual(await ha.primaries(), [leader], 'the refusals stopped nothing');
    assert.equal((await ha.view(leader)).restore, null);

    const timeline = (await ha.view(leader)).timeline!;
    await ha.sql(leader, 'CREATE TABLE precious (id int PRIMARY KEY, note text NOT NULL)');
    await ha.sql(leader, "INSERT INTO precious SELECT g, 'row ' || g FROM generate_series(1, 1000) g");
    const [mark] = await ha.sql<{ t: string }>(leader, `SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS t`);
    await new Promise((r) => setTimeout(r, 1000));
    await ha.sql(leader, 'DROP TABLE precious');
    const [seg] = await ha.sql<{ wal: string }>(leader, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal');
    await eventually(
      async () => {
        const l = await listing(leader);
        return l.archives.some((a) => (a.max ?? '') >= seg!.wal) || undefined;
      },
      60_000,
      `segment ${seg!.wal} (the DROP) in the archive`,
      1000,
    );

    const started = Date.now();
    const r = await cli(restorer, ['restore', '--time', mark!.t, '--yes']);
    const took = Date.now() - started;
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, new RegExp(`cluster restore \\w+ to time \\S+ \\S+ started, member ${ids.get(restorer)} restoring`));
    const steps = ha.member(restorer).events.filter((e) => e.event === 'restore_progress').map((e) => String(e.detail));
    const order = ['stopping PostgreSQL', 'restoring the data directory', 'replaying archived WAL'].map((step) => steps.findIndex((d) => d.startsWith(step)));
    assert.ok(order.every((at, k) => at >= 0 && (k === 0 || at > order[k - 1]!)), `the restorer logged each step, in order: ${steps.join(' | ')}`);
    assert.match(r.stdout, /cluster restore \w+ done: restored on \S+ in \d+ s/);
    noSecret(r.stdout + r.stderr);
    const next = await ha.whole(180_000);
    console.log(`# restore to ${mark!.t} on node ${restorer}: ${took} ms to done, the cluster whole ${Date.now() - started} ms after the command started\n${r.stdout.trim()}`);
    assert.equal(next, restorer, 'the restoring member leads');
    const view = await ha.view(next);
    assert.ok(view.timeline! > timeline, `a new timeline (${timeline} -> ${view.timeline})`);
    assert.equal(view.restore?.state, 'done');
    const [back] = await ha.sql<{ n: string }>(next, 'SELECT count(*)::text AS n FROM precious');
    assert.equal(back!.n, '1000', 'the dropped table is back with its rows');
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    await eventually(async () => w.acks.find((a) => a.server === ha.address(next)), 20_000, 'a write through HAProxy on the restored leader');
    await w.stop();
  });

  test('a schedule (incr every minute, applied with config apply): the leader claims the slot in etcd and takes the backup once; the status names the next slot', async () => {
    const leader = await ha.whole(90_000);
    const before = (await listing(leader)).backups.length;
    const patch = join(ha.cluster.baseDir, 'schedule.toml');
    writeFileSync(patch, '[backup]\nschedule_incr = "* * * * *"\n');
    const applied = await cli(leader, ['config', 'apply', 'postgresql.default', '1', patch]);
    assert.equal(applied.code, 0, applied.stderr);
    try {
      const status = await eventually(async () => {
        const st = await cli(leader, ['status']);
        return /next incr \S+/.test(st.stdout) ? st.stdout : undefined;
      }, 20_000, 'hasup status naming the next incr slot');
      assert.match(status.value, /^backups: .*next incr \S+ \(in \d+ s\)/m);
      const done = await eventually(
        async () => [1, 2, 3].flatMap((i) => ha.member(i).events).find((e) => e.event === 'backup_schedule' && e.state === 'done' && e.type === 'incr'),
        100_000,
        'a scheduled incr backup done',
        500,
      );
      const slot = String(done.value.slot);
      const started = [1, 2, 3].flatMap((i) => ha.member(i).events).filter((e) => e.event === 'backup_schedule' && e.state === 'running' && e.slot === slot);
      assert.equal(started.length, 1, `one backup for the slot ${slot}, on one member`);
      const l = await listing(leader);
      assert.equal(l.backups.length, before + 1);
      assert.equal(l.backups[l.backups.length - 1]!.label, done.value.label);
    } finally {
      writeFileSync(patch, '[backup]\nschedule_incr = ""\n');
      const off = await cli(leader, ['config', 'apply', 'postgresql.default', '2', patch]);
      assert.equal(off.code, 0, off.stderr);
    }
  });

  test('every member\'s data destroyed: no member starts an empty database; hasup restore --latest brings back every acknowledged write the archive holds, and the cluster is whole again', async () => {
    const leader = await ha.whole(90_000);
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    await new Promise((r) => setTimeout(r, 3000));
    await w.stop();
    assert.ok(w.acks.length > 50, `writes acknowledged before the loss (${w.acks.length})`);
    const [seg] = await ha.sql<{ wal: string }>(leader, 'SELECT pg_walfile_name(pg_switch_wal()) AS wal');
    await eventually(async () => (await listing(leader)).archives.some((a) => (a.max ?? '') >= seg!.wal) || undefined, 60_000, `segment ${seg!.wal} in the archive`, 1000);

    for (const i of [1, 2, 3]) await ha.killNode(i);
    for (const i of [1, 2, 3]) rmSync(join(ha.cluster.node(i).stateDir, 'svc', 'postgresql', 'data'), { recursive: true, force: true });
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) await ha.member(i).waitForEvent((e) => e.event === 'http', 60_000, 'HTTP listening');
    const waiting = await eventually(
      async () => [1, 2, 3].flatMap((i) => ha.member(i).events).find((e) => e.event === 'ha_bootstrap_wait' && /if every member lost its data, restore it/.test(e.msg)),
      60_000,
      'the member that created the database saying it waits for a restore',
    );
    console.log(`# after the loss: ${waiting.value.msg}`);
    assert.deepEqual(await ha.primaries(), [], 'no member started an empty database');

    const restorer = 1;
    const started = Date.now();
    const r = await cli(restorer, ['restore', '--latest', '--yes']);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /cluster restore \w+ to the end of the archive started/);
    const next = await ha.whole(240_000);
    console.log(`# restore --latest after every member's data was destroyed: whole ${Date.now() - started} ms after the command\n${r.stdout.trim()}`);
    assert.equal(next, restorer);
    assert.deepEqual(await w.missing(ha.nodeTarget(next)), [], 'every acknowledged write is back');
  });

  test('backup_standby = "off" (config apply): the leader takes the backup itself and says why; back to "prefer", a follower takes it again', async () => {
    const leader = await ha.whole(90_000);
    const patch = join(ha.cluster.baseDir, 'standby-off.toml');
    writeFileSync(patch, '[backup]\nbackup_standby = "off"\n');
    const applied = await cli(leader, ['config', 'apply', 'postgresql.default', '3', patch]);
    assert.equal(applied.code, 0, applied.stderr);
    try {
      const r = await eventually(async () => {
        const x = await cli(leader, ['backup', 'create', '--type', 'incr', '--wait']);
        assert.equal(x.code, 0, `${x.stdout}\n${x.stderr}`);
        // The config reaches the leader by gossip: a backup taken before it did is taken again.
        return /on the leader /.test(x.stdout) ? x : undefined;
      }, 30_000, 'a backup on the leader', 1000);
      assert.match(r.value.stdout, new RegExp(`^backup \\S+I \\(incr\\) done in [\\d.]+ s on the leader ${ids.get(leader)} \\(backup\\.backup_standby = "off"\\): database`, 'm'));
      assert.ok(existsSync(join(ha.cluster.node(leader).stateDir, 'svc', 'postgresql', 'logs', 'hasup-backup.log')), "the leader's pgBackRest ran this one");
      assert.ok(ha.member(leader).events.some((e) => e.event === 'backup_source' && e.source === 'leader' && /backup_standby = "off"/.test(String(e.reason))), 'the leader logged why it took it');
    } finally {
      writeFileSync(patch, '[backup]\nbackup_standby = "prefer"\n');
      const back = await cli(leader, ['config', 'apply', 'postgresql.default', '4', patch]);
      assert.equal(back.code, 0, back.stderr);
    }
    const again = await eventually(async () => {
      const x = await cli(leader, ['backup', 'create', '--type', 'incr', '--wait']);
      assert.equal(x.code, 0, `${x.stdout}\n${x.stderr}`);
      return /on follower [0-9a-f]{16}: database/.test(x.stdout) ? x : undefined;
    }, 60_000, 'a backup on a follower again', 1000);
    console.log(`# ${again.value.stdout.trim().split('\n').pop()}`);
  });
});
