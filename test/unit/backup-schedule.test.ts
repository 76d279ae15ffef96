/**
 * Scheduled backups: the cron settings (cron.ts, settings.ts), the pure
 * planner (schedule.ts), the scheduler on a virtual clock with the
 * coordinator and the leadership faked (scheduler.ts), the slot record in
 * memory and over a fake etcd (slot-claims.ts, etcd-slot-claims.ts), and
 * the status line's schedule part. The scheduler's turns are driven by
 * hand after each advance of the clock, so a day of schedules runs in
 * milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { backupSummary } from '../../src/cli/census.js';
import { VirtualClock } from '../../src/gossip/sim/virtual-clock.js';
import type { JobView } from '../../src/plugins/backup/coordinator.js';
import { cronProblem, parseCron, type CronSchedule } from '../../src/plugins/backup/cron.js';
import { EtcdSlotClaims } from '../../src/plugins/backup/etcd-slot-claims.js';
import type { BackupType } from '../../src/plugins/backup/info.js';
import { graceMs, periodMs, planSlots } from '../../src/plugins/backup/schedule.js';
import { BackupScheduler, newestCovering } from '../../src/plugins/backup/scheduler.js';
import { backupSettingsFrom, checkBackupSettings, type BackupSettings } from '../../src/plugins/backup/settings.js';
import { MemorySlotClaims, type SlotClaim, type SlotClaims } from '../../src/plugins/backup/slot-claims.js';
import { scheduleLines } from '../../src/plugins/backup/views.js';
import type { Compare, KeyValue, TxnOp, TxnResult } from '../../src/plugins/etcd/client.js';
import type { ClusterBackupView } from '../../src/plugins/http/cluster-view.js';
import type { Leadership, LeadershipState } from '../../src/supervisor/leadership.js';
import { decodeBackupReport, encodeBackupReport, MAX_BACKUP_RUMOR_BYTES, type BackupReport } from '../../src/supervisor/rumors/backup.js';
import type { ClusterSecrets } from '../../src/supervisor/secrets.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const cron = (e: string): CronSchedule => {
  const p = parseCron(e);
  if ('problem' in p) throw new Error(p.problem);
  return p;
};

// ---- settings -------------------------------------------------------------------

test('a bad schedule is refused naming the key and the reason; "" and good expressions pass', () => {
  const problem = (backup: Record<string, unknown>) => checkBackupSettings(backupSettingsFrom({ backup: { repo_path: '/srv/backup', ...backup } }), {} as ClusterSecrets);
  assert.equal(problem({ schedule_full: '0 1 * * 0', schedule_diff: '', schedule_incr: '0 * * * *' }), undefined);
  assert.equal(problem({ schedule_full: '@weekly', schedule_incr: '*/15 * * * 1-5' }), undefined);
  assert.match(problem({ schedule_full: '60 * * * *' })!, /"backup\.schedule_full": is not a valid cron expression \(Invalid value for minute: 60\): "60 \* \* \* \*"/);
  assert.match(problem({ schedule_incr: '0 * * *' })!, /"backup\.schedule_incr": must be a cron expression of 5 fields .* got 4 field\(s\)/);
  // A seconds field is refused: croner would read the first field as seconds.
  assert.match(problem({ schedule_diff: '0 0 * * * *' })!, /"backup\.schedule_diff": must be a cron expression of 5 fields/);
  assert.match(problem({ schedule_full: '0 0 31 2 *' })!, /"backup\.schedule_full": never fires: "0 0 31 2 \*"/);
  assert.match(problem({ schedule_full: 7 })!, /"backup\.schedule_full" must be a string/);
  assert.match(problem({ retention_full_type: 'age' })!, /"backup\.retention_full_type" must be one of count, time, got "age"/);
  // Leap days fire, every four years.
  assert.equal(cronProblem('0 0 29 2 *'), undefined);
  const s = backupSettingsFrom({ backup: { repo_path: '/r', schedule_full: '0 1 * * 0', retention_full_type: 'time' } });
  assert.deepEqual(s.schedules, { full: '0 1 * * 0', diff: '', incr: '' });
  assert.equal(s.retentionFullType, 'time');
  assert.deepEqual(backupSettingsFrom({}).schedules, { full: '', diff: '', incr: '' });
  assert.equal(backupSettingsFrom({}).retentionFullType, 'count');
});

// ---- the planner ------------------------------------------------------------------

const SUNDAY_1AM = Date.UTC(2026, 11, 6, 1, 0); // 2026-12-06 is a Sunday

