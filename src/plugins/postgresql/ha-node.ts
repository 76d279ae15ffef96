import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import type { BootstrapPlan, ConnectedReplica, DatabaseStatus, PeerEndpoint, ReplicatedDatabase, RestoreTarget } from '../../ha/index.js';
import { checkHaSettings, haSettingsFrom, PRIMARY_CLUSTER } from '../../ha/index.js';
import type { DriverContext } from '../../supervisor/driver.js';
import type { Logger } from '../../supervisor/log.js';
import { isProcessLive } from '../../supervisor/pidfile.js';
import type { ServiceStatus } from '../../supervisor/service.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import type { BackupInfo } from '../backup/info.js';
import { ensureOwnedDir, isFile } from '../service-dirs.js';
import { localHost, PgSession, superuserTarget, withClient, type PgTarget } from './connect.js';
import { dropAutoConfSettings } from './auto-conf.js';
import { clearPeerFence, fenceOverSql } from './peer-fence.js';
import { initDataDir, isInitialized } from './initdb.js';
import { cloneFromLeader, controlData, lsnText, rewindFrom } from './replication-tools.js';
import {
  clearWasPrimary,
  haConfPath,
  HA_STATE_MARK,
  markWasPrimary,
  renderHaConf,
  emptyDataDir,
  setDataAside,
  slotName,
  standbySignalPath,
  wasPrimary,
  writeHaConf,
  writePassfile,
  writeStandbySignal,
  type HaConfState,
  type Upstream,
} from './standby-config.js';

/**
 * PostgreSQL as the election sees it (ReplicatedDatabase): promotion with
 * pg_promote(), fencing by fast shutdown, re-pointing a standby by rewriting
 * ha.conf and reloading (PostgreSQL 13+ reloads primary_conninfo), rewind or
 * re-clone of a former primary, synchronous standbys and replication slots.
 * It also decides, in the driver's prepare(), how a member without data gets
 * some (initdb or pg_basebackup), and makes every start a standby start:
 * only a promotion ordered by the holder of the leader lease makes a primary.
 */
export interface PgServiceHandle {
  status(): ServiceStatus;
  start(): Promise<void>;
  stop(): Promise<void>;
  config(): TomlTable;
}

export interface PostgresHaNodeDeps {
  memberId: string;
  ip: string;
  /** The supervisor's PostgreSQL service, once loaded. */
  service: () => PgServiceHandle | undefined;
  bootstrap: (signal: AbortSignal) => Promise<BootstrapPlan>;
  bootstrapFailed: () => Promise<void>;
  /** Restores the data directory from the backup repository (absent when backups are off). */
  restoreData?: (ctx: DriverContext, target: RestoreTarget, opts: { delta: boolean; signal: AbortSignal }) => Promise<void>;
  /** A warm spare's repository copy (read only); absent where the member cannot be one. */
  spare?: SparePort;
  /** Aborts waits for the cluster (the member is stopping). */
  stopSignal: AbortSignal;
  log: Logger;
}

/**
 * What the node needs of a warm spare's repository copy ([ha]
 * standby_of_repo): the settings' check, and the copy itself
 * (src/plugins/backup/source-repo.ts), read only.
 */
export interface SparePort {
  check(cfg: TomlTable): string | undefined;
  source(ctx: DriverContext, repo: string): SpareSource;
}

export interface SpareSource {
  /** PostgreSQL's restore_command reading the copy's archive. */
  restoreCommand(): string;
  /** Checks the copy is there and writes hasup's configuration for it. */
  prepare(): Promise<void>;
  /** The newest usable backup in the copy. */
  newestBackup(signal?: AbortSignal): Promise<BackupInfo | undefined>;
  /** The system identifier of the database the copy's stanza holds (null when unknown). */
  systemId(signal?: AbortSignal): Promise<string | null>;
  /** Restores backup `label` (the newest when absent) as a standby, in place with `delta`. */
  restoreStandby(opts: { label?: string; delta: boolean; signal?: AbortSignal }): Promise<{ label: string; stoppedAt: number }>;
}

/** The backup a warm spare's data was last restored from (written after each restore, in the service directory). */
export interface SpareBase {
  label: string;
  /** When the backup ended on the primary cluster, and when it was restored here (ms). */
  stopped_at: number;
  restored_at: number;
}

/** Where a warm spare's standby is on the primary cluster's history. */
export interface ReplayInfo {
  /** The last WAL position replayed, as 0/3000060, and the segment it is in. */
  lsn: string;
  segment: string | null;
  /** When the last transaction replayed committed on the primary cluster (ms since the epoch), null when none was replayed since the start. */
  lastXactAt: number | null;
}

/**
 * After SIGINT (fast shutdown), how long before SIGQUIT (immediate). A fast
 * shutdown refuses connections and ends sessions at once but then waits for
 * the walsenders to hand every record to the standbys; a fenced leader cut
 * off from them gives up on that sooner than one handing over.
 */
