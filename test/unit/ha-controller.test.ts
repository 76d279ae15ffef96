/**
 * The HA controller in virtual time, against the in-memory store, fake
 * databases and fake fences of test/support/ha-fakes.ts: formation,
 * failover after lease loss, fencing when renewals stop (the member
 * frozen), riding out etcd's own leader election, no promotion outside the
 * synchronous set, switchover, pause and an etcd outage, each checked by its phase sequence, the calls made on the
 * databases, and that no two databases ever took writes at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeCluster, FakeDb } from '../support/ha-fakes.js';

const phasesOf = (c: FakeCluster, id: string) => c.member(id).controller.phases().map((p) => p.phase);
const callsOf = (c: FakeCluster, id: string, call: string) => c.member(id).db.calls.filter((x) => x.call === call);

/** Three members, A with the data: formed and whole. */
async function formed(settings: ConstructorParameters<typeof FakeCluster>[1] = {}): Promise<FakeCluster> {
  const c = new FakeCluster(['A', 'B', 'C'], settings);
  c.start('A');
  assert.ok(await c.until(() => c.whole(), 20_000), 'the cluster forms: one leader, two followers streaming');
  return c;
}

test('formation: the member with the data wins the first election, promotes with the fence armed, the others follow', async () => {
  const c = await formed();
  assert.equal(c.leader(), 'A');
  assert.deepEqual(phasesOf(c, 'A'), ['follower', 'candidate', 'leader']);
  assert.equal(callsOf(c, 'A', 'promote').length, 1);
  assert.ok(c.member('A').fence.arms >= 1 && c.member('A').fence.armed(), 'the fence guards the new primary');
  for (const id of ['B', 'C']) {
    assert.equal(callsOf(c, id, 'promote').length, 0);
    assert.deepEqual(callsOf(c, id, 'follow').map((x) => x.arg), ['A']);
    assert.equal(c.member(id).fence.armed(), false);
  }
  assert.deepEqual(c.doubleWriters(), []);
  await c.close();
});

test('failover after lease loss: a leader cut off from etcd freezes its database before its lease can expire; a follower is elected; the old leader is killed, then follows it once back', async () => {
  const c = await formed();
  await c.run(3000);
  const cutAt = c.clock.now();
  const a = c.member('A');
  c.store.cut.add('A');
  assert.ok(await c.until(() => c.store.leader() === null, 10_000), 'the lease expires');
  const expiredAt = c.clock.now();
  const frozeAt = a.fence.froze[0];
  assert.ok(frozeAt !== undefined && frozeAt < expiredAt, `the cut-off leader's database froze (${frozeAt! - cutAt} ms after the cut) before the lease expired (${expiredAt - cutAt} ms)`);
  assert.ok(await c.until(() => c.leader() !== null, 10_000), 'a follower is elected');
  const next = c.leader()!;
  assert.ok(['B', 'C'].includes(next));
  assert.deepEqual(phasesOf(c, next).slice(-2), ['candidate', 'leader']);
  assert.ok(c.clock.now() - cutAt < 6000, `failover within 6 s of the cut (${c.clock.now() - cutAt} ms)`);
  assert.ok(await c.until(() => callsOf(c, 'A', 'demote').length > 0, 10_000), 'the old leader gives up at the end of its hold');
  assert.equal(a.fence.kills.length, 1, 'killed once, at the end of the hold (by the fence, or asked by the supervisor at the same instant)');
  assert.ok(a.fence.kills[0]!.at <= callsOf(c, 'A', 'demote')[0]!.at, 'killed before the demotion (a frozen database cannot shut down)');
  assert.deepEqual(phasesOf(c, 'A').slice(-4), ['leader', 'suspended', 'fencing', 'follower']);
  c.store.cut.delete('A');
  assert.ok(await c.until(() => c.whole(), 20_000), 'the old leader follows the new one');
  assert.equal(a.db.upstream, next);
  assert.deepEqual(c.doubleWriters(), [], 'never two writable primaries');
  await c.close();
});

