import { chown, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverContext } from '../../supervisor/driver.js';
import { ensureOwnedDir, isFile, runTool } from '../service-dirs.js';

/**
 * Checks a postgresql.conf with PostgreSQL's own parser: `postgres -C`
 * loads the whole configuration (this file plus postgresql.auto.conf),
 * prints one setting and exits without touching the running server or
 * its lock file, so it is safe while the server runs. An invalid value,
 * an unknown parameter or a syntax error makes it exit non-zero with the
 * same message the server would log.
 */
const CHECK_TIMEOUT_MS = 30_000;

export function postgresBinary(ctx: DriverContext): string {
  return join(String(ctx.cfg.bin_dir), 'postgres');
}

/** PostgreSQL's messages from its stderr, without the log line prefix, the file path replaced by `label`. */
export function serverMessages(stderr: string, path: string, label: string): string[] {
  const out: string[] = [];
  for (const line of stderr.split('\n')) {
    const m = /\b(LOG|FATAL|ERROR|PANIC|DETAIL|HINT):\s+(.*)$/.exec(line);
    const text = (m ? m[2]! : line).trim();
    if (text === '' || /^skipping missing configuration file/.test(text)) continue;
    out.push(text.split(path).join(label));
  }
  // The final "contains errors" only repeats what the lines before it said.
  const specific = out.filter((t) => !/configuration file .* contains errors/.test(t));
  return specific.length > 0 ? specific : out;
}

/** Undefined when PostgreSQL accepts `text` as its postgresql.conf, else PostgreSQL's reason. */
export async function checkPostgresqlConf(ctx: DriverContext, text: string, label = 'postgresql.conf'): Promise<string | undefined> {
  // Inside the run dir, not /tmp: the service user can read it there, and it stays in the state dir.
  // A config may be checked before the service's first start, so the run dir may not exist yet.
  await ensureOwnedDir(ctx.paths.run, 0o700, ctx.user);
  const dir = await mkdtemp(join(ctx.paths.run, '.conf-check-'));
  try {
    const file = join(dir, 'postgresql.conf');
    await writeFile(file, text, { mode: 0o600 });
    if (ctx.user) {
      await chown(dir, ctx.user.uid, ctx.user.gid);
      await chown(file, ctx.user.uid, ctx.user.gid);
    }
    // Before initdb there is no data dir to point at; an empty directory serves for parsing.
    const dataDir = (await isFile(join(ctx.paths.data, 'PG_VERSION'))) ? ctx.paths.data : dir;
    const result = await runTool(postgresBinary(ctx), ['-D', dataDir, '-C', 'port', '-c', `config_file=${file}`], {
      user: ctx.user,
      cwd: dir,
      timeoutMs: CHECK_TIMEOUT_MS,
    });
    if (result.code === 0) return undefined;
    const messages = serverMessages(result.stderr, file, label);
    if (result.signal) messages.push(`postgres -C was killed by ${result.signal}`);
    return messages.join('; ') || `postgres -C exited with code ${result.code}`;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
