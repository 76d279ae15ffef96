// Real processes: /bin/sh scripts and node children, in their own process groups.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ProcessRunner, findPasswdEntry, resolveServiceUser, type ProcessRunnerOptions, type RunnerState } from '../../src/supervisor/process-runner.js';
import { isProcessLive, readPidFile, readProcStat, writePidFile } from '../../src/supervisor/pidfile.js';
import type { LogEntry, LogSink } from '../../src/supervisor/log-sink.js';

class MemorySink implements LogSink {
  readonly entries: LogEntry[] = [];
  write(entry: LogEntry): void {
    this.entries.push(entry);
  }
  lines(stream?: 'stdout' | 'stderr'): string[] {
    return this.entries.filter((e) => stream === undefined || e.stream === stream).map((e) => e.line);
  }
}

async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const BASE_ENV = { PATH: process.env.PATH ?? '/usr/bin:/bin' };

interface Fixture {
  dir: string;
  sink: MemorySink;
  runner: ProcessRunner;
  states: RunnerState[];
  pidFile: string;
}

/** Every runner a test makes, stopped in its finally, so a failing assertion leaves no child or timer behind. */
class Runners {
  private readonly all: ProcessRunner[] = [];
  make(opts: ProcessRunnerOptions): ProcessRunner {
    const runner = new ProcessRunner(opts);
    this.all.push(runner);
    return runner;
  }
  async stopAll(): Promise<void> {
    await Promise.all(this.all.map((r) => r.stop()));
  }
}

async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hasup-runner-'));
  try {
    await body(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Options for a long-running /bin/sh service tagged with `marker` (its $0), so its copies can be counted. */
function markedService(script: string, marker: string, pidFile: string, logSink: LogSink): ProcessRunnerOptions {
  return {
    name: 'svc',
    command: '/bin/sh',
    args: ['-c', script, marker],
    env: BASE_ENV,
    cwd: '/',
    stopTimeoutMs: 1000,
    backoff: { initialMs: 50, maxMs: 400, factor: 2, jitter: 0 },
    flapping: { windowMs: 60_000, maxRestarts: 100 },
    pidFile,
    logSink,
  };
}

/** A runner over `script` (run by /bin/sh) with fast test timings; always stopped and cleaned up afterwards. */
async function withRunner(script: string, overrides: Partial<ProcessRunnerOptions>, body: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'hasup-runner-'));
  const sink = new MemorySink();
  const pidFile = join(dir, 'run', 'svc.pid');
  const runner = new ProcessRunner({
    name: 'svc',
    command: '/bin/sh',
    args: ['-c', script],
    env: BASE_ENV,
    cwd: dir,
    stopTimeoutMs: 2000,
    backoff: { initialMs: 50, maxMs: 400, factor: 2, jitter: 0 },
    flapping: { windowMs: 60_000, maxRestarts: 100 },
    pidFile,
    logSink: sink,
    ...overrides,
  });
  const states: RunnerState[] = [];
  runner.on('state', (s) => states.push(s));
  try {
    await body({ dir, sink, runner, states, pidFile });
  } finally {
    await runner.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Distinct pids the runner has reported, in order: one per spawned (or adopted) child. */
function spawnedPids(states: RunnerState[]): number[] {
  const pids: number[] = [];
  for (const s of states) if (s.pid !== undefined && pids.at(-1) !== s.pid) pids.push(s.pid);
  return pids;
}

function alive(pid: number): boolean {
  return isProcessLive(pid);
}

/**
 * Process-group leaders whose command line contains `marker`: one per copy of
 * the service. (A forked shell holds the same command line for a moment
 * before it execs, so plain processes would count twice.)
 */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const pid = Number(entry);
      if (cmdline.includes(marker) && isProcessLive(pid) && readProcStat(pid)?.pgrp === pid) found.push(pid);
    } catch {
      // Gone meanwhile.
    }
  }
  return found;
}

