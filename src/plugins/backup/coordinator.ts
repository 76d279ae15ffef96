import type { BackoffOptions } from '../../supervisor/backoff.js';
import { Backoff } from '../../supervisor/backoff.js';
import type { DriverContext } from '../../supervisor/driver.js';
import type { Leadership } from '../../supervisor/leadership.js';
import type { Logger } from '../../supervisor/log.js';
import type { ArchiveReport, BackupBrief, BackupReport, JobBrief, ScheduleReport, SetBrief, StanzaState } from '../../supervisor/rumors/backup.js';
import type { ClusterSecrets } from '../../supervisor/secrets.js';
import { snapshotForBackup, type SnapshotOutcome } from './backup-snapshot.js';
import type { BackupInfo, BackupType, StanzaInfo } from './info.js';
import { JobBook, JobBusy, type Job } from './jobs.js';
import { archivedSegment, archiverFailing, localDatabase, type LocalDatabase } from './local-db.js';
import { BackupNotConfigured, PgBackRest, type BackupOptions, type CallOptions } from './pgbackrest.js';
import { configuredRepos, parseRepo, repoArchiveStates, repoPath, RepoRefused, type PushError, type RepoNumber } from './repos.js';
import type { SearchSnapshots } from './search-snapshots.js';
import { backupSetsJson, lastSetBrief } from './set-views.js';
import { serverProblem } from './files.js';
import type { ServerControl } from './server.js';
import { backupEnabled, backupSettingsFrom, type BackupSettings } from './settings.js';
import { chooseStandbys, primaryRemoteOf, primaryRemoteProblem, sourceAnnotations, sourceOf, type BackupSourceRole, type PrimaryRemote } from './standby.js';
import type { VerifyReport } from './verify.js';
import { backupJson, backupListing, verifyOutcome, type BackupJson, type BackupListing, type VerifyOutcome } from './views.js';

/**
 * The cluster side of backups, one per member (wired by src/node/daemon.ts):
 *
 *  - While this member is the PostgreSQL leader and backups are on
 *    (backup.repo_path set), it makes the repository ready: pgBackRest's
 *    idempotent stanza-create, then `check` (a WAL segment reaches the
 *    repository), retried with backoff until both pass, and again whenever
 *    the repository settings change (a config reload) or the member becomes
 *    leader again. Without it the leader's archive_command would fail.
 *  - On the leader it reads pg_stat_archiver every poll, so a failing
 *    archive_command is seen (report().archive).
 *  - It runs backup jobs on the leader (one at a time: pgBackRest's lock
 *    also guards) with their progress, and verify jobs on any member. With
 *    Elasticsearch snapshots on, a backup job ends with a snapshot paired
 *    with the new backup (backup-snapshot.ts): a backup set.
 *  - report() says all of it for /cluster and `hasup status`, and is
 *    gossiped (rumors/backup.ts), so every member can show the leader's.
 *
 * Everything slow is a child process or a socket (pgBackRest through
 * runTool, PostgreSQL through one short connection), never the event loop,
 * and everything has a time limit.
 */

/** The pgBackRest calls the coordinator makes (PgBackRest; a fake in tests). */
export interface BackupTool {
  readonly settings: BackupSettings;
  stanzaCreate(opts?: CallOptions): Promise<void>;
  check(opts?: CallOptions): Promise<void>;
  backup(type: BackupType, opts?: BackupOptions): Promise<BackupInfo>;
  info(opts?: CallOptions): Promise<StanzaInfo>;
  verify(opts?: CallOptions & { repo?: 1 | 2 }): Promise<VerifyReport>;
  /** The async archive-push's current errors (spool .error files); absent in fakes that have none. */
  archivePushErrors?(): Promise<PushError[]>;
}

/**
 * unavailable: something it needs cannot be read now (Elasticsearch, for a backup set);
 * not-standby: a backup from a follower asked of a member that cannot take it now (not a
 * streaming follower of the leader that asks); invalid: a request no member should send.
 */
export type RefusalReason = 'off' | 'no-postgresql' | 'not-leader' | 'no-leader' | 'not-writable' | 'busy' | 'closed' | 'unavailable' | 'not-standby' | 'invalid';

/** An operation that cannot run here or now, and why (the routes turn the reason into a status). */
export class BackupRefused extends Error {
  constructor(
    readonly reason: RefusalReason,
    message: string,
    /** not-leader: the leader's member id. */
    readonly leader: string | null = null,
    /** busy: the job that runs. */
    readonly job: JobView | null = null,
  ) {
    super(message);
  }
}

/** A job as the API shows it. */
export interface JobView {
  id: string;
  kind: 'backup' | 'verify';
  type: BackupType | null;
  member: string;
  state: 'running' | 'done' | 'failed';
  started_at: string;
  ended_at: string | null;
  took_ms: number | null;
  /** detail: what it does now, when the percentage does not say it (absent otherwise). */
  progress: { percent: number | null; bytes_total: number | null; bytes_done: number | null; detail?: string };
  /**
   * Where the backup is taken (backup jobs): on a follower (pgBackRest's
   * backup-standby) or on the leader, and why the leader took it itself;
   * absent until the job has chosen, and on verify jobs.
   */
  source?: JobSource;
  /** The backup made (backup jobs, once done), as `info` lists it. */
  backup: BackupJson | null;
  /** The Elasticsearch snapshot taken after the backup (a backup set), once done; absent when snapshots are off. */
  snapshot?: SnapshotOutcome;
  /** The verdict (verify jobs, once done): with two repositories verified, the first that failed, else the first. */
  verify: VerifyOutcome | null;
  /** Each repository's verdict, when the job verified more than one. */
  verify_repos?: VerifyOutcome[];
  error: string | null;
}

/** What the backup routes need (the coordinator; a fake in the route tests). */
export interface BackupOperations {
  /** This member's report (undefined where PostgreSQL is not loaded). */
  report(): BackupReport | undefined;
  /** Starts a backup job on this member, which must be the leader (the backup itself may be taken on a follower). */
  startBackup(type: BackupType, opts?: { repo?: RepoNumber }): JobView;
  /** On a follower, asked by the leader: takes a backup as a standby of the leader (backup-standby). */
  startStandbyBackup?(req: StandbyRequest): JobView;
  /** Starts a verify job on this member. */
  startVerify(opts?: { timeoutMs?: number; repo?: RepoNumber }): JobView;
  job(id: string): JobView | undefined;
  /** The job when it has ended, or as it is after `ms`. */
  waitJob(id: string, ms: number): Promise<JobView | undefined>;
  /** The repository's backups and archive (pgbackrest info), from this member; with the backup sets when Elasticsearch snapshots are on. */
  list(opts?: { timeoutMs?: number; signal?: AbortSignal }): Promise<BackupListing>;
}

