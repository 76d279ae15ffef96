import type { ClusterSecrets } from '../../supervisor/secrets.js';
import { checkTable, isTable, perConfig, type Schema, type TomlTable } from '../../supervisor/toml-schema.js';
import { cronProblem } from './cron.js';
import type { BackupType } from './info.js';

/**
 * The [backup] table of the PostgreSQL service config
 * (plans/postgresql/default.toml): where pgBackRest keeps backups and
 * archived WAL, and how. Its types come from the plan's defaults like every
 * other key; this schema adds what a type cannot say (absolute paths,
 * pgBackRest's names and ranges), so a bad value is refused with the key
 * before it reaches a config file.
 */
export interface BackupSettings {
  /** The repository (a path every member reaches); "" = no archiving and no backups. */
  repoPath: string;
  /** A second repository, "" = none. */
  repo2Path: string;
  retentionFull: number;
  /** count: retentionFull is how many full backups are kept; time: for how many days. */
  retentionFullType: RetentionFullType;
  /** 0 = not set: differential backups expire with the full backup they depend on. */
  retentionDiff: number;
  compressType: CompressType;
  /** 0: pgBackRest's default for the type. */
  compressLevel: number;
  processMax: number;
  /** pgBackRest size ("1GiB"): WAL waiting to be archived beyond this is dropped, not kept in pg_wal. */
  archivePushQueueMax: string;
  /** Encrypt the repositories (aes-256-cbc) with the cluster secret backup.repo_cipher_pass. */
  cipher: boolean;
  /** Begin a backup with an immediate checkpoint. */
  startFast: boolean;
  /** The pgbackrest executable. */
  pgbackrestBin: string;
  /** Per backup type, a cron expression (UTC) the leader takes that type of backup on; "" = not scheduled. */
  schedules: Record<BackupType, string>;
  /** The repository scheduled backups go into (each schedule's full, diff and incr in the same one, so they build on each other). */
  scheduleRepo: 1 | 2;
  /** prefer: a streaming follower takes the backups (pgBackRest's backup-standby), the leader when none can; off: the leader always. */
  backupStandby: BackupStandbyMode;
  /** The port of this member's pgBackRest TLS server (on its advertised address), which a follower's backup reaches the leader through. */
  serverPort: number;
  /** Keys present with a wrong type or value (refused by checkBackupSettings). */
  invalid: string[];
}

export const COMPRESS_TYPES = ['zst', 'lz4', 'gz', 'bz2', 'none'] as const;
export type CompressType = (typeof COMPRESS_TYPES)[number];
export const RETENTION_FULL_TYPES = ['count', 'time'] as const;
export type RetentionFullType = (typeof RETENTION_FULL_TYPES)[number];
export const BACKUP_STANDBY_MODES = ['prefer', 'off'] as const;
export type BackupStandbyMode = (typeof BACKUP_STANDBY_MODES)[number];

const absolute = (v: string) => (v === '' || v.startsWith('/') ? undefined : `must be an absolute path or "" (got ${JSON.stringify(v)})`);
const oneLine = (v: string) => (/[\n\r\0]/.test(v) ? 'must be one line' : undefined);
const path = (v: string) => oneLine(v) ?? absolute(v);
/** pgBackRest's size format: a whole number and an optional unit (b, kb, KiB, mb, ...; case does not matter). */
export const SIZE_PATTERN = /^\d+(?:[kmgtp]i?b?|b)?$/i;

export const BACKUP_SETTINGS_SCHEMA: Schema = {
  repo_path: { type: 'string', doc: 'the repository, a path every member reaches; "" = backups off', default: '', check: path },
  repo2_path: { type: 'string', doc: 'a second repository; "" = none', default: '', check: path },
  retention_full: { type: 'integer', doc: 'full backups kept per repository (days they are kept, with retention_full_type = "time")', default: 2, min: 1, max: 9_999_999 },
  retention_full_type: { type: 'string', enum: RETENTION_FULL_TYPES, doc: 'count: retention_full is how many full backups are kept; time: for how many days', default: 'count' },
  retention_diff: { type: 'integer', doc: 'differential backups kept per repository; 0 = until their full backup expires', default: 0, min: 0, max: 9_999_999 },
  compress_type: { type: 'string', enum: COMPRESS_TYPES, doc: 'compression of backup files and archived WAL', default: 'zst' },
  compress_level: { type: 'integer', doc: "compression level (1 fastest); 0 = pgBackRest's default for the type", default: 0, min: 0, max: 22 },
  process_max: { type: 'integer', doc: 'processes pgBackRest uses to compress and copy', default: 1, min: 1, max: 999 },
  archive_push_queue_max: {
    type: 'string',
    doc: 'WAL waiting to be archived beyond this is dropped (a new backup is then needed) instead of filling pg_wal',
    default: '1GiB',
    check: (v) => (SIZE_PATTERN.test(v) ? undefined : `must be a size such as "1GiB" or "512MB" (got ${JSON.stringify(v)})`),
  },
  cipher: { type: 'boolean', doc: 'encrypt the repositories with the cluster secret backup.repo_cipher_pass', default: false },
  start_fast: { type: 'boolean', doc: 'begin a backup with an immediate checkpoint', default: true },
  pgbackrest_bin: { type: 'string', doc: 'the pgbackrest executable', default: '/usr/bin/pgbackrest', check: (v) => path(v) ?? (v === '' ? 'must not be empty' : undefined) },
  schedule_full: { type: 'string', doc: 'when the leader takes a full backup: a cron expression in UTC; "" = never', default: '', check: cronProblem },
  schedule_diff: { type: 'string', doc: 'when the leader takes a differential backup: a cron expression in UTC; "" = never', default: '', check: cronProblem },
  schedule_incr: { type: 'string', doc: 'when the leader takes an incremental backup: a cron expression in UTC; "" = never', default: '', check: cronProblem },
  schedule_repo: { type: 'integer', doc: 'the repository scheduled backups go into: 1 (repo_path) or 2 (repo2_path)', default: 1, min: 1, max: 2 },
  backup_standby: {
    type: 'string',
    enum: BACKUP_STANDBY_MODES,
    doc: 'prefer: a streaming follower takes each backup (the leader only when none can); off: the leader takes them',
    default: 'prefer',
  },
  server_port: { type: 'integer', doc: "the port of the member's pgBackRest TLS server (a follower's backup reaches the leader's PostgreSQL through it)", default: 8432, min: 1, max: 65535 },
};