test('captures stdout and stderr line by line, joining partial lines and cutting very long ones', async () => {
  const script = [
    'printf "hello\\n"',
    'printf "par"; sleep 0.2; printf "tial\\n"',
    'printf "oops\\n" >&2',
    "head -c 40000 /dev/zero | tr '\\0' x; echo",
    'echo after-long',
    'printf "no-newline-at-end"',
    'exec sleep 30',
  ].join('\n');
  await withRunner(script, {}, async ({ runner, sink }) => {
    await runner.start();
    await waitFor('output', () => sink.lines('stdout').includes('after-long'));
    const pid = runner.state().pid;
    assert.ok(pid);
    assert.equal(runner.state().state, 'running');
    await runner.stop();
    await waitFor('final partial line after the pipe closed', () => sink.lines('stdout').includes('no-newline-at-end'), 2000);
    const stdout = sink.entries.filter((e) => e.stream === 'stdout');
    assert.deepEqual(
      stdout.map((e) => (e.line.length > 100 ? `<${e.line.length} bytes${e.truncated ? ', truncated' : ''}>` : e.line)),
      ['hello', 'partial', '<16384 bytes, truncated>', 'after-long', 'no-newline-at-end'],
    );
    assert.deepEqual(sink.lines('stderr'), ['oops']);
    for (const e of sink.entries) {
      assert.equal(e.service, 'svc');
      assert.equal(e.pid, pid);
      assert.ok(Math.abs(e.time - Date.now()) < 10_000);
    }
  });
});

test('stop(): a child ignoring SIGTERM is SIGKILLed after stopTimeoutMs, with its whole process group', async () => {
  // The shell and its background jobs all ignore TERM (an ignored signal stays ignored across fork and exec).
  const script = ['trap "" TERM', 'sleep 60 & echo "grandchild $!"', "sh -c 'sleep 60' & echo \"grandchild $!\"", 'echo ready', 'wait'].join('\n');
  await withRunner(script, { stopTimeoutMs: 600 }, async ({ runner, sink, pidFile }) => {
    await runner.start();
    await waitFor('ready', () => sink.lines('stdout').includes('ready'));
    const main = runner.state().pid!;
    const grandchildren = sink.lines('stdout').filter((l) => l.startsWith('grandchild ')).map((l) => Number(l.split(' ')[1]));
    assert.equal(grandchildren.length, 2);
    for (const pid of [main, ...grandchildren]) {
      assert.ok(alive(pid));
      assert.equal(readProcStat(pid)?.pgrp, main, 'child leads its own process group');
    }
    assert.ok(existsSync(pidFile));
    const began = Date.now();
    const stopping = runner.stop();
    assert.equal(runner.state().state, 'stopping');
    await stopping;
    const took = Date.now() - began;
    assert.ok(took >= 550, `stop took ${took} ms; SIGKILL must wait for the timeout`);
    assert.ok(took < 2500, `stop took ${took} ms`);
    for (const pid of [main, ...grandchildren]) assert.equal(alive(pid), false, `pid ${pid} survived stop()`);
    const state = runner.state();
    assert.equal(state.state, 'stopped');
    assert.equal(state.pid, undefined);
    assert.equal(state.lastExit?.signal, 'SIGKILL');
    assert.equal(existsSync(pidFile), false, 'pidfile removed after our stop');
  });
});

test('a child that honours SIGTERM stops at once', async () => {
  await withRunner('exec sleep 60', { stopTimeoutMs: 5000 }, async ({ runner }) => {
    await runner.start();
    const pid = runner.state().pid!;
    const began = Date.now();
    await runner.stop();
    assert.ok(Date.now() - began < 1500);
    assert.equal(alive(pid), false);
    assert.equal(runner.state().lastExit?.signal, 'SIGTERM');
  });
});

