/**
 * The leader VIP in virtual time: three HA controllers (test/support/ha-fakes.ts)
 * each with a LeaderVip over one fake LAN, sampled every 10 ms. The VIP is on
 * the leader once its PostgreSQL is a primary, moves on failover, switchover
 * and a stall of the supervisor (the fence removes it then, as the real one
 * does over netlink), is dropped at the freeze deadline (before the lease can
 * expire) and taken back when a late renewal comes, and is never on two
 * members at once. Plus: refused at start (never touched), a stray address
 * removed at start, a failing add retried, removal on stop, and the claim
 * rules themselves.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { Clock } from '../../src/ha/clock.js';
import { parseVip, type AddressManager, type Vip } from '../../src/plugins/vip/addresses.js';
import { claimFromFacts, claimFromState, LeaderVip } from '../../src/plugins/vip/leader-vip.js';
import type { LeadershipState } from '../../src/supervisor/leadership.js';
import type { VipReport } from '../../src/supervisor/rumors/vip.js';
import { FakeCluster, virtualClock } from '../support/ha-fakes.js';

const log = pino({ level: 'silent' });
const VIP = parseVip('10.0.0.100/24', 'eth0');
/** What `ip` takes to run. */
const OP_MS = 5;

/** One broadcast domain: which members have the address on their interface, and since when. */
class FakeLan {
  readonly on = new Set<string>();
  readonly samples: { at: number; holders: string[] }[] = [];
  readonly events: { at: number; member: string; what: 'add' | 'remove' | 'announce' }[] = [];
  /** Members whose next add fails (no permission after all, say). */
  readonly failAdds = new Map<string, number>();
  constructor(private readonly clock: Clock) {}

  sample(): void {
    this.samples.push({ at: this.clock.now(), holders: [...this.on].sort() });
    this.clock.setTimeout(() => this.sample(), 10);
  }

  /** Moments when two members had the address. */
  doubles(): { at: number; holders: string[] }[] {
    return this.samples.filter((s) => s.holders.length > 1);
  }

  /** Removed by the fence (netlink, no child process: at once). */
  removeNow(member: string): void {
    if (this.on.delete(member)) this.events.push({ at: this.clock.now(), member, what: 'remove' });
  }

  manager(member: string, check: string | undefined = undefined): AddressManager & { calls: string[] } {
    const calls: string[] = [];
    const later = <T>(fn: () => T) => new Promise<T>((resolve, reject) => this.clock.setTimeout(() => {
      try {
        resolve(fn());
      } catch (err) {
        reject(err as Error);
      }
    }, OP_MS));
    return {
      calls,
      check: async () => {
        calls.push('check');
        return check;
      },
      present: () => later(() => (calls.push('present'), this.on.has(member))),
      add: () =>
        later(() => {
          calls.push('add');
          const fails = this.failAdds.get(member) ?? 0;
          if (fails > 0) {
            this.failAdds.set(member, fails - 1);
            throw new Error('RTNETLINK answers: Operation not permitted');
          }
          if (!this.on.has(member)) this.events.push({ at: this.clock.now(), member, what: 'add' });
          this.on.add(member);
        }),
      remove: () =>
        later(() => {
          calls.push('remove');
          this.removeNow(member);
        }),
      announce: async () => {
        calls.push('announce');
        this.events.push({ at: this.clock.now(), member, what: 'announce' });
      },
    };
  }

  firstAdd(member: string, after = -Infinity): number | undefined {
    return this.events.find((e) => e.member === member && e.what === 'add' && e.at >= after)?.at;
  }

  firstRemove(member: string, after = -Infinity): number | undefined {
    return this.events.find((e) => e.member === member && e.what === 'remove' && e.at >= after)?.at;
  }
}

interface VipCluster {
  c: FakeCluster;
  lan: FakeLan;
  vips: Map<string, LeaderVip>;
  reports: Map<string, VipReport[]>;
}

