/**
 * The election's pure parts: timing rules, who may be promoted, who wins a
 * vacant leader key, the synchronous set, the switchover target; the
 * Leadership the checks read (doubt from the clock); and the replication
 * config PostgreSQL is given (no password in it, quoting).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { DatabaseStatus } from '../../src/ha/database.js';
import { desiredSyncSet, electionOutcome, eligibility, switchoverTarget } from '../../src/ha/decisions.js';
import { ElectedLeadership } from '../../src/ha/elected-leadership.js';
import { checkHaSettings, DEFAULT_HA_SETTINGS, effectiveSettings, haSettingsFrom, type HaSettings } from '../../src/ha/settings.js';
import type { ClusterSnapshot, MemberReport } from '../../src/ha/store.js';
import { conninfo, NO_SYNC_STANDBY, renderHaConf, slotName } from '../../src/plugins/postgresql/standby-config.js';
import type { DriverContext } from '../../src/supervisor/driver.js';

const settings = (s: Partial<HaSettings> = {}): HaSettings => ({ ...DEFAULT_HA_SETTINGS, ...s });

function standby(extra: Partial<DatabaseStatus> = {}): DatabaseStatus {
  return { running: true, healthy: true, inRecovery: true, timeline: 2, walPosition: 1000, replayPosition: 1000, streaming: true, upstream: 'L', replicas: [], ...extra };
}

function report(member: string, extra: Partial<MemberReport> = {}): MemberReport {
  return {
    member,
    host: '10.0.0.1',
    port: 5432,
    role: 'replica',
    healthy: true,
    timeline: 2,
    wal_position: 1000,
    replay_position: 1000,
    lag_bytes: 0,
    replication_state: 'streaming',
    upstream: 'L',
    eligible: true,
    nofailover: false,
    leader_seen: null,
    lease: `lease-${member}`,
    updated: 0,
    ...extra,
  };
}

function snap(reports: MemberReport[], extra: Partial<ClusterSnapshot> = {}): ClusterSnapshot {
  return {
    revision: 10,
    leader: null,
    members: new Map(reports.map((r) => [r.member, { report: r, modRevision: 5, lease: r.lease }])),
    optime: null,
    initialize: null,
    sync: null,
    paused: false,
    switchover: null,
    restore: null,
    ...extra,
  };
}

test('timings: loop_wait + 2 × retry_timeout must fit in the ttl; the defaults do', () => {
  assert.equal(checkHaSettings(DEFAULT_HA_SETTINGS), undefined);
  assert.match(checkHaSettings(settings({ ttlS: 3, loopWaitMs: 2000, retryTimeoutMs: 1000 }))!, /loop_wait \+ 2 × ha.retry_timeout must not exceed ha.ttl: 2 \+ 2 × 1 > 3/);
  assert.match(checkHaSettings(settings({ ttlS: 1 }))!, /at least 2/);
  assert.match(checkHaSettings(settings({ ttlS: 2.5 }))!, /whole number/);
  assert.match(checkHaSettings(settings({ synchronousModeStrict: true, synchronousModeAuto: false }))!, /needs ha.synchronous_mode/);
  const fromToml = haSettingsFrom({ ha: { ttl: 10, loop_wait: 2, retry_timeout: 4, synchronous_mode: true, maximum_lag_on_failover: 5 } });
  assert.deepEqual(fromToml, { ...DEFAULT_HA_SETTINGS, ttlS: 10, loopWaitMs: 2000, retryTimeoutMs: 4000, synchronousMode: true, synchronousModeAuto: false, maximumLagOnFailover: 5 });
  assert.deepEqual(haSettingsFrom({}), DEFAULT_HA_SETTINGS);
});

test('settings of the wrong type are refused with the key and the reason, never silently defaulted', () => {
  assert.equal(checkHaSettings(haSettingsFrom({ ha: { ttl: '3' } })), '"ha.ttl" must be a number, got string "3"');
  assert.equal(checkHaSettings(haSettingsFrom({ ha: { synchronous_mode: 'yes' } })), '"ha.synchronous_mode" must be true, false or "auto", got string "yes"');
  assert.match(checkHaSettings(haSettingsFrom({ ha: { watchdog: 'always', nofailover: 1 } }))!, /"ha.nofailover" must be true or false, got number 1; "ha.watchdog" must be one of off, automatic, required, got "always"/);
  assert.match(checkHaSettings(haSettingsFrom({ ha: { watchdog_device: 'dev/watchdog' } }))!, /absolute path/);
  assert.equal(checkHaSettings(haSettingsFrom({ ha: { watchdog: 'required', watchdog_device: '/dev/watchdog1' } })), undefined);
});

test('synchronous_mode = "auto" (the default) is synchronous from three members on; true and false are fixed', () => {
  assert.equal(DEFAULT_HA_SETTINGS.synchronousModeAuto, true);
  assert.equal(effectiveSettings(DEFAULT_HA_SETTINGS, 2).synchronousMode, false);
  assert.equal(effectiveSettings(DEFAULT_HA_SETTINGS, 3).synchronousMode, true);
  assert.equal(effectiveSettings(haSettingsFrom({ ha: { synchronous_mode: false } }), 5).synchronousMode, false);
  assert.equal(effectiveSettings(haSettingsFrom({ ha: { synchronous_mode: true } }), 2).synchronousMode, true);
  assert.equal(checkHaSettings(haSettingsFrom({ ha: { synchronous_mode_strict: true } })), undefined, 'strict goes with auto');
});

test('eligibility: only a healthy standby within the lag bound, in the sync set when one is kept, not excluded, not passed over by a switchover', () => {
  const s = settings({ maximumLagOnFailover: 500 });
  assert.equal(eligibility('a', standby(), s, snap([])).eligible, true);
  assert.equal(eligibility('a', standby({ healthy: false, reason: 'down' }), s, snap([])).why, 'down');
  assert.equal(eligibility('a', standby({ inRecovery: false }), s, snap([])).eligible, false);
  assert.equal(eligibility('a', standby(), settings({ noFailover: true }), snap([])).eligible, false);
  const optime = { member: 'L', wal_position: 2000, timeline: 2, updated: 0 };
  assert.match(eligibility('a', standby({ walPosition: 1000 }), s, snap([], { optime })).why, /1000 bytes behind/);
  assert.equal(eligibility('a', standby({ walPosition: 1600 }), s, snap([], { optime })).eligible, true);
  const sync = { leader: 'L', members: ['b'] };
  assert.equal(eligibility('a', standby(), settings({ synchronousMode: true }), snap([], { sync })).eligible, false);
  assert.equal(eligibility('b', standby(), settings({ synchronousMode: true }), snap([], { sync })).eligible, true);
  assert.equal(eligibility('a', standby(), settings({ synchronousMode: true }), snap([], { sync: { leader: 'L', members: [] } })).eligible, true, 'an empty set: the leader ran asynchronously');
  assert.equal(eligibility('a', standby(), s, snap([], { switchover: { from: 'L', to: 'b', id: 'x', requested: 0 } })).eligible, false);
});

test('election: waits for every eligible member\'s final position, then the furthest ahead wins, ties to the lowest id', () => {
  const stale = report('b', { leader_seen: 'L', wal_position: 5000 });
  assert.deepEqual(electionOutcome('a', snap([report('a'), stale]), false), { kind: 'wait', pending: ['b'] });
  assert.deepEqual(electionOutcome('a', snap([report('a', { wal_position: 1000 }), report('b', { wal_position: 1200 })]), false), { kind: 'lost', to: 'b' });
  assert.deepEqual(electionOutcome('b', snap([report('a', { wal_position: 1000 }), report('b', { wal_position: 1200 })]), false), { kind: 'won' });
  assert.deepEqual(electionOutcome('b', snap([report('a'), report('b')]), false), { kind: 'lost', to: 'a' }, 'a tie goes to the lowest id');
  assert.deepEqual(electionOutcome('a', snap([report('a'), stale]), true), { kind: 'won' }, 'after the deadline a silent member is passed over');
  assert.deepEqual(electionOutcome('a', snap([report('a', { eligible: false }), report('c', { eligible: false })]), false), { kind: 'nobody' });
  assert.deepEqual(electionOutcome('a', snap([report('a', { wal_position: 10 }), report('b', { wal_position: 99, eligible: false })]), false), { kind: 'won' }, 'an ineligible member never wins, however far ahead');
});

test('synchronous set: streaming healthy replicas; none → asynchronous, or [] (commits wait) when strict', () => {
  const leader = standby({ inRecovery: false, replicas: [{ member: 'a', state: 'streaming', syncState: 'quorum', flushPosition: 1, replayPosition: 1 }, { member: 'b', state: 'catchup', syncState: 'async', flushPosition: 1, replayPosition: 1 }, { member: 'c', state: 'streaming', syncState: 'quorum', flushPosition: 1, replayPosition: 1 }] });
  const s = snap([report('a'), report('b'), report('c', { nofailover: true })]);
  assert.equal(desiredSyncSet('L', leader, s, settings()), null, 'not in synchronous mode');
  assert.deepEqual(desiredSyncSet('L', leader, s, settings({ synchronousMode: true })), ['a']);
  const none = standby({ inRecovery: false, replicas: [] });
  assert.equal(desiredSyncSet('L', none, s, settings({ synchronousMode: true })), null);
  assert.deepEqual(desiredSyncSet('L', none, s, settings({ synchronousMode: true, synchronousModeStrict: true })), []);
});

test('switchover target: the named member if it streams healthy, else the replica furthest ahead', () => {
  const s = snap([report('a', { wal_position: 10 }), report('b', { wal_position: 20 }), report('c', { replication_state: 'in archive recovery', wal_position: 99 })]);
  assert.deepEqual(switchoverTarget('L', null, s), { target: 'b', lease: 'lease-b' });
  assert.deepEqual(switchoverTarget('L', 'a', s), { target: 'a', lease: 'lease-a' });
  assert.match((switchoverTarget('L', 'c', s) as { error: string }).error, /not a healthy streaming replica \(replica, in archive recovery, healthy\)/);
  const sick = snap([report('a', { healthy: false })]);
  assert.match((switchoverTarget('L', 'a', sick) as { error: string }).error, /not a healthy streaming replica \(replica, streaming, its health check failing\)/, 'says which condition fails');
  assert.match((switchoverTarget('L', 'zz', s) as { error: string }).error, /not reporting/);
  assert.match((switchoverTarget('L', null, snap([])) as { error: string }).error, /no healthy streaming replica/);
});

test('leadership: /primary conditions, and the lease falls in doubt when a renewal is overdue or failing, without anyone telling it', () => {
  let now = 1000;
  const l = new ElectedLeadership('postgresql.default', () => 1500, () => now);
  const changes: boolean[] = [];
  l.onChange((s) => changes.push(s.leaseInDoubt));
  l.update({ role: 'leader', holdsLease: true, renewedAt: 1000, primaryWritable: true, reason: 'leader' });
  assert.equal(l.state().writable, true);
  assert.equal(l.state().leaseInDoubt, false);
  now = 2400;
  assert.equal(l.state().leaseInDoubt, false);
  now = 2600;
  assert.equal(l.state().leaseInDoubt, true, 'renewal overdue');
  assert.equal(l.state().writable, false);
  assert.equal(changes[changes.length - 1], true, 'the flip was announced');
  l.update({ renewedAt: 2600 });
  assert.equal(l.state().leaseInDoubt, false);
  l.update({ renewalFailing: true });
  assert.equal(l.state().leaseInDoubt, true, 'a failed attempt is doubt at once');
  l.update({ renewalFailing: false, fenced: true });
  assert.equal(l.state().writable, false, 'fenced: never writable');
  l.update({ fenced: false, holdsLease: false, role: 'replica', replication: { state: 'streaming', lagBytes: 0 }, syncRole: 'sync' });
  const st = l.state();
  assert.equal(st.leaseInDoubt, false, 'no lease, nothing to doubt');
  assert.equal(st.syncRole, 'sync');
  l.close();
});

test('ha.conf: upstream, slot and synchronous standbys; passwords only in the passfile; values quoted', () => {
  const ctx = {
    memberId: '0123456789abcdef',
    cfg: { replication_user: 'repl user', superuser: 'hasup' },
    paths: { root: '/s/svc/postgresql', data: '/s/svc/postgresql/data', config: '/s/svc/postgresql/config', run: "/s/o'run", logs: '/s/logs' },
    secrets: { api_token: 't', postgresql: { superuser_password: 'SUPER-secret', replication_password: 'REPL-secret' } },
    log: pino({ level: 'silent' }),
  } as unknown as DriverContext;
  const conf = renderHaConf(ctx, { upstream: { member: 'fedcba9876543210', host: '10.0.0.12', port: 5432 }, syncStandbys: ['aaaa', 'bbbb'] });
  assert.doesNotMatch(conf, /secret/);
  assert.match(conf, /^recovery_target_timeline = 'latest'$/m);
  assert.match(conf, /^primary_slot_name = 'hasup_0123456789abcdef'$/m);
  assert.match(conf, /^synchronous_standby_names = 'ANY 1 \("aaaa", "bbbb"\)'$/m);
  const line = conf.split('\n').find((l) => l.startsWith('primary_conninfo'))!;
  // libpq quoting ('repl user', \' in the path) inside postgresql.conf quoting ('' and \\).
  assert.match(line, /host=10\.0\.0\.12 port=5432 user=''repl user'' passfile=''\/s\/o\\\\''run\/pgpass''/);
  assert.match(line, /application_name=0123456789abcdef/);
  const leader = renderHaConf(ctx, { upstream: null, syncStandbys: [] });
  assert.match(leader, /^primary_conninfo = ''$/m);
  assert.match(leader, new RegExp(`^synchronous_standby_names = 'ANY 1 \\("${NO_SYNC_STANDBY}"\\)'$`, 'm'), 'strict without standbys waits for one that never comes');
  assert.match(renderHaConf(ctx, { upstream: null, syncStandbys: null }), /^synchronous_standby_names = ''$/m);
  assert.equal(slotName('AB-12'), 'hasup_ab_12');
  assert.doesNotMatch(conninfo(ctx, { host: '10.0.0.1', port: 1 }, 'hasup'), /secret/);
});
