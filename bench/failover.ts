/**
 * Failover benchmark: a 3-node PostgreSQL HA cluster in network namespaces
 * behind HAProxy, formed as an operator forms one (`hasup cluster create`
 * on node 1, `hasup cluster join` on nodes 2 and 3), so each node runs its
 * own etcd voter. Writes every 20 ms through HAProxy and straight at every
 * node; per trial a kill -9 of every process of the leader's node
 * (PostgreSQL, its etcd member, hasup: the node "loses power").
 *
 *   npm run bench:failover -- --trials 5 --json [--sync] [--kill-etcd-leader] [--etcd-timeouts 100/1000] [--via-vip]
 *
 * --via-vip: the cluster also has the leader VIP ([cluster] vip, docs/vip.md)
 * and a writer goes through it beside the one through HAProxy; the killed
 * node's link goes down with it (a dead machine stops answering ARP for the
 * VIP), for both paths. vip_failover_ms: from the kill to the first write
 * acknowledged through the VIP by the new leader, in the same trials as
 * failover_ms (HAProxy's).
 *
 * failover_ms: from the kill to the first write acknowledged through HAProxy
 * by the new leader. lost_acked_writes: acknowledged ids missing from the
 * table at the end (asynchronous replication may lose the last ones; with
 * --sync none may be lost). split_brain_overlaps: windows in which two
 * nodes both acknowledged writes (must be 0). Each trial also says whether
 * the killed node's etcd member led etcd's raft at the kill: hasup moves
 * that leadership off the PostgreSQL leader's node, so normally it did not;
 * --kill-etcd-leader hands it to the leader's node just before the kill
 * (the case where etcd must elect a raft leader before any lease can expire).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
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
    'kill-etcd-leader': { type: 'boolean', default: false },
    'etcd-timeouts': { type: 'string' },
    'via-vip': { type: 'boolean', default: false },
  },
});
const trials = Number(values.trials);
const progress = (msg: string) => process.stderr.write(`[failover] ${msg}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const load1 = () => Math.round(loadavg()[0]! * 100) / 100;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : Math.round((s[m - 1]! + s[m]!) / 2);
}

function run(args: string[]): Promise<number | null> {
  return new Promise((resolve) => spawn(process.execPath, [HASUP_BIN, ...args], { stdio: 'ignore' }).once('close', resolve));
}

/** "HEARTBEAT/ELECTION" in ms, e.g. 100/1000, as [service.etcd] lines. */
function etcdTimeouts(text: string | undefined): string[] {
  if (text === undefined) return [];
  const m = /^(\d+)\/(\d+)$/.exec(text);
  if (!m) throw new Error(`--etcd-timeouts must be HEARTBEAT_MS/ELECTION_MS, e.g. 100/1000 (got "${text}")`);
  return [`heartbeat_interval_ms = ${m[1]}`, `election_timeout_ms = ${m[2]}`];
}

/** Every member's log, for a run that failed: one file per hasup process. */
function keepLogs(ha: HaCluster): string {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-failover-logs-'));
  ha.saveMemberLogs(dir);
  return dir;
}

interface Trial {
  trial: number;
  killed_node: number;
  new_leader_node: number;
  /** Node whose etcd member led raft just before the kill (null: could not tell). */
  etcd_leader_node: number | null;
  killed_etcd_leader: boolean;
  /** From the kill, on the new leader (its log): saw no leader key, won the election, promoted; /primary seen 200 by polling. */
  no_leader_ms: number | null;
  elected_ms: number | null;
  promoted_ms: number | null;
  primary_ms: number;
  failover_ms: number;
  /** --via-vip: the first write through the VIP on the new leader. */
  vip_failover_ms?: number;
  acked_writes: number;
  lost_acked_writes: number;
  split_brain_overlaps: number;
  load1: number;
}

