/**
 * The HA status rules (src/plugins/http/ha-status.ts) on censuses built the
 * way the API builds them (buildCensus over ring members and rumors): a
 * whole cluster is OK; each kind of trouble is a reason naming its member;
 * "since" survives runs and the source's own time wins; the CLI's lines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import { buildCensus, type Census } from '../../src/plugins/http/cluster-view.js';
import { backlogGrowth, haReasons, haStatusLines, haStatusOf, HaStatusTracker, type HaStatusInput } from '../../src/plugins/http/ha-status.js';
import type { EtcdMembershipStatus } from '../../src/plugins/etcd/membership.js';
import type { LeadershipState } from '../../src/supervisor/leadership.js';
import { member, NO_LEADERSHIP, roleRumorOf, rumor } from '../support/census-fixtures.js';

const A = 'aaaaaaaaaaaaaaaa';
const B = 'bbbbbbbbbbbbbbbb';
const C = 'cccccccccccccccc';
const NOW = Date.UTC(2026, 11, 6, 10, 0);

const running = (extra: object = {}) => ({ state: 'running', pid: 10, health: 'ok', since: NOW - 3_600_000, config_version: 0, ...extra });

/** Three members running PostgreSQL and Elasticsearch: A leads, B and C stream. The census is built from C's side: C's own state is its local services and leadership (`self`), the others' their rumors. */
function cluster(over: { members?: MemberView[]; rumors?: StoredRumor[]; esStatus?: string; esNodes?: number; self?: Partial<LeadershipState> } = {}): Census {
  const members = over.members ?? [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'alive'), member(C, '10.0.0.13', 'alive')];
  const rumors = [
    ...[A, B].flatMap((id) => [rumor(id, 'postgresql', running()), rumor(id, 'elasticsearch', running())]),
    roleRumorOf(A, { role: 'leader', timeline: 3 }),
    roleRumorOf(B, { role: 'replica', replication_state: 'streaming', lag_bytes: 0 }),
    ...(over.rumors ?? []),
  ];
  // Later rumors for the same key replace earlier ones, as the ring's newer versions do.
  const byKey = new Map<string, StoredRumor>();
  for (const r of rumors) byKey.set(`${r.kind}|${r.key}`, r);
  const census = buildCensus({
    memberId: C,
    members,
    rumors: (kind) => [...byKey.values()].filter((r) => r.kind === kind),
    localServices: [
      { name: 'elasticsearch', group: 'default', state: 'running', since: 0, restarts: 0, health: 'ok', healthSince: 0, configVersion: 0, details: { status: over.esStatus ?? 'green', number_of_nodes: over.esNodes ?? 3 } },
      { name: 'postgresql', group: 'default', state: 'running', since: 0, restarts: 0, health: 'ok', healthSince: 0, configVersion: 0 },
    ],
    leadership: { ...NO_LEADERSHIP, serviceGroup: 'postgresql.default', role: 'replica', replication: { state: 'streaming', lagBytes: 512 }, timeline: 3, leader: A, ...over.self },
  });
  return census;
}

function etcd(healthy: boolean[]): EtcdMembershipStatus {
  return {
    forming: true,
    founder: false,
    role: 'voter',
    voters_wanted: 3,
    attempts: 0,
    last_error: null,
    voters: healthy.map((h, i) => ({ member: [A, B, C][i]!, member_state: h ? 'alive' : 'dead', client_url: `http://10.0.0.1${i + 1}:2379`, peer_url: null, healthy: h })),
  };
}

const HA = { paused: false, synchronous_mode: false, sync_members: [], leader: A, settings: { ttl: 10, loop_wait: 1, retry_timeout: 10, maximum_lag_on_failover: 1_048_576 } };

function status(input: Partial<HaStatusInput> & { census: Census }) {
  return haStatusOf(C, haReasons({ now: NOW, ha: HA, etcd: etcd([true, true, true]), ...input }), new Map(), NOW);
}

const codes = (s: ReturnType<typeof status>) => s.reasons.map((r) => `${r.code}:${r.member ?? '-'}`);

test('a whole cluster is OK, with no reasons', () => {
  const s = status({ census: cluster() });
  assert.deepEqual(s.reasons, []);
  assert.equal(s.status, 'OK');
  assert.deepEqual(haStatusLines(s, NOW), ['HA: OK']);
});

