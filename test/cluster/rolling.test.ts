/**
 * `hasup rolling-restart postgresql` on three namespace nodes behind HAProxy
 * under write load (docs/maintenance.md): every member's PostgreSQL is
 * restarted once (a new postmaster pid on each), followers first; exactly
 * one leader change (the switchover before the old leader's restart); no
 * two nodes take writes at once; no acknowledged write is lost; the
 * longest pause in writes through HAProxy is printed (the target:
 * at most 2 s). Then --dry-run changes nothing, and a rollout with a
 * member down is refused before anything is restarted.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { WriteChecker } from '../support/write-checker.js';
import { hasupCli } from '../support/hasup-cli.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('rolling restart of PostgreSQL: three nodes under write load', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  destroyAfterSuite('rolling', () => [[ha, 'rolling']]);

  /** `hasup ARGS` against node i, without blocking the event loop (the writers keep writing). */
  const cli = (i: number, args: string[]) => hasupCli(ha, i, args);


  /** The postmaster pid of node i (its service status). */
  async function pgPid(i: number): Promise<number | null> {
    const r = await cli(i, ['status', '--json']);
    const services = (JSON.parse(r.stdout) as { services: Array<{ name: string; pid: number | null }> }).services;
    return services.find((s) => s.name === 'postgresql')?.pid ?? null;
  }

  before(async () => {
    ha = await HaCluster.create({ nodes: 3 });
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
    await ha.startHaproxy();
    await ha.whole(180_000);
  });

  test('--dry-run prints the plan, followers first and the leader last, and restarts nothing', async () => {
    const leader = await ha.soleLeader(30_000);
    const before = await Promise.all([1, 2, 3].map(pgPid));
    const r = await cli(1, ['rolling-restart', 'postgresql', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    const id = await ha.memberId(leader);
    const lines = r.stdout.split('\n');
    assert.match(lines.at(-3) ?? lines.join('\n'), new RegExp(`switch the PostgreSQL leader over from ${id}`));
    assert.match(lines.at(-2) ?? '', new RegExp(`restart postgresql on ${id}`));
    assert.deepEqual(await Promise.all([1, 2, 3].map(pgPid)), before, 'nothing restarted');
  });

  test('under writes through HAProxy: every PostgreSQL restarted once, exactly one leader change, 0 lost acknowledged writes', async () => {
    const leader = await ha.soleLeader(30_000);
    const pidsBefore = await Promise.all([1, 2, 3].map(pgPid));
    const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await w.setup(ha.haproxyTarget);
    const target = { ...ha.haproxyTarget, connections: 3 };
    w.start([target, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
    await sleep(2000);
    const started = Date.now();
    const r = await cli(leader === 1 ? 2 : 1, ['rolling-restart', 'postgresql']);
    const took = Date.now() - started;
    await sleep(2000);
    await w.stop();
    console.log(`# rolling-restart (${took} ms):\n${r.stdout.replace(/^/gm, '#   ')}`);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    const next = await ha.soleLeader(30_000);
    assert.notEqual(next, leader, 'the leader moved once, by the switchover');
    // Leader changes as writes saw them: runs of one server in ack order through HAProxy.
    const servers = w.acks.filter((a) => a.writer === 'haproxy').sort((a, b) => a.ackedAt - b.ackedAt).map((a) => a.server);
    const changes = servers.filter((s, i) => i > 0 && s !== servers[i - 1]).length;
    assert.equal(changes, 1, `exactly one leader change through HAProxy (${changes})`);
    const pidsAfter = await Promise.all([1, 2, 3].map(pgPid));
    for (const [i, p] of pidsAfter.entries()) assert.notEqual(p, pidsBefore[i], `node ${i + 1}'s PostgreSQL was restarted`);
    assert.deepEqual(w.overlaps(), [], 'never two nodes taking writes');
    const missing = await w.missing(ha.nodeTarget(next));
    assert.deepEqual(missing, [], 'no acknowledged write lost');
    const pause = w.longestGap('haproxy', started, started + took);
    console.log(`# ${w.acks.length} writes acknowledged, longest pause through HAProxy ${pause} ms (target: at most 2000 ms)`);
  });

  test('a member down refuses the rollout before anything is restarted, saying which', async () => {
    const leader = await ha.soleLeader(30_000);
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const other = [1, 2, 3].find((i) => i !== leader && i !== follower)!;
    const followerId = await ha.memberId(follower);
    // The whole node: a PostgreSQL stopped with `svc stop` is started again by the HA loop within a turn.
    await ha.killNode(follower);
    await eventually(
      async () => {
        const census = await ha.member(leader).api<{ members: Array<{ id: string; state: string }> }>('/census');
        return census.members.find((m) => m.id === followerId)?.state === 'dead' || undefined;
      },
      30_000,
      `node ${follower} seen dead by the leader`,
    );
    const pids = await Promise.all([leader, other].map(pgPid));
    const r = await cli(leader, ['rolling-restart', 'postgresql']);
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`refused: not every member is healthy \\(${followerId}: member not alive`));
    assert.deepEqual(await Promise.all([leader, other].map(pgPid)), pids, 'nothing restarted');
    await ha.whole(120_000);
  });

});