async function main(): Promise<void> {
  const why = netnsUnavailableReason();
  if (why) throw new Error(`the failover benchmark needs network namespaces: ${why}`);
  if (!Number.isInteger(trials) || trials < 1) throw new Error('--trials must be a positive integer');
  const loadAtStart = load1();
  // Without --sync the cluster is asynchronous on purpose (the default, "auto", is synchronous with three members).
  const ha = await HaCluster.create({ nodes: 3, etcd: etcdTimeouts(values['etcd-timeouts']), ha: values.sync ? [] : ['synchronous_mode = false'] });
  const viaVip = values['via-vip'];
  if (viaVip) ha.enableVip();
  const results: Trial[] = [];
  try {
    for (const i of [1, 2, 3]) ha.startNode(i);
    await ha.startHaproxy();
    let leader = await ha.whole();
    progress(`cluster up (cluster create + 2 joins, an etcd voter on every node), leader node ${leader}`);
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
      if (values.sync) await eventually(async () => (await ha.view(leader)).sync_members.length === 2, 30_000, 'both followers synchronous again');
      const w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });
      w.start([ha.haproxyTarget, ...(viaVip ? [ha.vipTarget] : []), ...[1, 2, 3].map((i) => ha.nodeTarget(i))]);
      await sleep(2000 + Math.random() * 1000);
      if (values['kill-etcd-leader']) await ha.moveEtcdLeader(leader);
      const etcdLeader = (await ha.etcdLeader()) ?? null;
      const killed = Date.now();
      if (viaVip) await ha.powerOff(leader);
      else await ha.killNode(leader);
      const next = await ha.soleLeader(60_000, leader);
      const primaryMs = Date.now() - killed;
      const first = await eventually(async () => w.firstAckAfter(killed, 'haproxy', ha.address(next)), 30_000, 'a write on the new leader');
      // The server address of a write through the VIP is the VIP (inet_server_addr()); sent after the kill, it can only be the new leader's.
      const firstVip = viaVip ? await eventually(async () => w.firstAckAfter(killed, 'vip'), 30_000, 'a write through the VIP on the new leader') : undefined;
      await sleep(1000);
      await w.stop();
      const missing = await w.missing(ha.nodeTarget(next));
      const events = ha.member(next).events.filter((e) => e.time >= killed);
      const after = (pred: (e: (typeof events)[number]) => boolean) => {
        const e = events.find(pred);
        return e ? e.time - killed : null;
      };
      const trial: Trial = {
        trial: t,
        killed_node: leader,
        new_leader_node: next,
        etcd_leader_node: etcdLeader,
        killed_etcd_leader: etcdLeader === leader,
        no_leader_ms: after((e) => e.event === 'ha_state' && /^no leader/.test(String(e.state))),
        elected_ms: after((e) => e.event === 'ha_leader'),
        promoted_ms: after((e) => e.event === 'ha_promoted'),
        primary_ms: primaryMs,
        failover_ms: first.value.ackedAt - killed,
        ...(firstVip ? { vip_failover_ms: firstVip.value.ackedAt - killed } : {}),
        acked_writes: w.acks.length,
        lost_acked_writes: missing.length,
        split_brain_overlaps: w.overlaps().length,
        load1: load1(),
      };
      results.push(trial);
      if (viaVip) ha.powerOn(leader);
      progress(
        `trial ${t}: node ${leader} killed (etcd raft leader: node ${etcdLeader ?? '?'}), node ${next} took writes after ${trial.failover_ms} ms ` +
          (viaVip ? `(through the VIP ${trial.vip_failover_ms} ms) ` : '') +
          `(no leader ${trial.no_leader_ms}, elected ${trial.elected_ms}, promoted ${trial.promoted_ms}, /primary ${trial.primary_ms}); ` +
          `${trial.acked_writes} acknowledged, ${trial.lost_acked_writes} lost, ${trial.split_brain_overlaps} overlaps; load ${trial.load1}`,
      );
    }
  } catch (err) {
    progress(`failed; member logs in ${keepLogs(ha)}`);
    throw err;
  } finally {
    await ha.destroy();
  }
  const failovers = results.map((r) => r.failover_ms);
  const sum = (f: (r: Trial) => number) => results.reduce((n, r) => n + f(r), 0);
  const result = {
    trials,
    synchronous_mode: values.sync,
    // Every link but Elasticsearch's over TLS when the cluster has a CA (cluster create's default; docs/tls.md).
    tls: ha.secrets.tls !== undefined,
    etcd: 'one voter per node (cluster create/join)',
    forced_etcd_leader_on_victim: values['kill-etcd-leader'],
    failover_ms: failovers,
    failover_ms_median: median(failovers),
    failover_ms_max: Math.max(...failovers),
    ...(viaVip ? vipFigures(results) : {}),
    acked_writes: sum((r) => r.acked_writes),
    lost_acked_writes: sum((r) => r.lost_acked_writes),
    split_brain_overlaps: sum((r) => r.split_brain_overlaps),
    killed_etcd_leader: results.map((r) => r.killed_etcd_leader),
    per_trial: results,
    load1_at_start: loadAtStart,
    load1_at_end: load1(),
  };
  console.log(values.json ? JSON.stringify(result) : result);
}

/** The failover figures through the VIP, beside HAProxy's from the same trials. */
function vipFigures(results: Trial[]): Record<string, unknown> {
  const vip = results.map((r) => r.vip_failover_ms!);
  return { via_vip: true, vip_failover_ms: vip, vip_failover_ms_median: median(vip), vip_failover_ms_max: Math.max(...vip) };
}

main().catch((err: unknown) => {
  console.error(`failover benchmark: ${(err as Error).message}`);
  process.exit(1);
});
