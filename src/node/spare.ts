import { randomBytes } from 'node:crypto';
import type { Clock } from '../ha/clock.js';
import { pairBackupSets } from '../plugins/backup/backup-sets.js';
import { parseCron, type CronSchedule } from '../plugins/backup/cron.js';
import type { BackupInfo } from '../plugins/backup/info.js';
import { periodMs, planSlots } from '../plugins/backup/schedule.js';
import type { SearchSnapshots } from '../plugins/backup/search-snapshots.js';
import type { SlotClaim, SlotClaims } from '../plugins/backup/slot-claims.js';
import { setIndices } from '../plugins/backup/snapshot-jobs.js';
import type { ReplayInfo } from '../plugins/postgresql/ha-node.js';
import type { Logger } from '../supervisor/log.js';

/**
 * The warm spare kept current by restores ([ha] standby_of_repo, a copy of
 * the primary cluster's pgBackRest repository shipped by the site's own
 * means, and [ha] restore_schedule). One keeper per member; it acts only
 * on the spare's standby leader:
 *
 *  - On each slot of the schedule (planned by the backup planner,
 *    src/plugins/backup/schedule.ts, and claimed in the cluster's record
 *    before it runs, so a slot runs once whatever the failovers), it
 *    re-bases the standby leader on the newest backup of the copy: stopped,
 *    restored in place as a standby (pgBackRest --delta --type=standby),
 *    started; the followers stream from it again (or from the copy's
 *    archive meanwhile). When that backup is a set with a whole
 *    Elasticsearch snapshot, the snapshot's indices are restored too (mode
 *    replace, hasup's own logs and metrics left alone).
 *  - A slot whose newest backup is the one the spare is already based on
 *    restores nothing (the standby replays the copy's archive anyway).
 *  - It records the last restore and where replay is (the last WAL
 *    replayed and the primary's last transaction in it) in the cluster's
 *    store, so every member shows them (/ha `spare`, `hasup status`).
 *
 * The copy is only read: see src/plugins/backup/source-repo.ts.
 */
export interface SpareRestore {
  /** The backup restored (pgBackRest label) and when it ended on the primary cluster (ms). */
  label: string;
  backup_stopped_at: number;
  /** The slot that ran it (ms), null for the bootstrap's restore. */
  slot_at: number | null;
  started_at: number;
  ended_at: number;
  member: string;
  /** The set's snapshot: its name and how its restore went (restored, or why not), null without one. */
  snapshot: { name: string; state: string; restored: boolean; error: string | null } | null;
  /** The backup was the one the spare was already based on: nothing restored. */
  unchanged?: boolean;
}

export interface SpareRecordState {
  repo: string;
  /** The newest successful restore. */
  last_restore: SpareRestore | null;
  /** The last slot that failed, and why (cleared by a later success). */
  last_failure: { slot_at: number; at: number; error: string } | null;
  /** Where the standby leader's replay is, as read at `read_at`. */
  replay: (ReplayInfo & { read_at: number; member: string }) | null;
  /** A re-base running now. */
  running: { slot_at: number; started_at: number; member: string; detail: string } | null;
  updated: number;
}

export interface SpareView extends SpareRecordState {
  schedule: string | null;
  next_slot: number | null;
  period_ms: number | null;
  /** Why the spare is behind its schedule (the newest restore is older than a period and its grace), else null. */
  warning: string | null;
}

/** The cluster's record of the spare (etcd in a cluster; memory in unit tests). */
export interface SpareRecord {
  get(): Promise<SpareRecordState | null>;
  put(state: SpareRecordState): Promise<void>;
}

export interface SpareSourceInfo {
  newestBackup(signal?: AbortSignal): Promise<BackupInfo | undefined>;
}

export interface SpareDatabase {
  /** The backup this member's data was last restored from, when known. */
  spareBase(): Promise<{ label: string; stopped_at: number; restored_at: number } | null>;
  rebaseStandby(label: string, signal: AbortSignal, progress: (detail: string) => void): Promise<void>;
  replayInfo(signal: AbortSignal): Promise<ReplayInfo | null>;
}

