import { randomBytes } from 'node:crypto';
import { chown, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverContext } from '../../supervisor/driver.js';
import { isFile, runTool } from '../service-dirs.js';

/** initdb fsyncs the new cluster; a slow disk may need a while. */
const INITDB_TIMEOUT_MS = 180_000;

export function isInitialized(dataDir: string): Promise<boolean> {
  return isFile(join(dataDir, 'PG_VERSION'));
}

/**
 * Creates a new cluster in the (empty) data directory with data checksums,
 * scram-sha-256 and the superuser whose password is the cluster secret.
 * The password goes through a mode-0600 file in the run dir that is removed
 * as soon as initdb exits; it is never on a command line or in a log line.
 * Refuses a non-empty directory: whatever is there is someone's data.
 */
export async function initDataDir(ctx: DriverContext): Promise<void> {
  const data = ctx.paths.data;
  const present = await readdir(data);
  if (present.length > 0) {
    throw new Error(
      `${data} is not empty but holds no PostgreSQL cluster (no PG_VERSION); refusing to initdb over it. ` +
        `Move its contents away if they are not needed.`,
    );
  }
  const pwfile = join(ctx.paths.run, `.initdb-${randomBytes(6).toString('hex')}`);
  await writeFile(pwfile, `${ctx.secrets.postgresql.superuser_password}\n`, { mode: 0o600, flag: 'wx' });
  try {
    if (ctx.user) await chown(pwfile, ctx.user.uid, ctx.user.gid);
    const superuser = String(ctx.cfg.superuser);
    ctx.log.info({ event: 'initdb', data, superuser }, `initializing a new PostgreSQL cluster in ${data}`);
    const result = await runTool(
      join(String(ctx.cfg.bin_dir), 'initdb'),
      ['-D', data, '--data-checksums', '--auth=scram-sha-256', `--username=${superuser}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C.UTF-8'],
      { user: ctx.user, cwd: ctx.paths.run, timeoutMs: INITDB_TIMEOUT_MS },
    );
    if (result.code !== 0) {
      const why = (result.stderr || result.stdout).trim().split('\n').slice(-5).join(' | ');
      throw new Error(`initdb failed (${result.signal ?? `exit ${result.code}`}): ${why}`);
    }
    ctx.log.info({ event: 'initdb_done', data }, 'PostgreSQL cluster initialized');
  } finally {
    await rm(pwfile, { force: true });
  }
}
