/**
 * The rolling restart's decisions against a fake cluster API in virtual
 * time: PostgreSQL followers first, one switchover to the least lagging
 * follower, the old leader last, each waited on until its new process
 * streams caught up; Elasticsearch with allocation held per node and green
 * awaited; a failure stops where it is and says so, touching nothing more;
 * an unhealthy cluster is refused; --dry-run only prints the plan.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planRollout, refusal, rollingRestart, RolloutError, switchoverTarget, type RolloutApi, type RolloutMember, type RolloutOptions } from '../../src/cli/rollout/rolling-restart.js';

/** A cluster whose members come back `downMs` after a restart, as replicas `lagMs` behind until caught up. */
class FakeClusterApi implements RolloutApi {
  t = 0;
  readonly calls: string[] = [];
  readonly members_: Map<string, RolloutMember & { downUntil: number; catchUpAt: number }>;
  allocation: string | null = null;
  /** Members that never come back from a restart. */
  readonly broken = new Set<string>();
  /** hasup upgrade: members that do not have the program, with their refusal; programs a member does not come back on. */
  readonly lacks = new Map<string, string>();
  readonly failingPrograms = new Set<string>();
  /** The program each member runs (hasup upgrade), "configured" at first. */
  readonly program = new Map<string, string[]>();
  private readonly restarted = new Set<string>();
  searchStatus: 'green' | 'yellow' = 'green';

  constructor(
    ids: string[],
    leader: string | null,
    private readonly downMs = 3000,
    private readonly catchUpMs = 2000,
  ) {
    this.members_ = new Map(ids.map((id) => [id, { member: id, live: true, healthy: true, leader: id === leader, streaming: leader !== null && id !== leader, lagBytes: id === leader ? null : id === 'm3' ? 500 : 100, since: 0, downUntil: 0, catchUpAt: 0 }]));
  }

  async members(): Promise<RolloutMember[]> {
    return [...this.members_.values()].map((m) => {
      const down = this.t < m.downUntil || (this.broken.has(m.member) && this.restarted.has(m.member));
      const behind = this.t < m.catchUpAt;
      return { member: m.member, live: m.live, healthy: !down, leader: m.leader && !down, streaming: !m.leader && !down, lagBytes: m.leader ? null : behind ? 50_000_000 : (m.lagBytes ?? 0), since: m.since };
    });
  }

  async restart(member: string, sg: string): Promise<number> {
    this.calls.push(`restart ${member} ${sg}${this.allocation ? ` (allocation ${this.allocation})` : ''}`);
    const m = this.members_.get(member)!;
    this.restarted.add(member);
    m.since = this.t;
    m.downUntil = this.t + this.downMs;
    m.catchUpAt = this.t + this.downMs + this.catchUpMs;
    return m.since;
  }

  async checkUpgrade(member: string, sg: string, to: string): Promise<string> {
    this.calls.push(`check ${member} ${sg} ${to}`);
    const lacking = this.lacks.get(member);
    if (lacking) throw new Error(lacking);
    return `${to}.1`;
  }

  async upgrade(member: string, sg: string, to: string): Promise<number> {
    this.calls.push(`upgrade ${member} ${sg} ${to}`);
    this.program.set(member, [...(this.program.get(member) ?? ['configured']), to]);
    return this.restartOn(member, this.failingPrograms.has(to));
  }

  async revertUpgrade(member: string, sg: string): Promise<number> {
    this.calls.push(`revert ${member} ${sg}`);
    const programs = this.program.get(member) ?? ['configured'];
    programs.pop();
    return this.restartOn(member, this.failingPrograms.has(programs.at(-1)!));
  }

  private restartOn(member: string, failing: boolean): number {
    if (failing) this.broken.add(member);
    else this.broken.delete(member);
    this.restarted.add(member);
    const m = this.members_.get(member)!;
    m.since = this.t;
    m.downUntil = this.t + this.downMs;
    m.catchUpAt = this.t + this.downMs + this.catchUpMs;
    return m.since;
  }

  async switchover(to: string): Promise<void> {
    this.calls.push(`switchover ${to}`);
    for (const m of this.members_.values()) m.leader = m.member === to;
    this.t += 1500;
  }

  async setAllocation(value: 'primaries' | null): Promise<void> {
    this.calls.push(`allocation ${value}`);
    this.allocation = value;
  }

  async searchHealth() {
    return { status: this.searchStatus, nodes: this.members_.size };
  }

  async sleep(ms: number): Promise<void> {
    this.t += ms;
  }

  now(): number {
    return this.t;
  }
}