test('a crash-looping child ends up flapping, retries only at the capped pace, and stop() cancels the retry', async () => {
  const backoff = { initialMs: 20, maxMs: 300, factor: 2, jitter: 0.2 };
  await withRunner('echo "boom: config invalid" >&2; exit 1', { backoff, flapping: { windowMs: 10_000, maxRestarts: 3 } }, async ({ runner, states }) => {
    // 'since' stays put while flapping (the state is sticky), so time each scheduled wait from its event.
    const flappingWaits: number[] = [];
    runner.on('state', (s) => {
      if (s.state === 'flapping' && s.retryAt !== undefined) flappingWaits.push(s.retryAt - Date.now());
    });
    const began = Date.now();
    await runner.start();
    await sleep(2500);
    const window = Date.now() - began;
    const state = runner.state();
    assert.equal(state.state, 'flapping');
    assert.match(state.lastError ?? '', /exited with code 1; last stderr: boom: config invalid/);
    assert.equal(state.lastExit?.code, 1);

    const spawns = spawnedPids(states).length;
    // Up to 3 quick restarts (20+40+80 ms), then at most one per 240 ms (300 ms minus 20% jitter).
    const bound = 1 + 3 + Math.ceil(window / 240);
    assert.ok(spawns <= bound, `${spawns} spawns in ${window} ms, bound ${bound}`);
    assert.ok(spawns >= 6, `kept retrying: ${spawns} spawns`);
    assert.ok(state.restarts >= spawns - 1);

    // Each wait while flapping is at the cap: 300 ms less at most 20% jitter.
    assert.ok(flappingWaits.length >= 4, `${flappingWaits.length} flapping waits`);
    for (const wait of flappingWaits) assert.ok(wait >= 235 && wait <= 300, `flapping wait ${wait} ms outside [240, 300]`);
    const firstFlap = states.findIndex((s) => s.state === 'flapping');
    const before = states.slice(0, firstFlap).filter((s) => s.state === 'backoff');
    assert.equal(before.length, 3, 'flapping after more than maxRestarts=3 restarts');

    // stop() during the wait cancels the pending restart: no spawn afterwards.
    await waitFor('a flapping wait', () => runner.state().retryAt !== undefined, 1000);
    await runner.stop();
    const afterStop = spawnedPids(states).length;
    await sleep(500);
    assert.equal(spawnedPids(states).length, afterStop);
    assert.equal(runner.state().state, 'stopped');
  });
});

test('backoff resets after a stable run, but grows while the child crashes at once', async () => {
  const backoff = { initialMs: 50, maxMs: 5000, factor: 4, jitter: 0, stableMs: 200 };
  const waits = (states: RunnerState[]): number[] =>
    states.filter((s) => s.state === 'backoff' && s.retryAt !== undefined).map((s) => s.retryAt! - s.since);

  await withRunner('exit 3', { backoff }, async ({ runner, states }) => {
    await runner.start();
    await waitFor('three restarts', () => runner.state().restarts >= 3, 3000);
    const w = waits(states).slice(0, 3);
    [50, 200, 800].forEach((expected, i) => assert.ok(Math.abs(w[i]! - expected) <= 5, `waits ${w.join(', ')}: expected 50, 200, 800`));
  });

  await withRunner('sleep 0.35; exit 3', { backoff }, async ({ runner, states }) => {
    await runner.start();
    await waitFor('three restarts', () => runner.state().restarts >= 3, 4000);
    const w = waits(states).slice(0, 3);
    for (const ms of w) assert.ok(ms >= 45 && ms <= 60, `waits ${w.join(', ')}: each should be the initial 50 ms`);
  });
});

test('a flapping service that then stays up returns to running', async () => {
  const marker = 'crash-count';
  // Crash 4 times quickly (a file counts attempts), then stay up.
  const script = `n=$(cat ${marker} 2>/dev/null || echo 0); echo $((n+1)) > ${marker}; [ "$n" -ge 4 ] && exec sleep 60; exit 1`;
  await withRunner(script, { backoff: { initialMs: 20, maxMs: 150, factor: 2, jitter: 0, stableMs: 300 }, flapping: { windowMs: 10_000, maxRestarts: 2 } }, async ({ runner, states }) => {
    await runner.start();
    await waitFor('flapping', () => runner.state().state === 'flapping', 3000);
    await waitFor('a retry that stays up', () => runner.state().pid !== undefined, 3000);
    assert.equal(runner.state().state, 'flapping', 'flapping is sticky until the retry proves stable');
    await waitFor('running again', () => runner.state().state === 'running', 2000);
    assert.ok(states.some((s) => s.state === 'flapping'));
  });
});