test('etcd electing a leader of its own for 3.5 s: the leader freezes its database, and thaws it when a renewal comes through; no failover, no kill, no demotion', async () => {
  const c = await formed();
  await c.run(3000);
  const a = c.member('A');
  const walBefore = a.db.wal;
  c.store.electLeader(3500);
  await c.run(8000);
  assert.equal(c.leader(), 'A', 'A still leads');
  assert.equal(a.fence.froze.length, 1, 'frozen once');
  assert.equal(a.fence.thawed.length, 1, 'thawed once');
  assert.ok(a.fence.thawed[0]! - a.fence.froze[0]! < 3000, `frozen for ${a.fence.thawed[0]! - a.fence.froze[0]!} ms`);
  assert.equal(a.fence.acted, 0, 'never killed');
  assert.equal(callsOf(c, 'A', 'demote').length, 0);
  for (const id of ['B', 'C']) assert.equal(callsOf(c, id, 'promote').length, 0, `${id} did not promote`);
  assert.deepEqual(phasesOf(c, 'A').slice(-3), ['leader', 'suspended', 'leader']);
  assert.ok(a.db.wal > walBefore, 'the primary took writes again');
  assert.ok(c.whole());
  assert.deepEqual(c.doubleWriters(), []);
  await c.close();
});

test('fencing when renewals stop: a frozen supervisor (SIGSTOP) has its database frozen by the fence before the lease expires, and killed at the end of the hold; resumed, it steps down and follows', async () => {
  const c = await formed();
  await c.run(2500);
  const a = c.member('A');
  a.clock.pause();
  const stoppedAt = c.clock.now();
  assert.ok(await c.until(() => a.fence.froze.length > 0, 5000), 'the fence froze the database');
  const frozeAt = a.fence.froze[0]!;
  assert.equal(a.db.writable(), false);
  assert.ok(frozeAt - stoppedAt <= 2100, `frozen ${frozeAt - stoppedAt} ms after the stall: within loop_wait + retry_timeout of the last renewal`);
  assert.ok(await c.until(() => c.leader() !== null && c.leader() !== 'A', 10_000), 'a follower took over');
  const next = c.leader()!;
  const promotedAt = callsOf(c, next, 'promote')[0]!.at;
  assert.ok(frozeAt < promotedAt, `the old primary was frozen ${frozeAt - stoppedAt} ms after the stall, before the new one was promoted (${promotedAt - stoppedAt} ms)`);
  assert.ok(await c.until(() => a.fence.acted > 0, 10_000), 'the fence killed it at the end of the hold');
  assert.deepEqual(a.fence.kills.map((k) => k.cause), ['deadline']);
  assert.ok(a.fence.kills[0]!.at - stoppedAt <= 6100, `killed ${a.fence.kills[0]!.at - stoppedAt} ms after the stall: within 2 × ttl of the last renewal`);
  assert.equal(callsOf(c, 'A', 'demote').length, 0, 'the frozen supervisor did nothing itself');
  a.clock.resume();
  assert.ok(await c.until(() => c.whole(), 20_000), 'resumed, the old leader follows the new one');
  // It fences itself at once (its renewals are overdue), then finds its old lease gone and takes a new one.
  assert.deepEqual(phasesOf(c, 'A').slice(-5), ['leader', 'fencing', 'follower', 'no-lease', 'follower']);
  assert.deepEqual(c.doubleWriters(), []);
  await c.close();
});

test('synchronous mode: a member outside the recorded synchronous set is never promoted, even when it is the only one left', async () => {
  const c = await formed({ synchronousMode: true });
  assert.ok(await c.until(() => c.store.snapshot().sync?.members.join() === 'B,C', 10_000), 'both followers synchronous');
  c.member('C').db.blocked = true;
  assert.ok(await c.until(() => c.store.snapshot().sync?.members.join() === 'B', 20_000), 'C left the synchronous set when it stopped streaming');
  assert.deepEqual(c.member('A').db.sync, ['B'], 'the leader commits with B only');
  // A and B die; C comes back streaming-capable but holds no guarantee of the acknowledged writes.
  for (const id of ['A', 'B']) {
    c.member(id).clock.pause();
    c.member(id).db.running = false;
  }
  c.member('C').db.blocked = false;
  await c.run(15_000);
  assert.equal(c.store.leader(), null, 'nobody holds the leader key');
  assert.equal(callsOf(c, 'C', 'promote').length, 0, 'C was never promoted');
  assert.ok(!phasesOf(c, 'C').includes('leader'));
  assert.equal(c.store.snapshot().members.get('C')?.report.eligible, false, 'C reports itself not eligible');
  await c.close();
});