export interface SpareKeeperDeps {
  memberId: string;
  settings: () => { repo: string | null; schedule: string | null };
  /** This member holds the leader key of the spare (its standby leader). */
  leading: () => boolean;
  source: () => SpareSourceInfo | undefined;
  db: SpareDatabase;
  search: () => SearchSnapshots | undefined;
  /** The slot record: a prefix of its own (the slots are stored as type "full"). */
  claims: SlotClaims;
  record: SpareRecord;
  clock: Clock;
  log: Logger;
}

/** The keeper looks every this often. */
export const SPARE_TICK_MS = 10_000;
/** A restore older than the schedule's period plus this (at most the period) is late. */
const LATE_GRACE_MS = 60 * 60_000;
const CLAIMS_KEPT = 10;
/** The slot type the record stores the spare's slots under (its own prefix). */
const SLOT_TYPE = 'full' as const;

export class SpareKeeper {
  private from: number | null = null;
  private scheduleText: string | null = null;
  private job: Promise<void> | null = null;
  private state: SpareRecordState | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;
  private ticking = false;
  private readonly stop = new AbortController();
  private readonly log: Logger;

  constructor(private readonly deps: SpareKeeperDeps) {
    this.log = deps.log.child({ component: 'spare' });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), SPARE_TICK_MS);
    this.timer.unref?.();
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.stop.abort();
    await this.job?.catch(() => undefined);
  }

  /** The spare as this member knows it (null where this cluster is no warm spare of a repository copy). */
  view(): SpareView | null {
    const s = this.deps.settings();
    if (!s.repo) return null;
    const now = this.deps.clock.wallNow();
    const cron = s.schedule ? parseCron(s.schedule) : null;
    const schedule = cron && !('problem' in cron) ? cron : null;
    const state: SpareRecordState = this.state ?? { repo: s.repo, last_restore: null, last_failure: null, replay: null, running: null, updated: 0 };
    return { ...state, schedule: s.schedule, next_slot: schedule?.next(now) ?? null, period_ms: schedule ? periodMs(schedule, now) : null, warning: lateness(state, schedule, now) };
  }

  /** One look: on the standby leader, run a due slot and record where the spare is; elsewhere, read the record. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.look();
    } catch (err) {
      this.log.warn({ event: 'spare_tick', err }, `warm spare: ${(err as Error).message}`);
    } finally {
      this.ticking = false;
    }
  }

  /** Waits for a running re-base (tests). */
  async settled(): Promise<void> {
    await this.job?.catch(() => undefined);
  }

  private async look(): Promise<void> {
    const s = this.deps.settings();
    if (!s.repo) {
      this.state = null;
      this.from = null;
      return;
    }
    const recorded = await this.deps.record.get().catch(() => null);
    if (!this.deps.leading()) {
      this.from = null;
      this.state = recorded;
      return;
    }
    const now = this.deps.clock.wallNow();
    this.state = this.state && this.state.updated >= (recorded?.updated ?? 0) ? this.state : (recorded ?? { repo: s.repo, last_restore: null, last_failure: null, replay: null, running: null, updated: now });
    this.state.repo = s.repo;
    if (!this.job) {
      const replay = await this.deps.db.replayInfo(AbortSignal.timeout(5000)).catch(() => null);
      if (replay) this.state.replay = { ...replay, read_at: now, member: this.deps.memberId };
      // No re-base runs here: one recorded as running was a former leader's, cut short.
      this.state.running = null;
      if (!this.state.last_restore) {
        // The bootstrap's restore (this member restored the copy's newest backup at its first start).
        const base = await this.deps.db.spareBase().catch(() => null);
        if (base) this.state.last_restore = { label: base.label, backup_stopped_at: base.stopped_at, slot_at: null, started_at: base.restored_at, ended_at: base.restored_at, member: this.deps.memberId, snapshot: null };
      }
    }
    await this.schedule(s.schedule, now);
    this.state.updated = now;
    await this.deps.record.put(this.state).catch((err: unknown) => this.log.warn({ event: 'spare_record', err }, `warm spare: cannot record its state: ${(err as Error).message}`));
  }

  private async schedule(text: string | null, now: number): Promise<void> {
    if (!text) return;
    const parsed = parseCron(text);
    if ('problem' in parsed) return;
    if (text !== this.scheduleText) {
      this.scheduleText = text;
      this.from = null;
    }
    if (this.from === null) {
      // A new leader plans from the newest slot claimed (the slots since, within their grace, run); a first one from now.
      const claims = await this.deps.claims.recent();
      const newest = claims.filter((c) => c.type === SLOT_TYPE).pop();
      this.from = newest ? newest.at : now;
    }
    const plan = planSlots({ schedules: { [SLOT_TYPE]: parsed }, now, from: { [SLOT_TYPE]: this.from }, running: this.job ? { id: 'spare re-base', type: null } : null });
    for (const m of plan.missed) this.log.warn({ event: 'spare_schedule', state: 'missed', count: m.count }, `warm spare: ${m.count} restore slot(s) (${iso(m.first)} to ${iso(m.last)}) were missed (no standby leader, or it could not start them within their grace)`);
    for (const sk of plan.skipped) this.log.info({ event: 'spare_schedule', state: 'skipped', slot: iso(sk.slot.at) }, `warm spare: restore slot ${iso(sk.slot.at)} skipped: ${sk.reason}`);
    this.from = now;
    if (!plan.run) return;
    const slotAt = plan.run.slot.at;
    const claim: SlotClaim = { type: SLOT_TYPE, at: slotAt, member: this.deps.memberId, token: randomBytes(6).toString('hex'), state: 'claimed', claimed_at: now };
    if (!(await this.deps.claims.claim([claim]))) {
      this.log.info({ event: 'spare_schedule', state: 'taken', slot: iso(slotAt) }, `warm spare: restore slot ${iso(slotAt)} is claimed by another member`);
      return;
    }
    await this.deps.claims.prune(SLOT_TYPE, CLAIMS_KEPT).catch(() => 0);
    this.job = this.run(claim, parsed).finally(() => (this.job = null));
  }

  private async run(claim: SlotClaim, _schedule: CronSchedule): Promise<void> {
    const started = this.deps.clock.wallNow();
    const state = this.state!;
    const say = (detail: string) => {
      state.running = { slot_at: claim.at, started_at: started, member: this.deps.memberId, detail };
      state.updated = this.deps.clock.wallNow();
      this.log.info({ event: 'spare_progress', slot: iso(claim.at), detail }, `warm spare, restore slot ${iso(claim.at)}: ${detail}`);
      void this.deps.record.put(state).catch(() => undefined);
    };
    try {
      await this.deps.claims.update({ ...claim, state: 'running' }).catch(() => undefined);
      const source = this.deps.source();
      if (!source) throw new Error('the repository copy is not readable on this member (ha.standby_of_repo, PostgreSQL not prepared yet)');
      say('reading the repository copy');
      const backup = await source.newestBackup(this.stop.signal);
      if (!backup) throw new Error(`the repository copy ${state.repo} holds no usable backup`);
      const previous = state.last_restore;
      const base = await this.deps.db.spareBase().catch(() => null);
      let restore: SpareRestore;
      if (previous && previous.label === backup.label && base?.label === backup.label) {
        restore = { ...previous, slot_at: claim.at, started_at: started, ended_at: this.deps.clock.wallNow(), member: this.deps.memberId, unchanged: true };
        this.log.info({ event: 'spare_restore', state: 'unchanged', label: backup.label }, `warm spare: the newest backup is still ${backup.label}, which the spare is based on; it goes on replaying the copy's archive`);
      } else {
        say(`re-basing on backup ${backup.label}`);
        await this.deps.db.rebaseStandby(backup.label, this.stop.signal, (d) => say(`backup ${backup.label}: ${d}`));
        const snapshot = await this.restoreSnapshot(backup, say);
        restore = { label: backup.label, backup_stopped_at: backup.stoppedAt.getTime(), slot_at: claim.at, started_at: started, ended_at: this.deps.clock.wallNow(), member: this.deps.memberId, snapshot };
        this.log.warn(
          { event: 'spare_restore', state: 'done', label: backup.label, took_ms: restore.ended_at - started },
          `warm spare: re-based on backup ${backup.label} in ${((restore.ended_at - started) / 1000).toFixed(1)} s${snapshot ? `; snapshot ${snapshot.name} ${snapshot.restored ? 'restored' : `not restored (${snapshot.error})`}` : ''}`,
        );
      }
      state.last_restore = restore;
      state.last_failure = null;
      await this.deps.claims.update({ ...claim, state: 'done', label: backup.label }).catch(() => undefined);
    } catch (err) {
      const why = (err as Error).message;
      state.last_failure = { slot_at: claim.at, at: this.deps.clock.wallNow(), error: why };
      this.log.error({ event: 'spare_restore', state: 'failed', slot: iso(claim.at), err }, `warm spare: restore slot ${iso(claim.at)} failed: ${why}`);
      await this.deps.claims.update({ ...claim, state: 'failed', error: why }).catch(() => undefined);
    } finally {
      state.running = null;
      state.updated = this.deps.clock.wallNow();
      await this.deps.record.put(state).catch(() => undefined);
    }
  }

  /** The backup's set's snapshot, when it has a whole one: its indices restored (replace), hasup's own left alone. */
  private async restoreSnapshot(backup: BackupInfo, say: (d: string) => void): Promise<SpareRestore['snapshot']> {
    const search = this.deps.search();
    if (!search) return null;
    let snapshots;
    try {
      snapshots = await search.list();
    } catch (err) {
      return { name: '?', state: 'unknown', restored: false, error: `the snapshots cannot be read: ${(err as Error).message}` };
    }
    const set = pairBackupSets([backup], snapshots).find((x) => x.pg?.label === backup.label);
    const snap = set?.es;
    if (!snap) return null;
    if (!set.complete) return { name: snap.name, state: snap.state, restored: false, error: `the snapshot is ${snap.state}, not whole` };
    const indices = setIndices(snap.indices, (i) => search.ownIndex(i));
    if (indices.length === 0) return { name: snap.name, state: snap.state, restored: true, error: null };
    try {
      say(`restoring snapshot ${snap.name} (${indices.length} indices, replacing the existing ones)`);
      await search.restore(snap.name, { indices, mode: 'replace' }, { signal: this.stop.signal });
      return { name: snap.name, state: snap.state, restored: true, error: null };
    } catch (err) {
      return { name: snap.name, state: snap.state, restored: false, error: (err as Error).message };
    }
  }
}

