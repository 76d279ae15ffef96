import { randomBytes } from 'node:crypto';
import { chown, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverContext, ServicePaths } from '../../supervisor/driver.js';
import { ensureOwnedDir, isFile } from '../service-dirs.js';
import { passfilePath, writePassfile } from '../postgresql/standby-config.js';
import { pgbackrestTlsFiles, pgbackrestTlsProblem, PGBACKREST_CLIENT_CN } from './server-tls.js';
import { backupEnabled, backupSettingsFrom, cipherPass } from './settings.js';

/**
 * Where pgBackRest keeps its files on a member: all under the PostgreSQL
 * service's own directories, never pgBackRest's defaults (/tmp/pgbackrest,
 * /var/log/pgbackrest, /var/spool/pgbackrest), since several members may
 * share a host (the tests do) and must not share locks or a spool.
 *
 *   config/pgbackrest.conf      rendered from the plan's template (no secret in it)
 *   pgbackrest/spool/           the async archive-push acknowledgements and archive-get queue
 *   pgbackrest/lock/            pgBackRest's lock files (one backup at a time per member)
 *   pgbackrest/conf.d/          given with --config-include-path; cipher.conf holds the
 *                               repository passphrase (mode 0600), when the secrets have one
 *   logs/                       pgBackRest's own log files (hasup-<command>.log)
 *   run/pgpass                  the superuser's password for the commands that connect
 *                               (shared with the HA loop's tools: standby-config.ts)
 */
export interface PgBackRestPaths {
  conf: string;
  dir: string;
  spool: string;
  lock: string;
  includeDir: string;
  cipherFile: string;
  logs: string;
  /** The pid file of this member's pgBackRest TLS server (server.ts). */
  serverPid: string;
}

/** The stanza: one per cluster, every member's PostgreSQL is the same database. */
export const STANZA = 'hasup';

export function pgbackrestPaths(paths: ServicePaths): PgBackRestPaths {
  const dir = join(paths.root, 'pgbackrest');
  const includeDir = join(dir, 'conf.d');
  return {
    conf: join(paths.config, 'pgbackrest.conf'),
    dir,
    spool: join(dir, 'spool'),
    lock: join(dir, 'lock'),
    includeDir,
    cipherFile: join(includeDir, 'cipher.conf'),
    logs: paths.logs,
    serverPid: join(dir, 'server.pid'),
  };
}

/**
 * What the plan's templates see as {{svc.pgbackrest.*}}; `server` says
 * whether this member runs pgBackRest's TLS server (serverProblem), whose
 * section then names its certificate files and the client CN it admits.
 */
export function pgbackrestTemplateValues(ctx: Pick<DriverContext, 'paths' | 'cfg' | 'tls' | 'secrets'>): Record<string, string | boolean> {
  const p = pgbackrestPaths(ctx.paths);
  const tls = pgbackrestTlsFiles(ctx);
  return {
    conf: p.conf,
    spool_dir: p.spool,
    lock_dir: p.lock,
    include_dir: p.includeDir,
    log_dir: p.logs,
    stanza: STANZA,
    server: serverProblem(ctx) === undefined,
    tls_ca: tls?.ca ?? '',
    tls_cert: tls?.cert ?? '',
    tls_key: tls?.key ?? '',
    client_cn: PGBACKREST_CLIENT_CN,
  };
}

/**
 * Why this member runs no pgBackRest TLS server, or undefined when it runs
 * one: backups off, backup_standby = "off", or no TLS to issue its
 * certificate from. Every member with backups on runs one, so whichever
 * leads can be reached by a follower's backup.
 */
export function serverProblem(ctx: Pick<DriverContext, 'cfg' | 'tls' | 'secrets'>): string | undefined {
  const s = backupSettingsFrom(ctx.cfg);
  if (!backupEnabled(s)) return 'backups are off (backup.repo_path is empty)';
  if (s.backupStandby === 'off') return 'backup.backup_standby = "off"';
  return pgbackrestTlsProblem(ctx);
}

/**
 * Makes pgBackRest's directories, owned by the service user and private to
 * it, and writes the passphrase include when the cluster secrets hold one
 * (removing a stale one when they do not). The passphrase goes in for both
 * repositories: pgBackRest ignores repo2-cipher-pass while no repo2-path is
 * set, and uses a passphrase only where the rendered config asks for
 * aes-256-cbc, so the file does not depend on the config in force and a
 * config change needs no new file. Idempotent; run before every start.
 */
export async function preparePgBackRestFiles(ctx: DriverContext): Promise<PgBackRestPaths> {
  const p = pgbackrestPaths(ctx.paths);
  await ensureOwnedDir(p.dir, 0o700, ctx.user);
  for (const dir of [p.spool, p.lock, p.includeDir]) await ensureOwnedDir(dir, 0o700, ctx.user);
  await ensureOwnedDir(p.logs, 0o750, ctx.user);
  const pass = cipherPass(ctx.secrets);
  if (pass === undefined) await rm(p.cipherFile, { force: true });
  else await writeOwned(ctx, p.cipherFile, `[global]\nrepo1-cipher-pass=${pass}\nrepo2-cipher-pass=${pass}\n`);
  // The HA loop writes the same file; a standalone member has none until here.
  if (!(await isFile(passfilePath(ctx)))) {
    await ensureOwnedDir(ctx.paths.run, 0o700, ctx.user);
    await writePassfile(ctx);
  }
  return p;
}

async function writeOwned(ctx: DriverContext, file: string, content: string): Promise<void> {
  // A name of its own per write: two preparations at once (a backup job and a listing) must not rename each other's file.
  const tmp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await writeFile(tmp, content, { mode: 0o600 });
  if (ctx.user) await chown(tmp, ctx.user.uid, ctx.user.gid);
  await rename(tmp, file);
}