/** Where a backup job's backup is taken. */
export interface JobSource {
  role: BackupSourceRole;
  /** The member that runs pgBackRest's backup. */
  member: string;
  /** On the leader's job, when a follower takes the backup: the follower's own job (GET /backup/jobs/:id there). */
  job?: string;
  /** On a follower's job: the leader whose PostgreSQL it backs up. */
  leader?: string;
  /** Why the leader took the backup itself (no follower could, or backup_standby = "off"). */
  reason?: string;
}

/** What the leader asks of a follower: a backup of this type, taken as a standby of `primary`. */
export interface StandbyRequest {
  type: BackupType;
  primary: PrimaryRemote;
  /** The leader's timeline: a follower still on an older one (just after a failover) refuses. */
  timeline?: number | null;
  /** The repository the backup goes into (the first when absent). */
  repo?: RepoNumber;
}

/** A follower refused, or could not be reached: it started nothing, so another may be asked. */
export class PeerRefused extends Error {}

/** The leader's side of asking another member (peer-client.ts over the members' API; in tests, another coordinator). */
export interface PeerBackups {
  /** Asks `member` to take a backup as a standby; its job. Throws PeerRefused when it surely started none, anything else when that is not known. */
  startStandby(member: string, req: StandbyRequest, signal: AbortSignal): Promise<JobView>;
  /** A job on `member`; undefined when it has none of that id (it restarted). */
  job(member: string, id: string, signal: AbortSignal): Promise<JobView | undefined>;
}

type JobResult = { backup: BackupInfo; snapshot?: SnapshotOutcome } | { verify: VerifyOutcome; verifyRepos?: VerifyOutcome[] };

export interface BackupCoordinatorOptions {
  memberId: string;
  /** The PostgreSQL service's driver context with the config in force; undefined while PostgreSQL is not loaded here. */
  context: () => DriverContext | undefined;
  leadership: Leadership;
  log: Logger;
  /** The report the cluster shows (the leader's, from gossip): verify and the listing read the leader's archiver from it. */
  clusterReport?: () => { member: string; report: BackupReport } | undefined;
  tool?: (ctx: DriverContext) => BackupTool;
  database?: (ctx: DriverContext) => LocalDatabase;
  now?: () => number;
  /** Pacing of stanza retries. */
  retry?: BackoffOptions;
  /** How often the leader reads pg_stat_archiver and the config is looked at again. */
  pollMs?: number;
  /** How often the leader reads `info` again for its report (last full backup). */
  infoRefreshMs?: number;
  /** How often a running backup's progress is read. */
  progressMs?: number;
  /** Reports are told at most this often (a job's start and end, or the stanza's state, at once). */
  reportEveryMs?: number;
  backupTimeoutMs?: number;
  stanzaTimeoutMs?: number;
  /** The schedules' part of the report (scheduler.ts), when backups are scheduled. */
  schedule?: () => ScheduleReport | null;
  /** Elasticsearch snapshots as configured now on this member; undefined while they are off (search-snapshots.ts). */
  search?: () => SearchSnapshots | undefined;
  /** This member's pgBackRest TLS server (server.ts), kept in line with the config at every poll; none: no backups from a follower here. */
  server?: ServerControl;
  /** Other members' backup APIs (peer-client.ts); none: the leader takes every backup itself. */
  peers?: PeerBackups;
  /** A member's advertised address as the gossip knows it: a follower checks the leader's request against it. */
  memberAddress?: (member: string) => string | undefined;
  /** How long a follower's job may go unanswered before the leader gives up on it. */
  followerSilenceMs?: number;
}

const MINUTE = 60_000;
const DEFAULT_RETRY: BackoffOptions = { initialMs: 2000, maxMs: 5 * MINUTE, factor: 2, jitter: 0.2 };
const DB_TIMEOUT_MS = 5000;
/** A checkpoint writes out every dirty buffer: allowed longer than a question. */
const CHECKPOINT_TIMEOUT_MS = 10 * MINUTE;
const INFO_TIMEOUT_MS = 2 * MINUTE;
const DEFAULT_VERIFY_TIMEOUT_MS = 6 * 60 * MINUTE;
/** How long the leader waits for its pgBackRest server to come up before it takes a backup itself. */
const SERVER_START_WAIT_MS = 5000;