test('spawn errors become backoff with a clear lastError naming the command', async () => {
  await withRunner('', { command: '/nonexistent/bin/postgres', args: [], backoff: { initialMs: 300, maxMs: 300, factor: 1, jitter: 0 } }, async ({ runner, states }) => {
    await runner.start();
    const state = runner.state();
    assert.equal(state.state, 'backoff');
    assert.equal(state.lastError, 'cannot start /nonexistent/bin/postgres: command not found (ENOENT)');
    assert.ok(state.retryAt && state.retryAt > Date.now());
    await runner.stop();
    const count = states.length;
    await sleep(450);
    assert.equal(states.length, count, 'the cancelled retry never ran');
  });

  await withRunner('exit 0', { cwd: '/nonexistent-dir-for-hasup-test' }, async ({ runner }) => {
    await runner.start();
    assert.match(runner.state().lastError ?? '', /working directory \/nonexistent-dir-for-hasup-test does not exist/);
  });

  await withRunner('', { command: '/etc/passwd', args: [] }, async ({ runner }) => {
    await runner.start();
    assert.equal(runner.state().lastError, 'cannot start /etc/passwd: permission denied (EACCES)');
  });

  await withRunner('exit 0', { user: 'no-such-user-hasup' }, async ({ runner }) => {
    await runner.start();
    assert.equal(runner.state().state, 'backoff');
    assert.match(runner.state().lastError ?? '', /as user no-such-user-hasup: no such user/);
  });
});

test('signal() delivers to the main pid (e.g. SIGHUP to reload); listeners that throw do not break the runner', async () => {
  const script = 'trap "echo reloaded" HUP; echo ready; while :; do sleep 0.05; done';
  await withRunner(script, {}, async ({ runner, sink }) => {
    runner.on('state', () => {
      throw new Error('listener bug');
    });
    assert.equal(runner.signal('SIGHUP'), false, 'nothing to signal before start');
    await runner.start();
    await waitFor('ready', () => sink.lines('stdout').includes('ready'));
    assert.equal(runner.signal('SIGHUP'), true);
    await waitFor('reload', () => sink.lines('stdout').includes('reloaded'));
    assert.equal(runner.state().state, 'running');
    assert.equal(runner.state().restarts, 0);
  });
});

/** A separate node process that runs a ProcessRunner and prints its child's pid: a supervisor we can crash. */
function startFakeSupervisor(pidFile: string, marker: string): { proc: ChildProcess; childPid: Promise<number> } {
  const runnerModule = new URL('../../src/supervisor/process-runner.js', import.meta.url).href;
  const program = `
    import { ProcessRunner } from ${JSON.stringify(runnerModule)};
    const runner = new ProcessRunner({
      name: 'adoptee', command: '/bin/sh', args: ['-c', 'while :; do sleep 0.2; done', ${JSON.stringify(marker)}],
      env: { PATH: process.env.PATH }, cwd: '/', stopTimeoutMs: 1000,
      backoff: { initialMs: 50, maxMs: 400, factor: 2, jitter: 0 }, flapping: { windowMs: 60000, maxRestarts: 100 },
      pidFile: ${JSON.stringify(pidFile)}, logSink: { write() {} },
    });
    runner.on('state', (s) => { if (s.state === 'running') console.log(JSON.stringify({ pid: s.pid })); });
    await runner.start();
    setInterval(() => {}, 1000);
  `;
  const proc = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  const childPid = new Promise<number>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { pid: number }).pid);
    });
    proc.once('exit', (code) => reject(new Error(`fake supervisor exited early (${code})`)));
  });
  return { proc, childPid };
}

