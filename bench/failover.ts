/**
 * Failover benchmark: a 3-node PostgreSQL HA cluster in network namespaces
 * behind HAProxy (one etcd on the host), writes every 20 ms through HAProxy
 * and straight at every node, and per trial a kill -9 of every process of
 * the leader's node (PostgreSQL, hasup; the node "loses power").
 *
 *   npm run bench:failover -- --trials 5 --json [--sync]
 *
 * failover_ms: from the kill to the first write acknowledged through HAProxy
 * by the new leader. lost_acked_writes: acknowledged ids missing from the
 * table at the end (asynchronous replication may lose the last ones; with
 * --sync none may be lost). split_brain_overlaps: windows in which two
 * nodes both acknowledged writes (must be 0).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { HASUP_BIN } from '../test/support/member-procs.js';
import { eventually, HaCluster } from '../test/support/ha-cluster.js';
import { netnsUnavailableReason } from '../test/support/netns-cluster.js';
import { WriteChecker } from '../test/support/write-checker.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '5' },
    sync: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const trials = Number(values.trials);
const progress = (msg: string) => process.stderr.write(`[failover] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
}

function run(args: string[]): Promise<number | null> {
  return new Promise((resolve) => spawn(process.execPath, [HASUP_BIN, ...args], { stdio: 'ignore' }).once('close', resolve));
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) throw new Error(`the failover benchmark needs network namespaces: ${why}`);
  if (!Number.isInteger(trials) || trials < 1) throw new Error('--trials must be a positive integer');
  const ha = await HaCluster.create({ nodes: 3 });
  const failovers: number[] = [];
  let acked = 0;
  let lost = 0;
  let overlaps = 0;
  try {
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    let leader = await ha.whole();
    progress(`cluster up, leader node ${leader}`);
    if (values.sync) {
      const patch = join(ha.cluster.baseDir, 'sync.toml');
      writeFileSync(patch, '[ha]\nsynchronous_mode = true\n');
      if ((await run(['config', 'apply', 'postgresql.default', '1', patch, '--state-dir', ha.cluster.node(leader).stateDir])) !== 0) throw new Error('config apply failed');
      await eventually(async () => (await ha.view(leader)).sync_members.length === 2, 30_000, 'both followers synchronous');
      progress('synchronous mode on');
    }
    const checker = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
    await checker.setup(ha.haproxyTarget);
    for (let t = 1; t <= trials; t++) {
      leader = await ha.whole();
      const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
      w.start([ha.haproxyTarget, ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
      await sleep(2000 + Math.random() * 1000);
      const killed = Date.now();
      await ha.killNode(leader);
      const next = await ha.soleLeader(60_000, leader);
      const first = await eventually(async () => w.firstAckAfter(killed, 'haproxy', ha.address(next)), 30_000, 'a write on the new leader');
      await sleep(1000);
      await w.stop();
      const missing = await w.missing(ha.nodeTarget(next));
      const ms = first.value.ackedAt - killed;
      failovers.push(ms);
      acked += w.acks.length;
      lost += missing.length;
      overlaps += w.overlaps().length;
      progress(`trial ${t}: node ${leader} killed, node ${next} took writes after ${ms} ms; ${w.acks.length} acknowledged, ${missing.length} lost, ${w.overlaps().length} overlaps`);
    }
  } finally {
    await ha.destroy();
  }
  const result = {
    trials,
    synchronous_mode: values.sync,
    failover_ms: failovers,
    failover_ms_median: median(failovers),
    failover_ms_max: Math.max(...failovers),
    acked_writes: acked,
    lost_acked_writes: lost,
    split_brain_overlaps: overlaps,
  };
  console.log(values.json ? JSON.stringify(result) : result);
}

main().catch((err: unknown) => {
  console.error(`failover benchmark: ${(err as Error).message}`);
  process.exit(1);
});
