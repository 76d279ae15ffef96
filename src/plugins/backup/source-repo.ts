import { randomBytes } from 'node:crypto';
import { chown, open, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RestoreTarget } from '../../ha/index.js';
import type { DriverContext, ServiceUser } from '../../supervisor/driver.js';
import type { TomlTable } from '../../supervisor/toml-schema.js';
import { ensureOwnedDir, isDirectory, isFile, runTool } from '../service-dirs.js';
import { passfilePath } from '../postgresql/standby-config.js';
import { parseCron } from './cron.js';
import { STANZA } from './files.js';
import { parseInfo, type BackupInfo, type StanzaInfo } from './info.js';
import { PgBackRestError, restoreTargetArgs, stderrTail } from './pgbackrest.js';
import { backupSettingsFrom, cipherPass } from './settings.js';

/**
 * Another cluster's pgBackRest repository, read only: the copy a warm
 * spare is kept current from ([ha] standby_of_repo), or the repository a
 * new cluster is restored from (`hasup restore --to-new-cluster`).
 *
 * hasup never writes there. Its own pgBackRest configuration for it
 * (SOURCE_DIR/pgbackrest.conf, under the member's service directory) names
 * only the repository and the local server; the only commands ever run
 * with it are READ_ONLY_COMMANDS (info, restore, archive-get), refused
 * otherwise before pgBackRest starts: never archive-push, backup, expire,
 * stanza-create, stanza-upgrade, stanza-delete, check (which pushes a
 * segment) or verify. Its spool and lock are its own, so a member's own
 * repository (backup.repo_path, after a promotion) never shares them.
 */
export const READ_ONLY_COMMANDS: readonly string[] = ['info', 'restore', 'archive-get'];

export interface SourceRepoPlace {
  /** The repository copy (absolute path). */
  repo: string;
  /** Where hasup keeps its configuration, spool and lock for it (made, owned by `user`). */
  dir: string;
  /** pgBackRest's log directory. */
  logs: string;
  /** The local server the restores write into and archive-get serves. */
  pgData: string;
  pgPort: number;
  pgSocket: string;
  pgUser: string;
  bin: string;
  /** The service user the commands run as (when hasup runs as root). */
  user?: ServiceUser;
  /** The passphrase of an encrypted repository (the primary cluster's backup.repo_cipher_pass); never on a command line. */
  cipherPass?: string;
  /** libpq password file for the commands that connect (restore does not). */
  passfile?: string;
}

/** Bad input about the repository (none there, not a pgBackRest repository, encrypted without a passphrase): nothing was run. */
export class SourceRepoRefused extends Error {}

const MINUTE = 60_000;
const INFO_CAPTURE_CHARS = 32 * 1024 * 1024;

/** Where a member keeps its files for the repository copy: <state>/svc/postgresql/pgbackrest/source/. */
export function sourceRepoDir(ctx: Pick<DriverContext, 'paths'>): string {
  return join(ctx.paths.root, 'pgbackrest', 'source');
}

/** The repository copy of a warm spare's config ([ha] standby_of_repo), or undefined. */
export function spareRepoOf(cfg: TomlTable): string | undefined {
  const ha = cfg.ha;
  const v = ha && typeof ha === 'object' && !Array.isArray(ha) ? (ha as TomlTable).standby_of_repo : undefined;
  return typeof v === 'string' && v !== '' ? v.replace(/\/+$/, '') || '/' : undefined;
}

/**
 * Why a warm spare's settings cannot work, or undefined: the re-base
 * schedule must be a valid cron expression, and the cluster's own
 * repositories (where it archives once promoted) must not be the copy or
 * lie inside or around it: the spare never writes there.
 */
export function checkSpareSettings(cfg: TomlTable): string | undefined {
  const repo = spareRepoOf(cfg);
  const ha = (cfg.ha ?? {}) as TomlTable;
  const schedule = typeof ha.restore_schedule === 'string' ? ha.restore_schedule.trim() : '';
  if (schedule !== '') {
    const parsed = parseCron(schedule);
    if ('problem' in parsed) return `"ha.restore_schedule": ${parsed.problem}`;
  }
  if (!repo) return undefined;
  const b = backupSettingsFrom(cfg);
  for (const [key, own] of [
    ['backup.repo_path', b.repoPath],
    ['backup.repo2_path', b.repo2Path],
  ] as const) {
    if (own !== '' && overlaps(own, repo)) {
      return `${key} (${own}) must not be the warm spare's source repository ha.standby_of_repo (${repo}), nor inside it or around it: the spare never writes there; give it a repository of its own or none`;
    }
  }
  return undefined;
}