test('after a supervisor crash, a new runner adopts the live child instead of starting a second copy, and restarts it when it dies', async () => {
  const marker = `hasup-adopt-${process.pid}-${Date.now()}`;
  await withTempDir(async (dir) => {
    const pidFile = join(dir, 'svc.pid');
    const runners = new Runners();
    const runner = runners.make(markedService('while :; do sleep 0.2; done', marker, pidFile, new MemorySink()));
    const states: RunnerState[] = [];
    runner.on('state', (s) => states.push(s));
    const fake = startFakeSupervisor(pidFile, marker);
    try {
      const original = await fake.childPid;
      assert.deepEqual(readPidFile(pidFile), { pid: original, startTime: readProcStat(original)!.startTime });
      // Crash the supervisor: no stop(), no cleanup.
      fake.proc.kill('SIGKILL');
      await new Promise((resolve) => fake.proc.once('exit', resolve));
      assert.ok(alive(original), 'the child outlives its supervisor (own session and group)');

      await runner.start();
      let state = runner.state();
      assert.equal(state.state, 'running');
      assert.equal(state.pid, original);
      assert.equal(state.adopted, true);
      assert.deepEqual(processesWith(marker), [original], 'no second copy started');

      // The adopted child dies: noticed by polling, restarted through the backoff path.
      process.kill(original, 'SIGKILL');
      await waitFor('a fresh child', () => {
        const s = runner.state();
        return s.state === 'running' && s.pid !== undefined && s.pid !== original;
      }, 4000);
      state = runner.state();
      assert.equal(state.adopted, undefined);
      assert.equal(state.restarts, 1);
      assert.ok(states.some((s) => s.state === 'backoff' && /adopted process \d+ exited/.test(s.lastError ?? '')));
      assert.deepEqual(processesWith(marker), [state.pid]);
      assert.equal(readPidFile(pidFile)?.pid, state.pid);
      await runner.stop();
      assert.deepEqual(processesWith(marker), [], 'stop() ends the restarted child');
    } finally {
      await runners.stopAll();
      if (fake.proc.exitCode === null && fake.proc.signalCode === null) fake.proc.kill('SIGKILL');
      for (const pid of processesWith(marker)) process.kill(-pid, 'SIGKILL');
    }
  });
});

test('start({ adopt: false }) kills a surviving child group first; stop() of an adopted child ends its group', async () => {
  const marker = `hasup-fresh-${process.pid}-${Date.now()}`;
  const script = 'sleep 60 & echo "grandchild $!"; while :; do sleep 0.2; done';
  await withTempDir(async (dir) => {
    const sink = new MemorySink();
    const opts = markedService(script, marker, join(dir, 'svc.pid'), sink);
    const runners = new Runners();
    try {
      const first = runners.make(opts);
      await first.start();
      await waitFor('grandchild', () => sink.lines().some((l) => l.startsWith('grandchild ')));
      const firstPid = first.state().pid!;
      const grandchild = Number(sink.lines().find((l) => l.startsWith('grandchild '))!.split(' ')[1]);
      first.release(); // hand-over: the child keeps running, the pidfile stays
      assert.equal(first.state().state, 'stopped');
      assert.ok(alive(firstPid));

      const second = runners.make(opts);
      await second.start();
      assert.equal(second.state().pid, firstPid);
      assert.equal(second.state().adopted, true);
      await second.stop();
      assert.equal(alive(firstPid), false);
      assert.equal(alive(grandchild), false, 'stop() of an adopted child signals its group');
      assert.equal(existsSync(opts.pidFile), false);

      // Again, but this time refuse adoption.
      const third = runners.make(opts);
      await third.start();
      const survivor = third.state().pid!;
      assert.ok(survivor);
      third.release();
      const fourth = runners.make(opts);
      await fourth.start({ adopt: false });
      assert.equal(alive(survivor), false, 'the old copy was stopped before the new one started');
      const fresh = fourth.state().pid!;
      assert.ok(fresh);
      assert.notEqual(fresh, survivor);
      assert.equal(fourth.state().adopted, undefined);
      assert.deepEqual(processesWith(marker), [fresh]);
      await fourth.stop();
      assert.deepEqual(processesWith(marker), []);
    } finally {
      await runners.stopAll();
      for (const pid of processesWith(marker)) process.kill(-pid, 'SIGKILL');
    }
  });
});