const opts = (service: string, lines: string[] = [], extra: Partial<RolloutOptions> = {}): RolloutOptions => ({
  service,
  group: 'default',
  maxLagBytes: 1024 * 1024,
  memberTimeoutMs: 60_000,
  pollMs: 1000,
  dryRun: false,
  say: (l) => lines.push(l),
  ...extra,
});

test('postgresql: followers first, each back and caught up; one switchover to the least lagging follower; the old leader last', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm1');
  const lines: string[] = [];
  const r = await rollingRestart(api, opts('postgresql', lines));
  assert.deepEqual(api.calls, ['restart m2 postgresql.default', 'restart m3 postgresql.default', 'switchover m2', 'restart m1 postgresql.default']);
  assert.deepEqual(r.restarted, ['m2', 'm3', 'm1']);
  assert.deepEqual(r.switchover, { from: 'm1', to: 'm2' }, 'm2 lags least (100 B against 500 B)');
  assert.ok(r.tookMs >= 3 * 5000, 'each member waited for: down 3 s, catching up 2 s');
  assert.ok(lines.some((l) => /m3 is back, streaming and caught up/.test(l)));
  assert.match(lines.at(-1)!, /done in .* \(leader now m2\)/);
});

test('a member that does not come back stops the rollout there, saying where; the rest is not touched', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm1');
  api.broken.add('m2');
  await assert.rejects(rollingRestart(api, opts('postgresql', [], { memberTimeoutMs: 10_000 })), (err: Error) => {
    assert.ok(err instanceof RolloutError);
    assert.match(err.message, /stopped at step 1 \(restart postgresql on m2.*\): m2 did not come back within 10 s \(last seen: not healthy\); restarted: none; not touched: m3, m1/);
    return true;
  });
  assert.deepEqual(api.calls, ['restart m2 postgresql.default'], 'no switchover, no further restart');
});

test('refused before anything when a member is unhealthy, there is no leader, or no follower streams', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm1');
  api.members_.get('m3')!.live = false;
  await assert.rejects(rollingRestart(api, opts('postgresql')), /refused: not every member is healthy \(m3: member not alive\).*nothing was restarted/);
  assert.deepEqual(api.calls, []);
  const m = (id: string, over: Partial<RolloutMember> = {}): RolloutMember => ({ member: id, live: true, healthy: true, leader: false, streaming: true, lagBytes: 0, since: 0, ...over });
  assert.equal(refusal('postgresql', [m('a'), m('b')]), 'PostgreSQL has no leader');
  assert.equal(refusal('postgresql', [m('a', { leader: true, streaming: false }), m('b', { streaming: false })]), 'no PostgreSQL follower streams from the leader: a switchover would have no target');
  assert.equal(refusal('etcd', []), 'no member runs etcd');
  assert.equal(refusal('etcd', [m('a'), m('b')]), undefined);
});

test('--dry-run prints the plan and changes nothing', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm2');
  const lines: string[] = [];
  const r = await rollingRestart(api, opts('postgresql', lines, { dryRun: true }));
  assert.deepEqual(api.calls, []);
  assert.deepEqual(r.restarted, []);
  assert.deepEqual(lines, [
    'plan for postgresql.default (3 members):',
    '  1. restart postgresql on m1 and wait until it streams, caught up',
    '  2. restart postgresql on m3 and wait until it streams, caught up',
    '  3. switch the PostgreSQL leader over from m2 to the most caught-up follower',
    '  4. restart postgresql on m2 and wait until it streams, caught up',
  ]);
});

test('elasticsearch: allocation held to primaries during each restart, then enabled and green awaited before the next', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], null);
  await rollingRestart(api, opts('elasticsearch'));
  assert.deepEqual(api.calls, [
    'allocation primaries',
    'restart m1 elasticsearch.default (allocation primaries)',
    'allocation null',
    'allocation primaries',
    'restart m2 elasticsearch.default (allocation primaries)',
    'allocation null',
    'allocation primaries',
    'restart m3 elasticsearch.default (allocation primaries)',
    'allocation null',
  ]);
});

test('elasticsearch: a cluster that stays yellow stops the rollout after the first node', async () => {
  const api = new FakeClusterApi(['m1', 'm2'], null);
  api.searchStatus = 'yellow';
  await assert.rejects(rollingRestart(api, opts('elasticsearch', [], { memberTimeoutMs: 5000 })), /step 1 .*not back to green with 2 nodes within 5 s \(last: yellow, 2\/2 nodes\).*; restarted: none; not touched: m2/);
  assert.equal(api.calls.filter((c) => c.startsWith('restart')).length, 1);
});

