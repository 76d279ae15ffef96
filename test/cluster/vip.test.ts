/**
 * The leader VIP on three namespace nodes (docs/vip.md): [cluster] vip =
 * 10.231.X.100/24 on each node's eth0. A client in the host's namespace
 * writes through the VIP (and straight at every node, to see who takes
 * writes). Throughout, a monitor looks every 100 ms at every namespace's
 * eth0 (`ip -n NS addr`) and runs duplicate address detection on the bridge
 * (`arping -d`: exit 1 when two MACs answer for the VIP): the VIP is never
 * on two members. Scenarios: bootstrap (the VIP on the leader, hasup status
 * says so); kill -9 of the leader node (the node powered off: its link goes
 * down, as a dead machine's does) → the VIP answers from the new leader;
 * kill -9 of the leader's hasup alone (the fence removes the VIP over
 * netlink as it kills PostgreSQL); the leader isolated → it drops the VIP
 * before its lease can end (the fence's freeze deadline, 2 s after its last
 * renewal, against a 3 s TTL), the new leader takes it; an address added by
 * hand on a follower is removed (the stray rule).
 */
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { HASUP_BIN } from '../support/member-procs.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { destroyAfterSuite, eventually, HaCluster } from '../support/ha-cluster.js';
import { WriteChecker, type WriteTarget } from '../support/write-checker.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (existsSync('/usr/sbin/arping') ? null : 'arping is not installed (scripts/bootstrap.sh)');

const TTL_MS = 3000;
/** loop_wait + retry_timeout: the fence's freeze deadline after the last renewal. */
const FREEZE_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A command's exit status and its stdout and stderr together, without blocking the event loop. */
function run(cmd: string, args: string[]): Promise<{ status: number | null; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.once('error', (err) => resolve({ status: null, output: err.message }));
    child.once('close', (status) => resolve({ status, output }));
  });
}