test('a pidfile naming a live pid with a different start time (pid reuse) is neither adopted nor signalled', async () => {
  const stranger = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  try {
    const strangerPid = stranger.pid!;
    await waitFor('stranger in /proc', () => readProcStat(strangerPid) !== undefined);
    const realStart = readProcStat(strangerPid)!.startTime;
    await withRunner('exec sleep 30', {}, async ({ runner, pidFile }) => {
      writePidFile(pidFile, { pid: strangerPid, startTime: realStart + 1 });
      await runner.start();
      const state = runner.state();
      assert.equal(state.state, 'running');
      assert.notEqual(state.pid, strangerPid);
      assert.equal(state.adopted, undefined);
      assert.equal(readPidFile(pidFile)?.pid, state.pid, 'pidfile now names our child');
      await runner.stop();

      writePidFile(pidFile, { pid: strangerPid, startTime: realStart + 1 });
      await runner.start({ adopt: false });
      assert.notEqual(runner.state().pid, strangerPid);
      await runner.stop();
      assert.ok(alive(strangerPid), 'an unrelated process with a reused pid is never killed');
    });
  } finally {
    stranger.kill('SIGKILL');
  }
});

const isRoot = process.getuid?.() === 0;

test('runs as the service user (nobody) with HOME and USER set', { skip: isRoot ? false : 'needs root to switch users (running as a non-root user)' }, async () => {
  const nobody = await resolveServiceUser('nobody');
  const script = 'echo "uid=$(id -u) gid=$(id -g) home=$HOME user=$USER"; exec sleep 30';
  await withRunner(script, { user: 'nobody', cwd: '/' }, async ({ runner, sink }) => {
    await runner.start();
    await waitFor('id output', () => sink.lines('stdout').length > 0);
    assert.deepEqual(sink.lines('stdout'), [`uid=${nobody.uid} gid=${nobody.gid} home=${nobody.home} user=nobody`]);
    const stat = readFileSync(`/proc/${runner.state().pid}/status`, 'utf8');
    assert.match(stat, new RegExp(`^Uid:\\s+${nobody.uid}\\s+${nobody.uid}`, 'm'));
  });
});

test('findPasswdEntry looks users up by name or uid', () => {
  const passwd = 'root:x:0:0:root:/root:/bin/bash\npostgres:x:105:110:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\nbroken line\n';
  assert.deepEqual(findPasswdEntry(passwd, 'postgres'), { name: 'postgres', uid: 105, gid: 110, home: '/var/lib/postgresql' });
  assert.deepEqual(findPasswdEntry(passwd, '105'), { name: 'postgres', uid: 105, gid: 110, home: '/var/lib/postgresql' });
  assert.equal(findPasswdEntry(passwd, 'post'), undefined);
});

test('a child is moved into its cgroup before it forks, so the cgroup holds everything it starts', { skip: process.getuid?.() !== 0 ? 'needs root (cgroups)' : false }, async (t) => {
  const { ensureServiceCgroup, removeServiceCgroup } = await import('../../src/plugins/fence/cgroup.js');
  const cgroup = ensureServiceCgroup(`runner-test-${process.pid}`, 'svc');
  if (!cgroup) return t.skip('no writable cgroup v2 here');
  try {
    await withRunner('sleep 30 & wait', { cgroup: () => cgroup }, async ({ runner, states }) => {
      await runner.start();
      await waitFor('the child to run', () => states.some((s) => s.state === 'running' && s.pid !== undefined));
      const pid = states.find((s) => s.pid !== undefined)!.pid!;
      // The shell and the sleep it forked afterwards are both in the cgroup.
      await waitFor('the grandchild in the cgroup', () => readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').trim().split('\n').length >= 2);
      assert.ok(readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(pid)));
    });
  } finally {
    removeServiceCgroup(cgroup);
  }
});

test('a child gets the ordinary OOM score back from a supervisor protected from the OOM killer', async (t) => {
  const before = readFileSync('/proc/self/oom_score_adj', 'utf8').trim();
  try {
    writeFileSync('/proc/self/oom_score_adj', '-500');
  } catch (err) {
    return t.skip(`this process may not lower its oom_score_adj here (${(err as NodeJS.ErrnoException).code})`);
  }
  try {
    await withRunner('sleep 30', {}, async ({ runner, states }) => {
      await runner.start();
      await waitFor('the child to run', () => states.some((s) => s.state === 'running' && s.pid !== undefined));
      const pid = states.find((s) => s.pid !== undefined)!.pid!;
      assert.equal(readFileSync(`/proc/${pid}/oom_score_adj`, 'utf8').trim(), '0');
    });
  } finally {
    writeFileSync('/proc/self/oom_score_adj', before);
  }
});