/** Why the spare is behind its schedule, or null. */
export function lateness(state: SpareRecordState, schedule: CronSchedule | null, now: number): string | null {
  if (!schedule) return null;
  const period = periodMs(schedule, now);
  if (period === null) return null;
  const last = state.last_restore;
  const allowed = period + Math.min(period, LATE_GRACE_MS);
  // The spare's age is that of the restore, counted from its slot (the first restore, at bootstrap, from its end).
  const at = last ? (last.slot_at ?? last.ended_at) : null;
  if (at === null) return state.last_failure ? `no restore has succeeded yet (the last slot failed: ${state.last_failure.error})` : null;
  if (now - at <= allowed) return null;
  return `the newest restore (backup ${last!.label}, ${ago(now - at)} ago) is older than its schedule (${schedule.expression})${state.last_failure ? `; the last slot failed: ${state.last_failure.error}` : ''}`;
}

function ago(ms: number): string {
  const m = Math.round(ms / 60_000);
  return m < 120 ? `${m} min` : `${(m / 60).toFixed(1)} h`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** For a member that runs alone and the unit tests. */
export class MemorySpareRecord implements SpareRecord {
  private state: SpareRecordState | null = null;
  async get(): Promise<SpareRecordState | null> {
    return this.state ? (JSON.parse(JSON.stringify(this.state)) as SpareRecordState) : null;
  }
  async put(state: SpareRecordState): Promise<void> {
    this.state = JSON.parse(JSON.stringify(state)) as SpareRecordState;
  }
}

/** The record in etcd: one key beside the HA store's (not under its prefix, which the HA loop reads every turn). */
export class EtcdSpareRecord implements SpareRecord {
  constructor(
    private readonly client: { get(key: string, o?: { timeoutMs?: number }): Promise<{ value: string } | undefined>; put(key: string, value: string, o?: { timeoutMs?: number }): Promise<unknown> },
    private readonly key: string,
  ) {}

  async get(): Promise<SpareRecordState | null> {
    const kv = await this.client.get(this.key, { timeoutMs: 3000 });
    if (!kv) return null;
    try {
      const v = JSON.parse(kv.value) as SpareRecordState;
      return typeof v === 'object' && v !== null && typeof v.repo === 'string' ? v : null;
    } catch {
      return null;
    }
  }

  async put(state: SpareRecordState): Promise<void> {
    await this.client.put(this.key, JSON.stringify(state), { timeoutMs: 3000 });
  }
}