test('a dead follower: DEGRADED, naming the member, its Elasticsearch node and its etcd voter; its stale rumors add nothing', () => {
  const census = cluster({ members: [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'dead'), member(C, '10.0.0.13', 'alive')], esNodes: 2 });
  const s = status({ census, etcd: etcd([true, false, true]) });
  assert.equal(s.status, 'DEGRADED');
  // Critical first; then what concerns the whole cluster, then by member.
  assert.deepEqual(codes(s), [`member_dead:${B}`, 'etcd_quorum_at_risk:-', `es_node_missing:${B}`, `etcd_voter_unhealthy:${B}`]);
  assert.equal(s.reasons[0]!.text, `member ${B} (10.0.0.12:9638) is dead (no answer to probes)`);
  assert.match(s.reasons[1]!.text, /2 of 3 voters healthy \(3 wanted\), one more loss ends it/);
});

test('a suspect and a departed member: only the suspect one is a reason', () => {
  const census = cluster({ members: [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'suspect'), member(C, '10.0.0.13', 'alive'), member('dddddddddddddddd', '10.0.0.14', 'departed')] });
  assert.deepEqual(codes(status({ census })), [`member_suspect:${B}`]);
});

test('PostgreSQL: a replica not streaming, one lagging over the election bound, no leader, several leaders', () => {
  const census = cluster({ rumors: [roleRumorOf(B, { role: 'replica', replication_state: 'in archive recovery', lag_bytes: 0 })], self: { replication: { state: 'streaming', lagBytes: 5_000_000 } } });
  const s = status({ census });
  assert.deepEqual(codes(s), [`pg_not_streaming:${B}`, `pg_lagging:${C}`]);
  assert.match(s.reasons[1]!.text, /lags 5000000 bytes behind the leader \(bound 1048576 bytes/);
  const tighter = status({ census: cluster({ self: { replication: { state: 'streaming', lagBytes: 600 } } }), ha: { ...HA, settings: { ...HA.settings, maximum_lag_on_failover: 500 } } });
  assert.deepEqual(codes(tighter), [`pg_lagging:${C}`], 'the bound is the election\'s');

  const leaderless = status({ census: cluster({ rumors: [roleRumorOf(A, { role: 'replica', replication_state: 'streaming', lag_bytes: 0 })] }), ha: { ...HA, leader: null } });
  assert.deepEqual(codes(leaderless), ['pg_no_leader:-']);
  assert.equal(leaderless.reasons[0]!.severity, 'critical');
  const two = status({ census: cluster({ rumors: [roleRumorOf(B, { role: 'leader', timeline: 3 })] }) });
  assert.deepEqual(codes(two), ['pg_several_leaders:-']);
});

test('synchronous mode without a synchronous standby, and a paused cluster', () => {
  const s = status({ census: cluster(), ha: { ...HA, synchronous_mode: true, sync_members: [], paused: true } });
  assert.deepEqual(codes(s), [`pg_no_sync_standby:${A}`, 'paused:-']);
  assert.match(s.reasons[0]!.text, /leader aaaaaaaaaaaaaaaa commits without waiting/);
  const fromRumor = status({ census: cluster({ rumors: [roleRumorOf(A, { role: 'leader', timeline: 3, sync_degraded: true })] }), ha: null });
  assert.deepEqual(codes(fromRumor), [`pg_no_sync_standby:${A}`], 'the leader\'s own rumor says so where the election view is absent');
  assert.deepEqual(codes(status({ census: cluster(), ha: { ...HA, synchronous_mode: true, sync_members: [B] } })), []);
});

test('etcd: quorum lost is critical; one voter of one is at risk; no reasons where the members do not form etcd', () => {
  assert.deepEqual(codes(status({ census: cluster(), etcd: etcd([true, false, false]) })), ['etcd_quorum_lost:-', `etcd_voter_unhealthy:${B}`, `etcd_voter_unhealthy:${C}`], 'critical first');
  assert.deepEqual(codes(status({ census: cluster(), etcd: etcd([true]) })), ['etcd_quorum_at_risk:-']);
  assert.deepEqual(codes(status({ census: cluster(), etcd: { ...etcd([false]), forming: false } })), []);
});

test('Elasticsearch yellow, red, unknown, and a node missing while every member lives', () => {
  assert.deepEqual(codes(status({ census: cluster({ esStatus: 'yellow' }) })), ['es_status:-']);
  const red = status({ census: cluster({ esStatus: 'red' }) });
  assert.equal(red.reasons[0]!.severity, 'critical');
  assert.deepEqual(codes(status({ census: cluster({ esNodes: 2 }) })), ['es_node_missing:-']);
  assert.match(status({ census: cluster({ esNodes: 2 }) }).reasons[0]!.text, /has 2 of 3 nodes/);
});

test('clock drift over 1.5 s names the member', () => {
  const drifting = { ...member(B, '10.0.0.12', 'alive'), clockOffsetMs: -2100 };
  const s = status({ census: cluster({ members: [member(A, '10.0.0.11', 'alive'), drifting, member(C, '10.0.0.13', 'alive')] }) });
  assert.deepEqual(codes(s), [`clock_drift:${B}`]);
  assert.equal(s.reasons[0]!.text, `clock of ${B} is -2100 ms off (over 1500 ms)`);
});

test('services flapping, waiting to restart or failing health checks; since is the service state\'s own time', () => {
  const census = cluster({ rumors: [rumor(B, 'postgresql', running({ state: 'flapping', since: NOW - 90_000 })), rumor(A, 'elasticsearch', running({ health: 'critical' }))] });
  const s = status({ census });
  assert.deepEqual(codes(s), [`service_critical:${A}`, `service_flapping:${B}`]);
  assert.equal(s.reasons[1]!.since, NOW - 90_000);
  assert.deepEqual(haStatusLines(s, NOW), [
    'HA: DEGRADED (2 reasons)',
    `  CRITICAL: elasticsearch.default on ${A} fails its health check, since 2026-12-06T10:00:00Z (0 s ago)`,
    `  CRITICAL: postgresql.default on ${B} is flapping (crashes over and over; restarts are spaced out), since 2026-12-06T09:58:30Z (1 min ago)`,
  ]);
});

test('the spool backlog: growing over the window is a reason, a backlog that drains or a short history is not; drops are', () => {
  const series = (values: number[]) => values.map((events, i) => ({ at: NOW - (values.length - 1 - i) * 5000, events }));
  assert.deepEqual(backlogGrowth(series([100, 400, 900, 1500, 2000, 2600, 3100]), NOW), { events: 3100, grew: 3000, overMs: 30_000 });
  assert.equal(backlogGrowth(series([100, 400, 900, 500, 2000, 2600, 3100]), NOW), undefined, 'it fell once: draining, not growing');
  assert.equal(backlogGrowth(series([100, 3000, 9000]), NOW), undefined, 'ten seconds of history say nothing yet');
  assert.equal(backlogGrowth(series([0, 100, 200, 300, 400, 500, 600]), NOW), undefined, 'slow growth within the bound');
  const s = status({ census: cluster(), spool: { samples: series([100, 400, 900, 1500, 2000, 2600, 3100]), dropped: 7, droppedBefore: 2 } });
  assert.deepEqual(codes(s), [`spool_dropping:${C}`, `spool_backlog_growing:${C}`]);
});

test('since: the first run that saw a reason, kept across runs; a reason that ends and comes back starts again', () => {
  let census = cluster({ members: [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'suspect'), member(C, '10.0.0.13', 'alive')] });
  let now = NOW;
  const tracker = new HaStatusTracker({ memberId: C, census: () => census });
  const first = tracker.update(now);
  assert.equal(first.reasons[0]!.since, NOW);
  now += 5000;
  assert.equal(tracker.update(now).reasons[0]!.since, NOW, 'the same reason keeps its time');
  census = cluster();
  now += 1000;
  assert.equal(tracker.update(now).status, 'OK');
  census = cluster({ members: [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'suspect'), member(C, '10.0.0.13', 'alive')] });
  now += 1000;
  assert.equal(tracker.update(now).reasons[0]!.since, now, 'a new episode');
  assert.equal(tracker.current().as_of, now);
});
