import { randomBytes } from 'node:crypto';
import type { BackupType } from './info.js';

/**
 * Long backup operations as jobs: a request starts one and is answered at
 * once with its id; the work goes on in the background, and the job says
 * how far it is, what it made or why it failed. One job of a kind runs at a
 * time on a member (a second start is refused naming the running one). The
 * book keeps the last few finished jobs in memory for their callers to
 * read (a restarted member forgets them; pgBackRest's `info` is the record
 * of what was backed up).
 */
export type JobKind = 'backup' | 'verify';
export type JobState = 'running' | 'done' | 'failed';

export interface JobProgress {
  /** How much is done, 0-100, once known. */
  percent: number | null;
  /** The database's size when the backup began (what a full backup reads). */
  bytesTotal: number | null;
  /** percent of bytesTotal: pgBackRest reports its progress by bytes copied. */
  bytesDone: number | null;
  /** What the job does now, in words, when the percentage does not say it (the snapshot after a backup, a restore waiting its turn). */
  detail?: string;
}

export interface Job<R, K extends string = JobKind> {
  id: string;
  kind: K;
  /** The backup type asked for (backup jobs). */
  type: BackupType | null;
  /** The member that runs it. */
  member: string;
  state: JobState;
  startedAt: number;
  endedAt: number | null;
  progress: JobProgress;
  /** What the work returned, once done. */
  result: R | null;
  /** Why it failed (never a secret: see describeError), once failed. */
  error: string | null;
}

export class JobBusy<R, K extends string = JobKind> extends Error {
  constructor(readonly job: Job<R, K>) {
    super(`${job.kind} job ${job.id}${job.type ? ` (${job.type})` : ''} is running since ${new Date(job.startedAt).toISOString()}`);
  }
}

export interface JobBookOptions<R, K extends string = JobKind> {
  member: string;
  /** Finished jobs kept (per book), oldest dropped first. */
  keep?: number;
  now?: () => number;
  /** Told after every change of a job: start, progress, end. */
  onChange?: (job: Job<R, K>) => void;
  /** The error message a failed job keeps. */
  describeError?: (err: unknown) => string;
}

const DEFAULT_KEEP = 20;

/** K: the kinds of job this book runs (the backup coordinator's: backup and verify). */
export class JobBook<R, K extends string = JobKind> {
  private readonly jobs = new Map<string, Job<R, K>>();
  private readonly ends = new Map<string, Promise<void>>();
  private readonly now: () => number;

  constructor(private readonly opts: JobBookOptions<R, K>) {
    this.now = opts.now ?? Date.now;
  }

  get(id: string): Job<R, K> | undefined {
    return this.jobs.get(id);
  }

  running(kind: K): Job<R, K> | undefined {
    return [...this.jobs.values()].find((j) => j.kind === kind && j.state === 'running');
  }

  /** The newest job of a kind, running or not. */
  latest(kind: K): Job<R, K> | undefined {
    return [...this.jobs.values()].filter((j) => j.kind === kind).sort((a, b) => b.startedAt - a.startedAt)[0];
  }

  /**
   * Starts `work` as a job, unless a job of the same kind runs (JobBusy,
   * naming it). Returns the job at once; the work goes on and ends it.
   * `work` reports progress through its argument.
   */
  start(kind: K, type: BackupType | null, work: (progress: (p: Partial<JobProgress>) => void) => Promise<R>): Job<R, K> {
    const busy = this.running(kind);
    if (busy) throw new JobBusy(busy);
    const job: Job<R, K> = {
      id: `${kind}-${randomBytes(4).toString('hex')}`,
      kind,
      type,
      member: this.opts.member,
      state: 'running',
      startedAt: this.now(),
      endedAt: null,
      progress: { percent: null, bytesTotal: null, bytesDone: null },
      result: null,
      error: null,
    };
    this.jobs.set(job.id, job);
    this.prune();
    this.changed(job);
    const progress = (p: Partial<JobProgress>) => {
      if (job.state !== 'running') return;
      const next = { ...job.progress, ...p };
      if (next.percent !== null && next.bytesTotal !== null && p.bytesDone === undefined) next.bytesDone = Math.round((next.percent / 100) * next.bytesTotal);
      if (next.percent === job.progress.percent && next.bytesTotal === job.progress.bytesTotal && next.bytesDone === job.progress.bytesDone && next.detail === job.progress.detail) return;
      job.progress = next;
      this.changed(job);
    };
    // The work starts on the next turn, so the caller has the job before any of it runs.
    const end = Promise.resolve()
      .then(() => work(progress))
      .then(
        (result) => {
          job.result = result;
          job.state = 'done';
          // What it was doing is over; a job that counts its progress ends at 100 %.
          const { detail: _over, ...progress } = job.progress;
          job.progress = job.kind === 'verify' ? progress : { ...progress, percent: 100, bytesDone: progress.bytesTotal };
        },
        (err: unknown) => {
          job.error = this.opts.describeError ? this.opts.describeError(err) : err instanceof Error ? err.message : String(err);
          job.state = 'failed';
        },
      )
      .then(() => {
        job.endedAt = this.now();
        this.ends.delete(job.id);
        this.changed(job);
      });
    this.ends.set(job.id, end);
    return job;
  }

  /** Resolves with the job when it has ended, or as it is after `ms`. */
  async wait(id: string, ms: number): Promise<Job<R, K> | undefined> {
    const end = this.ends.get(id);
    if (end) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([end, new Promise((r) => (timer = setTimeout(r, ms)))]);
      clearTimeout(timer);
    }
    return this.jobs.get(id);
  }

  /** Resolves when no job runs (after their work was told to stop). */
  async settle(): Promise<void> {
    await Promise.all([...this.ends.values()]);
  }

  private changed(job: Job<R, K>): void {
    try {
      this.opts.onChange?.(job);
    } catch {
      // A listener's failure is not the job's.
    }
  }

  private prune(): void {
    const keep = this.opts.keep ?? DEFAULT_KEEP;
    const finished = [...this.jobs.values()].filter((j) => j.state !== 'running').sort((a, b) => a.startedAt - b.startedAt);
    for (const j of finished.slice(0, Math.max(0, finished.length - keep))) this.jobs.delete(j.id);
  }
}
