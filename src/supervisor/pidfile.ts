/**
 * Pidfiles that survive a supervisor crash without falling for pid reuse, and
 * the /proc look-ups that go with them (Linux only).
 *
 * A pidfile holds two lines: the child's pid, then its start time in clock
 * ticks since boot (field 22 of /proc/PID/stat). The first line alone keeps
 * `kill $(head -1 FILE)` working for operators; the second lets a restarted
 * supervisor tell "my child is still running" from "some unrelated process
 * now has that pid", since a pid is reused but a (pid, start time) pair is not.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export interface PidRecord {
  pid: number;
  /** Clock ticks since boot at which the process started (/proc/PID/stat field 22). */
  startTime: number;
}

export interface ProcStat {
  pid: number;
  /** One letter: R, S, D, Z, T, ... */
  state: string;
  ppid: number;
  pgrp: number;
  startTime: number;
}

/** Parses /proc/PID/stat; undefined when the process does not exist (or /proc is unreadable). */
export function readProcStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return undefined;
  }
  return parseProcStat(text);
}

/** Exposed for tests: the command name (field 2) may hold spaces and parentheses, so split after the last ')'. */
export function parseProcStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number.parseInt(text, 10);
  // Fields from 3 (state) onward; field N sits at index N - 3.
  const rest = text.slice(close + 2).trim().split(' ');
  const state = rest[0];
  const ppid = Number(rest[4 - 3]);
  const pgrp = Number(rest[5 - 3]);
  const startTime = Number(rest[22 - 3]);
  if (!state || !Number.isInteger(pid) || !Number.isFinite(ppid) || !Number.isFinite(pgrp) || !Number.isFinite(startTime)) return undefined;
  return { pid, state, ppid, pgrp, startTime };
}

/** A process that exists and is not a zombie (a zombie has exited; it only waits to be reaped). */
export function isProcessLive(pid: number): boolean {
  const stat = readProcStat(pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X';
}

/** True when `pid` is alive and is the very process recorded (same start time). */
export function isSameProcessAlive(record: PidRecord): boolean {
  try {
    process.kill(record.pid, 0);
  } catch (err) {
    // EPERM means it exists but belongs to someone we may not signal; /proc decides below.
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  const stat = readProcStat(record.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.state !== 'X' && stat.startTime === record.startTime;
}

/**
 * True while any non-zombie process is in process group `pgid`. kill(-pgid, 0)
 * answers cheaply in the common case; /proc is consulted only to ignore
 * zombies, which an init that does not reap (as in some containers) would
 * otherwise keep "alive" forever.
 */
export function isGroupAlive(pgid: number): boolean {
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  // Usually the leader itself is still there, which settles it without a scan.
  const leader = readProcStat(pgid);
  if (leader && leader.pgrp === pgid && leader.state !== 'Z' && leader.state !== 'X') return true;
  return groupMembers(pgid).length > 0;
}

/** Every live (non-zombie) process, from a scan of /proc. */
function liveProcesses(): ProcStat[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcStat[] = [];
  for (const entry of entries) {
    const code = entry.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    const stat = readProcStat(Number(entry));
    if (stat && stat.state !== 'Z' && stat.state !== 'X') out.push(stat);
  }
  return out;
}

/** Live (non-zombie) pids in process group `pgid`, found by scanning /proc. */
export function groupMembers(pgid: number): number[] {
  return liveProcesses()
    .filter((s) => s.pgrp === pgid)
    .map((s) => s.pid);
}

/** Live descendants of `pid` (children, their children, ...), found by scanning /proc. */
export function descendantsOf(pid: number): number[] {
  const byParent = new Map<number, number[]>();
  for (const s of liveProcesses()) byParent.set(s.ppid, [...(byParent.get(s.ppid) ?? []), s.pid]);
  const out: number[] = [];
  const queue = [...(byParent.get(pid) ?? [])];
  while (queue.length > 0) {
    const next = queue.shift()!;
    out.push(next);
    queue.push(...(byParent.get(next) ?? []));
  }
  return out;
}

/** Sends `signal` to every process in group `pgid`; false when the group is already gone. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  // Refuse 0/1 and negatives: kill(-1) would signal every process we may signal.
  if (!Number.isInteger(pgid) || pgid <= 1) return false;
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/** The pidfile's record, or undefined when it is missing or unreadable. */
export function readPidFile(path: string): PidRecord | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  const [pidLine, startLine] = text.split('\n');
  const pid = Number(pidLine?.trim());
  const startTime = Number(startLine?.trim());
  if (!Number.isInteger(pid) || pid <= 1 || !Number.isInteger(startTime) || startTime < 0) return undefined;
  return { pid, startTime };
}

/** Writes atomically (temp file + rename) so a crash never leaves a half-written pidfile. */
export function writePidFile(path: string, record: PidRecord): void {
  mkdirSync(dirname(path), { recursive: true });
  const temp = `${path}.${process.pid}.tmp`;
  writeFileSync(temp, `${record.pid}\n${record.startTime}\n`, { mode: 0o644 });
  renameSync(temp, path);
}

export function removePidFile(path: string): void {
  rmSync(path, { force: true });
}
