import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverContext } from '../../supervisor/driver.js';
import { runTool, type RunResult } from '../service-dirs.js';
import { conninfo, emptyDataDir, passfilePath, replicationUser, superuser, writeUpstreamCa, type Upstream } from './standby-config.js';

/**
 * PostgreSQL's own tools for moving data between members, run as the
 * service user with passwords from the 0600 passfile (PGPASSFILE), never
 * on a command line: pg_basebackup (a new follower copies the leader),
 * pg_rewind (a former primary drops what the new leader never had) and
 * pg_controldata (where a stopped server ended).
 */
const CLONE_TIMEOUT_MS = 6 * 3600_000;
const REWIND_TIMEOUT_MS = 3600_000;
const CONTROLDATA_TIMEOUT_MS = 10_000;

function bin(ctx: DriverContext, tool: string): string {
  return join(String(ctx.cfg.bin_dir), tool);
}

function toolEnv(ctx: DriverContext): Record<string, string> {
  return { PGPASSFILE: passfilePath(ctx), PGAPPNAME: `hasup-${ctx.memberId}`, PGCONNECT_TIMEOUT: '5' };
}

function why(result: RunResult): string {
  const text = (result.stderr || result.stdout).trim().split('\n').slice(-4).join(' | ');
  return `${result.signal ?? `exit ${result.code}`}${text ? `: ${text}` : ''}`;
}

/** Parses PostgreSQL's X/Y notation into a byte position. */
export function parseLsn(text: string): number {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a WAL position`);
  return parseInt(m[1]!, 16) * 2 ** 32 + parseInt(m[2]!, 16);
}

/** A byte position in PostgreSQL's X/Y notation. */
export function lsnText(position: number): string {
  const hi = Math.floor(position / 2 ** 32);
  return `${hi.toString(16).toUpperCase()}/${(position - hi * 2 ** 32).toString(16).toUpperCase()}`;
}

/**
 * Copies the leader into the (empty) data directory with pg_basebackup,
 * streaming the WAL it needs alongside. A failed copy is cleared away.
 */
export async function cloneFromLeader(ctx: DriverContext, leader: Upstream, signal: AbortSignal): Promise<void> {
  if ((await readdir(ctx.paths.data)).length > 0) throw new Error(`${ctx.paths.data} is not empty; refusing to copy the leader over it`);
  ctx.log.info({ event: 'pg_basebackup', from: leader.member, host: leader.host, port: leader.port }, `copying the database from ${leader.member} (${leader.host}:${leader.port})`);
  const started = Date.now();
  await writeUpstreamCa(ctx, leader);
  const result = await runTool(
    bin(ctx, 'pg_basebackup'),
    ['-D', ctx.paths.data, '-d', conninfo(ctx, leader, replicationUser(ctx)), '-X', 'stream', '-c', 'fast', '-w'],
    { user: ctx.user, cwd: ctx.paths.run, env: toolEnv(ctx), timeoutMs: CLONE_TIMEOUT_MS, signal },
  ).catch((err: unknown) => ({ code: null, signal: null, stdout: '', stderr: (err as Error).message }) as RunResult);
  if (result.code !== 0) {
    await emptyDataDir(ctx);
    throw new Error(`pg_basebackup from ${leader.member} failed (${why(result)})`);
  }
  ctx.log.info({ event: 'pg_basebackup_done', from: leader.member, took_ms: Date.now() - started }, 'database copied from the leader');
}

export type RewindOutcome = { ok: true; rewound: boolean } | { ok: false; reason: string };

/**
 * Winds a stopped former primary back to where it left the new leader's
 * history, so it can follow. "No rewind required" is a success too.
 */
export async function rewindFrom(ctx: DriverContext, leader: Upstream, signal: AbortSignal): Promise<RewindOutcome> {
  const started = Date.now();
  // A target that did not shut down cleanly is first recovered by pg_rewind in
  // single-user mode, which refuses to run with a standby.signal present;
  // prepare() writes it again before the next start.
  for (const name of ['standby.signal', 'recovery.signal']) await rm(join(ctx.paths.data, name), { force: true });
  await writeUpstreamCa(ctx, leader);
  const result = await runTool(bin(ctx, 'pg_rewind'), ['-D', ctx.paths.data, '--source-server', conninfo(ctx, leader, superuser(ctx), { dbname: 'postgres' })], {
    user: ctx.user,
    cwd: ctx.paths.run,
    env: toolEnv(ctx),
    timeoutMs: REWIND_TIMEOUT_MS,
    signal,
  }).catch((err: unknown) => ({ code: null, signal: null, stdout: '', stderr: (err as Error).message }) as RunResult);
  const output = `${result.stdout}\n${result.stderr}`;
  if (result.code === 0) {
    const rewound = !/no rewind required/i.test(output);
    ctx.log.info({ event: 'pg_rewind', from: leader.member, rewound, took_ms: Date.now() - started }, rewound ? `rewound to follow ${leader.member}` : `no rewind needed to follow ${leader.member}`);
    return { ok: true, rewound };
  }
  if (endsAtFork(output)) {
    ctx.log.info({ event: 'pg_rewind', from: leader.member, rewound: false, took_ms: Date.now() - started }, `no rewind needed to follow ${leader.member}: this member's WAL ends where its timeline forked`);
    return { ok: true, rewound: false };
  }
  return { ok: false, reason: `pg_rewind from ${leader.member} failed (${why(result)})` };
}

/**
 * pg_rewind (15) fails on a target whose WAL ends exactly at the fork point
 * (a primary killed after sending everything: the other side promoted at
 * its last record): it looks for a record there to walk back from and finds
 * none. Nothing past the fork is there to undo, so the member can follow
 * as it is.
 */
export function endsAtFork(output: string): boolean {
  const fork = /servers diverged at WAL location ([0-9A-F]+\/[0-9A-F]+) on timeline \d+/.exec(output)?.[1];
  return fork !== undefined && new RegExp(`could not find previous WAL record at ${fork.replace('/', '\\/')}: invalid record length at ${fork.replace('/', '\\/')}: wanted \\d+, got 0`).test(output);
}

export interface ControlData {
  state: string;
  checkpoint: number | null;
  timeline: number | null;
}

/** pg_controldata of the local (stopped or running) data directory. */
export async function controlData(ctx: DriverContext): Promise<ControlData> {
  const result = await runTool(bin(ctx, 'pg_controldata'), ['-D', ctx.paths.data], { user: ctx.user, cwd: ctx.paths.run, timeoutMs: CONTROLDATA_TIMEOUT_MS });
  if (result.code !== 0) throw new Error(`pg_controldata failed (${why(result)})`);
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(result.stdout)?.[1]?.trim();
  const checkpoint = field("Latest checkpoint location");
  const tli = field("Latest checkpoint's TimeLineID");
  return { state: field('Database cluster state') ?? 'unknown', checkpoint: checkpoint ? parseLsn(checkpoint) : null, timeline: tli ? Number(tli) : null };
}