test('slots due since the last look, in UTC; grace is the period, at most an hour', () => {
  const hourly = cron('0 * * * *');
  assert.equal(graceMs(hourly, SUNDAY_1AM), HOUR);
  assert.equal(graceMs(cron('*/15 * * * *'), SUNDAY_1AM), 15 * MIN);
  assert.equal(graceMs(cron('0 1 * * 0'), SUNDAY_1AM), HOUR);
  assert.equal(periodMs(cron('0 1 * * 0'), SUNDAY_1AM), 7 * 24 * HOUR);
  // Nothing due between two slots; the slot once its time has come; not again on the next look.
  assert.equal(planSlots({ schedules: { incr: hourly }, now: SUNDAY_1AM - 1000, from: { incr: SUNDAY_1AM - 11_000 }, running: null }).run, null);
  assert.deepEqual(planSlots({ schedules: { incr: hourly }, now: SUNDAY_1AM + 5000, from: { incr: SUNDAY_1AM - 5000 }, running: null }).run, { slot: { type: 'incr', at: SUNDAY_1AM }, covers: [] });
  assert.equal(planSlots({ schedules: { incr: hourly }, now: SUNDAY_1AM + 15_000, from: { incr: SUNDAY_1AM + 5000 }, running: null }).run, null);
  // A type not looked at before starts now: a schedule just set does not run a past slot.
  assert.equal(planSlots({ schedules: { incr: hourly }, now: SUNDAY_1AM + 5000, from: {}, running: null }).run, null);
});

test('coincident slots run once, as the largest type, covering the smaller ones', () => {
  const schedules = { full: cron('0 1 * * 0'), diff: cron('0 1 * * *'), incr: cron('0 * * * *') };
  const plan = planSlots({ schedules, now: SUNDAY_1AM + 3000, from: { full: SUNDAY_1AM - 7000, diff: SUNDAY_1AM - 7000, incr: SUNDAY_1AM - 7000 }, running: null });
  assert.deepEqual(plan.run, {
    slot: { type: 'full', at: SUNDAY_1AM },
    covers: [
      { type: 'diff', at: SUNDAY_1AM },
      { type: 'incr', at: SUNDAY_1AM },
    ],
  });
  assert.deepEqual(plan.skipped, []);
  // Monday 01:00: no full slot, the differential covers the incremental.
  const monday = SUNDAY_1AM + 24 * HOUR;
  assert.deepEqual(planSlots({ schedules, now: monday, from: { full: monday - 1, diff: monday - 1, incr: monday - 1 }, running: null }).run?.slot, { type: 'diff', at: monday });
});

test('a slot due while a backup runs is skipped, not queued', () => {
  const plan = planSlots({ schedules: { incr: cron('0 * * * *') }, now: SUNDAY_1AM + 1000, from: { incr: SUNDAY_1AM - 9000 }, running: { id: 'backup-1', type: 'full' } });
  assert.equal(plan.run, null);
  assert.deepEqual(plan.skipped, [{ slot: { type: 'incr', at: SUNDAY_1AM }, reason: 'backup job backup-1 (full) is running' }]);
});

test('after a leaderless gap: the newest slot within its grace runs, older ones are missed', () => {
  const hourly = cron('0 * * * *');
  // Last claimed 22:00; the leader died; the new one looks at 01:20.
  const plan = planSlots({ schedules: { incr: hourly }, now: SUNDAY_1AM + 20 * MIN, from: { incr: SUNDAY_1AM - 3 * HOUR }, running: null });
  assert.deepEqual(plan.run, { slot: { type: 'incr', at: SUNDAY_1AM }, covers: [] });
  assert.deepEqual(plan.missed, [{ type: 'incr', count: 2, first: SUNDAY_1AM - 2 * HOUR, last: SUNDAY_1AM - HOUR, more: false }]);
  // Every 15 minutes: the slot 20 minutes ago is past its grace (15 min); the one 5 minutes ago runs.
  const quarter = planSlots({ schedules: { incr: cron('*/15 * * * *') }, now: SUNDAY_1AM + 20 * MIN, from: { incr: SUNDAY_1AM - 1 }, running: null });
  assert.equal(quarter.run?.slot.at, SUNDAY_1AM + 15 * MIN);
  assert.deepEqual(quarter.missed, [{ type: 'incr', count: 1, first: SUNDAY_1AM, last: SUNDAY_1AM, more: false }]);
  // Weekly full at 01:00, looked at 02:30: past the hour of grace, missed.
  const weekly = planSlots({ schedules: { full: cron('0 1 * * 0') }, now: SUNDAY_1AM + 90 * MIN, from: { full: SUNDAY_1AM - 7 * 24 * HOUR }, running: null });
  assert.equal(weekly.run, null);
  assert.equal(weekly.missed[0]?.count, 1);
});