/** Three members, each with a LeaderVip on its own (pausable) clock, the fence removing the VIP when it acts; A has the data. */
async function formed(opts: { stray?: string } = {}): Promise<VipCluster> {
  const c = new FakeCluster(['A', 'B', 'C']);
  const lan = new FakeLan(c.clock);
  if (opts.stray) lan.on.add(opts.stray);
  const vips = new Map<string, LeaderVip>();
  const reports = new Map<string, VipReport[]>();
  for (const m of c.members.values()) {
    const list: VipReport[] = [];
    reports.set(m.id, list);
    m.fence.onAct = () => lan.removeNow(m.id);
    const vip = new LeaderVip({
      vip: VIP,
      addresses: lan.manager(m.id),
      claim: () => claimFromFacts(m.leadership.current),
      onChange: (l) => m.leadership.onChange(() => l()),
      clock: m.clock,
      log,
      onReport: (r) => list.push(r),
    });
    vips.set(m.id, vip);
    void vip.start();
  }
  lan.sample();
  c.start('A');
  assert.ok(await c.until(() => c.whole() && lan.on.has('A'), 20_000), 'the cluster forms and the leader holds the VIP');
  return { c, lan, vips, reports };
}

async function close(v: VipCluster): Promise<void> {
  for (const vip of v.vips.values()) await v.c.settle(vip.stop());
  await v.c.close();
}

test('formation: the VIP goes on the leader once its PostgreSQL is a primary, announced, and nowhere else', async () => {
  const v = await formed();
  const { c, lan } = v;
  assert.deepEqual([...lan.on], ['A']);
  const promoted = c.member('A').db.calls.find((x) => x.call === 'promote')!.at;
  assert.ok(lan.firstAdd('A')! >= promoted, 'added after the promotion, not before');
  assert.ok(lan.events.some((e) => e.member === 'A' && e.what === 'announce'), 'announced');
  assert.equal(v.vips.get('A')!.report().state, 'held');
  assert.equal(v.vips.get('B')!.report().state, 'standby');
  assert.deepEqual(lan.doubles(), []);
  await close(v);
});

test('failover: a leader cut off from etcd drops the VIP at its freeze deadline, before its lease can expire; the new leader takes it; never two', async () => {
  const v = await formed();
  const { c, lan } = v;
  await c.run(3000);
  const cutAt = c.clock.now();
  c.store.cut.add('A');
  assert.ok(await c.until(() => c.store.leader() === null, 10_000), 'the lease expires');
  const expiredAt = c.clock.now();
  const removedAt = lan.firstRemove('A', cutAt);
  assert.ok(removedAt !== undefined && removedAt < expiredAt, `the VIP left A ${removedAt! - cutAt} ms after the cut, before the lease expired (${expiredAt - cutAt} ms)`);
  assert.ok(removedAt! - cutAt <= 2000 + OP_MS + 20, 'within loop_wait + retry_timeout of the last renewal');
  assert.ok(await c.until(() => c.leader() !== null && lan.on.size === 1 && !lan.on.has('A'), 10_000), 'the new leader holds the VIP');
  const next = c.leader()!;
  assert.deepEqual([...lan.on], [next]);
  c.store.cut.delete('A');
  assert.ok(await c.until(() => c.whole(), 20_000));
  await c.run(2000);
  assert.deepEqual([...lan.on], [next], 'the old leader, following again, does not take it back');
  assert.deepEqual(lan.doubles(), [], 'never on two members');
  await close(v);
});