function overlaps(a: string, b: string): boolean {
  const x = `${a.replace(/\/+$/, '')}/`;
  const y = `${b.replace(/\/+$/, '')}/`;
  return x.startsWith(y) || y.startsWith(x);
}

/** The place of a member's repository copy, from its PostgreSQL service context. */
export function sourcePlaceFor(ctx: DriverContext, repo: string): SourceRepoPlace {
  const cfg = ctx.cfg;
  return {
    repo,
    dir: sourceRepoDir(ctx),
    logs: ctx.paths.logs,
    pgData: ctx.paths.data,
    pgPort: Number(cfg.port ?? 5432),
    pgSocket: ctx.paths.run,
    pgUser: String(cfg.superuser ?? 'postgres'),
    bin: backupSettingsFrom(cfg).pgbackrestBin,
    ...(ctx.user ? { user: ctx.user } : {}),
    ...(cipherPass(ctx.secrets) !== undefined ? { cipherPass: cipherPass(ctx.secrets)! } : {}),
    passfile: passfilePath(ctx),
  };
}

export class SourceRepository {
  private prepared: Promise<void> | undefined;

  constructor(readonly place: SourceRepoPlace) {}

  get conf(): string {
    return join(this.place.dir, 'pgbackrest.conf');
  }

  get includeDir(): string {
    return join(this.place.dir, 'conf.d');
  }

  /** PostgreSQL's restore_command that reads this repository's archive (archive-get only). */
  restoreCommand(): string {
    return `${this.place.bin} --config=${this.conf} --config-include-path=${this.includeDir} --stanza=${STANZA} archive-get %f "%p"`;
  }

  /**
   * Checks that the repository is there and holds hasup's stanza, and
   * writes the configuration for it (encrypted or not, as its info file
   * says). Idempotent; every command does it first.
   */
  async prepare(): Promise<void> {
    this.prepared ??= this.doPrepare().catch((err: unknown) => {
      this.prepared = undefined;
      throw err;
    });
    await this.prepared;
  }

  /** The stanza's backups and archive. */
  async info(signal?: AbortSignal): Promise<StanzaInfo> {
    const out = await this.run('info', ['--output=json'], 10 * MINUTE, signal, INFO_CAPTURE_CHARS);
    return parseInfo(out, STANZA);
  }

  /** The system identifier of the database the stanza holds. */
  async systemId(signal?: AbortSignal): Promise<string | null> {
    return (await this.info(signal)).systemId;
  }

  /** The newest backup without errors, or undefined when there is none. */
  async newestBackup(signal?: AbortSignal): Promise<BackupInfo | undefined> {
    const info = await this.info(signal);
    return info.backups.filter((b) => b.repo === 1 && !b.error).sort((a, b) => a.stoppedAt.getTime() - b.stoppedAt.getTime()).pop();
  }

  /**
   * Restores backup `label` (the newest when not given) into the local data
   * directory as a standby (pgBackRest's --type=standby: standby.signal,
   * and a restore_command reading this repository): in place with --delta
   * when `delta` (only the files that differ are copied), whole into an
   * empty directory otherwise. PostgreSQL must be stopped.
   */
  async restoreStandby(opts: { label?: string; delta: boolean; signal?: AbortSignal }): Promise<{ label: string; stoppedAt: number }> {
    const info = await this.info(opts.signal);
    const usable = info.backups.filter((b) => b.repo === 1 && !b.error);
    const backup = opts.label ? usable.find((b) => b.label === opts.label) : usable.sort((a, b) => a.stoppedAt.getTime() - b.stoppedAt.getTime()).pop();
    if (!backup) throw new SourceRepoRefused(opts.label ? `the repository copy ${this.place.repo} holds no usable backup ${opts.label}` : `the repository copy ${this.place.repo} holds no usable backup`);
    await this.run('restore', [...(opts.delta ? ['--delta'] : []), '--type=standby', `--set=${backup.label}`], 24 * 60 * MINUTE, opts.signal);
    return { label: backup.label, stoppedAt: backup.stoppedAt.getTime() };
  }

  /** Restores to `target` for a new cluster: PostgreSQL replays this repository's archive to it and promotes. */
  async restoreTo(target: RestoreTarget, opts: { signal?: AbortSignal } = {}): Promise<void> {
    await this.run('restore', restoreTargetArgs(target), 24 * 60 * MINUTE, opts.signal);
  }