// ---- the scheduler, on a virtual clock ---------------------------------------------

class FakeLeadership implements Leadership {
  private s: LeadershipState = { serviceGroup: 'postgresql.default', role: 'replica', holdsLease: false, leaseInDoubt: false, writable: false, replication: null, timeline: 1, leader: null, since: 0, reason: 'following' };
  constructor(private readonly self: string) {}
  state(): LeadershipState {
    return this.s;
  }
  onChange(): () => void {
    return () => undefined;
  }
  close(): void {}
  lead(): void {
    this.s = { ...this.s, role: 'leader', holdsLease: true, writable: true, leader: this.self, reason: 'holds the lease' };
  }
  follow(leader: string | null): void {
    this.s = { ...this.s, role: 'replica', holdsLease: false, writable: false, leader, reason: 'following' };
  }
}

/** The coordinator's side: jobs that run until the test ends them. */
class FakeOps {
  started: Array<{ type: BackupType; at: number; id: string }> = [];
  jobs = new Map<string, JobView>();
  last: Partial<Record<BackupType, number>> = {};
  refuse: string | undefined;
  constructor(private readonly clock: VirtualClock) {}
  startBackup(type: BackupType): JobView {
    if (this.refuse) throw new Error(this.refuse);
    const id = `backup-${this.started.length + 1}`;
    this.started.push({ type, at: this.clock.wallNow(), id });
    const job: JobView = { id, kind: 'backup', type, member: 'm', state: 'running', started_at: new Date(this.clock.wallNow()).toISOString(), ended_at: null, took_ms: null, progress: { percent: null, bytes_total: null, bytes_done: null }, backup: null, verify: null, error: null };
    this.jobs.set(id, job);
    return job;
  }
  job(id: string): JobView | undefined {
    return this.jobs.get(id);
  }
  report(): BackupReport {
    const running = [...this.jobs.values()].find((j) => j.state === 'running');
    const job = running ? { id: running.id, kind: 'backup' as const, type: running.type, state: 'running' as const, percent: null, started_at: 0, ended_at: null, error: null } : null;
    return { enabled: true, repo_path: '/r', active: true, stanza: 'ok', stanza_ok_at: null, last_error: null, retry_at: null, archive: null, last_full: null, last_backup: null, job, at: 0 };
  }
  lastBackups(): Partial<Record<BackupType, number>> {
    return this.last;
  }
  /** Ends every running job. */
  finishAll(state: 'done' | 'failed' = 'done', error = 'pgbackrest failed'): void {
    for (const j of this.jobs.values()) {
      if (j.state !== 'running') continue;
      j.state = state;
      j.ended_at = new Date(this.clock.wallNow()).toISOString();
      if (state === 'failed') j.error = error;
      else this.last[j.type!] = this.clock.wallNow();
    }
  }
}

interface Member {
  id: string;
  leadership: FakeLeadership;
  ops: FakeOps;
  scheduler: BackupScheduler;
  logs: Array<{ msg: string; state?: string }>;
}

function member(id: string, clock: VirtualClock, claims: SlotClaims, schedules: Partial<Record<BackupType, string>>): Member {
  const leadership = new FakeLeadership(id);
  const ops = new FakeOps(clock);
  const logs: Member['logs'] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => logs.push(JSON.parse(line) as Member['logs'][number]) });
  const settings = { ...backupSettingsFrom({ backup: { repo_path: '/r' } }), schedules: { full: '', diff: '', incr: '', ...schedules } } as BackupSettings;
  const scheduler = new BackupScheduler({ memberId: id, leadership, settings: () => settings, ops, claims, clock, log });
  return { id, leadership, ops, scheduler, logs };
}

/** Runs the members' turns every 10 s of virtual time for `ms`. */
async function run(clock: VirtualClock, members: Member[], ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 10_000) {
    await clock.advance(10_000);
    for (const m of members) await m.scheduler.tick();
  }
}

/** Saturday 2026-12-05 23:59:00 UTC at virtual time 0. */
const START = Date.UTC(2026, 11, 5, 23, 59);