test('switchover: the leader stops, waits for the target, hands the key over; the target promotes; the old leader follows it', async () => {
  const c = await formed();
  await c.run(2000);
  const result = c.member('B').controller.switchover('C');
  assert.ok(await c.until(() => c.leader() === 'C', 20_000), 'C leads');
  const r = await c.settle(result);
  assert.equal(r.from, 'A');
  assert.equal(r.to, 'C');
  assert.deepEqual(phasesOf(c, 'A').slice(-3), ['leader', 'handing-over', 'follower']);
  assert.deepEqual(callsOf(c, 'A', 'demote')[0]?.arg, { stayDown: true, handingOver: true });
  assert.deepEqual(phasesOf(c, 'C').slice(-1), ['leader']);
  assert.equal(c.member('A').fence.armed(), false, 'the old leader disarmed its fence');
  assert.ok(await c.until(() => c.whole(), 20_000));
  assert.deepEqual(c.doubleWriters(), []);
  await c.close();
});

test('pause: with failover paused nobody takes a vacant leader key; resumed, a follower does', async () => {
  const c = await formed();
  await c.settle(c.member('B').controller.setPaused(true));
  const a = c.member('A');
  a.clock.pause();
  a.db.running = false;
  await c.run(10_000);
  assert.equal(c.store.leader(), null, 'the leader key expired and stayed vacant');
  for (const id of ['B', 'C']) assert.equal(callsOf(c, id, 'promote').length, 0);
  await c.settle(c.member('C').controller.setPaused(false));
  assert.ok(await c.until(() => c.leader() !== null, 10_000), 'resumed: a follower takes over');
  assert.ok(['B', 'C'].includes(c.leader()!));
  await c.close();
});

test('an etcd outage: the leader freezes its database and gives up at the end of its hold, nobody takes over while etcd is away, one leader after it is back, never two writers', async () => {
  const c = await formed();
  await c.run(2000);
  const downAt = c.clock.now();
  const a = c.member('A');
  c.store.down = true;
  await c.run(8000);
  assert.deepEqual(c.world.primaries(), [], 'no writable primary while etcd is away');
  const frozeAt = a.fence.froze[0];
  assert.ok(frozeAt !== undefined && frozeAt - downAt <= 2100, `the leader's database froze ${frozeAt! - downAt} ms after the outage began`);
  const demote = callsOf(c, 'A', 'demote')[0];
  assert.ok(demote && demote.at - downAt <= 6100, `the leader gave up ${demote ? demote.at - downAt : '?'} ms after the outage began`);
  for (const id of ['B', 'C']) assert.equal(callsOf(c, id, 'promote').length, 0, `${id} did not promote during the outage`);
  c.store.down = false;
  assert.ok(await c.until(() => c.whole(), 30_000), 'after the outage: one leader, two followers');
  assert.deepEqual(c.doubleWriters(), []);
  await c.close();
});

test('a rogue primary (a database writable without the lease) is seen by the others and fenced over SQL', async () => {
  const c = await formed();
  await c.run(2000);
  // B's database turns writable behind its supervisor's back (started by hand); B's supervisor is frozen.
  const b = c.member('B');
  b.clock.pause();
  b.db.inRecovery = false;
  b.db.upstream = null;
  assert.ok(await c.until(() => b.db.sqlFenced, 10_000), 'fenced over SQL');
  const viewA = c.member('A').controller.view();
  assert.equal(viewA.rogue_primaries[0]?.member, 'B');
  assert.match(viewA.rogue_primaries[0]?.action ?? '', /fenced over SQL by A/);
  assert.equal(c.leader(), 'A', 'the real leader keeps its role');
  await c.close();
});