const FAST_STOP_MS = 3000;
const HANDOVER_STOP_MS = 15_000;
const IMMEDIATE_STOP_MS = 5000;
const CLONE_RETRY_MS = 1000;
const SETTING_APPLY_MS = 3000;
const RECOVERY_POLL_MS = 1000;
/** What pgBackRest's restore writes into postgresql.auto.conf. */
const RECOVERY_SETTINGS = ['restore_command', 'recovery_target\\w*'];

interface StatusRow {
  in_recovery: boolean;
  flush: string | null;
  received: string | null;
  replayed: string | null;
  primary_tli: number | null;
  receiver_tli: number | null;
  receiver_status: string | null;
  upstream_end: string | null;
  replay_lag_s: number | null;
  checkpoint_tli: number | null;
  wal_tli: number | null;
}

export class PostgresHaNode implements ReplicatedDatabase {
  private ctx: DriverContext | undefined;
  private conf: HaConfState = { upstream: null, syncStandbys: null };
  private confLoaded = false;
  /** The loop's status query runs every second or so: one kept-open connection. */
  private readonly statusSession = new PgSession();
  /** Kept-open sessions to the peers, for the rogue-primary check. */
  private readonly peerSessions = new Map<string, PgSession>();
  /** prepare() is creating the data directory (initdb or a copy of the leader). */
  private creating = false;
  /** The next start is a restore's: archive recovery to its target, not a standby. */
  private recoveryStart = false;
  /** A warm spare's re-base runs: PostgreSQL is stopped on purpose (status says so; the HA loop leaves it alone). */
  private busy: string | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: PostgresHaNodeDeps) {
    this.log = deps.log.child({ component: 'postgresql-ha' });
  }

  // ---- driver hooks -------------------------------------------------------------

  /** The latest driver context (config changes arrive through the health checks). */
  noteContext(ctx: DriverContext): void {
    this.ctx = ctx;
  }

  /**
   * Runs in the driver's prepare() before every start: refuses impossible
   * timings, writes the passfile, creates or copies the data directory when
   * there is none, and makes the start a standby start.
   */
  async prepareData(ctx: DriverContext): Promise<void> {
    this.ctx = ctx;
    const problem = checkHaSettings(haSettingsFrom(ctx.cfg)) ?? this.deps.spare?.check(ctx.cfg);
    if (problem) throw new Error(problem);
    await writePassfile(ctx);
    await this.loadConf(ctx);
    // A warm spare's repository copy: hasup's configuration for it (its restore_command's). Not fatal here: a member
    // that cannot read the copy still streams from its leader; a restore from it says why it cannot.
    await this.spareSource(ctx)
      ?.prepare()
      .catch((err: unknown) => this.log.warn({ event: 'spare_source', err }, `the warm spare's repository copy: ${(err as Error).message}`));
    if (!(await isInitialized(ctx.paths.data))) {
      this.creating = true;
      try {
        await this.createData(ctx);
      } finally {
        this.creating = false;
      }
    }
    if (await clearPeerFence(ctx.paths.data)) {
      this.log.warn({ event: 'peer_fence_cleared' }, 'removed the fence a peer set over SQL while this member was a rogue primary (postgresql.auto.conf)');
    }
    this.refreshRestoreCommand(ctx);
    await writeHaConf(ctx, this.conf);
    // A restore's start replays to its target and ends recovery (recovery.signal, from pgBackRest).
    if (this.recoveryStart) return;
    // pgBackRest's recovery settings were for that start alone: a standby must not stop (or promote) at the old target.
    // They stay in the file while the restored server runs, so a reload does not take them as changed.
    if (await dropAutoConfSettings(ctx.paths.data, RECOVERY_SETTINGS)) this.log.info({ event: 'restore_settings_cleared' }, "removed the last restore's recovery target from postgresql.auto.conf");
    await writeStandbySignal(ctx);
  }

  async peerRole(peer: PeerEndpoint, signal: AbortSignal): Promise<'primary' | 'standby' | 'unreachable'> {
    const ctx = this.requireCtx();
    let session = this.peerSessions.get(peer.member);
    if (!session) this.peerSessions.set(peer.member, (session = new PgSession()));
    try {
      const inRecovery = await session.run({ ...this.target(ctx), host: peer.host, port: peer.port }, signal, async (c) => (await c.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).rows[0]?.r);
      return inRecovery === false ? 'primary' : 'standby';
    } catch {
      return 'unreachable';
    }
  }

  async fencePeer(peer: PeerEndpoint, signal: AbortSignal): Promise<string> {
    const ctx = this.requireCtx();
    return withClient({ ...this.target(ctx), host: peer.host, port: peer.port }, signal, fenceOverSql);
  }

  private async createData(ctx: DriverContext): Promise<void> {
    const signal = this.deps.stopSignal;
    for (;;) {
      const plan = await this.deps.bootstrap(signal);
      if (plan.kind === 'init') {
        try {
          await initDataDir(ctx);
        } catch (err) {
          await this.deps.bootstrapFailed();
          throw err;
        }
        this.conf.upstream = null;
        return;
      }
      if (plan.kind === 'restore') {
        // A cluster restore names this member, which has no data: restore into the empty directory;
        // this start replays to the target and ends recovery (restore() waits for that).
        if (!this.deps.restoreData) throw new Error('backups are not configured on this member: it cannot restore');
        await this.deps.restoreData(ctx, plan.target, { delta: false, signal });
        this.conf = { upstream: null, syncStandbys: null };
        this.recoveryStart = true;
        return;
      }
      if (plan.kind === 'standby-restore') {
        // A warm spare's first member: the newest backup of the repository copy, as a standby replaying its archive.
        const source = this.spareSource(ctx);
        if (!source) throw new Error(`this member cannot restore from the repository copy ${plan.repo} (ha.standby_of_repo is not in its config)`);
        await emptyDataDir(ctx);
        const base = await source.restoreStandby({ delta: false, signal });
        await writeSpareBase(ctx, base);
        this.conf = { upstream: null, syncStandbys: null };
        this.log.warn({ event: 'spare_restored', repo: plan.repo, label: base.label }, `restored backup ${base.label} (the newest) of the repository copy ${plan.repo} as a standby`);
        return;
      }
      try {
        await cloneFromLeader(ctx, plan.leader, signal);
        this.conf.upstream = plan.leader;
        return;
      } catch (err) {
        if (signal.aborted) throw err;
        this.log.warn({ event: 'clone_retry', from: plan.leader.member, reason: (err as Error).message }, `copying the leader failed; retrying: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, CLONE_RETRY_MS));
      }
    }
  }

  /** ha.conf carries the state it was written from, so a restarted supervisor knows its upstream. */
  private async loadConf(ctx: DriverContext): Promise<void> {
    if (this.confLoaded) return;
    this.confLoaded = true;
    try {
      const text = await readFile(haConfPath(ctx), 'utf8');
      const line = text.split('\n').find((l) => l.startsWith(HA_STATE_MARK));
      if (line) this.conf = JSON.parse(line.slice(HA_STATE_MARK.length)) as HaConfState;
    } catch {
      // None yet: a first start.
    }
  }

  private async saveConf(ctx: DriverContext): Promise<void> {
    this.refreshRestoreCommand(this.ctx ?? ctx);
    await writeHaConf(ctx, this.conf);
  }

  /** The warm spare's repository copy as the config in force names it, once PostgreSQL was prepared. */
  currentSpareSource(): SpareSource | undefined {
    return this.ctx ? this.spareSource(this.ctx) : undefined;
  }

  /** A warm spare's repository copy, when the config in force names one. */
  private spareSource(ctx: DriverContext): SpareSource | undefined {
    const repo = haSettingsFrom(ctx.cfg).standbyOfRepo;
    return repo && this.deps.spare ? this.deps.spare.source(ctx, repo) : undefined;
  }

  /** A warm spare replays the repository copy's archive (ha.conf's restore_command, over postgresql.conf's). */
  private refreshRestoreCommand(ctx: DriverContext): void {
    const cmd = this.spareSource(ctx)?.restoreCommand();
    if (cmd) this.conf.restoreCommand = cmd;
    else delete this.conf.restoreCommand;
  }

  /**
   * A warm spare's re-base: PostgreSQL stopped, backup `label` of the
   * repository copy restored in place as a standby (pgBackRest --delta
   * --type=standby: only files that differ are copied), started again;
   * resolves once it is a standby that answers (it then replays the
   * copy's archive). While it runs, status() says so (busy) and the HA
   * loop leaves the database alone. A failed restore leaves PostgreSQL
   * stopped and the error thrown; the HA loop starts it again.
   */
  async rebaseStandby(label: string, signal: AbortSignal, progress: (detail: string) => void): Promise<void> {
    const ctx = await this.requireData();
    const svc = this.requireService();
    const source = this.spareSource(ctx);
    if (!source) throw new Error('this member is no warm spare of a repository copy (ha.standby_of_repo is empty)');
    if (this.busy) throw new Error(`a re-base runs already (${this.busy})`);
    // Another database's backups (the copy replaced by another cluster's repository) would leave the followers
    // unable to follow: refused, with this one left running.
    const [theirs, ours] = await Promise.all([source.systemId(signal), this.systemId(ctx, signal)]);
    if (theirs !== null && ours !== null && theirs !== ours) {
      throw new Error(`the repository copy holds another database (system identifier ${theirs}; this spare's is ${ours}): not restored. Make a new spare from it (hasup cluster create --standby-of-repo on fresh nodes)`);
    }
    this.busy = `re-basing on backup ${label} of the repository copy`;
    try {
      progress('stopping PostgreSQL');
      await this.demote(`re-basing on backup ${label}`, { stayDown: true });
      progress(`restoring backup ${label} in place (only files that differ are copied)`);
      await writeSpareBase(ctx, null);
      let base;
      try {
        base = await source.restoreStandby({ label, delta: true, signal });
      } catch (err) {
        // What was there before is still there (pgBackRest refused) or half restored: start it anyway; when it cannot
        // start, the leader gives its key up to a follower whose database runs (as for any leader left unhealthy).
        this.busy = null;
        await svc.start().catch(() => undefined);
        throw err;
      }
      await writeSpareBase(ctx, base);
      this.conf.upstream = null;
      this.busy = `starting PostgreSQL on backup ${label}`;
      progress('starting PostgreSQL as a standby replaying the repository copy');
      await svc.start();
      await this.awaitStandby(svc, signal);
    } finally {
      this.busy = null;
    }
  }

  private async awaitStandby(svc: PgServiceHandle, signal: AbortSignal): Promise<void> {
    for (;;) {
      if (signal.aborted) throw new Error('the member stopped during the re-base');
      const runner = svc.status();
      if (runner.state === 'backoff' || runner.state === 'flapping' || runner.state === 'stopped') throw new Error(`PostgreSQL did not come up on the restored backup (${runner.lastError ?? runner.state})`);
      const st = await this.statusNow(AbortSignal.any([signal, AbortSignal.timeout(5000)]));
      if (st.running && st.inRecovery === true) return;
      await new Promise((r) => setTimeout(r, RECOVERY_POLL_MS));
    }
  }

  /** The local database's system identifier, as text (null when it does not answer). */
  private async systemId(ctx: DriverContext, signal: AbortSignal): Promise<string | null> {
    return withClient(this.target(ctx), signal, async (c) => (await c.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_control_system()')).rows[0]?.id ?? null).catch(() => null);
  }

  /** The backup this member's data was last restored from as a warm spare, when known. */
  async spareBase(): Promise<SpareBase | null> {
    const ctx = this.ctx;
    if (!ctx) return null;
    try {
      const v = JSON.parse(await readFile(spareBasePath(ctx), 'utf8')) as SpareBase;
      return typeof v.label === 'string' ? v : null;
    } catch {
      return null;
    }
  }

  /** Where this standby is on the primary cluster's history: the last replayed position and transaction. */
  async replayInfo(signal: AbortSignal): Promise<ReplayInfo | null> {
    const ctx = this.ctx;
    if (!ctx || this.busy || this.deps.service()?.status().state !== 'running') return null;
    return withClient(this.target(ctx), signal, async (client) => {
      const row = (
        await client.query<{ lsn: string | null; at: Date | null; tli: number | null }>(
          `SELECT pg_last_wal_replay_lsn()::text AS lsn, pg_last_xact_replay_timestamp() AS at,
                  COALESCE((SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'),
                           (SELECT timeline_id FROM pg_control_checkpoint())) AS tli`,
        )
      ).rows[0];
      if (!row?.lsn) return null;
      return { lsn: row.lsn, segment: row.tli ? segmentOf(row.tli, row.lsn) : null, lastXactAt: row.at ? row.at.getTime() : null };
    });
  }

  async restoredForNewCluster(): Promise<boolean> {
    return !!this.ctx && isFile(join(this.ctx.paths.root, RESTORED_FOR_NEW_CLUSTER));
  }

  async replayArchive(signal: AbortSignal): Promise<void> {
    const ctx = await this.requireData();
    const svc = this.requireService();
    this.conf.upstream = null;
    await this.saveConf(ctx);
    if (svc.status().state !== 'running') {
      // prepare() makes it a standby start; ha.conf has no primary_conninfo and the copy's restore_command.
      await svc.start();
      return;
    }
    await this.reload(ctx, signal);
  }

  // ---- ReplicatedDatabase -------------------------------------------------------

  present(): boolean {
    return this.deps.service() !== undefined;
  }

  endpoint(): { host: string; port: number } {
    const cfg = this.ctx?.cfg ?? this.deps.service()?.config() ?? {};
    const host = localHost(cfg, this.deps.ip);
    return { host: host === '127.0.0.1' || host === '::1' ? this.deps.ip : host, port: Number(cfg.port ?? 5432) };
  }

  async dataPresent(): Promise<boolean> {
    return !!this.ctx && !this.creating && (await isInitialized(this.ctx.paths.data));
  }

  async status(signal: AbortSignal): Promise<DatabaseStatus> {
    if (this.busy) return { running: false, healthy: false, inRecovery: null, timeline: null, walPosition: null, replayPosition: null, streaming: false, upstream: null, replicas: [], reason: this.busy, busy: this.busy };
    return this.statusNow(signal);
  }

  private async statusNow(signal: AbortSignal): Promise<DatabaseStatus> {
    const down = (reason: string): DatabaseStatus => ({ running: false, healthy: false, inRecovery: null, timeline: null, walPosition: null, replayPosition: null, streaming: false, upstream: this.conf.upstream?.member ?? null, replicas: [], reason });
    const svc = this.deps.service();
    const ctx = this.ctx;
    if (!svc || !ctx) return down('PostgreSQL is not prepared yet');
    const st = svc.status();
    if (st.state !== 'running') return down(`PostgreSQL is ${st.state}`);
    try {
      return await this.statusSession.run(this.target(ctx), signal, async (client) => {
        const row = (
          await client.query<StatusRow>(
            `SELECT pg_is_in_recovery() AS in_recovery,
                    CASE WHEN pg_is_in_recovery() THEN NULL ELSE (pg_current_wal_flush_lsn() - '0/0'::pg_lsn)::text END AS flush,
                    (pg_last_wal_receive_lsn() - '0/0'::pg_lsn)::text AS received,
                    (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::text AS replayed,
                    CASE WHEN pg_is_in_recovery() THEN NULL ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS primary_tli,
                    (SELECT received_tli FROM pg_stat_wal_receiver) AS receiver_tli,
                    (SELECT status FROM pg_stat_wal_receiver) AS receiver_status,
                    (SELECT (latest_end_lsn - '0/0'::pg_lsn)::text FROM pg_stat_wal_receiver) AS upstream_end,
                    CASE WHEN NOT pg_is_in_recovery() THEN NULL
                         WHEN pg_last_wal_receive_lsn() IS NULL OR pg_last_wal_receive_lsn() <= pg_last_wal_replay_lsn() THEN 0
                         ELSE floor(extract(epoch FROM now() - pg_last_xact_replay_timestamp()))::int END AS replay_lag_s,
                    (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_tli,
                    (SELECT max(('x' || substr(name, 1, 8))::bit(32)::int) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$') AS wal_tli`,
          )
        ).rows[0]!;
        let replicas: ConnectedReplica[] = [];
        if (!row.in_recovery) {
          const rows = await client.query<{ application_name: string; state: string; sync_state: string; flush: string | null; replay: string | null }>(
            `SELECT application_name, state, sync_state, (flush_lsn - '0/0'::pg_lsn)::text AS flush, (replay_lsn - '0/0'::pg_lsn)::text AS replay FROM pg_stat_replication`,
          );
          replicas = rows.rows.map((r) => ({ member: r.application_name, state: r.state, syncState: r.sync_state, flushPosition: num(r.flush), replayPosition: num(r.replay) }));
        }
        const received = num(row.received);
        const replayed = num(row.replayed);
        const healthy = st.health === 'ok' || st.health === 'warning';
        return {
          running: true,
          healthy,
          inRecovery: row.in_recovery,
          // A standby's replay timeline is not in any view: the receiver's, else that of the newest WAL it holds.
          timeline: row.in_recovery ? (row.receiver_tli ?? row.wal_tli ?? row.checkpoint_tli) : row.primary_tli,
          walPosition: row.in_recovery ? Math.max(received ?? 0, replayed ?? 0) : num(row.flush),
          replayPosition: row.in_recovery ? replayed : num(row.flush),
          streaming: row.receiver_status === 'streaming',
          upstreamWalEnd: row.receiver_status === 'streaming' ? num(row.upstream_end) : null,
          replayLagS: row.replay_lag_s,
          upstream: row.in_recovery ? (this.conf.upstream?.member ?? null) : null,
          replicas,
          ...(healthy ? {} : { reason: `health is ${st.health}${st.healthMessage ? ` (${st.healthMessage})` : ''}` }),
        };
      });
    } catch (err) {
      return down((err as Error).message);
    }
  }

  async promote(signal: AbortSignal): Promise<void> {
    const ctx = this.requireCtx();
    // Before, not after: a crash half-way must still be rewound before it follows anyone.
    await markWasPrimary(ctx);
    this.conf.upstream = null;
    await this.saveConf(ctx);
    const promoted = await withClient(this.target(ctx), signal, async (client) => (await client.query<{ ok: boolean }>('SELECT pg_promote(true, 60) AS ok')).rows[0]?.ok === true);
    if (!promoted) throw new Error('pg_promote() did not finish within 60 s');
  }

  async demote(reason: string, opts: { stayDown?: boolean; handingOver?: boolean } = {}): Promise<{ stoppedAt: number | null }> {
    const ctx = this.requireCtx();
    const svc = this.requireService();
    const st = svc.status();
    const pid = st.pid;
    if (pid !== undefined && isProcessLive(pid)) {
      // Fast shutdown: new connections are refused and every session is cut
      // at once; the walsenders still send what is written to the standbys.
      sendSignal(pid, 'SIGINT');
      this.log.warn({ event: 'pg_stop_fast', pid, reason }, `stopping PostgreSQL (fast): ${reason}`);
    }
    // Any start from here on, by whom it may be, is a standby start.
    if (await isInitialized(ctx.paths.data)) await writeStandbySignal(ctx);
    this.conf.upstream = null;
    await this.saveConf(ctx);
    if (pid !== undefined && !(await waitGone(pid, opts.handingOver ? HANDOVER_STOP_MS : FAST_STOP_MS))) {
      sendSignal(pid, 'SIGQUIT');
      await waitGone(pid, IMMEDIATE_STOP_MS);
    }
    // The postmaster is gone; this cancels the runner's restart (SIGTERM reaches nobody).
    await svc.stop();
    let stoppedAt: number | null = null;
    try {
      const cd = await controlData(ctx);
      if (cd.state === 'shut down' || cd.state === 'shut down in recovery') stoppedAt = cd.checkpoint;
    } catch (err) {
      this.log.warn({ err }, 'cannot read pg_controldata after stopping');
    }
    if (!opts.stayDown) await svc.start();
    return { stoppedAt };
  }

  async stopForRestore(reason: string): Promise<void> {
    const ctx = this.requireCtx();
    await this.demote(reason, { stayDown: true });
    // Whatever this copy holds past the restored point is not the cluster's history any more.
    if (await isInitialized(ctx.paths.data)) await markWasPrimary(ctx);
  }

  async restore(target: RestoreTarget, signal: AbortSignal, progress: (detail: string) => void): Promise<void> {
    const restoreData = this.deps.restoreData;
    if (!restoreData) throw new Error('backups are not configured on this member');
    const ctx = this.requireCtx();
    const svc = this.requireService();
    const empty = this.creating || !(await isInitialized(ctx.paths.data));
    if (empty) {
      // No data here: prepare() is waiting for a bootstrap plan, which is this restore; it restores and starts PostgreSQL.
      progress('restoring the data directory from the repository (into an empty directory: this member had no data)');
      await this.untilCreated(ctx, svc, signal);
    } else {
      progress('stopping PostgreSQL on the restoring member');
      await this.demote('cluster restore', { stayDown: true });
      // Before the files change: a restore cut short must still be rewound or copied afresh.
      await markWasPrimary(ctx);
      progress('restoring the data directory from the repository (in place: only files that differ are copied)');
      await restoreData(ctx, target, { delta: true, signal });
      await rm(standbySignalPath(ctx), { force: true });
      this.conf = { upstream: null, syncStandbys: null };
      this.recoveryStart = true;
    }
    try {
      progress('replaying archived WAL to the target');
      if (!empty) await svc.start();
      await this.awaitEndOfRecovery(svc, signal, progress);
    } finally {
      this.recoveryStart = false;
    }
    this.log.warn({ event: 'restored' }, `PostgreSQL restored from the repository${empty ? ' into an empty data directory' : ''}: it ended recovery at the target and takes writes`);
  }

  /** Waits while prepare() creates the data directory (here: restores it). */
  private async untilCreated(ctx: DriverContext, svc: PgServiceHandle, signal: AbortSignal): Promise<void> {
    while (this.creating || !(await isInitialized(ctx.paths.data))) {
      if (signal.aborted) throw new Error('the member stopped during the restore');
      const runner = svc.status();
      if (!this.creating && (runner.state === 'backoff' || runner.state === 'flapping')) throw new Error(`the restore into the empty data directory failed: ${runner.lastError ?? runner.state}`);
      await new Promise((r) => setTimeout(r, RECOVERY_POLL_MS));
    }
  }

  private async awaitEndOfRecovery(svc: PgServiceHandle, signal: AbortSignal, progress: (detail: string) => void): Promise<void> {
    for (;;) {
      if (signal.aborted) throw new Error('the member stopped during the restore');
      const runner = svc.status();
      if (runner.state === 'backoff' || runner.state === 'flapping' || runner.state === 'stopped') {
        throw new Error(`PostgreSQL did not come up on the restored data (${runner.lastError ?? runner.state}); its log says why (a target past the end of the archive ends recovery with an error)`);
      }
      const st = await this.status(AbortSignal.any([signal, AbortSignal.timeout(5000)]));
      if (st.running && st.inRecovery === false) return;
      if (st.running && st.replayPosition !== null) progress(`replaying archived WAL to the target: at ${lsnText(st.replayPosition)}`);
      await new Promise((r) => setTimeout(r, RECOVERY_POLL_MS));
    }
  }

  async startStandby(): Promise<void> {
    await this.requireData();
    // prepare() makes it a standby start.
    await this.requireService().start();
  }

  async follow(leader: PeerEndpoint, opts: { leaderIsPrimary: boolean }, signal: AbortSignal): Promise<void> {
    const ctx = await this.requireData();
    const svc = this.requireService();
    const up: Upstream = { ...leader };
    const st = svc.status();
    const running = st.state === 'running';
    let rewind = await wasPrimary(ctx);
    if (!rewind && (st.state === 'backoff' || st.state === 'flapping')) {
      // A standby that cannot start (a timeline it cannot follow, a damaged data directory): rewind, or copy afresh.
      this.log.warn({ event: 'standby_cannot_start', state: st.state, reason: st.lastError }, `PostgreSQL does not stay up (${st.lastError ?? st.state}); rewinding to follow ${leader.member}`);
      rewind = true;
    }
    if (!rewind && running && opts.leaderIsPrimary) rewind = await this.divergedFrom(ctx, up, signal);
    if (rewind) {
      if (!opts.leaderIsPrimary) throw new Error(`this member must rewind first, and ${leader.member} is not a primary yet`);
      await this.rewindOrReclone(ctx, svc, up, signal);
      return;
    }
    this.conf.upstream = up;
    await this.saveConf(ctx);
    if (!running) {
      await svc.start();
      return;
    }
    await this.reload(ctx, signal);
  }

  async setSynchronous(members: string[] | null, signal: AbortSignal): Promise<void> {
    const ctx = this.requireCtx();
    this.conf.syncStandbys = members;
    await this.saveConf(ctx);
    await this.reload(ctx, signal);
    await this.awaitSetting(ctx, 'synchronous_standby_names', syncSettingValue(ctx, this.conf), signal);
  }

  async prepareSynchronous(members: string[] | null): Promise<void> {
    // The server loaded ha.conf as it is at its start or last reload: nothing to do when it already says this.
    if (sameStandbys(this.conf.syncStandbys, members)) return;
    await this.setSynchronous(members, AbortSignal.timeout(SETTING_APPLY_MS + 2000));
  }

  async syncSlots(members: string[], signal: AbortSignal): Promise<void> {
    const ctx = this.requireCtx();
    const wanted = new Set(members.map(slotName));
    await withClient(this.target(ctx), signal, async (client) => {
      const rows = (await client.query<{ slot_name: string; active: boolean }>("SELECT slot_name, active FROM pg_replication_slots WHERE slot_type = 'physical' AND slot_name LIKE 'hasup\\_%'")).rows;
      const have = new Set(rows.map((r) => r.slot_name));
      for (const name of wanted) {
        if (!have.has(name)) {
          await client.query('SELECT pg_create_physical_replication_slot($1)', [name]);
          this.log.info({ event: 'slot_created', slot: name }, `replication slot ${name} created`);
        }
      }
      for (const r of rows) {
        if (!wanted.has(r.slot_name) && !r.active) {
          await client.query('SELECT pg_drop_replication_slot($1)', [r.slot_name]);
          this.log.info({ event: 'slot_dropped', slot: r.slot_name }, `replication slot ${r.slot_name} dropped (member gone)`);
        }
      }
    });
  }

  // ---- internals ------------------------------------------------------------------

  private async rewindOrReclone(ctx: DriverContext, svc: PgServiceHandle, up: Upstream, signal: AbortSignal): Promise<void> {
    await this.checkpointSource(ctx, up, signal);
    await this.demote(`rewinding to follow ${up.member}`, { stayDown: true });
    const outcome = await rewindFrom(ctx, up, signal);
    // Cut short by the member stopping (or hasup restarting): not a failed rewind. Nothing is set aside; the next
    // start looks at the data directory again (and rewinds, or copies the leader when a rewind cannot be done).
    if (!outcome.ok && signal.aborted) throw new Error(`pg_rewind from ${up.member} cancelled: ${outcome.reason}`);
    this.conf.upstream = up;
    if (!outcome.ok) {
      this.log.warn({ event: 'rewind_failed', reason: outcome.reason }, `${outcome.reason}; copying the leader afresh`);
      const aside = await setDataAside(ctx);
      this.log.warn({ event: 'data_set_aside', path: aside }, `the old data directory is kept at ${aside}`);
      await ensureOwnedDir(ctx.paths.data, 0o700, ctx.user);
    }
    await clearWasPrimary(ctx);
    await this.saveConf(ctx);
    // prepare() makes it a standby start, and copies the leader when the data directory is empty.
    await svc.start();
  }

  /**
   * pg_rewind learns the source's timeline from its control file, which a
   * fresh promotion updates only at its next checkpoint (spread over
   * minutes): until then a rewind would think both are on the old
   * timeline. A CHECKPOINT on the leader makes it current.
   */
  private async checkpointSource(ctx: DriverContext, up: Upstream, signal: AbortSignal): Promise<void> {
    const target = this.upstreamTarget(ctx, up);
    await withClient(target, signal, async (client) => {
      const tli = async () =>
        (await client.query<{ current: number; control: number }>("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS current, (SELECT timeline_id FROM pg_control_checkpoint()) AS control")).rows[0]!;
      const before = await tli();
      if (before.control === before.current) return;
      await client.query('CHECKPOINT');
      const after = await tli();
      if (after.control !== after.current) throw new Error(`${up.member}'s control file is still on timeline ${after.control} after a checkpoint (current ${after.current})`);
    });
  }

  /**
   * Does the local standby hold WAL the leader's history never had? True
   * when it is on a later timeline than the leader, or ended its timeline
   * after the point where the leader's history left it.
   */
  private async divergedFrom(ctx: DriverContext, up: Upstream, signal: AbortSignal): Promise<boolean> {
    const mine = await this.status(signal);
    if (!mine.running || mine.timeline === null || mine.walPosition === null) return false;
    const target = this.upstreamTarget(ctx, up);
    return withClient(target, signal, async (client) => {
      const leaderTli = (await client.query<{ tli: number }>("SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int AS tli")).rows[0]!.tli;
      if (leaderTli === mine.timeline) return false;
      if (leaderTli < mine.timeline!) return true;
      const history = await readHistory(client, leaderTli);
      const entry = history.find((h) => h.timeline === mine.timeline);
      const diverged = !entry || mine.walPosition! > entry.switchpoint;
      if (diverged) this.log.warn({ event: 'diverged', timeline: mine.timeline, position: mine.walPosition, switchpoint: entry?.switchpoint ?? null }, 'this standby holds WAL the leader does not have');
      return diverged;
    });
  }

  private async reload(ctx: DriverContext, signal: AbortSignal): Promise<void> {
    await withClient(this.target(ctx), signal, async (client) => {
      await client.query('SELECT pg_reload_conf()');
    });
  }

  /** A reload is asynchronous: wait until new sessions see `expected`. */
  private async awaitSetting(ctx: DriverContext, name: string, expected: string, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + SETTING_APPLY_MS;
    let seen = '';
    while (Date.now() < deadline && !signal.aborted) {
      seen = await withClient(this.target(ctx), signal, async (client) => (await client.query<{ v: string }>('SELECT current_setting($1) AS v', [name])).rows[0]?.v ?? '');
      if (seen === expected) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${name} is still "${seen}" after the reload, not "${expected}"`);
  }

  private target(ctx: DriverContext): PgTarget {
    return superuserTarget(ctx);
  }

  /** The upstream's server, checked as libpq checks it for replication (standby-config.ts tlsParams). */
  private upstreamTarget(ctx: DriverContext, up: Upstream): PgTarget {
    const target: PgTarget = { ...this.target(ctx), host: up.host, port: up.port };
    if (up.member !== PRIMARY_CLUSTER || !target.ca) return target;
    return up.ca ? { ...target, ca: up.ca, skipHostCheck: true } : { ...target, ca: undefined, tlsUnverified: true };
  }

  private requireCtx(): DriverContext {
    if (!this.ctx) throw new Error('PostgreSQL has not been prepared on this member yet');
    return this.ctx;
  }

  /** The context, once the data directory exists: nothing may touch it while prepare() creates it. */
  private async requireData(): Promise<DriverContext> {
    const ctx = this.requireCtx();
    if (this.creating || !(await isInitialized(ctx.paths.data))) throw new Error('the data directory is still being created');
    return ctx;
  }

  private requireService(): PgServiceHandle {
    const svc = this.deps.service();
    if (!svc) throw new Error('PostgreSQL is not loaded on this member');
    return svc;
  }
}

function sameStandbys(a: string[] | null, b: string[] | null): boolean {
  if (a === null || b === null) return a === b;
  return a.length === b.length && a.every((x) => b.includes(x));
}

/** What SHOW synchronous_standby_names says once ha.conf is in force. */
function syncSettingValue(ctx: DriverContext, conf: HaConfState): string {
  const line = renderHaConf(ctx, conf)
    .split('\n')
    .find((l) => l.startsWith('synchronous_standby_names = '))!;
  return line.slice('synchronous_standby_names = '.length).replace(/^'|'$/g, '').replace(/''/g, "'");
}

async function readHistory(client: pg.Client, timeline: number): Promise<Array<{ timeline: number; switchpoint: number }>> {
  const file = `pg_wal/${timeline.toString(16).toUpperCase().padStart(8, '0')}.history`;
  const text = (await client.query<{ t: string }>('SELECT pg_read_file($1) AS t', [file])).rows[0]?.t ?? '';
  const out: Array<{ timeline: number; switchpoint: number }> = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)/.exec(line);
    if (m) out.push({ timeline: Number(m[1]), switchpoint: parseInt(m[2]!, 16) * 2 ** 32 + parseInt(m[3]!, 16) });
  }
  return out;
}

/** Written into the service directory by `hasup restore --to-new-cluster` beside the data it restored. */
export const RESTORED_FOR_NEW_CLUSTER = 'restored-for-new-cluster.json';

const spareBasePath = (ctx: DriverContext) => join(ctx.paths.root, 'spare-base.json');

/** Records what a warm spare's data was restored from (null: a restore under way, the data is none of them). */
async function writeSpareBase(ctx: DriverContext, base: { label: string; stoppedAt: number } | null): Promise<void> {
  if (!base) {
    await rm(spareBasePath(ctx), { force: true });
    return;
  }
  const v: SpareBase = { label: base.label, stopped_at: base.stoppedAt, restored_at: Date.now() };
  await writeFile(spareBasePath(ctx), `${JSON.stringify(v)}\n`, { mode: 0o600 });
}

/** The WAL segment (16 MiB) holding position `lsn` on timeline `tli`. */
export function segmentOf(tli: number, lsn: string): string | null {
  const m = /^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/.exec(lsn);
  if (!m) return null;
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(tli)}${hex(parseInt(m[1]!, 16))}${hex(Math.floor(parseInt(m[2]!, 16) / 0x1000000))}`;
}

function num(text: string | null): number | null {
  if (text === null) return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : null;
}

function sendSignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // Already gone.
  }
}

async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isProcessLive(pid)) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return !isProcessLive(pid);
}

