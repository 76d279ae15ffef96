/**
 * Commands run to completion from the host without blocking the event loop:
 * any executable (`runCommand`: pgbench, pg_basebackup) or the `hasup` CLI
 * against one member of an HaCluster (`hasupCli`: its state dir names the
 * member's API and secrets). Output is collected, optionally handed over
 * line by line as it comes, and the command is killed after a time limit.
 * Used by the backup benchmark.
 */
import { spawn } from 'node:child_process';
import type { HaCluster } from './ha-cluster.js';
import { HASUP_BIN } from './member-procs.js';

export interface CommandResult {
  /** Exit code (null when killed by a signal, e.g. after the time limit). */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Wall time from the spawn to the exit. */
  ms: number;
  timedOut: boolean;
}

export interface CommandOptions {
  /** Environment of the command (default: this process's). Secrets go here, never into args. */
  env?: NodeJS.ProcessEnv;
  /** Killed (SIGKILL) after this long; default 5 min. */
  timeoutMs?: number;
  /** Each complete line of output as it comes. */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export function runCommand(cmd: string, args: string[], opts: CommandOptions = {}): Promise<CommandResult> {
  const timeoutMs = opts.timeoutMs ?? 300_000;
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out = { stdout: '', stderr: '' };
    const pending = { stdout: '', stderr: '' };
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    const take = (stream: 'stdout' | 'stderr') => (d: Buffer) => {
      const text = d.toString();
      out[stream] += text;
      if (!opts.onLine) return;
      // pgbench and pg_basebackup end progress lines with \r on a terminal; treat it as a line end too.
      const parts = (pending[stream] + text).split(/\r\n|\n|\r/);
      pending[stream] = parts.pop()!;
      for (const line of parts) if (line.trim() !== '') opts.onLine(line, stream);
    };
    child.stdout.on('data', take('stdout'));
    child.stderr.on('data', take('stderr'));
    let finished = false;
    const finish = (code: number | null) => {
      // A command that cannot be spawned emits 'error' and may emit 'close' too.
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      for (const stream of ['stdout', 'stderr'] as const) if (opts.onLine && pending[stream].trim() !== '') opts.onLine(pending[stream], stream);
      resolve({ code, ...out, ms: Date.now() - started, timedOut });
    };
    child.once('error', (err) => {
      out.stderr += `\n${cmd}: ${err.message}`;
      finish(null);
    });
    child.once('close', finish);
  });
}

/** `hasup ARGS --state-dir <node i's>` from the host, against node i's API. */
export function hasupCli(ha: HaCluster, i: number, args: string[], opts: Omit<CommandOptions, 'env'> = {}): Promise<CommandResult> {
  return runCommand(process.execPath, [HASUP_BIN, ...args, '--state-dir', ha.cluster.node(i).stateDir], opts);
}

/** The last `n` non-empty lines of a command's output, for an error message. */
export function lastLines(text: string, n = 5): string {
  return text
    .split(/\r\n|\n|\r/)
    .filter((l) => l.trim() !== '')
    .slice(-n)
    .join(' | ');
}