test('a stalled supervisor (SIGSTOP): the fence removes the VIP when it freezes PostgreSQL; the new leader takes it; never two', async () => {
  const v = await formed();
  const { c, lan } = v;
  await c.run(2500);
  const a = c.member('A');
  a.clock.pause();
  const stoppedAt = c.clock.now();
  assert.ok(await c.until(() => a.fence.froze.length > 0, 5000));
  assert.equal(lan.on.has('A'), false, 'gone with the freeze, while the supervisor is stopped');
  assert.ok(lan.firstRemove('A', stoppedAt)! - stoppedAt <= 2100);
  assert.ok(await c.until(() => c.leader() !== null && c.leader() !== 'A' && lan.on.size === 1, 10_000), 'the new leader holds the VIP');
  a.clock.resume();
  assert.ok(await c.until(() => c.whole(), 20_000));
  await c.run(2000);
  assert.deepEqual([...lan.on], [c.leader()!]);
  assert.deepEqual(lan.doubles(), []);
  await close(v);
});

test('etcd electing a leader of its own: the VIP leaves at the freeze and comes back with the late renewal, on the same member', async () => {
  const v = await formed();
  const { c, lan } = v;
  await c.run(3000);
  const from = c.clock.now();
  c.store.electLeader(3500);
  await c.run(8000);
  assert.equal(c.leader(), 'A');
  const removed = lan.firstRemove('A', from);
  const back = lan.firstAdd('A', from);
  assert.ok(removed !== undefined && back !== undefined && back > removed, 'dropped, then taken back');
  assert.ok(Math.abs(removed - c.member('A').fence.froze[0]!) <= OP_MS + 20, 'dropped with the freeze');
  assert.deepEqual([...lan.on], ['A']);
  assert.ok(lan.samples.every((s) => s.holders.every((h) => h === 'A')), 'no other member held it meanwhile');
  await close(v);
});

test('switchover: the old leader drops the VIP before the new one adds it', async () => {
  const v = await formed();
  const { c, lan } = v;
  await c.run(2000);
  const from = c.clock.now();
  const result = c.member('B').controller.switchover('C');
  assert.ok(await c.until(() => c.leader() === 'C' && lan.on.has('C'), 20_000), 'C leads and holds the VIP');
  await c.settle(result);
  const removed = lan.firstRemove('A', from)!;
  const added = lan.firstAdd('C', from)!;
  assert.ok(removed < added, `removed from A at ${removed - from} ms, added to C at ${added - from} ms`);
  assert.deepEqual([...lan.on], ['C']);
  assert.deepEqual(lan.doubles(), []);
  await close(v);
});

test('an address found on a member without the lease is removed at start', async () => {
  const v = await formed({ stray: 'B' });
  assert.deepEqual([...v.lan.on], ['A']);
  assert.ok(v.lan.events.some((e) => e.member === 'B' && e.what === 'remove'));
  await close(v);
});

test('stop: the leader removes the VIP; the report says stopped', async () => {
  const v = await formed();
  await v.c.settle(v.vips.get('A')!.stop());
  assert.deepEqual([...v.lan.on], []);
  assert.equal(v.vips.get('A')!.report().state, 'stopped');
  await close(v);
});

/** One LeaderVip over a fake LAN, claim set by hand. */
function single(check?: string) {
  const { base, clock } = virtualClock();
  const lan = new FakeLan(clock);
  const addresses = lan.manager('A', check);
  const claim = { hold: false, until: Infinity, why: 'test' };
  const listeners: (() => void)[] = [];
  const guarded: (Vip | null)[] = [];
  const reports: VipReport[] = [];
  const vip = new LeaderVip({ vip: VIP, addresses, claim: () => claim, onChange: (l) => (listeners.push(l), () => undefined), guard: (g) => guarded.push(g), clock, log, onReport: (r) => reports.push(r) });
  const change = (c: Partial<typeof claim>) => {
    Object.assign(claim, c);
    for (const l of listeners) l();
  };
  /** Stops it, running virtual time meanwhile (the removal takes OP_MS on the clock). */
  const stop = async () => {
    let done = false;
    const p = vip.stop().finally(() => (done = true));
    await base.runUntil(() => done, 10_000);
    await p;
  };
  return { base, clock, lan, addresses, vip, change, stop, guarded, reports };
}