test('plans and switchover targets', () => {
  const m = (id: string, over: Partial<RolloutMember> = {}): RolloutMember => ({ member: id, live: true, healthy: true, leader: false, streaming: true, lagBytes: 0, since: 0, ...over });
  assert.deepEqual(planRollout('etcd', [m('m10'), m('m2')]).map((s) => s.kind === 'restart' && s.member), ['m2', 'm10'], 'by id, numerically');
  assert.deepEqual(planRollout('postgresql', [m('a', { leader: true }), m('b')]), [{ kind: 'restart', member: 'b' }, { kind: 'switchover', from: 'a' }, { kind: 'restart', member: 'a' }]);
  // hasup itself: the PostgreSQL leader's hasup last, after a switchover (its fence would stop the primary with it).
  assert.deepEqual(planRollout('hasup', [m('a', { leader: true }), m('b')]), [{ kind: 'restart', member: 'b' }, { kind: 'switchover', from: 'a' }, { kind: 'restart', member: 'a' }]);
  assert.equal(refusal('hasup', [m('a', { leader: true, streaming: false }), m('b', { streaming: false })]), 'no PostgreSQL follower streams from the leader: a switchover would have no target');
  assert.equal(refusal('hasup', [m('a', { streaming: false })]), undefined, 'members without PostgreSQL: nothing to hand over');
  assert.equal(switchoverTarget([m('a', { leader: true }), m('b', { lagBytes: 10 }), m('c', { lagBytes: 5 }), m('d', { lagBytes: 0, streaming: false })], 'a')?.member, 'c');
  assert.equal(switchoverTarget([m('a', { leader: true })], 'a'), undefined);
});

test('upgrade: every member asked first; then in the rolling order, each switched and waited on until caught up', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm1');
  const lines: string[] = [];
  const r = await rollingRestart(api, opts('postgresql', lines, { upgradeTo: '/opt/pg/bin' }));
  assert.deepEqual(api.calls, [
    'check m1 postgresql.default /opt/pg/bin',
    'check m2 postgresql.default /opt/pg/bin',
    'check m3 postgresql.default /opt/pg/bin',
    'upgrade m2 postgresql.default /opt/pg/bin',
    'upgrade m3 postgresql.default /opt/pg/bin',
    'switchover m2',
    'upgrade m1 postgresql.default /opt/pg/bin',
  ]);
  assert.deepEqual(r.restarted, ['m2', 'm3', 'm1']);
  assert.ok(lines.includes('every member has it: m1 /opt/pg/bin.1, m2 /opt/pg/bin.1, m3 /opt/pg/bin.1'));
  assert.ok(lines.includes('  1. switch postgresql on m2 to /opt/pg/bin, restart it and wait until it streams, caught up'));
  assert.match(lines.at(-1)!, /^upgrade of postgresql.default to \/opt\/pg\/bin done in/);
});

test('upgrade: a member without the program refuses the whole rollout before any member is touched; --dry-run still asks', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm1');
  api.lacks.set('m3', '/opt/pg/bin/postgres does not exist on this member');
  await assert.rejects(
    rollingRestart(api, opts('postgresql', [], { upgradeTo: '/opt/pg/bin' })),
    /upgrade of postgresql.default to \/opt\/pg\/bin refused: m3: \/opt\/pg\/bin\/postgres does not exist on this member; nothing was changed/,
  );
  assert.deepEqual(api.calls.filter((c) => !c.startsWith('check')), [], 'nothing switched, restarted or handed over');
  const dry = new FakeClusterApi(['m1', 'm2'], 'm1');
  dry.lacks.set('m2', 'no');
  await assert.rejects(rollingRestart(dry, opts('postgresql', [], { upgradeTo: '16', dryRun: true })), /refused: m2: no/);
});

test('upgrade: the first member failing on the new program goes back to its previous one; the rollout stops there', async () => {
  const api = new FakeClusterApi(['m1', 'm2', 'm3'], 'm1');
  api.failingPrograms.add('/opt/bad/bin');
  const lines: string[] = [];
  await assert.rejects(rollingRestart(api, opts('postgresql', lines, { upgradeTo: '/opt/bad/bin', memberTimeoutMs: 10_000 })), (err: Error) => {
    assert.ok(err instanceof RolloutError);
    assert.match(err.message, /upgrade of postgresql.default to \/opt\/bad\/bin stopped at step 1 .*m2 did not come back within 10 s \(last seen: not healthy\); m2 is back on its previous program and healthy; upgraded: none; not touched: m3, m1/);
    return true;
  });
  assert.deepEqual(api.calls.slice(3), ['upgrade m2 postgresql.default /opt/bad/bin', 'revert m2 postgresql.default'], 'no second member, no switchover');
  assert.deepEqual(api.program.get('m2'), ['configured']);
  assert.ok(lines.includes('m2 did not come back on /opt/bad/bin: putting it back on its previous program'));
});