test('a day of hourly incrementals and a Sunday full: one backup per slot, the 01:00 incr covered by the full', async () => {
  const clock = new VirtualClock({ startWallMs: START });
  const claims = new MemorySlotClaims();
  const a = member('a', clock, claims, { full: '0 1 * * 0', incr: '0 * * * *' });
  a.leadership.lead();
  await a.scheduler.tick();
  for (let h = 0; h < 2; h++) {
    await run(clock, [a], HOUR);
    a.ops.finishAll();
  }
  await run(clock, [a], 20_000);
  const one = (await claims.recent()).filter((c) => c.at === SUNDAY_1AM);
  assert.deepEqual(
    one.map((c) => [c.type, c.state, c.covered_by?.type ?? null]).sort(),
    [
      ['full', 'done', null],
      ['incr', 'covered', 'full'],
    ],
  );
  for (let h = 2; h < 24; h++) {
    await run(clock, [a], HOUR);
    a.ops.finishAll();
  }
  assert.equal(a.ops.started.length, 24, 'one backup per hour');
  assert.deepEqual(
    a.ops.started.slice(0, 3).map((s) => [s.type, new Date(s.at).toISOString().slice(11, 16)]),
    [
      ['incr', '00:00'],
      ['full', '01:00'],
      ['incr', '02:00'],
    ],
  );
  const record = await claims.recent();
  // Old claims are pruned: the last 10 per type.
  assert.equal(record.filter((c) => c.type === 'incr').length, 10);
  const report = a.scheduler.report()!;
  assert.deepEqual(
    report.types.map((t) => [t.type, new Date(t.next_at!).toISOString(), t.period_ms]),
    [
      ['full', '2026-12-13T01:00:00.000Z', 7 * 24 * HOUR],
      ['incr', '2026-12-07T00:00:00.000Z', HOUR],
    ],
  );
});

test('exactly once across members: the member that loses the claim takes no backup', async () => {
  const clock = new VirtualClock({ startWallMs: START });
  const claims = new MemorySlotClaims();
  // Both believe they lead (an old leader that has not noticed yet, and its successor).
  const a = member('a', clock, claims, { incr: '0 * * * *' });
  const b = member('b', clock, claims, { incr: '0 * * * *' });
  a.leadership.lead();
  b.leadership.lead();
  await a.scheduler.tick();
  await b.scheduler.tick();
  await run(clock, [b, a], 2 * MIN);
  assert.equal(a.ops.started.length + b.ops.started.length, 1);
  assert.equal(b.ops.started.length, 1, 'b looked first each turn');
  assert.ok(a.logs.some((l) => /claimed by another member: not run here/.test(l.msg)));
});

test('a failover: the interrupted backup is reported, a slot missed within its grace is run by the new leader, older ones are missed', async () => {
  const clock = new VirtualClock({ startWallMs: START });
  const claims = new MemorySlotClaims();
  const a = member('a', clock, claims, { incr: '0 * * * *' });
  const b = member('b', clock, claims, { incr: '0 * * * *' });
  a.leadership.lead();
  await a.scheduler.tick();
  await run(clock, [a], 2 * MIN); // 00:00 slot claimed and running on a
  assert.equal(a.ops.started.length, 1);
  // a dies with its backup running; nobody leads until 02:20.
  await clock.advance(2 * HOUR + 19 * MIN);
  b.leadership.lead();
  await b.scheduler.tick();
  assert.equal(b.ops.started.length, 1, 'the 02:00 slot, 20 min old, is run');
  assert.equal(new Date(b.ops.started[0]!.at).toISOString(), '2026-12-06T02:20:00.000Z');
  const warned = b.logs.map((l) => l.msg);
  assert.ok(warned.some((m) => /scheduled incr backup of 2026-12-06T00:00:00.000Z \(job backup-1\) on member a was interrupted/.test(m)), warned.join('\n'));
  assert.ok(warned.some((m) => /the incr slot of 2026-12-06T01:00:00.000Z was missed/.test(m)), warned.join('\n'));
  const record = await claims.recent();
  assert.equal(record.find((c) => c.at === Date.UTC(2026, 11, 6, 0))?.state, 'interrupted');
  assert.equal(record.find((c) => c.at === Date.UTC(2026, 11, 6, 2))?.member, 'b');
  assert.match(b.scheduler.report()!.last_problem!.message, /missed/);
  // The next slot runs as usual, and its success clears the problem.
  b.ops.finishAll();
  await run(clock, [b], 41 * MIN);
  assert.equal(b.ops.started.length, 2);
  b.ops.finishAll();
  await run(clock, [b], 20_000);
  assert.equal(b.scheduler.report()!.last_problem, null);
});

