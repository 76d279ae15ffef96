/**
 * PostgreSQL HA on three namespace nodes behind HAProxy, with one real etcd
 * on the host: bootstrap (one leader, two streaming followers), a follower
 * killed, the leader node killed (failover, the old leader rejoins), the
 * leader cut off from the others and from etcd (it fences itself within the
 * TTL, the majority elects), a switchover under writes, pause/resume, and
 * synchronous mode with the leader killed. A write checker runs through
 * HAProxy and straight at every node: no acknowledged write may go missing
 * where the scenario promises it, and no two nodes may accept writes at once.
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HASUP_BIN } from '../support/member-procs.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { eventually, HaCluster } from '../support/ha-cluster.js';
import { WriteChecker } from '../support/write-checker.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const TTL_MS = 3000;

describe('PostgreSQL HA: three nodes, etcd lease, HAProxy in front', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  const ids = new Map<number, string>();

  const checker = () => new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });

  /** The one node whose /primary answers 200 (fails on none or several). */
  async function soleLeader(timeoutMs: number, not?: number): Promise<{ value: number; ms: number }> {
    return eventually(
      async () => {
        const p = await ha.primaries();
        return p.length === 1 && p[0] !== not ? p[0] : undefined;
      },
      timeoutMs,
      `one writable leader${not ? ` other than node ${not}` : ''}`,
    );
  }

  async function streamingFollowers(leader: number, expect: number[], timeoutMs: number): Promise<void> {
    const want = expect.map((i) => ids.get(i)!).sort();
    await eventually(
      async () => {
        const rows = await ha.sql<{ application_name: string; state: string }>(leader, "SELECT application_name, state FROM pg_stat_replication WHERE state = 'streaming'");
        const names = rows.map((r) => r.application_name).sort();
        return want.every((w) => names.includes(w)) ? names : undefined;
      },
      timeoutMs,
      `nodes ${expect.join(', ')} streaming from node ${leader}`,
      250,
    );
    for (const i of expect) await eventually(async () => (await ha.check(i, '/replica')) === 200, 15_000, `node ${i} /replica 200`);
  }

  before(async () => {
    ha = await HaCluster.create({ nodes: 3 });
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) {
      await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
      ids.set(i, await ha.memberId(i));
    }
    await ha.startHaproxy();
  });

  let failed = false;
  afterEach((t) => {
    if ((t as unknown as { passed?: boolean }).passed === false) failed = true;
  });

  after(async () => {
    if (failed || process.env.HASUP_HA_LOGS) {
      for (const n of ha?.cluster.nodes ?? []) {
        for (const m of n.members) {
          const lines = m.events.filter((e) => e.level >= 40 || /^(ha_|pg_|clone|rewind|slot|diverged|data_)/.test(String(e.event ?? '')));
          console.log(`# ---- node ${n.index} (pid ${m.pid}) ----`);
          for (const e of lines.slice(-60)) console.log(`# ${new Date(e.time).toISOString().slice(11, 23)} ${e.event ?? ''} ${e.msg}`);
          for (const line of m.stderr.slice(-10)) console.log(`# stderr: ${line}`);
        }
      }
    }
    await ha?.destroy();
  });

  test('bootstrap: one leader, two followers streaming from it (pg_stat_replication), writes through HAProxy', async () => {
    const started = Date.now();
    const { value: leader } = await soleLeader(180_000);
    const followers = [1, 2, 3].filter((i) => i !== leader);
    await streamingFollowers(leader, followers, 120_000);
    console.log(`# bootstrap: leader node ${leader}, both followers streaming after ${Date.now() - started} ms`);
    for (const f of followers) assert.equal(await ha.check(f, '/primary'), 503, `follower node ${f} is not /primary`);
    const w = checker();
    await w.setup(ha.haproxyTarget);
    w.start([ha.haproxyTarget]);
    await new Promise((r) => setTimeout(r, 1000));
    await w.stop();
    assert.ok(w.acks.length > 10, `writes through HAProxy are acknowledged (${w.acks.length})`);
    assert.ok(w.acks.every((a) => a.server === ha.address(leader)), 'every write landed on the leader');
    assert.deepEqual(await w.missing(ha.nodeTarget(leader)), []);
    const view = await ha.view(followers[0]!);
    assert.equal(view.leader, ids.get(leader));
    assert.equal(view.members.filter((m) => m.role === 'replica' && m.replication_state === 'streaming').length, 2);
  });
});