  private async doPrepare(): Promise<void> {
    const p = this.place;
    if (!(await isDirectory(p.repo))) throw new SourceRepoRefused(`the repository ${p.repo} does not exist (or is not a directory this host can read)`);
    const infoFile = join(p.repo, 'backup', STANZA, 'backup.info');
    const infoCopy = `${infoFile}.copy`;
    const which = (await isFile(infoFile)) ? infoFile : (await isFile(infoCopy)) ? infoCopy : null;
    if (!which) throw new SourceRepoRefused(`${p.repo} holds no pgBackRest stanza "${STANZA}" (no backup/${STANZA}/backup.info): not a hasup cluster's repository`);
    const encrypted = await looksEncrypted(which);
    if (encrypted && !p.cipherPass) {
      throw new SourceRepoRefused(`the repository ${p.repo} is encrypted, and the secrets given hold no backup.repo_cipher_pass: give the secrets of the cluster that wrote it`);
    }
    await ensureOwnedDir(p.dir, 0o700, p.user);
    for (const d of ['spool', 'lock', 'conf.d']) await ensureOwnedDir(join(p.dir, d), 0o700, p.user);
    await ensureOwnedDir(p.logs, 0o750, p.user);
    await writeOwned(join(this.includeDir, 'cipher.conf'), encrypted ? `[global]\nrepo1-cipher-pass=${p.cipherPass}\n` : '# the repository is not encrypted\n', p.user);
    await writeOwned(this.conf, renderSourceConf(p, encrypted), p.user);
  }

  private async run(command: string, args: string[], timeoutMs: number, signal?: AbortSignal, captureChars?: number): Promise<string> {
    if (!READ_ONLY_COMMANDS.includes(command)) throw new Error(`pgbackrest ${command} is never run on the source repository (it could write there)`);
    await this.prepare();
    const shown = `pgbackrest ${[command, ...args.filter((a) => !a.startsWith('--output'))].join(' ')} (repository copy ${this.place.repo})`;
    const argv = [`--config=${this.conf}`, `--config-include-path=${this.includeDir}`, `--stanza=${STANZA}`, '--log-level-console=off', '--log-level-stderr=warn', ...args, command];
    const started = Date.now();
    const r = await runTool(this.place.bin, argv, {
      ...(this.place.user ? { user: this.place.user } : {}),
      cwd: this.place.dir,
      env: { ...(this.place.passfile ? { PGPASSFILE: this.place.passfile } : {}), PGCONNECT_TIMEOUT: '10' },
      timeoutMs,
      ...(signal ? { signal } : {}),
      ...(captureChars ? { captureChars } : {}),
    });
    if (r.code !== 0) {
      const timedOut = r.signal !== null && Date.now() - started >= timeoutMs;
      throw new PgBackRestError(shown, r.code, r.signal, stderrTail(r.stderr), signal?.aborted ? 'was cancelled' : timedOut ? `did not finish within ${timeoutMs} ms and was killed` : undefined);
    }
    return r.stdout;
  }
}

/**
 * pgBackRest's configuration for the repository copy: the repository
 * (with its cipher type when encrypted; the passphrase is in the include
 * file), this member's own spool, lock and log directories, and the local
 * server. Nothing that archives or expires: no retention, no
 * archive-push options.
 */
export function renderSourceConf(p: SourceRepoPlace, encrypted: boolean): string {
  return [
    '# Written by hasup: a copy of another cluster\'s pgBackRest repository, read only',
    '# (only info, restore and archive-get are ever run with this file).',
    '[global]',
    `repo1-path=${p.repo}`,
    ...(encrypted ? ['repo1-cipher-type=aes-256-cbc'] : []),
    `spool-path=${join(p.dir, 'spool')}`,
    `lock-path=${join(p.dir, 'lock')}`,
    `log-path=${p.logs}`,
    'log-level-file=info',
    '',
    `[${STANZA}]`,
    `pg1-path=${p.pgData}`,
    `pg1-port=${p.pgPort}`,
    `pg1-socket-path=${p.pgSocket}`,
    `pg1-user=${p.pgUser}`,
    '',
  ].join('\n');
}

/** pgBackRest encrypts its info files like `openssl enc`: they begin with "Salted__". */
async function looksEncrypted(file: string): Promise<boolean> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(8);
    const { bytesRead } = await fh.read(buf, 0, 8, 0);
    return bytesRead === 8 && buf.toString('latin1') === 'Salted__';
  } finally {
    await fh.close();
  }
}

async function writeOwned(file: string, content: string, user: ServiceUser | undefined): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, content, { mode: 0o600 });
  if (user) await chown(tmp, user.uid, user.gid);
  await rename(tmp, file);
}