export class BackupCoordinator implements BackupOperations {
  private readonly now: () => number;
  private readonly jobs: JobBook<JobResult>;
  private readonly log: Logger;
  /** The repository settings being looked after while this member leads; undefined otherwise. */
  private activeKey: string | undefined;
  private ensureAbort: AbortController | undefined;
  private ensuring: Promise<void> | undefined;
  /** The stanza-create and check under way, if any (a backup job waits for it rather than race its locks). */
  private attempt: Promise<void> | undefined;
  private stanza: StanzaState = 'off';
  private stanzaOkAt: number | null = null;
  private lastError: { at: number; message: string } | null = null;
  private retryAt: number | null = null;
  private archive: ArchiveReport | null = null;
  private lastFull: BackupBrief | null = null;
  private windowFrom: number | null = null;
  private lastBackup: BackupBrief | null = null;
  /** The newest backup set, while snapshots are on (read with info). */
  private lastSet: SetBrief | null = null;
  /** Per type, when its newest successful backup ended (the schedules' staleness warning). */
  private lastByType: Partial<Record<BackupType, number>> = {};
  private infoAt = 0;
  private readonly jobAborts = new Map<string, AbortController>();
  /** Where each backup job's backup is taken, once chosen. */
  private readonly sources = new Map<string, JobSource>();
  /** This member's running backups as a standby: job id → the leader it backs up. */
  private readonly standbyJobs = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void) | undefined;
  private ticking = false;
  private closed = false;
  /** Aborted by close(): the archiver's and info's looks in flight end with it. */
  private readonly closing = new AbortController();
  private readonly listeners = new Set<(r: BackupReport) => void>();
  private lastTold: { at: number; text: string } | undefined;
  /** One pgBackRest per config in force (it prepares its files once). */
  private toolCache: { cfg: DriverContext['cfg']; tool: BackupTool } | undefined;
  private tellTimer: NodeJS.Timeout | undefined;

  constructor(private readonly opts: BackupCoordinatorOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log.child({ component: 'backup' });
    this.jobs = new JobBook<JobResult>({
      member: opts.memberId,
      now: this.now,
      describeError: (err) => this.describe(err),
      onChange: (job) => this.onJobChange(job),
    });
  }

  start(): void {
    this.unsubscribe = this.opts.leadership.onChange(() => this.reconsider());
    this.timer = setInterval(() => void this.tick(), this.opts.pollMs ?? 15_000);
    this.timer.unref();
    this.reconsider();
    void this.tick();
  }

  /** Told every report worth telling (the daemon gossips it). */
  onReport(listener: (r: BackupReport) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  report(): BackupReport | undefined {
    const ctx = this.opts.context();
    if (!ctx) return undefined;
    const settings = backupSettingsFrom(ctx.cfg);
    const job = this.jobs.latest('backup');
    return {
      enabled: backupEnabled(settings),
      repo_path: settings.repoPath,
      active: this.activeKey !== undefined,
      stanza: this.stanza,
      stanza_ok_at: this.stanzaOkAt,
      last_error: this.lastError,
      retry_at: this.stanza === 'failed' ? this.retryAt : null,
      archive: this.archive,
      last_full: this.lastFull,
      window_from: this.windowFrom,
      last_backup: this.lastBackup,
      job: job ? jobBrief(job) : null,
      schedule: this.opts.schedule?.() ?? null,
      ...(this.opts.search?.() ? { last_set: this.lastSet } : {}),
      ...(this.opts.server ? { server: serverBrief(this.opts.server.status()) } : {}),
      at: this.now(),
    };
  }

  startBackup(type: BackupType, opts: { repo?: RepoNumber } = {}): JobView {
    const ctx = this.requireBackups();
    const repo = this.repoOrRefuse(ctx, opts.repo);
    const st = this.opts.leadership.state();
    if (st.role !== 'leader') {
      if (st.leader && st.leader !== this.opts.memberId) throw new BackupRefused('not-leader', `backups are taken on the PostgreSQL leader, member ${st.leader}; this member is ${st.role === 'replica' ? 'a follower' : 'not the leader'}`, st.leader);
      throw new BackupRefused('no-leader', `there is no PostgreSQL leader to take the backup now (${st.reason})`);
    }
    if (!st.writable) throw new BackupRefused('not-writable', `this leader's PostgreSQL takes no writes now (${st.reason}); try again when it does`);
    const busy = this.jobs.running('backup');
    if (busy) throw new BackupRefused('busy', new JobBusy(busy).message, null, this.view(busy));
    const tool = this.toolOrRefuse(ctx);
    const db = (this.opts.database ?? localDatabase)(ctx);
    const abort = new AbortController();
    // The work starts on the next turn, when `job` is set.
    const jobId = () => job.id;
    const job = this.jobs.start('backup', type, async (progress) => {
      const total = await db.databaseBytes(AbortSignal.timeout(DB_TIMEOUT_MS)).catch(() => null);
      progress({ bytesTotal: total });
      // A stanza being made is waited for; one not (yet) made is made now: the operator asked, the backoff need not be waited out.
      await this.attempt?.catch(() => undefined);
      if (this.stanza !== 'ok') await tool.stanzaCreate({ signal: abort.signal, timeoutMs: this.opts.stanzaTimeoutMs ?? 5 * MINUTE });
      if (await db.checkpointNewTimeline(AbortSignal.any([abort.signal, AbortSignal.timeout(CHECKPOINT_TIMEOUT_MS)]))) {
        this.log.info({ event: 'backup_checkpoint' }, 'checkpointed the new timeline first: this leader was promoted moments ago');
      }
      let made: BackupInfo;
      try {
        const onFollower = await this.backupOnFollower(ctx, tool, db, type, repo, jobId(), abort.signal, progress);
        if ('made' in onFollower) made = onFollower.made;
        else {
          this.sources.set(jobId(), { role: 'leader', member: this.opts.memberId, reason: onFollower.reason });
          this.log.info({ event: 'backup_source', job: jobId(), source: 'leader', reason: onFollower.reason }, `backup job ${jobId()}: the leader takes the backup itself: ${onFollower.reason}`);
          progress({ detail: undefined });
          made = await tool.backup(type, {
            ...(repo ? { repo } : {}),
            signal: abort.signal,
            timeoutMs: this.opts.backupTimeoutMs ?? 24 * 60 * MINUTE,
            progressIntervalMs: this.opts.progressMs ?? 2000,
            annotations: sourceAnnotations('leader', this.opts.memberId),
            onProgress: (p) => {
              if (p.percent !== undefined) progress({ percent: p.percent });
            },
          });
        }
      } catch (err) {
        const why = abort.signal.reason instanceof Error ? abort.signal.reason.message : undefined;
        if (abort.signal.aborted && why) throw new Error(`cancelled: ${why} (${(err as Error).message})`);
        throw err;
      }
      const search = this.opts.search?.();
      if (!search) return { backup: made };
      progress({ percent: 100 });
      const snapshot = await snapshotForBackup(search, {
        label: made.label,
        member: this.opts.memberId,
        liveBackups: async () => new Set((await tool.info({ signal: abort.signal, timeoutMs: INFO_TIMEOUT_MS })).backups.map((b) => b.label)),
        signal: abort.signal,
        onProgress: (detail) => progress({ detail }),
        describe: (err) => this.describe(err),
        now: this.now,
      });
      return { backup: made, snapshot };
    });
    this.jobAborts.set(job.id, abort);
    this.log.info({ event: 'backup_job', job: job.id, type, repo: repo ?? 1, state: 'running' }, `backup job ${job.id} (${type}, repository ${repo ?? 1}) started`);
    return this.view(job);
  }

  /**
   * On a follower, asked by the leader (POST /backup/standby): a backup
   * taken here, the leader's PostgreSQL reached through its pgBackRest
   * server as pg2 (backup-standby). Refused unless this member is a
   * streaming follower of that very leader, at the address the gossip
   * knows it by, with its own pgBackRest certificate, and no backup runs
   * here. The job is cancelled when this member's leader changes or it
   * stops following (a failover fails the backup; the next slot retries).
   */
  startStandbyBackup(req: StandbyRequest): JobView {
    const ctx = this.requireBackups();
    const settings = backupSettingsFrom(ctx.cfg);
    if (settings.backupStandby === 'off') throw new BackupRefused('off', 'backups from a follower are off on this member (backup.backup_standby = "off")');
    const problem = primaryRemoteProblem(req.primary);
    if (problem) throw new BackupRefused('invalid', `not a backup this member can take: ${problem}`);
    const p = req.primary;
    const st = this.opts.leadership.state();
    if (st.role !== 'replica') throw new BackupRefused('not-standby', `this member is not a follower (${st.role === 'leader' ? 'it leads' : st.reason})`);
    if (st.leader !== p.member) throw new BackupRefused('not-standby', `this member follows ${st.leader ?? 'no leader'}, not ${p.member}`);
    if (st.replication?.state !== 'streaming') throw new BackupRefused('not-standby', `this member does not stream from the leader now (${st.replication?.state ?? 'unknown'})`);
    if (typeof req.timeline === 'number' && typeof st.timeline === 'number' && st.timeline !== req.timeline) throw new BackupRefused('not-standby', `this member is on timeline ${st.timeline}, the leader on ${req.timeline}`);
    const known = this.opts.memberAddress?.(p.member);
    if (known !== undefined && known !== p.host) throw new BackupRefused('invalid', `the leader ${p.member} is at ${known}, not ${p.host}`);
    const server = this.opts.server;
    const noServer = server ? serverProblem(ctx) : 'no pgBackRest server here';
    if (noServer) throw new BackupRefused('off', `this member cannot reach the leader's pgBackRest server: ${noServer}`);
    const busy = this.jobs.running('backup');
    if (busy) throw new BackupRefused('busy', new JobBusy(busy).message, null, this.view(busy));
    const tool = this.toolOrRefuse(ctx);
    const repo = this.repoOrRefuse(ctx, req.repo);
    const abort = new AbortController();
    const job = this.jobs.start('backup', req.type, async (progress) => {
      try {
        // Its certificate (the client side of pgBackRest's TLS) is issued when the server is brought in line.
        await server!.sync(ctx);
        const tls = server!.status().tls;
        if (!tls) throw new Error(`this member has no pgBackRest certificate to reach the leader with (${server!.status().reason ?? 'unknown'})`);
        const made = await tool.backup(req.type, {
          ...(repo ? { repo } : {}),
          signal: abort.signal,
          timeoutMs: this.opts.backupTimeoutMs ?? 24 * 60 * MINUTE,
          progressIntervalMs: this.opts.progressMs ?? 2000,
          standby: { primary: p, tls },
          annotations: sourceAnnotations('follower', this.opts.memberId),
          onProgress: (x) => {
            if (x.percent !== undefined) progress({ percent: x.percent });
          },
        });
        return { backup: made };
      } catch (err) {
        const why = abort.signal.reason instanceof Error ? abort.signal.reason.message : undefined;
        if (abort.signal.aborted && why) throw new Error(`cancelled: ${why} (${(err as Error).message})`);
        throw err;
      }
    });
    this.jobAborts.set(job.id, abort);
    this.standbyJobs.set(job.id, p.member);
    this.sources.set(job.id, { role: 'follower', member: this.opts.memberId, leader: p.member });
    this.log.info({ event: 'backup_job', job: job.id, type: req.type, state: 'running', source: 'follower', leader: p.member }, `backup job ${job.id} (${req.type}) started on this follower, as a standby of the leader ${p.member}`);
    return this.view(job);
  }

  startVerify(opts: { timeoutMs?: number; repo?: RepoNumber } = {}): JobView {
    const ctx = this.requireBackups();
    const asked = this.repoOrRefuse(ctx, opts.repo);
    const repos = asked ? [asked] : configuredRepos(backupSettingsFrom(ctx.cfg));
    const busy = this.jobs.running('verify');
    if (busy) throw new BackupRefused('busy', new JobBusy(busy).message, null, this.view(busy));
    const tool = this.toolOrRefuse(ctx);
    const db = (this.opts.database ?? localDatabase)(ctx);
    const abort = new AbortController();
    const job = this.jobs.start('verify', null, async (progress) => {
      const outcomes: VerifyOutcome[] = [];
      // One repository after the other (each reads all of its files); the time limit is each one's.
      for (const repo of repos) {
        if (repos.length > 1) progress({ detail: `verifying repository ${repo} (${repoPath(tool.settings, repo)})` });
        const startedAt = this.now();
        const report = await tool.verify({ repo, signal: abort.signal, timeoutMs: opts.timeoutMs ?? DEFAULT_VERIFY_TIMEOUT_MS });
        const info = await tool.info({ signal: abort.signal, timeoutMs: INFO_TIMEOUT_MS }).catch(() => null);
        const localSystemId = await db.systemId(AbortSignal.timeout(DB_TIMEOUT_MS)).catch((err: unknown) => ({ unknown: this.describe(err) }));
        outcomes.push(
          verifyOutcome({
            member: this.opts.memberId,
            repo,
            repoPath: repoPath(tool.settings, repo),
            report,
            info: info ? { ...info, backups: info.backups.filter((b) => b.repo === repo), archives: info.archives.filter((a) => a.repo === repo) } : null,
            localSystemId,
            leaderArchive: this.leaderArchive(),
            startedAt,
            endedAt: this.now(),
          }),
        );
      }
      const worst = outcomes.find((o) => !o.ok) ?? outcomes[0]!;
      return outcomes.length > 1 ? { verify: worst, verifyRepos: outcomes } : { verify: worst };
    });
    this.jobAborts.set(job.id, abort);
    this.log.info({ event: 'verify_job', job: job.id, state: 'running' }, `verify job ${job.id} started`);
    return this.view(job);
  }

  /** Per type, when the newest successful backup of it ended, as the leader read it from the repository. */
  lastBackups(): Partial<Record<BackupType, number>> {
    return { ...this.lastByType };
  }

  /** Something the report shows changed outside the coordinator (the schedules'): tell it. */
  reportChanged(): void {
    this.tell(true);
  }

  job(id: string): JobView | undefined {
    const job = this.jobs.get(id);
    return job ? this.view(job) : undefined;
  }

  async waitJob(id: string, ms: number): Promise<JobView | undefined> {
    const job = await this.jobs.wait(id, ms);
    return job ? this.view(job) : undefined;
  }

  async list(opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<BackupListing> {
    const ctx = this.requireBackups();
    const tool = this.toolOrRefuse(ctx);
    try {
      const info = await tool.info({ timeoutMs: opts.timeoutMs ?? INFO_TIMEOUT_MS, ...(opts.signal ? { signal: opts.signal } : {}) });
      const listing = await this.withRepoArchive(tool, backupListing({ member: this.opts.memberId, repoPath: tool.settings.repoPath, info, archive: this.leaderArchive()?.archive ?? null }), info);
      const search = this.opts.search?.();
      if (!search) return listing;
      try {
        return { ...listing, sets: backupSetsJson(info.backups, await search.list()) };
      } catch (err) {
        // The backups are still worth listing; the sets are said to be unknown, and why.
        return { ...listing, sets_error: `cannot list the Elasticsearch snapshots in ${search.repoPath}: ${this.describe(err)}` };
      }
    } catch (err) {
      throw new Error(this.describe(err));
    }
  }

  /**
   * With two repositories, each one's archive (repos.ts): how far its WAL
   * goes, and the async archive-push's errors naming it (only the leader,
   * which archives, has them in its spool).
   */
  private async withRepoArchive(tool: BackupTool, listing: BackupListing, info: StanzaInfo): Promise<BackupListing> {
    if (configuredRepos(tool.settings).length < 2) return listing;
    const pushErrors = (await tool.archivePushErrors?.().catch(() => [])) ?? [];
    const states = repoArchiveStates({ settings: tool.settings, repos: info.repos, archives: info.archives, pushErrors });
    for (const st of states) st.detail = st.detail === null ? null : this.describe(new Error(st.detail));
    return { ...listing, repo_path_2: tool.settings.repo2Path, repo_archive: states };
  }

  /** Stops looking after the stanza, cancels running jobs and waits for them. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.closing.abort();
    clearInterval(this.timer);
    clearTimeout(this.tellTimer);
    this.unsubscribe?.();
    this.ensureAbort?.abort();
    for (const abort of this.jobAborts.values()) abort.abort(new Error('this member is shutting down'));
    await this.ensuring;
    await this.jobs.settle();
    await this.opts.server?.close();
    this.listeners.clear();
  }

  // ---- the stanza and the archiver, while leading ------------------------------

  /** Compares what is (leadership, config) with what is looked after, and starts or stops that. */
  private reconsider(): void {
    if (this.closed) return;
    const ctx = this.opts.context();
    const settings = ctx ? backupSettingsFrom(ctx.cfg) : undefined;
    const enabled = settings !== undefined && backupEnabled(settings);
    const leading = this.opts.leadership.state().role === 'leader';
    const running = this.jobs.running('backup');
    const st = this.opts.leadership.state();
    const leaderOfStandby = running ? this.standbyJobs.get(running.id) : undefined;
    if (running && leaderOfStandby !== undefined) {
      // A backup taken here as a standby ends with the leadership it was taken under.
      if (st.role !== 'replica' || st.leader !== leaderOfStandby) {
        const now = st.role === 'leader' ? 'this member leads now' : `this member's leader is now ${st.leader ?? 'unknown'}`;
        this.jobAborts.get(running.id)?.abort(new Error(`the leader changed during the backup (it was ${leaderOfStandby}; ${now})`));
      }
    } else if (!leading && running) this.jobAborts.get(running.id)?.abort(new Error('this member is no longer the PostgreSQL leader'));
    const key = enabled && leading ? JSON.stringify([settings.repoPath, settings.repo2Path, settings.cipher]) : undefined;
    if (key === this.activeKey) {
      if (key === undefined) this.stanza = enabled ? 'unknown' : 'off';
      this.tell(false);
      return;
    }
    const was = this.activeKey;
    this.activeKey = key;
    this.ensureAbort?.abort();
    this.ensureAbort = undefined;
    this.archive = null;
    this.retryAt = null;
    this.infoAt = 0;
    if (key === undefined) {
      this.stanza = enabled ? 'unknown' : 'off';
      this.lastFull = null;
      this.lastBackup = null;
      this.lastSet = null;
      this.lastByType = {};
      if (was !== undefined) this.log.info({ event: 'backup_stanza', state: this.stanza }, enabled ? 'no longer the PostgreSQL leader: the new leader looks after the backup repository' : 'backups are off');
    } else {
      this.startEnsuring(key, was === undefined ? 'this member leads PostgreSQL' : 'the repository settings changed');
    }
    this.tell(true);
  }

  private startEnsuring(key: string, why: string): void {
    this.ensureAbort?.abort();
    const abort = new AbortController();
    this.ensureAbort = abort;
    this.stanza = 'creating';
    const previous = this.ensuring ?? Promise.resolve();
    this.log.info({ event: 'backup_stanza', state: 'creating', reason: why }, `${why}: making the backup repository ready (stanza-create, check)`);
    this.ensuring = previous.then(() => this.ensure(key, abort.signal));
  }

  private async ensure(key: string, signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(this.opts.retry ?? DEFAULT_RETRY);
    while (!signal.aborted && this.activeKey === key) {
      const ctx = this.opts.context();
      if (!ctx) return;
      this.stanza = 'creating';
      this.retryAt = null;
      this.tell(true);
      try {
        const tool = this.toolFor(ctx);
        const timeoutMs = this.opts.stanzaTimeoutMs ?? 5 * MINUTE;
        this.attempt = (async () => {
          await tool.stanzaCreate({ signal, timeoutMs });
          await tool.check({ signal, timeoutMs });
        })();
        try {
          await this.attempt;
        } finally {
          this.attempt = undefined;
        }
        if (signal.aborted) return;
        this.stanza = 'ok';
        this.stanzaOkAt = this.now();
        if (this.lastError?.message.startsWith('stanza: ')) this.lastError = null;
        this.log.info({ event: 'backup_stanza', state: 'ok', repo_path: tool.settings.repoPath }, `backup repository ${tool.settings.repoPath} is ready: stanza made, WAL reaches it`);
        this.tell(true);
        await this.refreshInfo(ctx, signal);
        return;
      } catch (err) {
        if (signal.aborted) return;
        const delay = backoff.next();
        const message = this.describe(err);
        this.stanza = 'failed';
        this.lastError = { at: this.now(), message: `stanza: ${message}` };
        this.retryAt = this.now() + delay;
        this.log.warn({ event: 'backup_stanza', state: 'failed', reason: message, retry_ms: delay }, `the backup repository is not ready: ${message}; retrying in ${delay} ms`);
        this.tell(true);
        await sleep(delay, signal);
      }
    }
  }

  /** Once per poll: the config may have changed; the leader reads its archiver. */
  private async tick(): Promise<void> {
    if (this.ticking || this.closed) return;
    this.ticking = true;
    try {
      this.reconsider();
      const ctx = this.opts.context();
      // pgBackRest's server runs on every member with backups on, whether it leads or not.
      void this.opts.server?.sync(ctx);
      if (this.activeKey === undefined || !ctx) return;
      const key = this.activeKey;
      try {
        const a = await (this.opts.database ?? localDatabase)(ctx).archiver(AbortSignal.any([AbortSignal.timeout(DB_TIMEOUT_MS), this.closing.signal]));
        if (this.activeKey !== key) return;
        const failing = archiverFailing(a);
        let reason = failing ? this.archive?.failing_reason : undefined;
        if (failing && !this.archive?.failing) {
          // pgBackRest's own reason, from the async archive-push's error file: with two repositories it names the one that refused (the other still gets the WAL).
          const why = (await Promise.resolve().then(() => this.toolFor(ctx).archivePushErrors?.()).catch(() => undefined))?.at(-1);
          reason = why ? this.describe(new Error(why.message)).slice(0, 300) : undefined;
          this.log.warn({ event: 'archive_failing', wal: a.lastFailedWal, ...(reason ? { reason } : {}) }, `WAL archiving fails: segment ${a.lastFailedWal ?? '?'} could not be archived${reason ? `: ${reason}` : ''}`);
        }
        if (!failing && this.archive?.failing) this.log.info({ event: 'archive_ok', wal: a.lastArchivedWal }, `WAL archiving works again: ${a.lastArchivedWal ?? '?'} archived`);
        const major = this.archive === null || failing !== this.archive.failing;
        // "Archived up to" is a segment: a history or partial file archived last leaves the segment before it.
        const segment = archivedSegment(a.lastArchivedWal);
        const lastWal = segment ?? this.archive?.last_archived_wal ?? null;
        const lastAt = segment !== undefined ? a.lastArchivedAt : (this.archive?.last_archived_at ?? null);
        this.archive = { last_archived_wal: lastWal, last_archived_at: lastAt, failed_count: a.failedCount, last_failed_wal: a.lastFailedWal, last_failed_at: a.lastFailedAt, failing, ...(reason ? { failing_reason: reason } : {}), waiting: a.waiting, oldest_waiting_at: a.oldestWaitingAt };
        this.tell(major);
      } catch (err) {
        this.log.debug({ event: 'archiver_unread', reason: (err as Error).message }, 'pg_stat_archiver could not be read');
      }
      if (this.stanza === 'ok' && this.now() - this.infoAt >= (this.opts.infoRefreshMs ?? 10 * MINUTE)) await this.refreshInfo(ctx, this.closing.signal);
    } finally {
      this.ticking = false;
    }
  }

  /** The newest full backup and the newest of any type, for the report. */
  private async refreshInfo(ctx: DriverContext, signal?: AbortSignal): Promise<void> {
    this.infoAt = this.now();
    try {
      const info = await this.toolFor(ctx).info({ timeoutMs: INFO_TIMEOUT_MS, ...(signal ? { signal } : {}) });
      const usable = info.backups.filter((b) => !b.error).sort((a, b) => a.stoppedAt.getTime() - b.stoppedAt.getTime());
      const full = usable.filter((b) => b.type === 'full').pop();
      const newest = usable[usable.length - 1];
      this.lastFull = full ? brief(full) : null;
      const first = usable.find((b) => b.repo === 1);
      this.windowFrom = first ? first.stoppedAt.getTime() : null;
      this.lastBackup = newest ? brief(newest) : null;
      this.lastByType = {};
      for (const b of usable) this.lastByType[b.type] = b.stoppedAt.getTime();
      await this.refreshLastSet(info.backups, signal);
      this.tell(false);
    } catch (err) {
      this.log.debug({ event: 'backup_info_unread', reason: this.describe(err) }, 'pgbackrest info could not be read');
    }
  }

  /** The newest backup set, when snapshots are on; kept as it was when Elasticsearch cannot be read. */
  private async refreshLastSet(backups: BackupInfo[], signal?: AbortSignal): Promise<void> {
    const search = this.opts.search?.();
    if (!search) {
      this.lastSet = null;
      return;
    }
    try {
      const snapshots = await search.list();
      if (!signal?.aborted) this.lastSet = lastSetBrief(backups, snapshots);
    } catch (err) {
      this.log.debug({ event: 'snapshots_unread', reason: this.describe(err) }, 'the Elasticsearch snapshots could not be listed');
    }
  }

  private onJobChange(job: Job<JobResult>): void {
    // Sources of jobs the book no longer keeps are forgotten with them.
    for (const id of this.sources.keys()) if (!this.jobs.get(id)) this.sources.delete(id);
    if (job.state === 'running') {
      this.tell(job.progress.percent === null);
      return;
    }
    this.jobAborts.delete(job.id);
    this.standbyJobs.delete(job.id);
    const took = job.endedAt !== null ? job.endedAt - job.startedAt : null;
    if (job.state === 'failed') {
      this.log.warn({ event: `${job.kind}_job`, job: job.id, state: 'failed', reason: job.error, took_ms: took }, `${job.kind} job ${job.id} failed: ${job.error}`);
      if (job.kind === 'backup') this.lastError = { at: job.endedAt ?? this.now(), message: `backup job ${job.id}: ${job.error}` };
    } else if (job.result && 'backup' in job.result) {
      const b = job.result.backup;
      this.log.info({ event: 'backup_job', job: job.id, state: 'done', label: b.label, type: b.type, took_ms: took }, `backup job ${job.id} done: ${b.label} (${b.type})`);
      if (job.result.snapshot) logSnapshotOutcome(this.log, job.id, b.label, job.result.snapshot);
      this.lastBackup = brief(b);
      if (b.type === 'full') this.lastFull = brief(b);
      if (!b.error) this.lastByType[b.type] = Math.max(this.lastByType[b.type] ?? 0, b.stoppedAt.getTime());
      if (this.lastError?.message.startsWith('backup job ')) this.lastError = null;
      // A backup also ends in pgBackRest's expire; the report reads info again.
      const ctx = this.opts.context();
      if (ctx && this.activeKey !== undefined) {
        if (this.stanza === 'failed') this.startEnsuring(this.activeKey, 'a backup succeeded');
        void this.refreshInfo(ctx, this.closing.signal);
      }
    } else if (job.result && 'verify' in job.result) {
      const v = job.result.verify;
      const fields = { event: 'verify_job', job: job.id, state: 'done', ok: v.ok, problems: v.problems.length, took_ms: took };
      if (v.ok) this.log.info(fields, `verify job ${job.id}: the repository is sound`);
      else this.log.warn(fields, `verify job ${job.id}: ${v.problems.length} problem(s): ${v.problems.slice(0, 3).join('; ')}`);
    }
    this.tell(true);
  }

  // ---- backups from a follower, on the leader ---------------------------------------

  /**
   * The leader's side of a backup from a follower: when backup_standby
   * allows, this leader's pgBackRest server runs and a follower streams
   * within STANDBY_MAX_LAG_BYTES (pg_stat_replication), asks the best one to
   * take the backup (POST /backup/standby there), and follows its job,
   * mirroring its progress, until it ends; the backup is then read from the
   * repository. `{ reason }` when no follower took it (the leader takes it
   * itself then, and the job says why); a follower's failure fails the job
   * (no second backup is started: the next slot retries). A follower that
   * may or may not have started (its answer was lost) fails the job too:
   * two backups must not run at once.
   */
  private async backupOnFollower(
    ctx: DriverContext,
    tool: BackupTool,
    db: LocalDatabase,
    type: BackupType,
    repo: RepoNumber | undefined,
    jobId: string,
    signal: AbortSignal,
    progress: (p: { percent?: number | null; detail?: string }) => void,
  ): Promise<{ made: BackupInfo } | { reason: string }> {
    const settings = backupSettingsFrom(ctx.cfg);
    if (settings.backupStandby === 'off') return { reason: 'backup.backup_standby = "off"' };
    const peers = this.opts.peers;
    if (!peers) return { reason: 'this member cannot ask other members (it serves no API)' };
    // The server is brought in line now (a member just started may not have had its first poll), and given a moment to start.
    await this.opts.server?.sync(ctx);
    for (let waited = 0; this.opts.server?.status().state === 'starting' && waited < SERVER_START_WAIT_MS; waited += 250) await sleep(250, signal);
    const server = this.opts.server?.status();
    if (!server || server.state !== 'running') return { reason: `this leader's pgBackRest server is not running (${server?.reason ?? server?.state ?? 'none here'}), so no follower can reach it` };
    let rows;
    try {
      rows = await db.replicas(AbortSignal.any([signal, AbortSignal.timeout(DB_TIMEOUT_MS)]));
    } catch (err) {
      if (signal.aborted) throw err;
      return { reason: `pg_stat_replication could not be read (${this.describe(err)})` };
    }
    const choice = chooseStandbys(rows);
    const refusals = choice.skipped.map((x) => `${x.member} ${x.why}`);
    const primary = primaryRemoteOf(ctx, settings);
    for (const member of choice.candidates) {
      let remote: JobView;
      try {
        remote = await peers.startStandby(member, { type, primary, timeline: this.opts.leadership.state().timeline, ...(repo ? { repo } : {}) }, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        if (!(err instanceof PeerRefused)) throw new Error(`follower ${member} was asked to take the backup and its answer was lost (${this.describe(err)}); not starting a second one`);
        refusals.push(`${member} refused: ${this.describe(err)}`);
        continue;
      }
      this.sources.set(jobId, { role: 'follower', member, job: remote.id });
      this.log.info({ event: 'backup_source', job: jobId, source: 'follower', follower: member, follower_job: remote.id }, `backup job ${jobId}: follower ${member} takes the backup (its job ${remote.id})`);
      const label = await this.followRemote(peers, member, remote, signal, progress);
      const made = (await tool.info({ signal, timeoutMs: INFO_TIMEOUT_MS })).backups.filter((b) => b.label === label).pop();
      if (!made) throw new Error(`follower ${member} made backup ${label}, which pgbackrest info does not list here`);
      return { made };
    }
    if (rows.length === 0) return { reason: 'no follower streams from this leader' };
    return { reason: `no follower could take it (${refusals.join('; ')})` };
  }

  /** Polls a follower's job until it ends; its label when done, its error thrown when it failed. */
  private async followRemote(peers: PeerBackups, member: string, first: JobView, signal: AbortSignal, progress: (p: { percent?: number | null; detail?: string }) => void): Promise<string> {
    const every = this.opts.progressMs ?? 2000;
    const silence = this.opts.followerSilenceMs ?? 60_000;
    let job = first;
    let heardAt = this.now();
    let lastError = '';
    while (job.state === 'running') {
      progress({ percent: job.progress.percent, detail: `taken on follower ${member}${job.progress.percent !== null ? `: ${job.progress.percent}%` : ''}` });
      await sleep(every, signal);
      signal.throwIfAborted();
      try {
        const now = await peers.job(member, job.id, AbortSignal.any([signal, AbortSignal.timeout(Math.max(every * 5, 10_000))]));
        if (!now) throw new Error(`follower ${member} has no job ${job.id} any more (it restarted); the backup is lost with it`);
        job = now;
        heardAt = this.now();
      } catch (err) {
        if (signal.aborted) throw err;
        if (/has no job/.test((err as Error).message)) throw err;
        lastError = this.describe(err);
        if (this.now() - heardAt > silence) throw new Error(`lost track of the backup on follower ${member} (job ${job.id}): no answer for ${Math.round(silence / 1000)} s (${lastError})`);
      }
    }
    if (job.state === 'failed') throw new Error(`the backup on follower ${member} failed: ${job.error ?? 'no reason given'}`);
    if (!job.backup) throw new Error(`follower ${member} says its job ${job.id} is done but names no backup`);
    return job.backup.label;
  }

  // ---- helpers -------------------------------------------------------------------

  private view(job: Job<JobResult>): JobView {
    const source = this.sources.get(job.id);
    return source ? { ...jobView(job), source } : jobView(job);
  }

  private requireBackups(): DriverContext {
    if (this.closed) throw new BackupRefused('closed', 'this member is shutting down');
    const ctx = this.opts.context();
    if (!ctx) throw new BackupRefused('no-postgresql', 'PostgreSQL is not loaded on this member; ask a member that runs it');
    if (!backupEnabled(backupSettingsFrom(ctx.cfg))) throw new BackupRefused('off', 'backups are off on this member: set [service.postgresql.backup] repo_path on every member');
    return ctx;
  }

  private toolFor(ctx: DriverContext): BackupTool {
    if (this.toolCache?.cfg !== ctx.cfg) this.toolCache = { cfg: ctx.cfg, tool: (this.opts.tool ?? PgBackRest.forService)(ctx) };
    return this.toolCache.tool;
  }

  /** The repository asked for (1 or 2 with repo2_path set), refused otherwise; undefined when none was asked. */
  private repoOrRefuse(ctx: DriverContext, repo: unknown): RepoNumber | undefined {
    try {
      return parseRepo(repo, backupSettingsFrom(ctx.cfg));
    } catch (err) {
      if (err instanceof RepoRefused) throw new BackupRefused('invalid', err.message);
      throw err;
    }
  }

  private toolOrRefuse(ctx: DriverContext): BackupTool {
    try {
      return this.toolFor(ctx);
    } catch (err) {
      if (err instanceof BackupNotConfigured) throw new BackupRefused('off', this.describe(err));
      throw err;
    }
  }

  /** The leader's archiver: this member's when it leads, else from the cluster's report. */
  private leaderArchive(): { member: string; archive: ArchiveReport } | null {
    if (this.activeKey !== undefined && this.archive) return { member: this.opts.memberId, archive: this.archive };
    const cluster = this.opts.clusterReport?.();
    return cluster && cluster.report.active && cluster.report.archive ? { member: cluster.member, archive: cluster.report.archive } : null;
  }

  /** An error as an operator may see it: its message, with every cluster secret blanked out. */
  private describe(err: unknown): string {
    const message = err instanceof Error ? err.message : String(err);
    return scrubSecrets(message, this.opts.context()?.secrets);
  }

  /**
   * Tells the listeners the report, when it changed: at once for `major`
   * changes, otherwise at most every reportEveryMs (a backup's progress
   * and the archiver's count change often; the gossip need not).
   */
  private tell(major: boolean): void {
    if (this.closed || this.listeners.size === 0) return;
    const every = this.opts.reportEveryMs ?? 5000;
    const since = this.lastTold ? this.now() - this.lastTold.at : Infinity;
    if (!major && since < every) {
      this.tellTimer ??= setTimeout(() => {
        this.tellTimer = undefined;
        this.tell(true);
      }, every - since);
      this.tellTimer.unref?.();
      return;
    }
    clearTimeout(this.tellTimer);
    this.tellTimer = undefined;
    const r = this.report();
    if (!r) return;
    const text = JSON.stringify({ ...r, at: 0 });
    if (this.lastTold?.text === text) return;
    this.lastTold = { at: this.now(), text };
    for (const l of this.listeners) {
      try {
        l(r);
      } catch (err) {
        this.log.warn({ err }, 'a backup report listener failed');
      }
    }
  }
}

function brief(b: BackupInfo): BackupBrief {
  const source = sourceOf(b.annotations);
  return { label: b.label, type: b.type, stopped_at: b.stoppedAt.getTime(), ...(source ? { taken_on: source } : {}) };
}

function serverBrief(st: ReturnType<ServerControl['status']>): NonNullable<BackupReport['server']> {
  return { state: st.state, reason: st.reason };
}

function jobBrief(job: Job<JobResult>): JobBrief {
  return { id: job.id, kind: job.kind, type: job.type, state: job.state, percent: job.progress.percent, started_at: job.startedAt, ended_at: job.endedAt, error: job.error };
}

export function jobView(job: Job<JobResult>): JobView {
  return {
    id: job.id,
    kind: job.kind,
    type: job.type,
    member: job.member,
    state: job.state,
    started_at: new Date(job.startedAt).toISOString(),
    ended_at: job.endedAt === null ? null : new Date(job.endedAt).toISOString(),
    took_ms: job.endedAt === null ? null : job.endedAt - job.startedAt,
    progress: { percent: job.progress.percent, bytes_total: job.progress.bytesTotal, bytes_done: job.progress.bytesDone, ...(job.progress.detail ? { detail: job.progress.detail } : {}) },
    backup: job.result && 'backup' in job.result ? backupJson(job.result.backup) : null,
    ...(job.result && 'backup' in job.result && job.result.snapshot ? { snapshot: job.result.snapshot } : {}),
    verify: job.result && 'verify' in job.result ? job.result.verify : null,
    ...(job.result && 'verify' in job.result && job.result.verifyRepos ? { verify_repos: job.result.verifyRepos } : {}),
    error: job.error,
  };
}

function logSnapshotOutcome(log: Logger, job: string, label: string, s: SnapshotOutcome): void {
  const fields = { event: 'backup_snapshot', job, label, snapshot: s.name, state: s.state, took_ms: s.took_ms, retention_deleted: s.retention?.deleted.length ?? 0 };
  if (s.error) log.warn({ ...fields, reason: s.error }, `backup ${label}: the Elasticsearch snapshot ${s.name ?? ''} is not whole, the backup set is incomplete: ${s.error}`);
  else log.info(fields, `backup ${label}: Elasticsearch snapshot ${s.name} taken; the backup set is complete`);
  if (s.retention?.error) log.warn({ event: 'snapshot_retention', reason: s.retention.error }, `snapshot retention stopped: ${s.retention.error}`);
  else if (s.retention && s.retention.deleted.length > 0) log.info({ event: 'snapshot_retention', deleted: s.retention.deleted }, `snapshot retention deleted ${s.retention.deleted.join(', ')}`);
}

/** The secrets among the cluster secrets (not its id, name or voter count): passwords, the API token, the ring key, the repository passphrase. */
function secretValues(secrets: ClusterSecrets): string[] {
  return [secrets.api_token, secrets.ring_key, secrets.postgresql?.superuser_password, secrets.postgresql?.replication_password, secrets.backup?.repo_cipher_pass].filter(
    (v): v is string => typeof v === 'string' && v.length >= 6,
  );
}

/** `text` with every cluster secret in it replaced by [redacted]. */
export function scrubSecrets(text: string, secrets: ClusterSecrets | undefined): string {
  if (!secrets) return text;
  let out = text;
  for (const v of secretValues(secrets).sort((a, b) => b.length - a.length)) out = out.split(v).join('[redacted]');
  return out;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}