test('watchdog = "required": a member whose fence cannot open the kernel watchdog gives the key back before promoting; nobody takes writes', async () => {
  const c = new FakeCluster(['A', 'B', 'C'], { watchdog: 'required' }, { watchdog: 'failed' });
  c.start('A');
  await c.run(10_000);
  assert.deepEqual(c.world.primaries(), [], 'no primary without a working watchdog');
  for (const id of ['A', 'B', 'C']) assert.equal(callsOf(c, id, 'promote').length, 0, `${id} never promoted`);
  const a = phasesOf(c, 'A');
  assert.deepEqual(a.slice(a.indexOf('leader'), a.indexOf('leader') + 2), ['leader', 'follower'], 'it took the key, then handed it back');
  assert.match(c.member('A').controller.phases().find((p) => p.phase === 'follower' && p.why.startsWith('cannot lead'))?.why ?? '', /kernel watchdog \/dev\/watchdog is required/);
  await c.close();
});

test('cluster restore asked of a follower: the leader gives its key up, every member stops, the asked member restores and leads on a new timeline, the others follow it; never two writers', async () => {
  const c = await formed();
  await c.run(2000);
  const b = c.member('B');
  b.db.restoreTo = 500;
  const timelineBefore = c.member('A').db.timeline;
  const req = await c.settle(b.controller.restore({ kind: 'time', time: '2026-12-07 03:00:00+00' }));
  assert.equal(req.member, 'B');
  assert.equal(req.state, 'stopping');
  assert.ok(await c.until(() => c.store.leader() === null, 10_000), 'the leader gives its key up');
  assert.ok(await c.until(() => callsOf(c, 'B', 'restore').length === 1, 10_000), 'B restores');
  const restoreAt = callsOf(c, 'B', 'restore')[0]!.at;
  for (const id of ['A', 'C']) assert.equal(c.member(id).db.running, false, `${id}'s PostgreSQL is stopped while B restores`);
  assert.ok(await c.until(() => c.whole() && c.leader() === 'B', 30_000), 'B leads, A and C follow it');
  assert.deepEqual(callsOf(c, 'B', 'restore')[0]!.arg, { kind: 'time', time: '2026-12-07 03:00:00+00' });
  assert.ok(b.db.timeline > timelineBefore, 'a new timeline');
  assert.ok(callsOf(c, 'A', 'stopForRestore').every((x) => x.at <= restoreAt), 'A stopped before B restored');
  const view = b.controller.view();
  assert.equal(view.restore?.state, 'done');
  assert.match(view.restore?.detail ?? '', /restored on B/);
  assert.deepEqual(c.doubleWriters(), [], 'never two writable primaries');
  await c.close();
});

