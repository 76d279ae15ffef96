/**
 * The demo's background processes: started detached with their output in a
 * log file, recorded as (pid, start time) so that a later `npm run demo --
 * stop` signals exactly the process it started and never one that reused
 * its pid, and stopped with a bounded wait.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isSameProcessAlive, readPidFile, readProcStat, removePidFile, signalGroup, writePidFile, type PidRecord } from '../src/supervisor/pidfile.js';

/** A failure the demo explains itself: printed as its message, without a stack. */
export class DemoError extends Error {}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts `command` in its own session (so Ctrl-C of the demo does not reach it), output appended to `logFile`. */
export function startDetached(command: string, args: string[], o: { logFile: string; pidFile: string; cwd: string }): PidRecord {
  const out = openSync(o.logFile, 'a');
  try {
    const child = spawn(command, args, { cwd: o.cwd, detached: true, stdio: ['ignore', out, out] });
    child.unref();
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${command}`);
    // /proc/PID/stat exists from the fork on; its start time is what makes the record unambiguous.
    const stat = readProcStat(pid);
    if (!stat) throw new Error(`${command} (pid ${pid}) exited at once; see ${o.logFile}`);
    const record = { pid, startTime: stat.startTime };
    writePidFile(o.pidFile, record);
    return record;
  } finally {
    closeSync(out);
  }
}

/** The recorded process if it is still the one running; a stale pidfile is removed. */
export function runningFromPidFile(pidFile: string): PidRecord | undefined {
  const record = readPidFile(pidFile);
  if (!record) return undefined;
  if (isSameProcessAlive(record)) return record;
  removePidFile(pidFile);
  return undefined;
}

async function waitGone(record: PidRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!isSameProcessAlive(record)) return true;
    await sleep(100);
  }
  return !isSameProcessAlive(record);
}

export type StopOutcome = 'not running' | 'stopped' | 'killed';

/**
 * SIGTERM to the recorded process, then SIGKILL if it is still there after
 * `timeoutMs`. Removes the pidfile once the process is gone.
 */
export async function stopRecorded(pidFile: string, timeoutMs: number): Promise<StopOutcome> {
  const record = runningFromPidFile(pidFile);
  if (!record) return 'not running';
  try {
    process.kill(record.pid, 'SIGTERM');
  } catch {
    // Exited between the check and the signal.
  }
  let outcome: StopOutcome = 'stopped';
  if (!(await waitGone(record, timeoutMs))) {
    if (isSameProcessAlive(record)) process.kill(record.pid, 'SIGKILL');
    await waitGone(record, 5000);
    outcome = 'killed';
  }
  removePidFile(pidFile);
  return outcome;
}

/**
 * Children hasup records in STATE_DIR/svc/NAME/run/hasup-child.pid that are
 * still running: after a clean stop there are none; after a daemon had to be
 * killed, these are what it left behind.
 */
export function survivingChildren(stateDir: string): Array<{ service: string; record: PidRecord }> {
  const svcDir = join(stateDir, 'svc');
  let services: string[];
  try {
    services = readdirSync(svcDir);
  } catch {
    return [];
  }
  const out: Array<{ service: string; record: PidRecord }> = [];
  for (const service of services) {
    const record = readPidFile(join(svcDir, service, 'run', 'hasup-child.pid'));
    if (record && isSameProcessAlive(record)) out.push({ service, record });
  }
  return out;
}

/** Stops a child hasup left behind: hasup runs each in its own process group, so the whole group goes (a JVM's server with its launcher). */
export async function stopOrphan(record: PidRecord, timeoutMs: number): Promise<void> {
  const leadsGroup = readProcStat(record.pid)?.pgrp === record.pid;
  const signal = (sig: NodeJS.Signals) => {
    if (leadsGroup) signalGroup(record.pid, sig);
    else if (isSameProcessAlive(record)) process.kill(record.pid, sig);
  };
  signal('SIGTERM');
  if (!(await waitGone(record, timeoutMs))) signal('SIGKILL');
  await waitGone(record, 5000);
}

/** The last lines of a log file, for error messages. */
export function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return `(no ${file})`;
  }
}
