import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backupSummary, clusterCell, etcdSummary, fenceSummary, haGroupSummary } from '../../src/cli/census.js';
import type { EtcdMembershipStatus } from '../../src/plugins/etcd/membership.js';
import type { ClusterBackupView, ClusterView, ServiceGroupMember } from '../../src/plugins/http/cluster-view.js';

function member(id: string, over: Partial<ServiceGroupMember>): ServiceGroupMember {
  return { member: id, member_state: 'alive', state: 'up', health: 'ok', role: null, lag_bytes: null, lag_seconds: null, replication_state: null, timeline: null, sync_role: null, config_version: 0, ...over };
}

function view(members: ServiceGroupMember[], leader: string | null, warnings: string[] = []): ClusterView {
  return {
    member_id: 'm1',
    gossip: { alive: 3, suspect: 0, dead: 0, left: 0, departed: 0 },
    clock_drift_warn_ms: 1500,
    members: [],
    service_groups: [{ service_group: 'postgresql.default', leader, leaders: leader ? [leader] : [], warnings, critical: [], healthy: members.length, total: members.length, members }],
  };
}

test('the CLUSTER cell names the leader with its timeline and each follower with state, sync role and lag', () => {
  const cell = clusterCell(
    view(
      [
        member('m1', { role: 'leader', timeline: 3 }),
        member('m2', { role: 'replica', replication_state: 'streaming', sync_role: 'sync', lag_bytes: 0 }),
        member('m3', { role: 'replica', replication_state: 'streaming', sync_role: 'async', lag_bytes: 8192, lag_seconds: 2 }),
      ],
      'm1',
    ),
    'postgresql.default',
  );
  assert.equal(cell, 'leader; 3/3 healthy, leader self (timeline 3), replica m2 streaming sync lag 0 B, replica m3 streaming async lag 8192 B 2 s');
});

test('a leader committing asynchronously in synchronous mode is a warning in the CLUSTER cell', () => {
  const cell = clusterCell(view([member('m1', { role: 'leader', timeline: 2 })], 'm1', ['leader m1 commits asynchronously: synchronous mode has no healthy follower to wait for']), 'postgresql.default');
  assert.equal(cell, 'leader; 1/1 healthy, leader self (timeline 2), WARNING: leader m1 commits asynchronously: synchronous mode has no healthy follower to wait for');
});

test('a follower with unknown lag and no sync role says so instead of inventing numbers', () => {
  const cell = clusterCell(view([member('m1', { role: 'replica' }), member('m2', { role: 'leader', timeline: 1 })], 'm2'), 'postgresql.default');
  assert.equal(cell, 'replica; 2/2 healthy, leader m2 (timeline 1), replica self lag ?');
});

function etcd(over: Partial<EtcdMembershipStatus>): EtcdMembershipStatus {
  const voter = (member: string, healthy: boolean) => ({ member, member_state: 'alive' as const, client_url: `http://${member}:2379`, peer_url: null, healthy });
  return { forming: true, founder: false, role: 'voter', voters_wanted: 3, attempts: 0, last_error: null, voters: [voter('m1', true), voter('m2', true), voter('m3', false)], ...over };
}

test("the etcd line says this member's role and how many voters are healthy", () => {
  assert.equal(etcdSummary(etcd({ founder: true })), 'etcd: voter, founded the cluster; 2/3 voters healthy (3 wanted)');
  assert.equal(etcdSummary(etcd({ role: 'client' })), 'etcd: client, runs no etcd; 2/3 voters healthy (3 wanted)');
  assert.equal(etcdSummary(etcd({ role: 'joining', last_error: 'etcdserver: unhealthy cluster' })), 'etcd: joining (last try: etcdserver: unhealthy cluster); 2/3 voters healthy (3 wanted)');
  assert.equal(etcdSummary(etcd({ forming: false, role: null })), undefined, 'no line where the members do not form etcd');
});

