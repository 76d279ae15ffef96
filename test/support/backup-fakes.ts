/**
 * Fakes for the backup coordinator's tests: the leadership, pgBackRest
 * (whose backups wait to be finished by the test), the local PostgreSQL,
 * and a coordinator over them (setup), optionally with Elasticsearch
 * snapshots behind the SearchSnapshots port.
 */
import { BackupCoordinator, type BackupTool } from '../../src/plugins/backup/coordinator.js';
import { parseInfo, type BackupInfo, type BackupType, type StanzaInfo } from '../../src/plugins/backup/info.js';
import type { ArchiverStats, LocalDatabase } from '../../src/plugins/backup/local-db.js';
import { PgBackRestError, type BackupOptions } from '../../src/plugins/backup/pgbackrest.js';
import type { SearchSnapshots } from '../../src/plugins/backup/search-snapshots.js';
import type { ReplicaRow } from '../../src/plugins/backup/standby.js';
import { backupSettingsFrom, type BackupSettings } from '../../src/plugins/backup/settings.js';
import type { VerifyReport } from '../../src/plugins/backup/verify.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import type { Leadership, LeadershipState } from '../../src/supervisor/leadership.js';
import { createLogger } from '../../src/supervisor/log.js';
import type { BackupReport } from '../../src/supervisor/rumors/backup.js';
import * as out from '../fixtures/pgbackrest-2.45.js';

export const SELF = '0000000000000001';
export const OTHER = '0000000000000002';
export const PASSWORD = 'superuser-pw-that-must-not-leak';

export class FakeLeadership implements Leadership {
  private s: LeadershipState = { serviceGroup: 'postgresql.default', role: 'replica', holdsLease: false, leaseInDoubt: false, writable: false, replication: null, timeline: 1, leader: OTHER, since: 0, reason: 'following' };
  private readonly listeners = new Set<(s: LeadershipState) => void>();
  state(): LeadershipState {
    return this.s;
  }
  onChange(l: (s: LeadershipState) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
  close(): void {}
  lead(): void {
    this.set({ role: 'leader', holdsLease: true, writable: true, leader: SELF, reason: 'holds the lease' });
  }
  follow(): void {
    this.set({ role: 'replica', holdsLease: false, writable: false, leader: OTHER, reason: 'following' });
  }
  set(over: Partial<LeadershipState>): void {
    this.s = { ...this.s, ...over };
    for (const l of this.listeners) l(this.s);
  }
}

export function backupInfo(label: string, type: BackupType, stoppedAt: number): BackupInfo {
  return {
    label,
    type,
    repo: 1,
    startedAt: new Date(stoppedAt - 2000),
    stoppedAt: new Date(stoppedAt),
    databaseSize: 1000,
    backupSize: 1000,
    repoSetSize: 100,
    repoBackupSize: 100,
    walStart: '000000010000000000000025',
    walStop: '000000010000000000000025',
    lsnStart: null,
    lsnStop: null,
    prior: null,
    error: false,
  };
}

/** What every fake pgBackRest shares: the calls made, and how the next ones behave. */
export class Behaviour {
  calls: string[] = [];
  stanzaFailures = 0;
  backups: BackupInfo[] = [];
  backupError: Error | undefined;
  verifyReport: VerifyReport | undefined;
  infoOverride: StanzaInfo | undefined;
  release: (() => void) | undefined;
  /** The options of the last backup asked for (a standby's remote, the annotations). */
  lastBackupOpts: BackupOptions | undefined;

  finishBackup(): void {
    this.release?.();
  }
}

export class FakeTool implements BackupTool {
  readonly settings: BackupSettings;

  constructor(
    ctx: DriverContext,
    private readonly b: Behaviour,
  ) {
    this.settings = backupSettingsFrom(ctx.cfg);
  }

  async stanzaCreate(): Promise<void> {
    this.b.calls.push(`stanza-create ${this.settings.repoPath}`);
    if (this.b.stanzaFailures-- > 0) {
      throw new PgBackRestError('pgbackrest stanza-create', 41, null, [`ERROR: [041]: unable to open '${this.settings.repoPath}/backup/hasup/backup.info' for password=${PASSWORD}`]);
    }
  }

  async check(): Promise<void> {
    this.b.calls.push(`check ${this.settings.repoPath}`);
  }

  /** Reports 40 %, then waits for finishBackup() (or the abort). */
  backup(type: BackupType, opts: BackupOptions = {}): Promise<BackupInfo> {
    const b = this.b;
    b.calls.push(`backup ${type}`);
    b.lastBackupOpts = opts;
    opts.onProgress?.({ running: true, percent: 40 });
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new PgBackRestError(`pgbackrest backup --type=${type}`, null, 'SIGKILL', [], 'was cancelled'));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      b.release = () => {
        b.release = undefined;
        opts.signal?.removeEventListener('abort', onAbort);
        if (b.backupError) return reject(b.backupError);
        const n = b.backups.length;
        const made = backupInfo(type === 'full' ? `20261207-10000${n}F` : `20261207-100000F_20261207-10000${n}I`, type, Date.UTC(2026, 11, 7, 10, 0, n));
        if (opts.annotations) made.annotations = opts.annotations;
        b.backups.push(made);
        resolve(made);
      };
    });
  }

  async info(): Promise<StanzaInfo> {
    return this.b.infoOverride ?? { ...parseInfo(out.INFO_ENCRYPTED_EMPTY, 'hasup'), backups: this.b.backups };
  }

  async verify(): Promise<VerifyReport> {
    if (!this.b.verifyReport) throw new Error('no verify report set');
    return this.b.verifyReport;
  }
}

export class FakeDb implements LocalDatabase {
  archiverStats: ArchiverStats = { lastArchivedWal: '000000010000000000000005', lastArchivedAt: Date.UTC(2026, 11, 7, 9), failedCount: 0, lastFailedWal: null, lastFailedAt: null, waiting: 0, oldestWaitingAt: null };
  async archiver(): Promise<ArchiverStats> {
    return this.archiverStats;
  }
  async systemId(): Promise<string> {
    return '7716339342733519476';
  }
  async databaseBytes(): Promise<number> {
    return 1000;
  }
  async checkpointNewTimeline(): Promise<boolean> {
    return false;
  }
  /** The leader's pg_stat_replication; none by default (the leader takes its backups itself). */
  replicaRows: ReplicaRow[] = [];
  async replicas(): Promise<ReplicaRow[]> {
    return this.replicaRows;
  }
}

export function setup(opts: { search?: () => SearchSnapshots | undefined } = {}) {
  const leadership = new FakeLeadership();
  const db = new FakeDb();
  const fake = new Behaviour();
  const state = { cfg: { port: 5432, backup: { repo_path: '/repo' } } as Record<string, unknown> };
  const secrets = { api_token: 'token-token-token', postgresql: { superuser_password: PASSWORD, replication_password: 'replication-pw-xyz' } };
  const reports: BackupReport[] = [];
  const coordinator = new BackupCoordinator({
    memberId: SELF,
    context: () => ({ cfg: state.cfg, secrets }) as unknown as DriverContext,
    leadership,
    log: createLogger({ level: 'silent' }),
    tool: (ctx) => new FakeTool(ctx, fake),
    database: () => db,
    retry: { initialMs: 20, maxMs: 40, factor: 2, jitter: 0 },
    pollMs: 20,
    progressMs: 10,
    reportEveryMs: 10,
    ...(opts.search ? { search: opts.search } : {}),
  });
  coordinator.onReport((r) => reports.push(r));
  return { coordinator, leadership, db, state, reports, fake };
}