test('a failed scheduled backup is reported and the next slot runs; a slot due while it runs is skipped', async () => {
  const clock = new VirtualClock({ startWallMs: START });
  const a = member('a', clock, new MemorySlotClaims(), { incr: '*/30 * * * *' });
  a.leadership.lead();
  await a.scheduler.tick();
  await run(clock, [a], 2 * MIN);
  assert.equal(a.ops.started.length, 1);
  // Still running at 00:30: that slot is skipped.
  await run(clock, [a], 30 * MIN);
  assert.equal(a.ops.started.length, 1);
  assert.ok(a.logs.some((l) => l.state === 'skipped' && /backup job backup-1 \(incr\) is running/.test(l.msg)));
  a.ops.finishAll('failed', 'repository 1 (/r) is full');
  await run(clock, [a], 20_000);
  assert.match(a.scheduler.report()!.last_problem!.message, /the scheduled incr backup of 2026-12-06T00:00:00.000Z \(job backup-1\) failed: repository 1 \(\/r\) is full; the next slot runs as planned/);
  await run(clock, [a], 30 * MIN);
  assert.equal(a.ops.started.length, 2);
});

test('a follower, or a leader with nothing scheduled, claims nothing', async () => {
  const clock = new VirtualClock({ startWallMs: START });
  const claims = new MemorySlotClaims();
  const f = member('f', clock, claims, { incr: '* * * * *' });
  const idle = member('i', clock, claims, {});
  f.leadership.follow('x');
  idle.leadership.lead();
  await run(clock, [f, idle], 5 * MIN);
  assert.deepEqual(await claims.recent(), []);
  assert.equal(f.ops.started.length + idle.ops.started.length, 0);
  assert.equal(f.scheduler.report(), null);
  assert.equal(idle.scheduler.report(), null);
});

// ---- the slot record in etcd -------------------------------------------------------

/** Enough of etcd's transactions for the slot record: version and value compares, puts, gets, deletes. */
class FakeEtcd {
  kv = new Map<string, KeyValue>();
  rev = 1;
  lose = 0;
  async txn(t: { compare: Compare[]; success: TxnOp[]; failure?: TxnOp[] }): Promise<TxnResult> {
    const ok = t.compare.every((c) => {
      const kv = this.kv.get(c.key);
      if (c.target === 'version') return c.result === 'equal' ? (kv?.version ?? 0) === c.version : (kv?.version ?? 0) > c.version;
      return false;
    });
    for (const op of ok ? t.success : (t.failure ?? [])) {
      if ('put' in op) {
        const was = this.kv.get(op.put.key);
        this.kv.set(op.put.key, { key: op.put.key, value: op.put.value, createRevision: was?.createRevision ?? this.rev, modRevision: this.rev, version: (was?.version ?? 0) + 1, lease: '0' });
      }
    }
    this.rev++;
    if (this.lose > 0) {
      this.lose--;
      throw new Error('etcd: no answer');
    }
    return { succeeded: ok, revision: this.rev, responses: [] };
  }
  async get(key: string): Promise<KeyValue | undefined> {
    return this.kv.get(key);
  }
  async range(key: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    return { kvs: [...this.kv.values()].filter((kv) => kv.key.startsWith(key)), revision: this.rev };
  }
  async delete(key: string): Promise<{ deleted: number; revision: number }> {
    return { deleted: this.kv.delete(key) ? 1 : 0, revision: this.rev };
  }
}

