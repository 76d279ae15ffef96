import { setTimeout as sleepFor } from 'node:timers/promises';
import type { Logger } from '../../supervisor/log.js';
import { BackupRefused } from './coordinator.js';
import { JobBook, JobBusy, type Job } from './jobs.js';
import type { SearchRestorePlan, SearchRestoreRequest, SearchSnapshots } from './search-snapshots.js';
import { snapshotJson, type SnapshotJson } from './set-views.js';
import type { BackupListing } from './views.js';

/**
 * Elasticsearch snapshots for the routes (GET /snapshots, POST
 * /snapshot/restore) and the Elasticsearch side of a backup set's restore,
 * on the member asked (any member: the snapshots are the Elasticsearch
 * cluster's, and every member reaches it).
 *
 * A restore is checked before it starts (a missing snapshot or index, an
 * index in the way with mode refuse: refused, nothing changed), then runs
 * as a job with its progress (primary shards active of total), one at a
 * time on a member. A set's restore waits for PostgreSQL's cluster restore
 * to be done first, and restores nothing when that fails.
 */
export interface SnapshotJobView {
  id: string;
  kind: 'snapshot-restore';
  member: string;
  snapshot: string;
  request: { indices: 'all' | string[]; mode: SearchRestoreRequest['mode']; rename_prefix: string | null };
  /** The cluster restore it waits for (a backup set's), or null. */
  after_restore: string | null;
  state: 'running' | 'done' | 'failed';
  started_at: string;
  ended_at: string | null;
  took_ms: number | null;
  /** percent: primary shards active of the restored indices' total; detail: what it does now. */
  progress: { percent: number | null; detail?: string };
  /** What was restored, once done. */
  restored: { sources: string[]; targets: string[]; deleted_first: string[] } | null;
  error: string | null;
}

export interface SnapshotListing {
  member: string;
  repo_path: string;
  /** Oldest first. */
  snapshots: SnapshotJson[];
}

/** The snapshot side of restoring a backup set, decided before anything stops. */
export interface SetSnapshotChoice {
  /** The snapshot and what its restore does; null when PostgreSQL is restored alone. */
  restore: { snapshot: string; request: SearchRestoreRequest; plan: SearchRestorePlan } | null;
  /** Why the snapshot is not restored, when it is not. */
  note: string | null;
}

/** What the routes call (SnapshotJobs; a fake in the route tests). */
export interface SnapshotOperations {
  list(): Promise<SnapshotListing>;
  /** Checks the restore (throws SnapshotError or BackupRefused, nothing changed), then starts it as a job. */
  startRestore(name: string, req: SearchRestoreRequest): Promise<{ job: SnapshotJobView; plan: SearchRestorePlan }>;
  job(id: string): SnapshotJobView | undefined;
  /** Which snapshot a restore of backup set `label` restores, from the listing's sets, checked now. */
  chooseForSet(label: string, listing: BackupListing): Promise<SetSnapshotChoice>;
  /** Starts the snapshot side of a set's restore: it waits for the cluster restore `after` to be done. */
  restoreAfter(after: { id: string; requested: number }, choice: NonNullable<SetSnapshotChoice['restore']>): SnapshotJobView;
  /** The snapshot restore of cluster restore `id`, if this member runs one. */
  forClusterRestore(id: string): SnapshotJobView | undefined;
}

/** A cluster restore as the HA view shows it (ha/store.ts RestoreRequest). */
export interface ClusterRestoreState {
  id: string;
  requested: number;
  state: 'stopping' | 'restoring' | 'done' | 'failed';
  detail: string;
}

export interface SnapshotJobsOptions {
  memberId: string;
  search: () => SearchSnapshots | undefined;
  /** The last cluster restore this member knows of (its HA view), or null. */
  clusterRestore: () => ClusterRestoreState | null;
  log: Logger;
  describe?: (err: unknown) => string;
  /** How often a set's restore looks whether PostgreSQL's restore is done. */
  pollMs?: number;
  now?: () => number;
}

interface Outcome {
  plan: SearchRestorePlan;
}

interface Meta {
  snapshot: string;
  request: SearchRestoreRequest;
  after: string | null;
}

const OFF = 'Elasticsearch snapshots are off on this member: set [service.elasticsearch.snapshot] repo_path on every member that runs Elasticsearch';

