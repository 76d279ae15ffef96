/**
 * Running the system tools the cluster harness drives (ip, nft): an async
 * form for use while tests run and a sync form for teardown from a
 * process-exit hook, where no more events will be processed.
 */
import { spawn, spawnSync } from 'node:child_process';

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number | null,
    readonly stderr: string,
  ) {
    super(`\`${command}\` failed (exit ${code}): ${stderr.trim() || '(no output)'}`);
  }
}

function describe(cmd: string, args: string[]): string {
  return [cmd, ...args].join(' ');
}

export function runCommand(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', (err) => reject(new CommandError(describe(cmd, args), null, err.message)));
    child.once('close', (code) => (code === 0 ? resolve(stdout) : reject(new CommandError(describe(cmd, args), code, stderr))));
    if (input !== undefined) child.stdin!.end(input);
  });
}

export function runCommandSync(cmd: string, args: string[], input?: string): string {
  const result = spawnSync(cmd, args, { encoding: 'utf8', input, timeout: 10_000 });
  if (result.error) throw new CommandError(describe(cmd, args), null, result.error.message);
  if (result.status !== 0) throw new CommandError(describe(cmd, args), result.status, result.stderr);
  return result.stdout;
}

/** For teardown: a device or namespace that is already gone is what we wanted. */
export function runCommandSyncQuiet(cmd: string, args: string[]): boolean {
  try {
    runCommandSync(cmd, args);
    return true;
  } catch {
    return false;
  }
}

/** Blocks the thread; only for teardown in an exit hook, where awaiting is impossible. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function commandExists(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}
