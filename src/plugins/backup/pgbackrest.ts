import { readdir, readFile, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { RestoreTarget } from '../../ha/index.js';
import type { DriverContext } from '../../supervisor/driver.js';
import { passfilePath } from '../postgresql/standby-config.js';
import { runTool, type RunResult } from '../service-dirs.js';
import { preparePgBackRestFiles, pgbackrestPaths, STANZA, type PgBackRestPaths } from './files.js';
import { parseInfo, parseProgress, type BackupInfo, type BackupProgress, type BackupType, type StanzaInfo } from './info.js';
import type { PgBackRestTlsFiles } from './server-tls.js';
import { backupEnabled, backupSettingsFrom, checkBackupSettings, type BackupSettings } from './settings.js';
import { parsePushError, type PushError } from './repos.js';
import { standbyArgs, type PrimaryRemote } from './standby.js';
import { parseVerify, withDependents, type VerifyReport } from './verify.js';

/**
 * pgBackRest on this member, as typed calls: each runs the pgbackrest
 * binary once, as the PostgreSQL service user, with this member's rendered
 * config (config/pgbackrest.conf) and passphrase include, and either
 * returns what the command answered or throws a PgBackRestError that says
 * which command failed, how, and pgBackRest's last lines of stderr. No
 * secret is ever on its command line: the repository passphrase is in the
 * include file, the superuser's password in the libpq passfile.
 *
 * Console logging is off and warnings go to stderr, so stdout holds only
 * the command's answer (info's JSON, verify's report). pgBackRest keeps
 * its own log in the service's logs dir (hasup-<command>.log).
 */
export class PgBackRestError extends Error {
  constructor(
    /** e.g. "pgbackrest backup --type=full" (no secret is ever on the command line). */
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    /** pgBackRest's last lines of stderr. */
    readonly stderrTail: string[],
    readonly why?: string,
    /** What hasup adds (e.g. the space left in the repository). */
    readonly note?: string,
  ) {
    const how = why ?? (signal ? `was killed by ${signal}` : `failed with exit code ${exitCode}`);
    super(`${command} (stanza ${STANZA}) ${how}${stderrTail.length > 0 ? `: ${stderrTail.join(' | ')}` : ''}${note ? ` [${note}]` : ''}`);
  }

  withNote(note: string): PgBackRestError {
    return new PgBackRestError(this.command, this.exitCode, this.signal, this.stderrTail, this.why, note);
  }
}

/** Backups are off, or their settings cannot work: said before pgBackRest is run. */
export class BackupNotConfigured extends Error {}

export interface CallOptions {
  /** Give up (and kill pgbackrest) after this long. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface BackupOptions extends CallOptions {
  /** The repository to back up into; pgBackRest's default (the first) when not given. */
  repo?: 1 | 2;
  /** Called every progressIntervalMs while the backup runs, with what `info` says of it. */
  onProgress?: (p: BackupProgress) => void;
  progressIntervalMs?: number;
  /** Take the backup on this member, a standby, with the leader reached through its pgBackRest TLS server (backup-standby). */
  standby?: { primary: PrimaryRemote; tls: PgBackRestTlsFiles };
  /** Stored with the backup (pgBackRest's --annotation; `info` lists them): hasup says where it was taken. */
  annotations?: Record<string, string>;
}

const MINUTE = 60_000;
/** Commands that only read the repository or check the setup. */
const SHORT_TIMEOUT_MS = 10 * MINUTE;
/** Backups and verification read or write the whole database. */
const LONG_TIMEOUT_MS = 24 * 60 * MINUTE;
/** info's JSON lists every backup; keep all of it. */
const INFO_CAPTURE_CHARS = 32 * 1024 * 1024;
/** verify logs one line per faulty file. */
const VERIFY_CAPTURE_CHARS = 8 * 1024 * 1024;
const STDERR_TAIL_LINES = 6;
/** A repository with less free space than this (or 1% of its size, whichever is less) is called full. */
const FULL_BELOW_BYTES = 64 * 1024 * 1024;

/** How a command is run: its default time limit, how much output to keep, what pgBackRest logs to stderr. */
interface RunHow {
  timeoutMs: number;
  captureChars?: number;
  /** warn unless told: stdout stays the command's answer, stderr the warnings and errors. */
  stderrLevel?: 'warn' | 'info' | 'detail';
}

/** pgBackRest's restore options for a target. */
export function restoreTargetArgs(target: RestoreTarget): string[] {
  switch (target.kind) {
    case 'latest':
      return ['--type=default'];
    case 'time':
      return ['--type=time', `--target=${target.time}`, '--target-action=promote'];
    case 'lsn':
      return ['--type=lsn', `--target=${target.lsn}`, '--target-action=promote'];
    case 'set':
      // That backup, replayed only to where it is consistent (its end), then a new timeline.
      return [`--set=${target.label}`, '--type=immediate', '--target-action=promote'];
  }
}

export class PgBackRest {
  readonly paths: PgBackRestPaths;
  private prepared: Promise<unknown> | undefined;

  private constructor(
    private readonly ctx: DriverContext,
    readonly settings: BackupSettings,
  ) {
    this.paths = pgbackrestPaths(ctx.paths);
  }

  /** For the PostgreSQL service in `ctx`; throws BackupNotConfigured when backups are off or misconfigured. */
  static forService(ctx: DriverContext): PgBackRest {
    const settings = backupSettingsFrom(ctx.cfg);
    if (!backupEnabled(settings)) throw new BackupNotConfigured('backups are off: set backup.repo_path in the PostgreSQL service config');
    const problem = checkBackupSettings(settings, ctx.secrets);
    if (problem) throw new BackupNotConfigured(problem);
    return new PgBackRest(ctx, settings);
  }

  /** Creates the stanza in every repository (idempotent: an existing, matching stanza is fine). */
  async stanzaCreate(opts: CallOptions = {}): Promise<void> {
    await this.run('stanza-create', [], { timeoutMs: SHORT_TIMEOUT_MS }, opts);
  }

  /** Checks the config, the connection to PostgreSQL and that a WAL segment reaches every repository. */
  async check(opts: CallOptions = {}): Promise<void> {
    await this.run('check', [], { timeoutMs: SHORT_TIMEOUT_MS }, opts);
  }

  /** Takes a backup of the local PostgreSQL (which must be the primary) and returns it as `info` lists it. */
  async backup(type: BackupType, opts: BackupOptions = {}): Promise<BackupInfo> {
    const before = new Set((await this.info(opts)).backups.map((b) => `${b.repo}/${b.label}`));
    const args = [
      `--type=${type}`,
      ...(opts.repo ? [`--repo=${opts.repo}`] : []),
      ...Object.entries(opts.annotations ?? {}).map(([k, v]) => `--annotation=${k}=${v}`),
      ...(opts.standby ? standbyArgs(opts.standby.primary, opts.standby.tls) : []),
    ];
    const stopProgress = opts.onProgress ? this.watchProgress(opts.onProgress, opts.progressIntervalMs ?? 5000) : undefined;
    try {
      await this.run('backup', args, { timeoutMs: LONG_TIMEOUT_MS }, opts);
    } catch (err) {
      // pgBackRest names the file it could not write, not always why; what the repository has left often says it.
      if (err instanceof PgBackRestError) throw err.withNote(await this.repoSpace(opts.repo ?? 1));
      throw err;
    } finally {
      await stopProgress?.();
    }
    const made = (await this.info(opts)).backups.filter((b) => !before.has(`${b.repo}/${b.label}`));
    const newest = made[made.length - 1];
    if (!newest) throw new PgBackRestError(`pgbackrest backup --type=${type}`, 0, null, [], 'succeeded but info lists no new backup');
    return newest;
  }

  /**
   * Restores the backup that reaches `target` into this member's data
   * directory (PostgreSQL must be stopped): in place with --delta when the
   * directory holds a cluster (only what differs is copied), whole into an
   * empty one. pgBackRest writes the recovery settings (restore_command,
   * the target, recovery_target_action = promote) into
   * postgresql.auto.conf and creates recovery.signal: started without
   * standby.signal, PostgreSQL replays the archive to the target and ends
   * recovery there on a new timeline.
   */
  async restore(target: RestoreTarget, opts: CallOptions & { delta: boolean; repo?: 1 | 2 }): Promise<void> {
    // Without --repo pgBackRest takes the first repository holding a backup for the target; the request's repo (restore-target.ts) or the caller's chooses one.
    const repo = opts.repo ?? target.repo;
    const args = [...(opts.delta ? ['--delta'] : []), ...(repo ? [`--repo=${repo}`] : []), ...restoreTargetArgs(target)];
    await this.run('restore', args, { timeoutMs: LONG_TIMEOUT_MS }, opts);
  }

  /** The stanza's backups and archive in every repository. */
  async info(opts: CallOptions = {}): Promise<StanzaInfo> {
    const out = await this.run('info', ['--output=json'], { timeoutMs: SHORT_TIMEOUT_MS, captureChars: INFO_CAPTURE_CHARS }, opts);
    return parseInfo(out.stdout, STANZA);
  }

  /** Whether a backup runs on this member now, and how far it is (pgBackRest's backup lock). */
  async progress(opts: CallOptions = {}): Promise<BackupProgress> {
    const out = await this.run('info', ['--output=text'], { timeoutMs: SHORT_TIMEOUT_MS }, opts);
    return parseProgress(out.stdout);
  }

  /**
   * Reads every backup and archived WAL segment in one repository (the
   * first unless told) and checks it against its recorded checksum and
   * size; adds the gaps in the archived WAL and the backups that depend on
   * a faulty one (verify.ts). A repository with faults is a report with
   * ok = false naming them, not an exception.
   */
  async verify(opts: CallOptions & { repo?: 1 | 2 } = {}): Promise<VerifyReport> {
    const repo = opts.repo ?? 1;
    const out = await this.run('verify', ['--output=text', '--verbose', `--repo=${repo}`], { timeoutMs: LONG_TIMEOUT_MS, captureChars: VERIFY_CAPTURE_CHARS, stderrLevel: 'detail' }, opts);
    const report = parseVerify(out.stdout, out.stderr);
    return withDependents(report, (await this.info(opts)).backups.filter((b) => b.repo === repo));
  }

  /** Removes backups (and the WAL only they need) beyond the retention settings; a backup does this itself when it ends. */
  async expire(opts: CallOptions & { repo?: 1 | 2 } = {}): Promise<void> {
    await this.run('expire', opts.repo ? [`--repo=${opts.repo}`] : [], { timeoutMs: SHORT_TIMEOUT_MS }, opts);
  }

  /**
   * The segments the async archive-push could not push, from its spool's
   * `.error` files (pgBackRest removes one when the segment is pushed).
   * With two repositories each names the repository that refused it.
   */
  async archivePushErrors(): Promise<PushError[]> {
    const dir = join(this.paths.spool, 'archive', STANZA, 'out');
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith('.error'));
    } catch {
      return [];
    }
    const out: PushError[] = [];
    for (const name of names.sort().slice(-20)) {
      try {
        const file = join(dir, name);
        const [text, st] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
        out.push(parsePushError(name.replace(/\.error$/, ''), text, st.mtimeMs));
      } catch {
        // Gone meanwhile: pushed.
      }
    }
    return out;
  }

  // ---- internals --------------------------------------------------------------

  private async run(command: string, args: string[], how: RunHow, opts: CallOptions): Promise<RunResult> {
    this.prepared ??= preparePgBackRestFiles(this.ctx).catch((err: unknown) => {
      this.prepared = undefined;
      throw err;
    });
    await this.prepared;
    // The command as errors name it: the leader's remote (--pg2-*) and the annotations are left out, --backup-standby stays.
    const shown = `pgbackrest ${[command, ...args.filter((a) => !a.startsWith('--output') && a !== '--verbose' && !a.startsWith('--pg2-') && !a.startsWith('--annotation'))].join(' ')}`;
    const argv = [
      `--config=${this.paths.conf}`,
      `--config-include-path=${this.paths.includeDir}`,
      `--stanza=${STANZA}`,
      '--log-level-console=off',
      `--log-level-stderr=${how.stderrLevel ?? 'warn'}`,
      ...args,
      command,
    ];
    const timeoutMs = opts.timeoutMs ?? how.timeoutMs;
    const started = Date.now();
    const result = await runTool(this.settings.pgbackrestBin, argv, {
      user: this.ctx.user,
      cwd: this.paths.dir,
      env: { PGPASSFILE: passfilePath(this.ctx), PGCONNECT_TIMEOUT: '10' },
      timeoutMs,
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(how.captureChars ? { captureChars: how.captureChars } : {}),
    });
    if (result.code !== 0) {
      const timedOut = result.signal !== null && Date.now() - started >= timeoutMs;
      const why = opts.signal?.aborted ? 'was cancelled' : timedOut ? `did not finish within ${timeoutMs} ms and was killed` : undefined;
      throw new PgBackRestError(shown, result.code, result.signal, stderrTail(result.stderr), why);
    }
    return result;
  }

  /**
   * "repository 1 (/mnt/backups) is full: 0 B free of 50 GiB", or why that
   * is unknown; never waits long on a hung mount. pgBackRest 2.45 names the
   * errno only when the main process failed the write, not when one of its
   * copy processes did ("unable to write '<file>'" and its retries), so
   * this is what says "full" every time.
   */
  private async repoSpace(repo: 1 | 2): Promise<string> {
    const path = repo === 2 ? this.settings.repo2Path : this.settings.repoPath;
    let timer: NodeJS.Timeout | undefined;
    try {
      const fs = await Promise.race([
        statfs(path),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('no answer within 2 s')), 2000))),
      ]);
      const free = Number(fs.bavail) * Number(fs.bsize);
      const size = Number(fs.blocks) * Number(fs.bsize);
      const full = free < Math.min(FULL_BELOW_BYTES, size / 100);
      return `repository ${repo} (${path}) ${full ? 'is full' : 'has room'}: ${formatBytes(free)} free of ${formatBytes(size)}`;
    } catch (err) {
      return `repository ${repo} (${path}): free space unknown (${(err as Error).message})`;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Polls progress until the returned function is called (which waits for
   * a poll in flight). A tick that comes while the last look still runs is
   * skipped, so a slow `info` never queues looks up.
   */
  private watchProgress(onProgress: (p: BackupProgress) => void, intervalMs: number): () => Promise<void> {
    let stopped = false;
    let inFlight: Promise<void> | undefined;
    const look = async () => {
      try {
        const p = await this.progress({ timeoutMs: Math.max(intervalMs * 4, 30_000) });
        if (!stopped) onProgress(p);
      } catch {
        // Progress is a courtesy: a failed look does not touch the backup.
      } finally {
        inFlight = undefined;
      }
    };
    const timer = setInterval(() => {
      if (!stopped && !inFlight) inFlight = look();
    }, intervalMs);
    return async () => {
      stopped = true;
      clearInterval(timer);
      await inFlight;
    };
  }
}

/** The last lines pgBackRest wrote to stderr, whitespace folded (its HINT lines are indented). */
export function stderrTail(stderr: string, lines = STDERR_TAIL_LINES): string[] {
  return stderr
    .split('\n')
    .map((l) => l.trim().replace(/\s+/g, ' '))
    .filter((l) => l !== '')
    .slice(-lines);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}