export class SnapshotJobs implements SnapshotOperations {
  private readonly jobs: JobBook<Outcome, 'snapshot-restore'>;
  private readonly meta = new Map<string, Meta>();
  private readonly aborts = new Map<string, AbortController>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly opts: SnapshotJobsOptions) {
    this.log = opts.log.child({ component: 'snapshots' });
    this.jobs = new JobBook<Outcome, 'snapshot-restore'>({
      member: opts.memberId,
      ...(opts.now ? { now: opts.now } : {}),
      describeError: (err) => this.describe(err),
      onChange: (job) => this.onChange(job),
    });
  }

  async list(): Promise<SnapshotListing> {
    const search = this.requireSearch();
    return { member: this.opts.memberId, repo_path: search.repoPath, snapshots: (await search.list()).map(snapshotJson) };
  }

  async startRestore(name: string, req: SearchRestoreRequest): Promise<{ job: SnapshotJobView; plan: SearchRestorePlan }> {
    const search = this.requireSearch();
    this.refuseBusy();
    const plan = await search.planRestore(name, req);
    const job = this.start({ snapshot: name, request: req, after: null }, async (progress, signal) => {
      const done = await this.run(name, req, progress, signal);
      return { plan: done };
    });
    return { job, plan };
  }

  job(id: string): SnapshotJobView | undefined {
    const job = this.jobs.get(id);
    return job ? this.view(job) : undefined;
  }

  async chooseForSet(label: string, listing: BackupListing): Promise<SetSnapshotChoice> {
    const search = this.opts.search();
    if (listing.sets_error !== undefined) throw new BackupRefused('unavailable', `${listing.sets_error}; nothing was stopped. Restore PostgreSQL alone to the end of that backup with --lsn (its WAL stop position in hasup backup list --json)`);
    if (!search || listing.sets === undefined) return { restore: null, note: 'Elasticsearch snapshots are off on this member: PostgreSQL alone is restored' };
    const set = listing.sets.find((s) => s.backup === label);
    if (!set?.snapshot) return { restore: null, note: `backup set ${label} has no Elasticsearch snapshot: PostgreSQL alone is restored` };
    const name = set.snapshot.name;
    if (set.snapshot.state !== 'SUCCESS') return { restore: null, note: `the snapshot of backup set ${label}, ${name}, is ${set.snapshot.state}, not whole: PostgreSQL alone is restored (restore chosen indices of it with hasup snapshot restore)` };
    const snapshot = (await search.list()).find((s) => s.name === name);
    if (!snapshot) return { restore: null, note: `the snapshot of backup set ${label}, ${name}, is no longer in the repository: PostgreSQL alone is restored` };
    const indices = setIndices(snapshot.indices, (i) => search.ownIndex(i));
    if (indices.length === 0) return { restore: null, note: `snapshot ${name} holds no index but hasup's own logs and metrics, which a set's restore leaves alone: PostgreSQL alone is restored` };
    const request: SearchRestoreRequest = { indices, mode: 'replace' };
    // Refused now, while nothing has stopped, rather than once PostgreSQL's restore has begun.
    this.refuseBusy();
    return { restore: { snapshot: name, request, plan: await search.planRestore(name, request) }, note: null };
  }

  restoreAfter(after: { id: string; requested: number }, choice: NonNullable<SetSnapshotChoice['restore']>): SnapshotJobView {
    this.refuseBusy();
    const { snapshot, request } = choice;
    return this.start({ snapshot, request, after: after.id }, async (progress, signal) => {
      progress({ detail: `waiting for PostgreSQL's restore ${after.id} to be done` });
      await this.untilRestored(after, snapshot, signal);
      return { plan: await this.run(snapshot, request, progress, signal) };
    });
  }

  forClusterRestore(id: string): SnapshotJobView | undefined {
    for (const [jobId, m] of this.meta) if (m.after === id) return this.job(jobId);
    return undefined;
  }

  /** Cancels running restores (Elasticsearch goes on with one it has begun) and waits for them. */
  async close(): Promise<void> {
    this.closed = true;
    for (const abort of this.aborts.values()) abort.abort(new Error('this member is shutting down'));
    await this.jobs.settle();
  }

  private async run(name: string, req: SearchRestoreRequest, progress: (p: { percent?: number; detail?: string }) => void, signal: AbortSignal): Promise<SearchRestorePlan> {
    const search = this.requireSearch();
    progress({ detail: `restoring snapshot ${name} (${req.mode})` });
    return search.restore(name, req, {
      signal,
      onProgress: (p) =>
        progress({
          ...(p.primariesTotal > 0 ? { percent: Math.round((1000 * p.primariesActive) / p.primariesTotal) / 10 } : {}),
          detail: `restoring snapshot ${name}: ${p.primariesActive} of ${p.primariesTotal} primary shards active`,
        }),
    });
  }

  /** Resolves once cluster restore `after` is done; throws when it failed or another replaced it. */
  private async untilRestored(after: { id: string; requested: number }, snapshot: string, signal: AbortSignal): Promise<void> {
    const untouched = `snapshot ${snapshot} was not restored: Elasticsearch is as it was`;
    while (true) {
      signal.throwIfAborted();
      const r = this.opts.clusterRestore();
      if (r?.id === after.id && r.state === 'done') return;
      if (r?.id === after.id && r.state === 'failed') throw new Error(`PostgreSQL's restore ${after.id} failed (${r.detail}); ${untouched}`);
      if (r && r.id !== after.id && r.requested > after.requested) throw new Error(`another cluster restore, ${r.id}, replaced ${after.id}; ${untouched}`);
      await sleepFor(this.opts.pollMs ?? 1000, undefined, { signal });
    }
  }

  private start(meta: Meta, work: (progress: (p: { percent?: number; detail?: string }) => void, signal: AbortSignal) => Promise<Outcome>): SnapshotJobView {
    const abort = new AbortController();
    const job = this.jobs.start('snapshot-restore', null, (progress) => work(progress, abort.signal));
    this.meta.set(job.id, meta);
    this.aborts.set(job.id, abort);
    this.log.info({ event: 'snapshot_restore', job: job.id, snapshot: meta.snapshot, mode: meta.request.mode, after_restore: meta.after, state: 'running' }, `snapshot restore ${job.id} of ${meta.snapshot} (${meta.request.mode}) started`);
    return this.view(job);
  }

  private onChange(job: Job<Outcome, 'snapshot-restore'>): void {
    if (job.state === 'running') return;
    this.aborts.delete(job.id);
    const meta = this.meta.get(job.id);
    const fields = { event: 'snapshot_restore', job: job.id, snapshot: meta?.snapshot, state: job.state, took_ms: job.endedAt !== null ? job.endedAt - job.startedAt : null };
    if (job.state === 'failed') this.log.warn({ ...fields, reason: job.error }, `snapshot restore ${job.id} failed: ${job.error}`);
    else this.log.info({ ...fields, indices: job.result?.plan.targets }, `snapshot restore ${job.id} done: ${job.result?.plan.targets.join(', ')}`);
    // The book keeps the newest jobs only; their requests go with them.
    for (const id of this.meta.keys()) if (!this.jobs.get(id)) this.meta.delete(id);
  }

  private view(job: Job<Outcome, 'snapshot-restore'>): SnapshotJobView {
    const meta = this.meta.get(job.id);
    const plan = job.result?.plan;
    return {
      id: job.id,
      kind: 'snapshot-restore',
      member: job.member,
      snapshot: meta?.snapshot ?? '',
      request: { indices: meta?.request.indices ?? [], mode: meta?.request.mode ?? 'refuse', rename_prefix: meta?.request.renamePrefix ?? null },
      after_restore: meta?.after ?? null,
      state: job.state,
      started_at: new Date(job.startedAt).toISOString(),
      ended_at: job.endedAt === null ? null : new Date(job.endedAt).toISOString(),
      took_ms: job.endedAt === null ? null : job.endedAt - job.startedAt,
      progress: { percent: job.progress.percent, ...(job.progress.detail ? { detail: job.progress.detail } : {}) },
      restored: plan ? { sources: plan.sources, targets: plan.targets, deleted_first: plan.deleteFirst } : null,
      error: job.error,
    };
  }

  private requireSearch(): SearchSnapshots {
    if (this.closed) throw new BackupRefused('closed', 'this member is shutting down');
    const search = this.opts.search();
    if (!search) throw new BackupRefused('off', OFF);
    return search;
  }

  private refuseBusy(): void {
    const busy = this.jobs.running('snapshot-restore');
    if (busy) throw new BackupRefused('busy', `${new JobBusy(busy).message} (snapshot ${this.meta.get(busy.id)?.snapshot ?? '?'}); one snapshot restore at a time on a member`);
  }

  private describe(err: unknown): string {
    return this.opts.describe ? this.opts.describe(err) : err instanceof Error ? err.message : String(err);
  }
}

/**
 * The indices a backup set's restore brings back: every index in its
 * snapshot but the dot ones (system and hidden: Elasticsearch restores
 * those through feature states) and hasup's own logs and metrics, which
 * record what happened since, the restore included, and which the shipper
 * would write again between the delete and the restore.
 */
export function setIndices(indices: string[], own: (name: string) => boolean): string[] {
  return indices.filter((i) => !i.startsWith('.') && !own(i)).sort();
}