test('etcd slot record: create-if-absent, a lost answer read back by its token, updates, pruning', async () => {
  const etcd = new FakeEtcd();
  const claims = new EtcdSlotClaims(etcd, '/hasup/c1/backup/default/slots');
  const claim = (member: string, at: number, type: BackupType = 'incr'): SlotClaim => ({ type, at, member, token: `${member}-tok`, state: 'claimed', claimed_at: at });
  assert.equal(await claims.claim([claim('a', SUNDAY_1AM, 'full'), { ...claim('a', SUNDAY_1AM), state: 'covered' }]), true);
  assert.ok(etcd.kv.has('/hasup/c1/backup/default/slots/full/2026-12-06T01:00:00.000Z'));
  assert.equal(await claims.claim([claim('b', SUNDAY_1AM, 'full')]), false, 'claimed already');
  assert.equal(await claims.claim([claim('b', SUNDAY_1AM)]), false, 'covered already');
  // The answer is lost: the caller does not know; asking again with its token says it holds it.
  etcd.lose = 1;
  await assert.rejects(claims.claim([claim('a', SUNDAY_1AM + HOUR)]));
  assert.equal(await claims.claim([claim('a', SUNDAY_1AM + HOUR)]), true);
  await claims.update({ ...claim('a', SUNDAY_1AM + HOUR), state: 'done', label: '20261206-020001F_20261206-020105I' });
  assert.equal((await claims.recent()).find((c) => c.at === SUNDAY_1AM + HOUR)?.label, '20261206-020001F_20261206-020105I');
  for (let h = 2; h < 14; h++) await claims.claim([claim('a', SUNDAY_1AM + h * HOUR)]);
  assert.equal(await claims.prune('incr', 10), 4);
  const left = (await claims.recent()).filter((c) => c.type === 'incr');
  assert.equal(left.length, 10);
  assert.equal(left[0]!.at, SUNDAY_1AM + 4 * HOUR);
  // An update of a pruned claim does not bring it back.
  await claims.update({ ...claim('a', SUNDAY_1AM), state: 'done' });
  assert.equal(etcd.kv.has('/hasup/c1/backup/default/slots/incr/2026-12-06T01:00:00.000Z'), false);
});

// ---- the status ----------------------------------------------------------------------

test('the backups line: the next slot per type, and a WARNING when backups fall two periods behind', () => {
  const now = Date.UTC(2026, 11, 6, 10, 3);
  const schedule = {
    types: [
      { type: 'full' as const, cron: '0 1 * * 0', next_at: Date.UTC(2026, 11, 13, 1), period_ms: 7 * 24 * HOUR, last_ok_at: Date.UTC(2026, 11, 6, 1, 4) },
      { type: 'incr' as const, cron: '0 * * * *', next_at: Date.UTC(2026, 11, 6, 11), period_ms: HOUR, last_ok_at: Date.UTC(2026, 11, 6, 7, 2) },
    ],
    last_problem: null,
  };
  const view: ClusterBackupView = {
    enabled: true,
    repo_path: '/srv/backup',
    active: true,
    stanza: 'ok',
    stanza_ok_at: null,
    last_error: null,
    retry_at: null,
    archive: null,
    last_full: { label: '20261206-010001F', type: 'full', stopped_at: Date.UTC(2026, 11, 6, 1, 4) },
    last_backup: { label: '20261206-010001F', type: 'full', stopped_at: Date.UTC(2026, 11, 6, 1, 4) },
    job: null,
    schedule,
    at: now,
    member: 'm1',
    from_leader: true,
  };
  assert.equal(
    backupSummary(view, now),
    'backups: repository /srv/backup, stanza ok, last full 2026-12-06T01:04Z (9 h ago), next full 2026-12-13T01:00Z (in 6.6 d), next incr 2026-12-06T11:00Z (in 57 min), ' +
      'WARNING: the newest incr backup (or larger) ended 2026-12-06T07:02Z (3 h ago), more than two incr periods (1 h each)',
  );
  const fresh = { ...schedule, types: [schedule.types[0]!, { ...schedule.types[1]!, last_ok_at: Date.UTC(2026, 11, 6, 9, 1) }] };
  assert.deepEqual(
    scheduleLines(fresh, now).map((l) => l.stale),
    [null, null],
  );
  const problem = { ...fresh, last_problem: { at: Date.UTC(2026, 11, 6, 2, 20), message: 'the incr slot of 2026-12-06T01:00:00.000Z was missed: no member led then' } };
  assert.match(backupSummary({ ...view, schedule: problem }, now), /, WARNING: the incr slot of 2026-12-06T01:00:00.000Z was missed: no member led then \(2026-12-06T02:20Z\)$/);
  assert.equal(newestCovering('incr', { full: 5, incr: 3 }), 5);
  assert.equal(newestCovering('full', { diff: 9 }), null);
  // The schedule rides in the backup rumor, within its size.
  const bytes = encodeBackupReport({ ...view, last_error: { at: now, message: 'x'.repeat(400) }, schedule: { ...schedule, last_problem: { at: now, message: 'y'.repeat(400) } } });
  assert.ok(bytes.length <= MAX_BACKUP_RUMOR_BYTES, `${bytes.length} bytes`);
  assert.deepEqual(decodeBackupReport(encodeBackupReport({ ...view, schedule }))?.schedule, schedule);
  assert.equal(decodeBackupReport(encodeBackupReport({ ...view, schedule: null }))?.schedule ?? null, null);
});