test('a second restore while one runs is refused; a restore that fails leaves the others free to elect as usual', async () => {
  const c = await formed();
  await c.run(2000);
  const b = c.member('B');
  b.db.restoreFails = 'pgbackrest restore failed with exit code 75';
  await c.settle(b.controller.restore({ kind: 'latest' }));
  const second = await c.settle(c.member('C').controller.restore({ kind: 'latest' }).catch((err: unknown) => err));
  assert.match((second as Error).message, /a restore is already in progress \(\w+ by B: /);
  assert.ok(await c.until(() => b.controller.view().restore?.state === 'failed', 30_000), 'the restore fails');
  assert.match(b.controller.view().restore!.detail, /exit code 75/);
  assert.ok(await c.until(() => c.leader() !== null, 30_000), 'a member with its data elects itself again');
  assert.deepEqual(c.doubleWriters(), [], 'never two writable primaries');
  await c.close();
});

test('bootstrap: the member that created the database does not create an empty one again once the cluster has run a primary; a restore that names it restores instead', async () => {
  const c = await formed();
  await c.run(2000);
  const storeB = c.store.client('B');
  assert.ok(await c.settle(storeB.claimInitialize('B')), 'B holds the initialize key (it created the database)');
  await c.settle(c.member('B').controller.setPaused(true));
  c.store.cut.add('A');
  assert.ok(await c.until(() => c.store.leader() === null, 10_000), 'no leader (failover paused)');
  const abort = new AbortController();
  let plan: unknown;
  void c.member('B').controller.bootstrap(abort.signal).then((p) => (plan = p), () => undefined);
  await c.run(5000);
  assert.equal(plan, undefined, 'B waits for a leader instead of creating an empty database');
  await c.settle(storeB.requestRestore({ id: 'r1', member: 'B', target: { kind: 'latest' }, requested: 0, state: 'restoring', detail: 'restoring', updated: 0 }));
  assert.ok(await c.until(() => plan !== undefined, 5000), 'a plan once the restore names B');
  assert.deepEqual(plan, { kind: 'restore', target: { kind: 'latest' } });
  abort.abort();
  c.store.cut.delete('A');
  await c.close();
});

test('a standby cluster: its leader holds the key but never promotes, streaming from the primary cluster; the others follow it; cleared, standby_of promotes it', async () => {
  const c = new FakeCluster(['A', 'B', 'C'], { standbyOf: { host: 'primary.example', port: 5432 } });
  // The primary cluster, as the standby leader's upstream sees it.
  const upstream = new FakeDb('primary-cluster', c.world, c.clock);
  upstream.inRecovery = false;
  upstream.wal = 5000;
  c.start('A');
  c.member('A').db.wal = 5000;
  assert.ok(
    await c.until(() => {
      const l = c.store.leader();
      return l !== null && c.member(l).db.upstream === 'primary-cluster' && ['A', 'B', 'C'].filter((x) => x !== l).every((x) => c.member(x).db.upstream === l);
    }, 20_000),
    'a standby leader following the primary cluster, the others following it',
  );
  const sl = c.store.leader()!;
  assert.equal(callsOf(c, sl, 'promote').length, 0, 'never promoted');
  assert.equal(c.member(sl).fence.armed(), false, 'no fence: nothing to guard');
  assert.deepEqual(c.world.primaries(), ['primary-cluster'], 'only the primary cluster takes writes');
  assert.equal(c.member(sl).controller.view().members.find((m) => m.member === sl)?.role, 'standby_leader');
  c.settings = { ...c.settings, standbyOf: null };
  assert.ok(await c.until(() => c.leader() === sl, 10_000), 'standby_of cleared: the standby leader promotes');
  assert.equal(callsOf(c, sl, 'promote').length, 1);
  await c.close();
});

test('a primary cluster demoted (standby_of set): its leader stops taking writes, follows the other cluster as a standby leader, the fence stands down', async () => {
  const c = new FakeCluster(['A', 'B', 'C']);
  c.start('A');
  assert.ok(await c.until(() => c.whole(), 20_000), 'a leader and two followers');
  const l = c.leader()!;
  assert.equal(c.member(l).fence.armed(), true, 'the fence guards the primary');
  // The other cluster, promoted: what the demoted cluster follows from now on.
  const other = new FakeDb('primary-cluster', c.world, c.clock);
  other.inRecovery = false;
  other.wal = c.member(l).db.wal + 1000;
  other.timeline = c.member(l).db.timeline + 1;
  c.settings = { ...c.settings, standbyOf: { host: 'other.example', port: 5432 } };
  assert.ok(
    await c.until(() => c.member(l).db.upstream === 'primary-cluster' && ['A', 'B', 'C'].filter((x) => x !== l).every((x) => c.member(x).db.upstream === l), 20_000),
    'the old leader follows the other cluster, the others cascade from it',
  );
  assert.deepEqual(c.world.primaries(), ['primary-cluster'], 'nobody in the demoted cluster takes writes');
  assert.equal(callsOf(c, l, 'demote').length, 1, 'stopped before it follows');
  assert.equal(c.store.leader(), l, 'the same member keeps the key, as the standby leader');
  assert.equal(c.member(l).fence.armed(), false, 'the fence stands down');
  assert.ok(await c.until(() => c.member(l).controller.view().members.find((m) => m.member === l)?.role === 'standby_leader', 5000), 'it reports itself as the standby leader');
  await c.run(10_000);
  assert.deepEqual(c.world.primaries(), ['primary-cluster'], 'and stays so');
  await c.close();
});