test('the fence line says whether it guards the primary, its size, the watchdog and what it last did', () => {
  const f = { pid: 321, armed: true, frozen: false, restarts: 0, rss_kb: 1126, watchdog: null, last_fence: null };
  assert.equal(fenceSummary(f), 'fence: armed, guarding the primary (pid 321, 1.1 MB RSS); kernel watchdog off');
  assert.equal(
    fenceSummary({ ...f, armed: false, restarts: 2, watchdog: '/dev/watchdog', last_fence: { at_ms: Date.UTC(2026, 11, 6, 12), cause: 'deadline', postmaster: 9, killed: 7, survivors: 0, cgroup: true } }),
    'fence: standing by (pid 321, 1.1 MB RSS, restarted 2x); kernel watchdog /dev/watchdog; last stopped PostgreSQL 2026-12-06T12:00:00.000Z (deadline)',
  );
  assert.equal(fenceSummary({ ...f, pid: null, armed: false, rss_kb: null }), 'fence: NOT RUNNING; kernel watchdog off');
  assert.equal(fenceSummary({ ...f, frozen: true }), 'fence: PostgreSQL FROZEN (lease renewal overdue) (pid 321, 1.1 MB RSS); kernel watchdog off');
});

function backupView(over: Partial<ClusterBackupView> = {}): ClusterBackupView {
  return {
    enabled: true,
    repo_path: '/srv/backup',
    active: true,
    stanza: 'ok',
    stanza_ok_at: Date.UTC(2026, 11, 6, 9, 0),
    last_error: null,
    retry_at: null,
    archive: { last_archived_wal: '000000020000000000000005', last_archived_at: Date.UTC(2026, 11, 6, 10, 2), failed_count: 0, last_failed_wal: null, last_failed_at: null, failing: false },
    last_full: { label: '20261206-100000F', type: 'full', stopped_at: Date.UTC(2026, 11, 6, 10, 0) },
    last_backup: { label: '20261206-100000F', type: 'full', stopped_at: Date.UTC(2026, 11, 6, 10, 0) },
    job: null,
    at: Date.UTC(2026, 11, 6, 10, 3),
    member: 'm1',
    from_leader: true,
    ...over,
  };
}

const NOW = Date.UTC(2026, 11, 6, 10, 3);

test('the backups line: repository, stanza, last full with its age, how far WAL is archived', () => {
  assert.equal(backupSummary(backupView(), NOW), 'backups: repository /srv/backup, stanza ok, last full 2026-12-06T10:00Z (3 min ago), archive up to 000000020000000000000005 (1 min ago)');
  assert.equal(
    backupSummary(backupView({ window_from: Date.UTC(2026, 11, 6, 10, 0) }), NOW),
    'backups: repository /srv/backup, stanza ok, last full 2026-12-06T10:00Z (3 min ago), archive up to 000000020000000000000005 (1 min ago), recoverable from 2026-12-06T10:00Z to 2026-12-06T10:02Z',
  );
  const incr = { label: '20261206-100000F_20261206-100200I', type: 'incr' as const, stopped_at: Date.UTC(2026, 11, 6, 10, 2) };
  assert.equal(
    backupSummary(backupView({ last_backup: incr, job: { id: 'backup-0000beef', kind: 'backup', type: 'diff', state: 'running', percent: 41.7, started_at: NOW, ended_at: null, error: null } }), NOW),
    'backups: repository /srv/backup, stanza ok, last full 2026-12-06T10:00Z (3 min ago), last incr 2026-12-06T10:02Z (1 min ago), archive up to 000000020000000000000005 (1 min ago), backup backup-0000beef (diff) running, 42%',
  );
  assert.equal(backupSummary(backupView({ last_full: null, last_backup: null, archive: null, stanza: 'creating' }), NOW), 'backups: repository /srv/backup, stanza being made ready, no full backup yet');
});