describe('leader VIP: three nodes, the VIP moves with the PostgreSQL leader lease', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  let vip: string;
  /** Samples of which nodes had the VIP on eth0, and arping -d's verdicts. */
  const samples: { at: number; holders: number[] }[] = [];
  const duplicates: { at: number; output: string }[] = [];
  let monitoring = false;
  /** Windows (ms) in which a duplicate is made on purpose (the stray test). */
  const excused: Array<[number, number]> = [];

  destroyAfterSuite('vip', () => [[ha, 'vip']]);

  /** Nodes answering for the VIP: it is on their eth0 and the link is up (a node "powered off" below keeps the address on a downed link). */
  const holders = (): number[] =>
    ha.cluster.nodes
      .filter((n) => {
        const line = spawnSync('ip', ['-n', n.namespace, '-br', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout;
        return line.includes(`${vip}/`) && /\sUP\s/.test(line);
      })
      .map((n) => n.index);

  async function monitor(): Promise<void> {
    monitoring = true;
    while (monitoring) {
      samples.push({ at: Date.now(), holders: holders() });
      // Habets' arping: -d exits 1 when replies come from two different MACs.
      // Not spawnSync: arping takes up to a second, and a blocked event loop would delay every other
      // measurement of this test (the fence's removal of the VIP once read 1117 ms that way).
      const r = await run('arping', ['-d', '-q', '-c', '2', '-w', '1', '-i', ha.cluster.bridgeName, vip]);
      if (r.status === 1 && /duplicate|two different/i.test(r.output)) duplicates.push({ at: Date.now(), output: r.output.trim() });
      await sleep(100);
    }
  }

  const excusedAt = (t: number) => excused.some(([a, b]) => t >= a && t <= b);
  function assertNeverTwo(what: string): void {
    const twice = samples.filter((s) => s.holders.length > 1 && !excusedAt(s.at));
    assert.deepEqual(twice, [], `${what}: the VIP was on two members`);
    assert.deepEqual(duplicates.filter((d) => !excusedAt(d.at)), [], `${what}: arping -d saw two MACs answer for the VIP`);
  }

  const vipTarget = (): WriteTarget => ha.vipTarget;
  const checker = () => new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 20, timeoutMs: 1500 });

  /** The one node holding the VIP, once it is the PostgreSQL leader `leader` (and nobody else has it). */
  async function vipOn(leader: number, timeoutMs: number): Promise<number> {
    return (await eventually(async () => { const h = holders(); return h.length === 1 && h[0] === leader ? Date.now() : null; }, timeoutMs, `the VIP on node ${leader} alone`, 50)).value;
  }

  before(async () => {
    ha = await HaCluster.create({ nodes: 3 });
    vip = ha.enableVip();
    for (const i of [1, 2, 3]) ha.startNode(i);
    for (const i of [1, 2, 3]) await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
    void monitor();
  });

  after(() => {
    monitoring = false;
  });

  afterEach(() => assertNeverTwo('so far'));

  test('bootstrap: the VIP is on the leader alone; writes through it land on the leader; hasup status and /cluster say who holds it', async () => {
    const leader = await ha.soleLeader(180_000);
    await ha.whole(120_000);
    await vipOn(leader, 15_000);
    const w = checker();
    await w.setup(vipTarget());
    w.start([vipTarget()]);
    await eventually(async () => w.acks.length > 10 || undefined, 15_000, 'writes through the VIP acknowledged');
    await w.stop();
    assert.deepEqual(await w.missing(ha.nodeTarget(leader)), [], 'every one of them is on the leader');
    const id = await ha.memberId(leader);
    for (const i of [1, 2, 3]) {
      const r = spawnSync(process.execPath, [HASUP_BIN, 'status', '--state-dir', ha.cluster.node(i).stateDir], { encoding: 'utf8' });
      assert.match(r.stdout, new RegExp(`vip: ${vip.replace(/\./g, '\\.')}/24 on ${id}`), `node ${i}'s status names the holder`);
    }
  });

  test('kill -9 of the leader node (powered off): the VIP answers from the new leader; never from two', async () => {
    const leader = await ha.soleLeader(30_000);
    // Writes through the VIP, and straight to every node: a write through the VIP lands on whichever node holds it,
    // so the split-brain check (two servers taking writes at once) looks at the direct writers alone.
    const w = checker();
    const direct = checker();
    await w.setup(vipTarget());
    await direct.setup(ha.nodeTarget(leader));
    w.start([vipTarget()]);
    direct.start([1, 2, 3].map((i) => ha.nodeTarget(i)));
    await sleep(2000);
    const at = Date.now();
    await ha.powerOff(leader);
    const next = await ha.soleLeader(30_000, leader);
    const movedAt = await vipOn(next, 15_000);
    await eventually(async () => w.firstAckAfter(movedAt, 'vip'), 15_000, 'a write through the VIP after it moved');
    await sleep(1000);
    await Promise.all([w.stop(), direct.stop()]);
    const missing = [...(await w.missing(ha.nodeTarget(next))), ...(await direct.missing(ha.nodeTarget(next)))];
    // Its server address is the VIP (inet_server_addr()); sent after the kill, the new leader took it.
    const firstWrite = w.firstAckAfter(at, 'vip');
    console.log(`# leader node ${leader} killed: the VIP seen on node ${next} ${movedAt - at} ms later, the first write through it acknowledged by node ${next} ${firstWrite ? firstWrite.ackedAt - at : '?'} ms after the kill; ${w.acks.length + direct.acks.length} acknowledged, ${missing.length} missing`);
    assert.deepEqual(direct.overlaps(), [], 'never two nodes taking writes');
    assert.deepEqual(missing, [], 'no acknowledged write lost (synchronous mode)');
    // Powered on again: a rebooted machine has no VIP (addresses are not kept); the node rejoins as a follower.
    ha.powerOn(leader);
    ha.startNode(leader);
    await ha.whole(120_000);
    assert.deepEqual(holders(), [next]);
  });

  test('kill -9 of the leader\'s hasup alone: the fence removes the VIP as it kills PostgreSQL; the new leader takes it', async () => {
    const leader = await ha.soleLeader(30_000);
    await vipOn(leader, 10_000);
    const at = Date.now();
    process.kill(ha.member(leader).pid!, 'SIGKILL');
    const gone = await eventually(async () => (holders().includes(leader) ? null : Date.now()), 5000, 'the VIP off the old leader', 20);
    const next = await ha.soleLeader(30_000, leader);
    const movedAt = await vipOn(next, 15_000);
    console.log(`# leader's hasup killed: VIP removed by the fence after ${gone.value - at} ms, on node ${next} after ${movedAt - at} ms`);
    // The fence acts when it sees its supervisor gone (usually within tens of ms), at the latest at its freeze
    // deadline; either way before the lease can end and the new leader adds the VIP.
    assert.ok(gone.value - at <= FREEZE_MS, `the fence removed the VIP within the freeze deadline (${gone.value - at} ms)`);
    assert.ok(gone.value < movedAt, 'off the old leader before the new one has it');
    ha.startNode(leader);
    await ha.whole(120_000);
  });

  test('the leader isolated: it drops the VIP before its lease can end; the new leader takes it; never two', async () => {
    const leader = await ha.soleLeader(30_000);
    await vipOn(leader, 10_000);
    await sleep(3000);
    const at = Date.now();
    await ha.cluster.isolate(leader);
    try {
      const gone = await eventually(async () => (holders().includes(leader) ? null : Date.now()), 10_000, 'the VIP off the isolated leader', 20);
      const next = await ha.soleLeader(30_000, leader);
      const movedAt = await vipOn(next, 15_000);
      console.log(`# leader node ${leader} isolated: VIP dropped after ${gone.value - at} ms (freeze ${FREEZE_MS} ms, TTL ${TTL_MS} ms after the last renewal), on node ${next} after ${movedAt - at} ms`);
      assert.ok(gone.value - at < TTL_MS, `dropped ${gone.value - at} ms after the isolation, before the lease could end`);
      assert.ok(gone.value < movedAt, 'dropped before the new leader added it');
    } finally {
      await ha.cluster.heal(leader);
    }
    await ha.whole(120_000);
  });

  test('an address added by hand on a follower is removed (stray: on this member without the lease)', async () => {
    const leader = await ha.soleLeader(30_000);
    const follower = [1, 2, 3].find((i) => i !== leader)!;
    const from = Date.now();
    spawnSync('ip', ['-n', ha.cluster.node(follower).namespace, 'addr', 'add', `${vip}/24`, 'dev', 'eth0']);
    const gone = await eventually(async () => (holders().includes(follower) ? null : Date.now()), 15_000, 'the stray VIP removed', 50);
    excused.push([from, gone.value + 1500]);
    await ha.member(follower).waitForEvent((e) => e.event === 'vip_removed_stray', 5000, 'vip_removed_stray logged');
    assert.deepEqual(holders(), [leader]);
  });
});
