import type { CronSchedule } from './cron.js';
import type { BackupType } from './info.js';

/**
 * When scheduled backups are due, as pure functions of the schedules and
 * the time they are given (no clock, no etcd, no job): the scheduler
 * (scheduler.ts) asks once a turn which slots fell due since it last
 * looked, claims the one this plan says to run, and starts it.
 *
 * A slot is one fire time of one type's schedule. The rules:
 *  - Several slots due at the same turn run as one backup, of the largest
 *    type (full > diff > incr): a full backup holds everything a
 *    differential or incremental one would, and two backups never run at
 *    once. The smaller slots are covered by it.
 *  - A slot due while a backup job runs is skipped (not queued: the next
 *    slot comes anyway, and a queue would run backups back to back).
 *  - A slot is started at most `grace` after its time: its schedule's
 *    period (to the next slot), at most an hour. One older than that when
 *    first looked at (there was no leader, or no one looked) is missed; of
 *    several slots of a type still within it, only the newest runs.
 */
export type Schedules = Partial<Record<BackupType, CronSchedule>>;

/** Largest first: the order a coincident set is run in (only its first). */
export const BACKUP_TYPES_BY_SIZE: readonly BackupType[] = ['full', 'diff', 'incr'];

export const MAX_GRACE_MS = 60 * 60_000;
/** Slots enumerated per type and turn at most (a schedule every minute over a week of no leader is 10 080). */
const MAX_SLOTS = 20_000;

export interface Slot {
  type: BackupType;
  /** The fire time, ms since the epoch. */
  at: number;
}

export interface PlanInput {
  schedules: Schedules;
  now: number;
  /** Per scheduled type: its slots after this time (exclusive) have not been looked at. A type missing here is looked at from `now` (nothing due). */
  from: Partial<Record<BackupType, number>>;
  /** The backup job running now, if any (a scheduled one or one an operator asked for). */
  running: { id: string; type: BackupType | null } | null;
}

export interface Missed {
  type: BackupType;
  count: number;
  first: number;
  last: number;
  /** More slots than were counted (the count is a lower bound). */
  more: boolean;
}

export interface Plan {
  /** The slot to claim and run now, and the smaller slots due with it that it covers. */
  run: { slot: Slot; covers: Slot[] } | null;
  /** Due slots not run, and why. */
  skipped: Array<{ slot: Slot; reason: string }>;
  /** Slots past their grace when first looked at, per type. */
  missed: Missed[];
}

/** How long after its time a slot of `schedule` at `at` may still start: the period to its next slot, at most an hour. */
export function graceMs(schedule: CronSchedule, at: number): number {
  const next = schedule.next(at);
  return next === null ? MAX_GRACE_MS : Math.min(next - at, MAX_GRACE_MS);
}

/** The period of `schedule` around `now`: between its next two slots (null when it fires fewer than twice more). */
export function periodMs(schedule: CronSchedule, now: number): number | null {
  const a = schedule.next(now);
  const b = a === null ? null : schedule.next(a);
  return a === null || b === null ? null : b - a;
}

export function planSlots(input: PlanInput): Plan {
  const { now } = input;
  const plan: Plan = { run: null, skipped: [], missed: [] };
  const due: Slot[] = [];
  for (const type of BACKUP_TYPES_BY_SIZE) {
    const schedule = input.schedules[type];
    if (!schedule) continue;
    let missed: Missed | undefined;
    let newest: Slot | undefined;
    let seen = 0;
    for (let at = schedule.next(input.from[type] ?? now); at !== null && at <= now; at = schedule.next(at)) {
      if (++seen > MAX_SLOTS) {
        if (missed) missed.more = true;
        break;
      }
      if (now - at > graceMs(schedule, at)) {
        if (missed) {
          missed.count++;
          missed.last = at;
        } else missed = { type, count: 1, first: at, last: at, more: false };
        continue;
      }
      if (newest) plan.skipped.push({ slot: newest, reason: `a later ${type} slot (${iso(at)}) is due too` });
      newest = { type, at };
    }
    if (missed) plan.missed.push(missed);
    if (newest) due.push(newest);
  }
  if (due.length === 0) return plan;
  if (input.running) {
    const what = `backup job ${input.running.id}${input.running.type ? ` (${input.running.type})` : ''} is running`;
    for (const slot of due) plan.skipped.push({ slot, reason: what });
    return plan;
  }
  // `due` is in BACKUP_TYPES_BY_SIZE order: the first is the largest.
  const [largest, ...smaller] = due;
  plan.run = { slot: largest!, covers: smaller };
  return plan;
}

/** The next slot of each scheduled type after `now`. */
export function nextSlots(schedules: Schedules, now: number): Slot[] {
  const out: Slot[] = [];
  for (const type of BACKUP_TYPES_BY_SIZE) {
    const at = schedules[type]?.next(now) ?? null;
    if (at !== null) out.push({ type, at });
  }
  return out;
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