test('refused at start (bad interface, network or permission): says why, never touches the address, runs on', async () => {
  const s = single('10.0.0.100/24 is outside the networks of eth0 (192.168.1.5/24)');
  const started = s.vip.start();
  await s.base.advance(100);
  await started;
  s.change({ hold: true });
  await s.base.advance(10_000);
  assert.deepEqual(s.addresses.calls, ['check'], 'nothing but the check');
  assert.equal(s.vip.report().state, 'refused');
  assert.match(s.vip.report().reason, /outside the networks of eth0/);
  assert.deepEqual(s.guarded, [], 'the fence is not given it either');
  await s.stop();
  assert.deepEqual(s.addresses.calls, ['check'], 'not even on stop');
});

test('a failing add is retried until it works; the claim running out while it fails leaves nothing behind', async () => {
  const s = single();
  s.lan.failAdds.set('A', 2);
  void s.vip.start();
  await s.base.advance(100);
  s.change({ hold: true });
  await s.base.advance(200);
  assert.equal(s.vip.report().state, 'failing');
  assert.match(s.vip.report().reason, /not permitted/);
  await s.base.advance(3000);
  assert.equal(s.vip.report().state, 'held');
  assert.deepEqual([...s.lan.on], ['A']);
  assert.deepEqual(s.guarded, [VIP], 'handed to the fence once checked');
  // A claim with a deadline: dropped at the deadline even with no event.
  s.change({ until: s.clock.now() + 500 });
  await s.base.advance(499);
  assert.deepEqual([...s.lan.on], ['A']);
  await s.base.advance(OP_MS + 10);
  assert.deepEqual([...s.lan.on], [], 'gone at the deadline');
  assert.equal(s.vip.report().state, 'standby');
  await s.stop();
  assert.deepEqual(s.guarded, [VIP, null]);
});

test('the address removed behind its back while it leads is put back at the next look', async () => {
  const s = single();
  void s.vip.start();
  s.change({ hold: true });
  await s.base.advance(100);
  assert.deepEqual([...s.lan.on], ['A']);
  s.lan.on.clear();
  await s.base.advance(5100);
  assert.deepEqual([...s.lan.on], ['A']);
  await s.stop();
});

test('claims: from the HA facts and from a member alone', () => {
  const facts = { holdsLease: true, role: 'leader' as const, fenced: false, writesStopAt: 1234 };
  assert.deepEqual(claimFromFacts(facts), { hold: true, until: 1234, why: 'the PostgreSQL leader' });
  assert.equal(claimFromFacts({ ...facts, holdsLease: false }).hold, false);
  assert.equal(claimFromFacts({ ...facts, fenced: true }).hold, false, 'fencing or handing over');
  assert.equal(claimFromFacts({ ...facts, role: 'replica' }).hold, false, 'not yet promoted');
  const state = { role: 'leader', writable: true, reason: '' } as LeadershipState;
  assert.deepEqual(claimFromState(state), { hold: true, until: Infinity, why: 'standalone: this node is its own leader' });
  assert.equal(claimFromState({ ...state, writable: false }).hold, false);
});

test('parseVip: a host address on its network; the network or broadcast address refused', () => {
  assert.deepEqual({ ...parseVip('10.0.0.100/24', 'eth0'), network: undefined }, { address: '10.0.0.100', family: 4, prefix: 24, network: undefined, interface: 'eth0', text: '10.0.0.100/24' });
  assert.equal(parseVip('fd00::100/64', 'eth0').family, 6);
  assert.equal(parseVip('10.0.0.1/32', 'eth0').prefix, 32);
  assert.throws(() => parseVip('10.0.0.0/24', 'eth0'), /address of the network 10\.0\.0\.0\/24 itself/);
  assert.throws(() => parseVip('10.0.0.255/24', 'eth0'), /broadcast address of 10\.0\.0\.0\/24/);
  assert.throws(() => parseVip('10.0.0.100', 'eth0'), /no \/PREFIX/);
  assert.throws(() => parseVip('vip.example/24', 'eth0'), /not a literal IP address/);
});