const DEFAULTS = checkTable({}, BACKUP_SETTINGS_SCHEMA, { fill: true }).value;

/**
 * The settings from a merged PostgreSQL service config (its [backup] table).
 * Read for every /cluster and status answer: kept per config object.
 */
export const backupSettingsFrom = perConfig(readBackupSettings);

function readBackupSettings(cfg: TomlTable): BackupSettings {
  const { value: b, problems } = checkTable(isTable(cfg.backup) ? cfg.backup : {}, BACKUP_SETTINGS_SCHEMA, { fill: true, at: ['backup'] });
  // A refused key keeps its default here; `invalid` says why, and checkBackupSettings refuses the whole table.
  const get = <T>(key: string) => (b[key] ?? DEFAULTS[key]) as T;
  return {
    repoPath: get<string>('repo_path'),
    repo2Path: get<string>('repo2_path'),
    retentionFull: get<number>('retention_full'),
    retentionFullType: get<RetentionFullType>('retention_full_type'),
    retentionDiff: get<number>('retention_diff'),
    compressType: get<CompressType>('compress_type'),
    compressLevel: get<number>('compress_level'),
    processMax: get<number>('process_max'),
    archivePushQueueMax: get<string>('archive_push_queue_max'),
    cipher: get<boolean>('cipher'),
    startFast: get<boolean>('start_fast'),
    pgbackrestBin: get<string>('pgbackrest_bin'),
    schedules: { full: get<string>('schedule_full'), diff: get<string>('schedule_diff'), incr: get<string>('schedule_incr') },
    scheduleRepo: get<number>('schedule_repo') === 2 ? 2 : 1,
    backupStandby: get<BackupStandbyMode>('backup_standby'),
    serverPort: get<number>('server_port'),
    invalid: problems.map((p) => p.reason),
  };
}

export function backupEnabled(s: BackupSettings): boolean {
  return s.repoPath !== '';
}

/** Why the settings cannot work with these secrets, or undefined. Names keys, never a secret's value. */
export function checkBackupSettings(s: BackupSettings, secrets: ClusterSecrets): string | undefined {
  if (s.invalid.length > 0) return s.invalid.join('; ');
  const maxLevel = MAX_COMPRESS_LEVEL[s.compressType];
  if (s.compressLevel > maxLevel) return maxLevel === 0 ? `backup.compress_level must be 0 with compress_type = "none" (got ${s.compressLevel})` : `backup.compress_level must be at most ${maxLevel} for ${s.compressType} (got ${s.compressLevel})`;
  if (s.repo2Path !== '' && s.repoPath === '') return 'backup.repo2_path is set but backup.repo_path is empty (the first repository comes first)';
  if (s.repo2Path !== '' && s.repo2Path.replace(/\/+$/, '') === s.repoPath.replace(/\/+$/, '')) return 'backup.repo2_path must differ from backup.repo_path';
  if (s.scheduleRepo === 2 && s.repo2Path === '') return 'backup.schedule_repo = 2 needs backup.repo2_path (the second repository)';
  if (s.cipher && cipherPass(secrets) === undefined) {
    return 'backup.cipher = true needs the cluster secret backup.repo_cipher_pass, which the secrets file lacks (it predates it): add the same passphrase to the secrets file of every member';
  }
  return undefined;
}

/** pgBackRest 2.45's highest level per compression type. */
const MAX_COMPRESS_LEVEL: Record<CompressType, number> = { zst: 22, lz4: 12, gz: 9, bz2: 9, none: 0 };

/** The repository passphrase from the cluster secrets, if there is one. */
export function cipherPass(secrets: ClusterSecrets): string | undefined {
  const pass = secrets.backup?.repo_cipher_pass;
  return typeof pass === 'string' && pass !== '' ? pass : undefined;
}
