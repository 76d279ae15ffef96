/**
 * The warm spare kept current by restores ([ha] standby_of_repo):
 *  - the HA core in virtual time (test/support/ha-fakes.ts): its first
 *    member restores the copy as a standby, its leader never promotes and
 *    has no upstream (it replays the copy's archive), the others follow it,
 *    a re-base (db.busy) keeps the key and is left alone, clearing the
 *    setting promotes it;
 *  - the spare keeper over fakes behind its ports (clock, slot record,
 *    repository copy, database, Elasticsearch snapshots): once per slot
 *    across two members, the newest backup, its set's snapshot, nothing
 *    restored when the backup did not change, a failure reported, the
 *    warning when the newest restore is older than its schedule;
 *  - the settings and the copy's pgBackRest configuration: read only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_HA_SETTINGS, checkHaSettings, haSettingsFrom, type HaView } from '../../src/ha/index.js';
import { clusterCell, spareSummary } from '../../src/cli/census.js';
import { checkSpareFlags } from '../../src/cli/cluster.js';
import { renderNodeConfig } from '../../src/cli/node-config-template.js';
import { parseCron } from '../../src/plugins/backup/cron.js';
import { MemorySlotClaims } from '../../src/plugins/backup/slot-claims.js';
import { checkSpareSettings, READ_ONLY_COMMANDS, renderSourceConf, SourceRepository } from '../../src/plugins/backup/source-repo.js';
import { lateness, MemorySpareRecord, SpareKeeper, type SpareDatabase, type SpareRecordState } from '../../src/node/spare.js';
import { segmentOf } from '../../src/plugins/postgresql/ha-node.js';
import { renderHaConf } from '../../src/plugins/postgresql/standby-config.js';
import { parseNodeConfig } from '../../src/supervisor/config-file.js';
import { createLogger } from '../../src/supervisor/log.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { backupInfo } from '../support/backup-fakes.js';
import { FakeSearch, snapshot } from '../support/fake-search-snapshots.js';
import { FakeCluster } from '../support/ha-fakes.js';
import type { BackupInfo } from '../../src/plugins/backup/info.js';
import { buildCensus } from '../../src/plugins/http/cluster-view.js';
import { haReasons } from '../../src/plugins/http/ha-status.js';
import { member, NO_LEADERSHIP, roleRumorOf, rumor } from '../support/census-fixtures.js';

const REPO = '/srv/primary-repo-copy';
const callsOf = (c: FakeCluster, id: string, call: string) => c.member(id).db.calls.filter((x) => x.call === call);

// ---- the HA core ------------------------------------------------------------------

test('bootstrap of a warm spare: the first member restores the repository copy as a standby; the others wait for its leader and copy it', async () => {
  const c = new FakeCluster(['A', 'B'], { standbyOfRepo: REPO });
  const abortA = new AbortController();
  const abortB = new AbortController();
  let planA: unknown;
  let planB: unknown;
  void c.member('A').controller.bootstrap(abortA.signal).then((p) => (planA = p), () => undefined);
  assert.ok(await c.until(() => planA !== undefined, 5000), 'A has a plan');
  assert.deepEqual(planA, { kind: 'standby-restore', repo: REPO });
  void c.member('B').controller.bootstrap(abortB.signal).then((p) => (planB = p), () => undefined);
  await c.run(3000);
  assert.equal(planB, undefined, 'B neither restores nor creates a database: it waits for a leader to copy');
  abortA.abort();
  abortB.abort();
  await c.close();
});

test('a warm spare: its leader holds the key, never promotes and replays the copy (no upstream); the others follow it; a re-base keeps the key; cleared, it promotes', async () => {
  const c = new FakeCluster(['A', 'B', 'C'], { standbyOfRepo: REPO, restoreSchedule: '0 * * * *' });
  c.start('A');
  c.member('A').db.wal = 5000;
  assert.ok(
    await c.until(() => {
      const l = c.store.leader();
      return l !== null && c.member(l).db.running && c.member(l).db.upstream === null && ['A', 'B', 'C'].filter((x) => x !== l).every((x) => c.member(x).db.upstream === l);
    }, 20_000),
    'a standby leader replaying the copy, the others following it',
  );
  const sl = c.store.leader()!;
  assert.equal(callsOf(c, sl, 'promote').length, 0, 'never promoted');
  assert.deepEqual(c.world.primaries(), [], 'nobody takes writes');
  assert.equal(c.member(sl).fence.armed(), false);
  const view = c.member(sl).controller.view();
  assert.equal(view.members.find((m) => m.member === sl)?.role, 'standby_leader');
  assert.equal(view.standby_of_repo, REPO);
  assert.equal(view.restore_schedule, '0 * * * *');

  // A re-base: the database is stopped on purpose for longer than the lease's ttl; the leader keeps its key.
  const db = c.member(sl).db;
  db.busy = 're-basing on backup 20261207-003702F of the repository copy';
  db.running = false;
  const startsBefore = callsOf(c, sl, 'replayArchive').length;
  await c.run(10_000);
  assert.equal(c.store.leader(), sl, 'the leader keeps its key through the re-base');
  assert.equal(callsOf(c, sl, 'replayArchive').length, startsBefore, 'and nobody starts its database meanwhile');
  // The re-base started it again, following someone (as a restored data directory's ha.conf may say): set right.
  db.busy = undefined;
  db.running = true;
  db.upstream = 'B';
  assert.ok(await c.until(() => db.upstream === null && callsOf(c, sl, 'replayArchive').length > startsBefore, 5000), 'after it, the loop makes it replay the copy again');
  assert.equal(c.store.leader(), sl);

  c.settings = { ...c.settings, standbyOfRepo: null, restoreSchedule: null };
  assert.ok(await c.until(() => c.leader() === sl, 10_000), 'standby_of_repo cleared: the standby leader promotes');
  assert.equal(callsOf(c, sl, 'promote').length, 1);
  await c.close();
});

// ---- the spare keeper ----------------------------------------------------------------

class FakeSpareDb implements SpareDatabase {
  base: { label: string; stopped_at: number; restored_at: number } | null = null;
  rebases: string[] = [];
  failWith: string | null = null;
  constructor(private readonly now: () => number) {}
  async spareBase() {
    return this.base;
  }
  async rebaseStandby(label: string, _signal: AbortSignal, progress: (d: string) => void): Promise<void> {
    progress('stopping PostgreSQL');
    if (this.failWith) throw new Error(this.failWith);
    this.rebases.push(label);
    this.base = { label, stopped_at: 0, restored_at: this.now() };
  }
  async replayInfo() {
    return { lsn: '0/5000148', segment: '000000010000000000000005', lastXactAt: this.now() - 30_000 };
  }
}

class Wall {
  t = Date.UTC(2026, 11, 7, 9, 59, 0);
  readonly clock = { now: () => this.t, wallNow: () => this.t, setTimeout: () => ({ cancel() {} }) };
}

function keeper(o: { wall: Wall; claims: MemorySlotClaims; record: MemorySpareRecord; db: FakeSpareDb; backups: BackupInfo[]; member: string; leading: () => boolean; search?: FakeSearch }) {
  return new SpareKeeper({
    memberId: o.member,
    settings: () => ({ repo: REPO, schedule: '0 * * * *' }),
    leading: o.leading,
    source: () => ({ newestBackup: async () => [...o.backups].sort((a, b) => a.stoppedAt.getTime() - b.stoppedAt.getTime()).pop() }),
    db: o.db,
    search: () => o.search,
    claims: o.claims,
    record: o.record,
    clock: o.wall.clock,
    log: createLogger({ level: 'silent' }),
  });
}

test('spare keeper: each slot runs once (two members that both think they lead), on the newest backup, with its set\'s snapshot; an unchanged backup restores nothing', async () => {
  const wall = new Wall();
  const claims = new MemorySlotClaims();
  const record = new MemorySpareRecord();
  const backups = [backupInfo('20261207-080000F', 'full', Date.UTC(2026, 11, 7, 8, 0, 10))];
  const search = new FakeSearch();
  search.indices.add('orders');
  search.snapshots.push(snapshot('hasup-20261207-080020-abcd', 'SUCCESS', '2026-12-07T08:00:20Z', '20261207-080000F', ['orders', 'hasup-logs-2026.12.07']));
  const dbA = new FakeSpareDb(() => wall.t);
  const dbB = new FakeSpareDb(() => wall.t);
  const a = keeper({ wall, claims, record, db: dbA, backups, member: 'A', leading: () => true, search });
  const b = keeper({ wall, claims, record, db: dbB, backups, member: 'B', leading: () => true, search });
  await a.tick();
  await b.tick();
  assert.deepEqual(dbA.rebases, [], 'nothing due before the first slot');
  wall.t = Date.UTC(2026, 11, 7, 10, 0, 5);
  await a.tick();
  await b.tick();
  await a.settled();
  await b.settled();
  assert.deepEqual([...dbA.rebases, ...dbB.rebases], ['20261207-080000F'], 'the 10:00 slot ran once, on the newest backup');
  assert.deepEqual(search.restored.map((r) => [r.name, r.req.mode, r.req.indices]), [['hasup-20261207-080020-abcd', 'replace', ['orders']]], "the set's snapshot, hasup's own logs left alone");
  const claimed = await claims.recent();
  assert.equal(claimed.length, 1);
  assert.equal(claimed[0]!.state, 'done');
  assert.equal(claimed[0]!.label, '20261207-080000F');
  const v = a.view()!;
  assert.equal(v.last_restore?.label, '20261207-080000F');
  assert.equal(v.last_restore?.snapshot?.restored, true);
  assert.equal(v.replay?.segment, '000000010000000000000005');
  assert.equal(v.warning, null);
  assert.equal(v.next_slot, Date.UTC(2026, 11, 7, 11, 0, 0));

  // 11:00: the same backup is still the newest: nothing is restored.
  const runner = dbA.rebases.length ? { k: a, db: dbA } : { k: b, db: dbB };
  wall.t = Date.UTC(2026, 11, 7, 11, 0, 5);
  await runner.k.tick();
  await runner.k.settled();
  assert.equal(runner.db.rebases.length, 1, 'an unchanged newest backup is not restored again');
  assert.equal(runner.k.view()!.last_restore?.unchanged, true);

  // 12:00: a new backup arrived with the next shipment: re-based on it.
  backups.push(backupInfo('20261207-113000F', 'full', Date.UTC(2026, 11, 7, 11, 30, 10)));
  wall.t = Date.UTC(2026, 11, 7, 12, 0, 5);
  await runner.k.tick();
  await runner.k.settled();
  assert.deepEqual(runner.db.rebases, ['20261207-080000F', '20261207-113000F']);
  // A follower reads the record: it shows the same.
  const f = keeper({ wall, claims, record, db: new FakeSpareDb(() => wall.t), backups, member: 'C', leading: () => false });
  await f.tick();
  assert.equal(f.view()!.last_restore?.label, '20261207-113000F');
  assert.equal((await claims.recent()).filter((c) => c.state === 'done').length, 3);
});

test('spare keeper: a failed slot is reported and the next one runs; a spare whose newest restore is older than its schedule is warned about', async () => {
  const wall = new Wall();
  const claims = new MemorySlotClaims();
  const record = new MemorySpareRecord();
  const db = new FakeSpareDb(() => wall.t);
  const backups = [backupInfo('20261207-080000F', 'full', Date.UTC(2026, 11, 7, 8, 0, 10))];
  const k = keeper({ wall, claims, record, db, backups, member: 'A', leading: () => true });
  await k.tick();
  db.failWith = 'pgbackrest restore --delta --type=standby failed with exit code 38: ERROR: [038]: unable to restore while PostgreSQL is running';
  wall.t = Date.UTC(2026, 11, 7, 10, 0, 5);
  await k.tick();
  await k.settled();
  let v = k.view()!;
  assert.equal(v.last_restore, null);
  assert.match(v.last_failure?.error ?? '', /unable to restore/);
  assert.match(v.warning ?? '', /no restore has succeeded yet/);
  assert.equal((await claims.recent())[0]!.state, 'failed');
  db.failWith = null;
  wall.t = Date.UTC(2026, 11, 7, 11, 0, 5);
  await k.tick();
  await k.settled();
  v = k.view()!;
  assert.equal(v.last_restore?.label, '20261207-080000F');
  assert.equal(v.last_failure, null);
  assert.equal(v.warning, null);
  // Three hours with no leader to run the slots: the newest restore is older than its schedule.
  const state: SpareRecordState = { ...v, updated: wall.t };
  const hourly = parseCron('0 * * * *');
  assert.ok(!('problem' in hourly));
  assert.equal(lateness(state, hourly, Date.UTC(2026, 11, 7, 12, 30, 0)), null, 'within a period and its grace');
  assert.match(lateness(state, hourly, Date.UTC(2026, 11, 7, 14, 0, 0)) ?? '', /older than its schedule \(0 \* \* \* \*\)/);
  const line = spareSummary({ standby_of_repo: REPO, leader: null, members: [], spare: { ...k.view()!, warning: lateness(state, hourly, Date.UTC(2026, 11, 7, 14, 0, 0)) } } as Partial<HaView>, Date.UTC(2026, 11, 7, 14, 0, 0))[0]!;
  assert.match(line, /^standby cluster \(restore mode\): a warm spare of the repository copy \/srv\/primary-repo-copy/);
  assert.match(line, /last restored backup 20261207-080000F/);
  assert.match(line, /replayed WAL up to 000000010000000000000005 \(0\/5000148\)/);
  assert.match(line, /WARNING: the newest restore/);
});

test('spare keeper: a follower runs nothing; a spare without a schedule only records where replay is', async () => {
  const wall = new Wall();
  const claims = new MemorySlotClaims();
  const db = new FakeSpareDb(() => wall.t);
  const follower = keeper({ wall, claims, record: new MemorySpareRecord(), db, backups: [backupInfo('20261207-080000F', 'full', Date.UTC(2026, 11, 7, 8, 0, 10))], member: 'B', leading: () => false });
  await follower.tick();
  wall.t = Date.UTC(2026, 11, 7, 12, 0, 5);
  await follower.tick();
  assert.deepEqual(db.rebases, []);
  assert.deepEqual(await claims.recent(), []);
});

// ---- settings, the copy's configuration -------------------------------------------------

test('settings: standby_of_repo is an absolute path, excludes standby_of, needs no schedule; a schedule needs it; the own repository must not be the copy', () => {
  const s = haSettingsFrom({ ha: { standby_of_repo: `${REPO}/`, restore_schedule: '30 2 * * *' } });
  assert.equal(s.standbyOfRepo, REPO);
  assert.equal(s.restoreSchedule, '30 2 * * *');
  assert.equal(checkHaSettings(s), undefined);
  assert.equal(DEFAULT_HA_SETTINGS.standbyOfRepo, null);
  assert.match(checkHaSettings(haSettingsFrom({ ha: { standby_of_repo: 'relative/path' } })) ?? '', /standby_of_repo.*absolute path/);
  assert.match(checkHaSettings(haSettingsFrom({ ha: { standby_of_repo: REPO, standby_of: '10.0.0.1:5432' } })) ?? '', /exclude each other/);
  assert.match(checkHaSettings(haSettingsFrom({ ha: { restore_schedule: '0 * * * *' } })) ?? '', /restore_schedule needs ha.standby_of_repo/);
  assert.match(checkSpareSettings({ ha: { standby_of_repo: REPO, restore_schedule: '61 * * * *' } }) ?? '', /"ha.restore_schedule": is not a valid cron expression/);
  assert.match(checkSpareSettings({ ha: { standby_of_repo: REPO }, backup: { repo_path: REPO } }) ?? '', /backup.repo_path .* must not be the warm spare's source repository/);
  assert.match(checkSpareSettings({ ha: { standby_of_repo: REPO }, backup: { repo_path: '/srv/own', repo2_path: `${REPO}/sub` } }) ?? '', /backup.repo2_path/);
  assert.match(checkSpareSettings({ ha: { standby_of_repo: `${REPO}/inner` }, backup: { repo_path: REPO } }) ?? '', /around it/);
  assert.equal(checkSpareSettings({ ha: { standby_of_repo: REPO }, backup: { repo_path: '/srv/primary-repo-copy2' } }), undefined, 'a sibling path is fine');
});

test("the copy's pgBackRest configuration names the repository and this member's own spool and lock, nothing that archives; only read-only commands run", async () => {
  const place = { repo: REPO, dir: '/var/lib/hasup/svc/postgresql/pgbackrest/source', logs: '/var/lib/hasup/svc/postgresql/logs', pgData: '/var/lib/hasup/svc/postgresql/data', pgPort: 5432, pgSocket: '/var/lib/hasup/svc/postgresql/run', pgUser: 'postgres', bin: '/usr/bin/pgbackrest', cipherPass: 'not-in-the-conf' };
  const conf = renderSourceConf(place, true);
  assert.match(conf, /^repo1-path=\/srv\/primary-repo-copy$/m);
  assert.match(conf, /^repo1-cipher-type=aes-256-cbc$/m);
  assert.match(conf, /^spool-path=\/var\/lib\/hasup\/svc\/postgresql\/pgbackrest\/source\/spool$/m);
  assert.match(conf, /^lock-path=\/var\/lib\/hasup\/svc\/postgresql\/pgbackrest\/source\/lock$/m);
  assert.doesNotMatch(conf, /archive-push|archive-async|retention|not-in-the-conf/);
  assert.doesNotMatch(renderSourceConf(place, false), /cipher/);
  assert.deepEqual([...READ_ONLY_COMMANDS].sort(), ['archive-get', 'info', 'restore']);
  const src = new SourceRepository(place);
  assert.match(src.restoreCommand(), /^\/usr\/bin\/pgbackrest --config=\S+\/source\/pgbackrest.conf --config-include-path=\S+\/source\/conf.d --stanza=hasup archive-get %f "%p"$/);
  // A repository that is not there is refused before pgBackRest runs.
  await assert.rejects(new SourceRepository({ ...place, repo: '/nonexistent/repo' }).info(), /the repository \/nonexistent\/repo does not exist/);
  // ha.conf: the copy's restore_command, and no primary_conninfo.
  const ctx = { memberId: 'a1', cfg: {}, paths: { run: '/run', config: '/cfg', data: '/data', root: '/root', logs: '/logs' } } as unknown as DriverContext;
  const ha = renderHaConf(ctx, { upstream: null, syncStandbys: null, restoreCommand: src.restoreCommand() });
  assert.match(ha, /^primary_conninfo = ''$/m);
  assert.match(ha, /^restore_command = '\/usr\/bin\/pgbackrest --config=\S+ --config-include-path=\S+ --stanza=hasup archive-get %f "%p"'$/m);
  assert.equal(segmentOf(3, '1/A3000148'), '0000000300000001000000A3');
});

test('cluster create --standby-of-repo: refused flags, and the hasup.toml it writes', () => {
  assert.throws(() => checkSpareFlags({ restoreSchedule: '0 * * * *' }), /--restore-schedule needs --standby-of-repo/);
  assert.throws(() => checkSpareFlags({ standbyOf: '10.0.0.1:5432', standbyOfRepo: '/tmp' }), /exclude each other/);
  assert.throws(() => checkSpareFlags({ standbyOfRepo: '/nonexistent/copy' }), /does not exist/);
  assert.throws(() => checkSpareFlags({ standbyOfRepo: '/tmp' }), /holds no pgBackRest stanza "hasup"/);
  const toml = renderNodeConfig({ clusterName: 'spare', advertise: '10.1.0.11', peers: [], stateDir: '/var/lib/hasup', secrets: '/var/lib/hasup/secrets.json', etcdVoters: 3, services: ['postgresql'], standbyOfRepo: REPO, restoreSchedule: '30 2 * * *', writtenBy: 'create' });
  assert.match(toml, /^standby_of_repo = "\/srv\/primary-repo-copy"$/m);
  assert.match(toml, /^restore_schedule = "30 2 \* \* \*"$/m);
  parseNodeConfig(toml, '(test)');
});

test('HA status on a spare: its standby leader replaying the copy is no "not streaming" reason; a late spare is a warning', () => {
  const A = 'aaaaaaaaaaaaaaaa';
  const B = 'bbbbbbbbbbbbbbbb';
  const running = { state: 'running', pid: 10, health: 'ok', since: 0, config_version: 0 };
  const rumors = [rumor(A, 'postgresql', running), rumor(B, 'postgresql', running), roleRumorOf(A, { role: 'replica', replication_state: 'in archive recovery' }), roleRumorOf(B, { role: 'replica', replication_state: 'streaming', lag_bytes: 0 })];
  const census = buildCensus({ memberId: B, members: [member(A, '10.0.0.11', 'alive'), member(B, '10.0.0.12', 'alive')], rumors: (kind) => rumors.filter((r) => r.kind === kind), localServices: [], leadership: NO_LEADERSHIP });
  const ha = { paused: false, synchronous_mode: false, sync_members: [], leader: A, settings: { ttl: 3, loop_wait: 1, retry_timeout: 1, maximum_lag_on_failover: 1048576 } };
  const codes = (x: object) => haReasons({ census, ha: { ...ha, ...x }, etcd: null, spool: null, now: 0 } as never).map((r) => `${r.code}:${r.member ?? '-'}`);
  assert.deepEqual(codes({}), [`pg_not_streaming:${A}`], 'in a primary cluster a replica in archive recovery is a reason');
  assert.deepEqual(codes({ standby_of_repo: REPO, spare: { warning: null } }), [], "on a spare, the standby leader replays the copy: no reason");
  const late = haReasons({ census, ha: { ...ha, standby_of_repo: REPO, spare: { warning: 'the newest restore (backup X, 3.0 h ago) is older than its schedule (0 * * * *)' } }, etcd: null, spool: null, now: 0 } as never);
  assert.deepEqual(late.map((r) => [r.code, r.severity]), [['spare_late', 'warning']]);
  assert.match(late[0]!.text, /^warm spare: the newest restore .* is older than its schedule/);
});

test("hasup status's CLUSTER cell on a spare says standby cluster (restore mode)", () => {
  const A = 'aaaaaaaaaaaaaaaa';
  const rumors = [rumor(A, 'postgresql', { state: 'running', pid: 10, health: 'ok', since: 0, config_version: 0 }), roleRumorOf(A, { role: 'replica', replication_state: 'in archive recovery' })];
  const view = { member_id: 'bbbbbbbbbbbbbbbb', service_groups: buildCensus({ memberId: 'bbbbbbbbbbbbbbbb', members: [member(A, '10.0.0.11', 'alive')], rumors: (kind) => rumors.filter((r) => r.kind === kind), localServices: [], leadership: NO_LEADERSHIP }).service_groups };
  assert.doesNotMatch(clusterCell(view as never, 'postgresql.default'), /standby cluster/);
  assert.match(clusterCell({ ...view, spare: { repo: REPO } } as never, 'postgresql.default'), /^standby cluster \(restore mode\); /);
});
