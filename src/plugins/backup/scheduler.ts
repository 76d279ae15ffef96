import { randomBytes } from 'node:crypto';
import type { Clock, Timer } from '../../gossip/index.js';
import type { Leadership } from '../../supervisor/leadership.js';
import type { Logger } from '../../supervisor/log.js';
import type { ScheduleReport } from '../../supervisor/rumors/backup.js';
import type { BackupOperations, JobView } from './coordinator.js';
import { parseCron, type CronSchedule } from './cron.js';
import type { BackupType } from './info.js';
import { BACKUP_TYPES_BY_SIZE, iso, nextSlots, periodMs, planSlots, type Plan, type Schedules, type Slot } from './schedule.js';
import { backupEnabled, type BackupSettings } from './settings.js';
import type { SlotClaim, SlotClaims } from './slot-claims.js';

/**
 * Scheduled backups (backup.schedule_full, _diff, _incr): one per member,
 * acting only while the member is the writable PostgreSQL leader. Every
 * turn it asks the pure planner (schedule.ts) which slots fell due since it
 * last looked, claims the one to run in the cluster's slot record
 * (slot-claims.ts: create-if-absent, so the slot runs once whoever leads),
 * and starts it as an ordinary backup job of the coordinator. A member
 * that loses the claim does nothing.
 *
 * When it becomes the leader it reads the record first: a slot its
 * predecessor claimed and never finished was interrupted (said once, in
 * the log and the report), and its own planning starts after the newest
 * slot claimed per type, so a slot that fell due while there was no leader
 * is run if still within its grace and said to be missed otherwise.
 */
export interface SchedulerOperations extends Pick<BackupOperations, 'startBackup' | 'job' | 'report'> {
  /** Per type, when the newest successful backup of it ended (ms), as this member knows. */
  lastBackups(): Partial<Record<BackupType, number>>;
}

export interface BackupSchedulerOptions {
  memberId: string;
  leadership: Leadership;
  /** The backup settings in force; undefined while PostgreSQL is not loaded here. */
  settings: () => BackupSettings | undefined;
  ops: SchedulerOperations;
  claims: SlotClaims;
  /** wallNow() is the time slots are compared with; setTimeout paces the turns. */
  clock: Clock;
  log: Logger;
  /** Between turns. */
  tickMs?: number;
  /** Claims kept per type in the record (older ones are deleted). */
  keepClaims?: number;
  /** Told when what report() says may have changed. */
  onChange?: () => void;
}

const DEFAULT_TICK_MS = 10_000;
const DEFAULT_KEEP_CLAIMS = 10;
/** A claimed slot whose backup has not ended (claimed or running) and is not this process's. */
const UNFINISHED = new Set(['claimed', 'running']);

