/**
 * A long packet-loss soak for measuring, not for every run: three namespace
 * nodes with an etcd voter each, PERCENT% random loss on every node for
 * HASUP_LOSS_SOAK_S seconds, then counts how often the leader fenced itself
 * and how often its lease renewals started failing. Skipped unless
 * HASUP_LOSS_SOAK_S is set (e.g. HASUP_LOSS_SOAK_S=150 HASUP_LOSS_SOAK_PCT=10).
 * It asserts only what must hold whatever the counts: the leader key never
 * moves to another member while nothing but loss happens.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { HaCluster } from '../support/ha-cluster.js';

const seconds = Number(process.env.HASUP_LOSS_SOAK_S ?? 0);
const pct = Number(process.env.HASUP_LOSS_SOAK_PCT ?? 10);

const skip =
  (seconds > 0 ? null : 'set HASUP_LOSS_SOAK_S to run the packet-loss soak') ??
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

describe('PostgreSQL HA under a long packet-loss soak', { skip: skip ?? false }, () => {
  let ha: HaCluster | undefined;

  after(async () => {
    await ha?.destroy();
  });

  test(`${pct}% loss on every node for ${seconds} s: count the leader's fences`, { timeout: (seconds + 400) * 1000 }, async () => {
    ha = await HaCluster.create({ nodes: 3 });
    for (const i of [1, 2, 3]) ha.startNode(i);
    const leader = await ha.whole(240_000);
    // etcd's raft term counts its leader elections: a stall there stalls every lease renewal.
    const raftTerm = async () => Math.max(...(await Promise.all([1, 2, 3].map((i) => ha!.etcdStatus(i, 3000).then((st) => st.raftTerm, () => 0)))));
    const termBefore = await raftTerm();
    const start = Date.now();
    try {
      for (const i of [1, 2, 3]) await ha.cluster.loss(i, pct);
      await new Promise((r) => setTimeout(r, seconds * 1000));
      for (const i of [1, 2, 3]) assert.ok((await ha.cluster.droppedPackets(i)) > 0, `node ${i} really lost packets`);
    } finally {
      await ha.cluster.clearFaults();
    }
    const end = Date.now();
    const elections = (await raftTerm()) - termBefore;
    const count = (i: number, event: string) => ha!.member(i).events.filter((e) => e.time >= start && e.time <= end && e.event === event).length;
    const fences = [1, 2, 3].map((i) => count(i, 'ha_fenced'));
    const renewFailed = [1, 2, 3].map((i) => count(i, 'ha_renew_failed'));
    const tookKey = [1, 2, 3].filter((i) => i !== leader).map((i) => count(i, 'ha_leader'));
    console.log(`# soak ${pct}% loss for ${Math.round((end - start) / 1000)} s: leader node ${leader}; ha_fenced per node ${fences.join('/')}; ha_renew_failed per node ${renewFailed.join('/')}; others took the key ${tookKey.join('/')} time(s); etcd leader elections ${elections}`);
    for (const i of [1, 2, 3]) {
      for (const e of ha.member(i).events) {
        if (e.time < start || e.time > end || !/^ha_(fenced|renew_failed|lease_gone|leader)$/.test(String(e.event ?? ''))) continue;
        console.log(`# node ${i} +${((e.time - start) / 1000).toFixed(1)} s ${String(e.event)}: ${String(e.reason ?? e.msg)}`.slice(0, 400));
      }
    }
    const after = await ha.soleLeader(60_000);
    assert.equal(after, leader, 'the same node leads after the loss');
  });
});
