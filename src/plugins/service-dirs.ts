import { spawn } from 'node:child_process';
import { chmod, lchown, lstat, mkdir, readdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { ServicePaths, ServiceUser } from '../supervisor/driver.js';

/**
 * Directory and child-process chores that every service driver shares:
 * making a service's directories owned by its unprivileged user, explaining
 * in plain words when that user cannot reach them, and running the
 * service's own tools (initdb, postgres -C) as that user.
 */

/**
 * Creates `dir` if missing and makes it owned by `user` with exactly `mode`.
 * When an existing directory belongs to someone else (a restored backup, a
 * changed service user), its whole tree is handed over: the service refuses
 * to run on files it does not own. Contents are never removed or rewritten.
 */
export async function ensureOwnedDir(dir: string, mode: number, user: ServiceUser | undefined): Promise<void> {
  // Parents get a traversable mode; only the leaf gets the private one.
  await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
  try {
    await mkdir(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  const st = await stat(dir);
  if (user && (st.uid !== user.uid || st.gid !== user.gid)) await chownTree(dir, user);
  if ((st.mode & 0o7777) !== mode) await chmod(dir, mode);
}

/**
 * The directories every service has, owned by its user: data and run
 * private to it (PostgreSQL and etcd refuse a data dir with group or other
 * bits), logs and config readable by its group; then a check that the user
 * can reach its data dir. What each driver's prepare() starts with.
 */
export async function prepareServiceDirs(paths: ServicePaths, user: ServiceUser | undefined): Promise<void> {
  await ensureOwnedDir(paths.data, 0o700, user);
  await ensureOwnedDir(paths.run, 0o700, user);
  await ensureOwnedDir(paths.logs, 0o750, user);
  await ensureOwnedDir(paths.config, 0o750, user);
  await assertReachable(paths.data, user);
}

/** lchown of every entry under (and including) `dir`; symlinks themselves, never their targets. */
export async function chownTree(dir: string, user: ServiceUser): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  const entries = await readdir(dir, { withFileTypes: true });
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(path, user);
    else await lchown(path, user.uid, user.gid);
  }
}

/**
 * Throws a message an operator can act on when `user` cannot walk down to
 * `path`. Children are spawned with only their primary group (libuv drops
 * supplementary groups when it switches user), so only owner, primary group
 * and "other" bits count.
 */
export async function assertReachable(path: string, user: ServiceUser | undefined): Promise<void> {
  if (!user) return;
  const chain: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const dir of chain) {
    let st;
    try {
      st = await lstat(dir);
    } catch {
      return; // not created yet: mkdir will make it with our modes
    }
    if (st.isSymbolicLink()) st = await stat(dir);
    const bits = st.uid === user.uid ? (st.mode >> 6) & 1 : st.gid === user.gid ? (st.mode >> 3) & 1 : st.mode & 1;
    if (!bits) {
      throw new Error(
        `service user ${user.name} cannot reach ${path}: ${dir} is mode ${(st.mode & 0o777).toString(8).padStart(4, '0')} owned by uid ${st.uid}; ` +
          `allow it through (e.g. chmod o+x ${dir}, or chgrp ${user.name} ${dir} && chmod g+x ${dir})`,
      );
    }
  }
}

export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  user?: ServiceUser;
  cwd: string;
  /** The whole environment of the child; nothing of hasup's own is inherited. */
  env?: Record<string, string>;
  timeoutMs: number;
  signal?: AbortSignal;
  /** How much of each of stdout and stderr to keep (default MAX_CAPTURE_CHARS); a tool whose answer is its output may need more. */
  captureChars?: number;
}

/** Enough of a tool's output to explain a failure, without holding a runaway log in memory. */
const MAX_CAPTURE_CHARS = 64 * 1024;

/** A locale every Debian system has, so tools speak plain English and UTF-8. */
export const TOOL_ENV: Record<string, string> = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8' };

/**
 * Runs a service tool to completion as the service user (when given),
 * capturing its output. Never passes secrets: callers put them in files.
 * Rejects only when the tool cannot be started; a non-zero exit is a result.
 */
export function runTool(command: string, args: string[], opts: RunOptions): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd,
      env: { ...TOOL_ENV, ...(opts.user ? { USER: opts.user.name, LOGNAME: opts.user.name } : {}), ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
      timeout: opts.timeoutMs,
      killSignal: 'SIGKILL',
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    let stdout = '';
    let stderr = '';
    const cap = opts.captureChars ?? MAX_CAPTURE_CHARS;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      if (stdout.length < cap) stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      if (stderr.length < cap) stderr += chunk;
    });
    child.once('error', (err) => {
      // An abort or timeout still ends in 'close'; only a failed spawn has no exit to report.
      if (child.pid === undefined) reject(new Error(`cannot run ${command}: ${err.message}`));
    });
    child.once('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}