test('backups off, a repository that is not ready, archiving that fails, a failed job: said plainly, with WARNING', () => {
  assert.equal(backupSummary(backupView({ enabled: false, repo_path: '', active: false, stanza: 'off' }), NOW), 'backups: off (set [service.postgresql.backup] repo_path)');
  assert.equal(
    backupSummary(
      backupView({ stanza: 'failed', last_full: null, last_backup: null, archive: null, last_error: { at: Date.UTC(2026, 11, 6, 10, 1), message: "stanza: pgbackrest stanza-create (stanza hasup) failed with exit code 41: unable to open '/srv/backup'" }, retry_at: NOW + 40_000 }),
      NOW,
    ),
    "backups: repository /srv/backup, WARNING: repository not ready since 2026-12-06T10:01Z (stanza: pgbackrest stanza-create (stanza hasup) failed with exit code 41: unable to open '/srv/backup'); retrying in 40 s, no full backup yet",
  );
  const failing = { last_archived_wal: '000000020000000000000005', last_archived_at: Date.UTC(2026, 11, 6, 10, 0), failed_count: 4, last_failed_wal: '000000020000000000000006', last_failed_at: Date.UTC(2026, 11, 6, 10, 2), failing: true };
  assert.equal(
    backupSummary(backupView({ archive: failing }), NOW),
    'backups: repository /srv/backup, stanza ok, last full 2026-12-06T10:00Z (3 min ago), WARNING: WAL archiving fails (segment 000000020000000000000006 at 2026-12-06T10:02Z; last archived 000000020000000000000005 at 2026-12-06T10:00Z)',
  );
  // With two repositories the leader's report says which one refuses (pgBackRest's reason).
  assert.match(
    backupSummary(backupView({ archive: { ...failing, failing_reason: 'repo1: [FileOpenError] unable to open file: Permission denied' } }), NOW),
    /WARNING: WAL archiving fails \(segment 000000020000000000000006 .*\): repo1: \[FileOpenError\] unable to open file: Permission denied$/,
  );
  const behind = { ...backupView().archive!, waiting: 3, oldest_waiting_at: NOW - 125_000 };
  assert.match(backupSummary(backupView({ archive: behind }), NOW), /, WARNING: WAL archiving falls behind: 3 segments waiting, the oldest for 2 min$/);
  assert.doesNotMatch(backupSummary(backupView({ archive: { ...behind, oldest_waiting_at: NOW - 20_000 } }), NOW), /falls behind/, 'a segment waiting for seconds is normal');
  const failedJob = { id: 'backup-0000beef', kind: 'backup' as const, type: 'full' as const, state: 'failed' as const, percent: 40, started_at: NOW - 120_000, ended_at: NOW - 60_000, error: 'repository 1 (/srv/backup) is full' };
  assert.match(backupSummary(backupView({ job: failedJob }), NOW), /, WARNING: the last backup job failed 1 min ago \(repository 1 \(\/srv\/backup\) is full\)$/);
  assert.equal(backupSummary(backupView({ active: false, stanza: 'unknown' }), NOW), 'backups: repository /srv/backup, no PostgreSQL leader looks after it now');
  assert.match(backupSummary(backupView({ from_leader: false, member: 'm3' }), NOW), /, as reported by m3, not known as the leader here$/);
});

test('the HA group lines: a standby cluster says whom it follows and how its standby leader replicates; a restore under way or failed is said, a finished one is not', () => {
  const member = (id: string, extra: Record<string, unknown> = {}) => ({ member: id, role: 'replica', replication_state: 'streaming', wal_position: 0x3000060, ...extra }) as never;
  assert.deepEqual(haGroupSummary({ standby_of: null, leader: 'a', members: [member('a')], restore: null }), []);
  assert.deepEqual(haGroupSummary({ standby_of: '10.0.0.100:5432', leader: 'a', members: [member('a', { role: 'standby_leader' }), member('b')], restore: null }), [
    'standby cluster: follows the primary cluster at 10.0.0.100:5432; standby leader a (streaming, received up to 0/3000060); takes no writes until `hasup cluster promote`',
  ]);
  assert.match(
    haGroupSummary({ standby_of: '10.0.0.100:5432', leader: 'a', members: [member('a', { role: 'standby_leader', lag_bytes: 3 * 1024 * 1024 })], restore: null })[0]!,
    /standby leader a \(streaming, received up to 0\/3000060, 3\.0 MiB behind it\)/,
  );
  assert.match(haGroupSummary({ standby_of: '10.0.0.100:5432', leader: null, members: [], restore: null })[0]!, /no standby leader yet/);
  const restore = { id: 'r1', member: 'b', target: { kind: 'time' as const, time: '2026-12-07 03:00:00.000+00' }, requested: 0, state: 'restoring' as const, detail: 'replaying archived WAL to the target: at 0/5000000', updated: 0 };
  assert.deepEqual(haGroupSummary({ standby_of: null, leader: null, members: [], restore }), ['restore r1 (time 2026-12-07 03:00:00.000+00, on b): restoring: replaying archived WAL to the target: at 0/5000000']);
  assert.match(haGroupSummary({ standby_of: null, leader: 'b', members: [], restore: { ...restore, state: 'failed', detail: 'pgbackrest restore failed' } })[0]!, /: FAILED: pgbackrest restore failed$/);
  assert.deepEqual(haGroupSummary({ standby_of: null, leader: 'b', members: [], restore: { ...restore, state: 'done' } }), []);
});