export class BackupScheduler {
  private readonly log: Logger;
  /** Names this process's claims: a claim with another token was made by another member or an earlier run of this one. */
  private readonly tokenBase = `${randomBytes(6).toString('hex')}`;
  /** Per type, the slots up to this time were looked at. Undefined while not leading: the next lead reads the record first. */
  private from: Partial<Record<BackupType, number>> | undefined;
  /** The scheduled backup running, to record how it ends. */
  private current: { claim: SlotClaim; job: string } | undefined;
  private lastProblem: { at: number; message: string } | null = null;
  private cron = new Map<string, CronSchedule>();
  private timer: Timer | undefined;
  private ticking: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: BackupSchedulerOptions) {
    this.log = opts.log.child({ component: 'backup-schedule' });
  }

  start(): void {
    const loop = () => {
      if (this.closed) return;
      this.timer = this.opts.clock.setTimeout(() => {
        void this.tick().finally(loop);
      }, this.opts.tickMs ?? DEFAULT_TICK_MS);
    };
    loop();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.timer?.cancel();
    await this.ticking;
  }

  /** One turn (the timer calls it; tests call it directly). */
  tick(): Promise<void> {
    this.ticking ??= this.turn().finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  /** What the status shows: per scheduled type its next slot, period and newest backup; null when nothing is scheduled or this member does not lead. */
  report(): ScheduleReport | null {
    const settings = this.opts.settings();
    if (!settings || !backupEnabled(settings) || this.opts.leadership.state().role !== 'leader') return null;
    const schedules = this.schedules(settings);
    if (Object.keys(schedules).length === 0) return null;
    const now = this.opts.clock.wallNow();
    const last = this.opts.ops.lastBackups();
    const next = new Map(nextSlots(schedules, now).map((s) => [s.type, s.at]));
    return {
      types: BACKUP_TYPES_BY_SIZE.filter((t) => schedules[t]).map((type) => ({
        type,
        cron: schedules[type]!.expression,
        next_at: next.get(type) ?? null,
        period_ms: periodMs(schedules[type]!, now),
        last_ok_at: newestCovering(type, last),
      })),
      last_problem: this.lastProblem,
    };
  }

  private async turn(): Promise<void> {
    if (this.closed) return;
    // Also after the lead is lost: the job was cancelled then, and the record says so.
    await this.followCurrent();
    const settings = this.opts.settings();
    const st = this.opts.leadership.state();
    if (!settings || !backupEnabled(settings) || st.role !== 'leader') {
      if (this.from !== undefined) this.changed();
      this.from = undefined;
      return;
    }
    // A leader that takes no writes cannot back up: its slots wait (within their grace) until it does.
    if (!st.writable) return;
    const schedules = this.schedules(settings);
    const now = this.opts.clock.wallNow();
    if (Object.keys(schedules).length === 0) {
      // Nothing to catch up on: a schedule set later while this member leads starts from then.
      this.from = Object.fromEntries(BACKUP_TYPES_BY_SIZE.map((t) => [t, now]));
      return;
    }
    if (this.from === undefined) {
      const from = await this.takeOver(now);
      if (from === undefined) return;
      this.from = from;
    }
    const job = this.opts.ops.report()?.job;
    const running = job && job.kind === 'backup' && job.state === 'running' ? { id: job.id, type: job.type } : null;
    const plan = planSlots({ schedules, now, from: this.from, running });
    this.from = Object.fromEntries(BACKUP_TYPES_BY_SIZE.map((t) => [t, now]));
    this.tellPlan(plan);
    if (plan.run) await this.runSlot(plan.run.slot, plan.run.covers, now);
  }

  /**
   * Becoming the leader: reads the record, says which claimed slots never
   * finished, and returns where each type's planning starts (after its
   * newest claimed slot; now for a type never claimed). Undefined when the
   * record cannot be read (tried again next turn).
   */
  private async takeOver(now: number): Promise<Partial<Record<BackupType, number>> | undefined> {
    let claims: SlotClaim[];
    try {
      claims = await this.opts.claims.recent();
    } catch (err) {
      this.log.warn({ event: 'backup_schedule', reason: (err as Error).message }, `the backup slot record cannot be read (${(err as Error).message}); scheduled backups wait for it`);
      return undefined;
    }
    const from: Partial<Record<BackupType, number>> = {};
    for (const type of BACKUP_TYPES_BY_SIZE) from[type] = now;
    const newest: Partial<Record<BackupType, number>> = {};
    for (const c of claims) newest[c.type] = Math.max(newest[c.type] ?? -Infinity, c.at);
    for (const type of BACKUP_TYPES_BY_SIZE) if (newest[type] !== undefined) from[type] = Math.min(now, newest[type]!);
    for (const c of claims) {
      if (!UNFINISHED.has(c.state) || c.token.startsWith(this.tokenBase)) continue;
      const message = `the scheduled ${c.type} backup of ${iso(c.at)}${c.job ? ` (job ${c.job})` : ''} on member ${c.member} was interrupted: that member no longer leads; the next slot runs as planned`;
      this.log.warn({ event: 'backup_schedule', state: 'interrupted', type: c.type, slot: iso(c.at), job: c.job ?? null, member: c.member }, message);
      this.problem(now, message);
      await this.opts.claims.update({ ...c, state: 'interrupted', error: 'its leader stopped leading before it ended' }).catch(() => undefined);
    }
    this.log.info({ event: 'backup_schedule', state: 'leading' }, `this member leads: it takes the scheduled backups (${this.describeSchedules()})`);
    this.changed();
    return from;
  }

  private async runSlot(slot: Slot, covers: Slot[], now: number): Promise<void> {
    const token = `${this.tokenBase}-${slot.type}-${slot.at}`;
    const base = { member: this.opts.memberId, token, claimed_at: now };
    const claim: SlotClaim = { ...base, type: slot.type, at: slot.at, state: 'claimed' };
    const covered = covers.map((c): SlotClaim => ({ ...base, type: c.type, at: c.at, state: 'covered', covered_by: { type: slot.type, at: slot.at } }));
    let won: boolean;
    try {
      won = await this.opts.claims.claim([claim, ...covered]);
    } catch (err) {
      // The outcome is unknown: look at these slots again next turn (the same token recognises a claim that did land).
      for (const s of [slot, ...covers]) this.from![s.type] = Math.min(this.from![s.type] ?? s.at, s.at - 1);
      this.log.warn({ event: 'backup_schedule', type: slot.type, slot: iso(slot.at), reason: (err as Error).message }, `the ${slot.type} slot of ${iso(slot.at)} could not be claimed (${(err as Error).message}); trying again next turn`);
      return;
    }
    if (!won) {
      this.log.info({ event: 'backup_schedule', state: 'claimed-elsewhere', type: slot.type, slot: iso(slot.at) }, `the ${slot.type} slot of ${iso(slot.at)} is claimed by another member: not run here`);
      return;
    }
    const coverNote = covers.length > 0 ? `; it covers the ${covers.map((c) => c.type).join(' and ')} slot(s) due with it` : '';
    let job: JobView;
    try {
      const repo = this.opts.settings()?.scheduleRepo;
      job = this.opts.ops.startBackup(slot.type, repo === 2 ? { repo } : {});
    } catch (err) {
      const message = `the scheduled ${slot.type} backup of ${iso(slot.at)} could not start: ${(err as Error).message}`;
      this.log.warn({ event: 'backup_schedule', state: 'not-started', type: slot.type, slot: iso(slot.at), reason: (err as Error).message }, message);
      this.problem(now, message);
      await this.opts.claims.update({ ...claim, state: 'not-started', error: (err as Error).message }).catch(() => undefined);
      return;
    }
    this.current = { claim: { ...claim, state: 'running', job: job.id }, job: job.id };
    this.log.info({ event: 'backup_schedule', state: 'running', type: slot.type, slot: iso(slot.at), job: job.id, covers: covers.map((c) => c.type) }, `scheduled ${slot.type} backup of ${iso(slot.at)} started as job ${job.id}${coverNote}`);
    await this.opts.claims.update(this.current.claim).catch(() => undefined);
    for (const type of new Set([slot.type, ...covers.map((c) => c.type)])) {
      await this.opts.claims.prune(type, this.opts.keepClaims ?? DEFAULT_KEEP_CLAIMS).catch((err: unknown) => this.log.debug({ event: 'backup_schedule', reason: (err as Error).message }, 'old slot claims not pruned'));
    }
    this.changed();
  }

  /** Records the end of the scheduled backup this member runs. */
  private async followCurrent(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    const job = this.opts.ops.job(cur.job);
    if (job?.state === 'running') return;
    this.current = undefined;
    const { claim } = cur;
    const slot = `${claim.type} backup of ${iso(claim.at)}`;
    if (job?.state === 'done') {
      this.log.info({ event: 'backup_schedule', state: 'done', type: claim.type, slot: iso(claim.at), job: cur.job, label: job.backup?.label ?? null }, `scheduled ${slot} done: ${job.backup?.label ?? '?'}`);
      this.lastProblem = null;
      await this.opts.claims.update({ ...claim, state: 'done', ...(job.backup ? { label: job.backup.label } : {}) }).catch(() => undefined);
    } else {
      const why = job?.error ?? 'the job is no longer known here';
      const message = `the scheduled ${slot} (job ${cur.job}) failed: ${why}; the next slot runs as planned`;
      this.log.warn({ event: 'backup_schedule', state: 'failed', type: claim.type, slot: iso(claim.at), job: cur.job, reason: why }, message);
      this.problem(job?.ended_at ? Date.parse(job.ended_at) : this.opts.clock.wallNow(), message);
      await this.opts.claims.update({ ...claim, state: 'failed', error: why }).catch(() => undefined);
    }
    this.changed();
  }

  private tellPlan(plan: Plan): void {
    for (const s of plan.skipped) {
      this.log.warn({ event: 'backup_schedule', state: 'skipped', type: s.slot.type, slot: iso(s.slot.at), reason: s.reason }, `the ${s.slot.type} slot of ${iso(s.slot.at)} is skipped: ${s.reason}`);
    }
    for (const m of plan.missed) {
      const which = m.count === 1 ? `the ${m.type} slot of ${iso(m.first)} was` : `${m.count}${m.more ? '+' : ''} ${m.type} slots (${iso(m.first)} to ${iso(m.last)}) were`;
      const message = `${which} missed: no member led then, and a slot is started at most min(its period, 1 h) late`;
      this.log.warn({ event: 'backup_schedule', state: 'missed', type: m.type, count: m.count, first: iso(m.first), last: iso(m.last) }, message);
      this.problem(this.opts.clock.wallNow(), message);
    }
  }

  private problem(at: number, message: string): void {
    this.lastProblem = { at, message };
    this.changed();
  }

  private changed(): void {
    try {
      this.opts.onChange?.();
    } catch (err) {
      this.log.warn({ err }, 'a backup schedule listener failed');
    }
  }

  /** The parsed schedules of the settings in force (each expression parsed once; the settings check refused bad ones). */
  private schedules(settings: BackupSettings): Schedules {
    const out: Schedules = {};
    for (const type of BACKUP_TYPES_BY_SIZE) {
      const text = settings.schedules[type];
      if (text === '') continue;
      let schedule = this.cron.get(text);
      if (!schedule) {
        const parsed = parseCron(text);
        if ('problem' in parsed) continue;
        schedule = parsed;
        // Expressions no longer in force are forgotten rather than kept for ever.
        if (this.cron.size >= 6) this.cron.clear();
        this.cron.set(text, schedule);
      }
      out[type] = schedule;
    }
    return out;
  }

  private describeSchedules(): string {
    const settings = this.opts.settings();
    if (!settings) return 'none';
    const set = BACKUP_TYPES_BY_SIZE.filter((t) => settings.schedules[t] !== '').map((t) => `${t} "${settings.schedules[t]}"`);
    return set.length > 0 ? `${set.join(', ')}, UTC` : 'none set';
  }
}

/** When the newest backup that holds what a `type` backup would ended: of that type or a larger one. */
export function newestCovering(type: BackupType, last: Partial<Record<BackupType, number>>): number | null {
  const rank = BACKUP_TYPES_BY_SIZE.indexOf(type);
  let newest: number | null = null;
  for (const t of BACKUP_TYPES_BY_SIZE.slice(0, rank + 1)) {
    const at = last[t];
    if (at !== undefined && (newest === null || at > newest)) newest = at;
  }
  return newest;
}
