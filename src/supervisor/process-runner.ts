/**
 * Keeps one child service process (the PostgreSQL postmaster, etcd, the
 * Elasticsearch JVM) alive: spawn it in its own process group under the
 * service user, capture its output line by line, restart it with backoff when
 * it dies, call it "flapping" when it crash-loops, stop it with SIGTERM then
 * SIGKILL to the whole group, and adopt it instead of starting a second copy
 * when a restarted supervisor finds it still running.
 *
 * States:
 *   stopped  → start() → starting → running
 *   running  → unexpected exit → backoff → starting → running ...
 *   backoff  → (more than flapping.maxRestarts restarts within flapping.windowMs) → flapping
 *   any      → stop() → stopping → stopped
 * 'flapping' is sticky: while a crash loop lasts, the runner retries only at
 * the capped backoff and keeps reporting 'flapping' (with the retry's pid while
 * it runs) until one retry stays up for backoff.stableMs; then → 'running'.
 * An operator's restart() (or stop() + start()) clears it at once.
 *
 * Nothing here throws out of an event handler: spawn failures, a missing
 * user, an unwritable pidfile all become state and lastError.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Backoff, FlapDetector, type BackoffOptions, type FlappingOptions } from './backoff.js';
import { LogFileTail } from './log-file-tail.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter, type LogSink } from './log-sink.js';
import {
  descendantsOf,
  isGroupAlive,
  isProcessLive,
  isSameProcessAlive,
  readPidFile,
  readProcStat,
  removePidFile,
  signalGroup,
  writePidFile,
  type PidRecord,
} from './pidfile.js';

export type RunnerStateName = 'stopped' | 'starting' | 'running' | 'backoff' | 'flapping' | 'stopping';

export interface RunnerExit {
  /** Exit code, or null when killed by a signal or when unknown (an adopted child). */
  code: number | null;
  signal: string | null;
  /** ms since the epoch. */
  at: number;
}

export interface RunnerState {
  state: RunnerStateName;
  /** Main pid of the child while one exists. */
  pid?: number;
  /** ms since the epoch of the last change of `state`. */
  since: number;
  /** Automatic restarts since the last start()/restart(). */
  restarts: number;
  lastExit?: RunnerExit;
  lastError?: string;
  /** The running child was started by an earlier supervisor; its output is not captured. */
  adopted?: boolean;
  /** In backoff/flapping with no child: ms since the epoch of the next attempt. */
  retryAt?: number;
}

export interface ProcessRunnerOptions {
  /** Service name; tags log entries and errors. */
  name: string;
  /** Executable: a path, or a name looked up in env.PATH. */
  command: string;
  args: string[];
  /** The child's whole environment (hasup's own is not inherited). HOME, USER, LOGNAME are set for `user`. */
  env: Record<string, string | undefined>;
  cwd: string;
  /** Run as this user (name or numeric uid), resolved via /etc/passwd, then `getent passwd` for NSS users. */
  user?: string;
  /** What asks the child to stop (default SIGTERM); sent to the whole process group. */
  stopSignal?: NodeJS.Signals;
  /** Grace after the stop signal before SIGKILL, for the whole process group. */
  stopTimeoutMs: number;
  backoff: BackoffOptions;
  flapping: FlappingOptions;
  /** Where the child's pid and start time are kept for adoption after a supervisor crash. */
  pidFile: string;
  /**
   * A cgroup (v2) directory the child is moved into right after it is
   * spawned, before it forks workers of its own, so one write to its
   * cgroup.kill ends every process it ever started (the fence uses it).
   */
  cgroup?: () => string | undefined;
  logSink: LogSink;
  /**
   * A file the child writes its log to instead of stdout/stderr (a plan's
   * run.log_file): followed like stderr, from spawn or adoption on (see
   * LogFileTail for why).
   */
  logFile?: string;
  /** Longest captured line in bytes; longer lines are cut and marked truncated. Default 16 KiB. */
  maxLineBytes?: number;
  /** Randomness for backoff jitter; tests may pass a fixed one. */
  random?: () => number;
}

export interface StartOptions {
  /**
   * true (default): a live child named by the pidfile (same pid and start
   * time) is adopted instead of starting a second copy. false: that child's
   * process group is stopped (SIGTERM, then SIGKILL) and a fresh one started.
   */
  adopt?: boolean;
}

export interface ServiceUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** How often an adopted child (not our child: no exit event) is checked for liveness. */
const ADOPTED_POLL_MS = 1000;
/** After SIGKILL, how long to wait for the kernel to tear the group down before reporting it. */
const KILL_WAIT_MS = 5000;
const GROUP_POLL_MS = 50;
/** Recent stderr lines kept to explain a crash in lastError. */
const STDERR_TAIL_LINES = 3;
const STDERR_TAIL_LINE_CHARS = 300;

interface AdoptedChild {
  record: PidRecord;
  /** Set when the adopted pid leads its own group (as children we start always do). */
  pgid?: number;
}

export class ProcessRunner extends EventEmitter<{ state: [RunnerState] }> {
  readonly name: string;
  private opts: ProcessRunnerOptions;
  private readonly backoff: Backoff;
  private readonly flaps: FlapDetector;

  private current: RunnerState = { state: 'stopped', since: Date.now(), restarts: 0 };
  /** The operator wants the service up (between start() and stop()). */
  private wanted = false;
  /** Bumped by stop()/release() so in-flight start work notices it is stale. */
  private epoch = 0;
  private flappingMode = false;

  private child: ChildProcess | undefined;
  private childExited: Promise<void> | undefined;
  private childUpSince = 0;
  private adopted: AdoptedChild | undefined;
  private stderrTail: string[] = [];
  private logFileTail: { tail: LogFileTail; splitter: LineSplitter } | undefined;
  /** The pid the log file's lines are credited to (the current child). */
  private logPid = 0;

  private restartTimer: NodeJS.Timeout | undefined;
  private stableTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;

  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  /** Killing what is left of a dead child's process group before the next spawn. */
  private leftoverCleanup: Promise<void> | undefined;

  constructor(opts: ProcessRunnerOptions) {
    super();
    this.opts = opts;
    this.name = opts.name;
    this.backoff = new Backoff(opts.backoff, opts.random);
    this.flaps = new FlapDetector(opts.flapping);
  }

  /**
   * Changes what the next spawn runs (a re-rendered command line after a
   * config change); the running child is not touched.
   */
  setCommand(command: Pick<ProcessRunnerOptions, 'command' | 'args' | 'env' | 'logFile'>): void {
    if (command.logFile !== this.opts.logFile) this.stopLogFile();
    this.opts = { ...this.opts, ...command };
  }

  state(): RunnerState {
    return { ...this.current, ...(this.current.lastExit ? { lastExit: { ...this.current.lastExit } } : {}) };
  }

  /**
   * Brings the service up (adopting a surviving child unless adopt: false).
   * Resolves once the child is spawned or adopted, or once a failed attempt
   * has been turned into 'backoff'; never rejects. A no-op while the service
   * is already wanted up (use restart() to force a new attempt now).
   */
  async start(options: StartOptions = {}): Promise<void> {
    if (this.stopping) await this.stopping;
    if (this.wanted) return this.starting;
    this.wanted = true;
    const epoch = ++this.epoch;
    this.backoff.reset();
    this.flaps.clear();
    this.flappingMode = false;
    this.update({ state: 'starting', restarts: 0, lastError: undefined, retryAt: undefined, pid: undefined, adopted: undefined });
    const starting = this.bringUp(epoch, options.adopt ?? true).finally(() => {
      if (this.starting === starting) this.starting = undefined;
    });
    this.starting = starting;
    return starting;
  }

  /**
   * The stop signal (SIGTERM unless configured) to the child's whole process group, SIGKILL after stopTimeoutMs;
   * resolves when the group is gone (or, should SIGKILL not finish it within
   * 5 s, with lastError saying so). Cancels a pending restart. Never rejects.
   */
  stop(): Promise<void> {
    if (!this.stopping) {
      const stopping = this.bringDown().finally(() => {
        if (this.stopping === stopping) this.stopping = undefined;
      });
      this.stopping = stopping;
    }
    return this.stopping;
  }

  /** Stop, then start fresh (never adopts); clears backoff and flapping. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start({ adopt: false });
  }

  /** Sends `sig` to the child's main pid (e.g. SIGHUP to reload). False when there is no child. */
  signal(sig: NodeJS.Signals): boolean {
    const adopted = this.adopted?.record;
    // An adopted pid is re-checked first: between liveness polls it could have died and been reused.
    if (!this.child && adopted && !isSameProcessAlive(adopted)) return false;
    const pid = this.child?.pid ?? adopted?.pid;
    if (pid === undefined) return false;
    try {
      process.kill(pid, sig);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Stop supervising but leave the child running and the pidfile in place,
   * for a hand-over to another supervisor (re-exec on upgrade), which adopts
   * it. Output that arrives before this process exits is still logged.
   */
  release(): void {
    this.wanted = false;
    this.epoch++;
    this.clearTimers();
    const child = this.child;
    this.child = undefined;
    this.childExited = undefined;
    this.adopted = undefined;
    if (child) {
      child.unref();
      unrefStream(child.stdout);
      unrefStream(child.stderr);
    }
    this.update({ state: 'stopped', pid: undefined, adopted: undefined, retryAt: undefined });
  }

  // ---- bringing the child up -------------------------------------------------

  private async bringUp(epoch: number, adopt: boolean): Promise<void> {
    try {
      const record = readPidFile(this.opts.pidFile);
      if (record && isSameProcessAlive(record)) {
        if (adopt) {
          this.adoptChild(record);
          return;
        }
        await this.terminate(record.pid, leaderGroup(record.pid));
        if (epoch !== this.epoch) return;
      }
      // Whatever the pidfile named is gone, or was never ours (pid reused): forget it, never signal it.
      if (record) removePidFile(this.opts.pidFile);
      await this.spawnChild(epoch);
    } catch (err) {
      if (epoch === this.epoch) this.onStartFailure(`cannot start ${this.opts.command}: ${errorMessage(err)}`);
    }
  }

  private async spawnChild(epoch: number): Promise<void> {
    let user: ServiceUser | undefined;
    if (this.opts.user !== undefined) {
      try {
        user = await resolveServiceUser(this.opts.user);
      } catch (err) {
        if (epoch === this.epoch) this.onStartFailure(`cannot start ${this.opts.command} as user ${this.opts.user}: ${errorMessage(err)}`);
        return;
      }
    }
    if (this.leftoverCleanup) await this.leftoverCleanup;
    if (epoch !== this.epoch || !this.wanted) return;

    const env: Record<string, string | undefined> = { ...this.opts.env };
    const identity: { uid?: number; gid?: number } = {};
    if (user) {
      env.HOME = user.home;
      env.USER = user.name;
      env.LOGNAME = user.name;
      // Only ask for a uid switch when it is one: a non-root hasup running its own user cannot setuid.
      if (process.getuid?.() !== user.uid || process.getgid?.() !== user.gid) {
        identity.uid = user.uid;
        identity.gid = user.gid;
      }
    }

    let child: ChildProcess;
    try {
      child = spawn(this.opts.command, this.opts.args, {
        cwd: this.opts.cwd,
        env,
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...identity,
      });
    } catch (err) {
      this.onStartFailure(this.describeSpawnError(err));
      return;
    }
    if (child.pid !== undefined) this.placeChild(child.pid);
    await this.watchChild(child);
  }

  /**
   * Synchronous on purpose: the child must be in its cgroup before it forks
   * (spawn() returns once it exec'd, so a quick child may have forked
   * already: whatever it started by then is moved too; the fence finds
   * PostgreSQL's backends through /proc as well).
   * It also gets the ordinary OOM score back: a supervisor that protects
   * itself from the OOM killer (OOMScoreAdjust in its unit) must not pass
   * that protection on to PostgreSQL or Elasticsearch.
   */
  private placeChild(pid: number): void {
    try {
      writeFileSync(`/proc/${pid}/oom_score_adj`, '0\n');
    } catch {
      // not Linux, or not allowed: the child keeps the inherited score
    }
    const dir = this.opts.cgroup?.();
    if (!dir) return;
    try {
      writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`);
      for (const early of descendantsOf(pid)) writeFileSync(join(dir, 'cgroup.procs'), `${early}\n`);
    } catch (err) {
      this.update({ lastError: `${this.name}: cannot move pid ${pid} into cgroup ${dir}: ${errorMessage(err)}` });
    }
  }

  /** Wires up the child; resolves once it has spawned, or once its spawn failure has been handled. */
  private watchChild(child: ChildProcess): Promise<void> {
    this.child = child;
    this.stderrTail = [];
    const pid = child.pid;
    let spawned = false;
    let ended = false;
    let markExited: () => void = () => {};
    this.childExited = new Promise((resolve) => (markExited = resolve));
    let markSettled: () => void = () => {};
    const settled = new Promise<void>((resolve) => (markSettled = resolve));

    this.capture(child.stdout, 'stdout', pid ?? 0);
    this.capture(child.stderr, 'stderr', pid ?? 0);
    this.followLogFile(pid ?? 0);

    child.on('error', (err) => {
      if (spawned) {
        // A failed kill() or similar on a live child: worth showing, not a state change.
        this.update({ lastError: `${this.name}: ${errorMessage(err)}` });
        return;
      }
      if (ended) return;
      ended = true;
      markExited();
      markSettled();
      if (this.child === child) {
        this.child = undefined;
        this.childExited = undefined;
        if (this.wanted) this.onStartFailure(this.describeSpawnError(err));
      }
    });
    child.once('spawn', () => {
      spawned = true;
      markSettled();
      if (this.child !== child || !this.wanted || pid === undefined) return;
      this.childUpSince = performance.now();
      this.update({ state: this.flappingMode ? 'flapping' : 'running', pid, adopted: undefined, retryAt: undefined });
      this.armStableTimer();
    });
    child.once('exit', (code, signal) => {
      if (ended) return;
      ended = true;
      markExited();
      this.onChildExit(child, code, signal);
    });

    // spawn() returns only after exec succeeded or failed, so with a pid the
    // child is already in its own group and /proc has its start time.
    if (pid !== undefined) this.recordPid(pid);
    return settled;
  }

  private capture(stream: Readable | null, name: 'stdout' | 'stderr', pid: number): void {
    if (!stream) return;
    const splitter = new LineSplitter((line, truncated) => {
      if (name === 'stderr') this.rememberStderr(line);
      try {
        this.opts.logSink.write({ service: this.name, stream: name, line, pid, time: Date.now(), ...(truncated ? { truncated } : {}) });
      } catch {
        // A sink must not throw; if one does, supervision goes on.
      }
    }, this.opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    stream.on('data', (chunk: Buffer) => splitter.push(chunk));
    stream.once('end', () => splitter.end());
    stream.on('error', () => splitter.end());
  }

  /** Lines of the child's log file go where its stderr goes (the sink, and the tail kept for errors). */
  private followLogFile(pid: number): void {
    const file = this.opts.logFile;
    if (!file) return;
    this.logPid = pid;
    if (this.logFileTail) return;
    const splitter = new LineSplitter((line, truncated) => {
      this.rememberStderr(line);
      try {
        this.opts.logSink.write({ service: this.name, stream: 'stderr', line, pid: this.logPid, time: Date.now(), ...(truncated ? { truncated } : {}) });
      } catch {
        // A sink must not throw; if one does, supervision goes on.
      }
    }, this.opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    const tail = new LogFileTail(file, (chunk) => splitter.push(chunk));
    tail.start();
    this.logFileTail = { tail, splitter };
  }

  private stopLogFile(): void {
    const t = this.logFileTail;
    if (!t) return;
    this.logFileTail = undefined;
    t.tail.stop();
    t.splitter.end();
  }

  private rememberStderr(line: string): void {
    if (line.trim() === '') return;
    this.stderrTail.push(line.length > STDERR_TAIL_LINE_CHARS ? `${line.slice(0, STDERR_TAIL_LINE_CHARS)}…` : line);
    if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
  }

  private recordPid(pid: number): void {
    const stat = readProcStat(pid);
    if (!stat) return;
    try {
      writePidFile(this.opts.pidFile, { pid, startTime: stat.startTime });
    } catch (err) {
      // The child runs fine without it; only adoption after a crash is lost.
      this.update({ lastError: `cannot write pidfile ${this.opts.pidFile}: ${errorMessage(err)}` });
    }
  }

  private adoptChild(record: PidRecord): void {
    this.adopted = { record, pgid: leaderGroup(record.pid) };
    this.followLogFile(record.pid);
    this.childUpSince = performance.now();
    this.update({ state: 'running', pid: record.pid, adopted: true, retryAt: undefined });
    this.armStableTimer();
    // Not our child: no exit event will come, so look.
    this.pollTimer = setInterval(() => {
      if (this.adopted?.record === record && !isSameProcessAlive(record)) this.onAdoptedExit(record);
    }, ADOPTED_POLL_MS);
  }

  /** After a long enough run, forget the crash history: the next crash backs off from the start. */
  private armStableTimer(): void {
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = setTimeout(() => {
      this.stableTimer = undefined;
      this.backoff.reset();
      this.flaps.clear();
      if (this.flappingMode) {
        this.flappingMode = false;
        this.update({ state: 'running' });
      }
    }, this.backoff.stableMs);
    this.stableTimer.unref();
  }

  // ---- the child went away -----------------------------------------------

  private onChildExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = undefined;
    this.childExited = undefined;
    const exit: RunnerExit = { code, signal, at: Date.now() };
    this.update({ lastExit: exit });
    if (!this.wanted) return; // stop() is waiting for this and reports the state.
    // Backs up the stable timer, which a busy event loop may fire late.
    this.backoff.recordUptime(performance.now() - this.childUpSince);
    const pid = child.pid;
    if (pid !== undefined) this.cleanUpLeftovers(pid);
    this.scheduleRestart(describeExit(code, signal, this.stderrTail));
  }

  private onAdoptedExit(record: PidRecord): void {
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    const pgid = this.adopted?.pgid;
    this.adopted = undefined;
    this.update({ lastExit: { code: null, signal: null, at: Date.now() }, adopted: undefined });
    if (!this.wanted) return;
    this.backoff.recordUptime(performance.now() - this.childUpSince);
    if (pgid !== undefined) this.cleanUpLeftovers(pgid);
    else removePidFileQuietly(this.opts.pidFile);
    this.scheduleRestart(`adopted process ${record.pid} exited (status unknown: a previous supervisor started it)`);
  }

  /**
   * The main process died but its group may live on (a postmaster's
   * backends, a JVM's helpers). Clear it out before the next spawn, so the
   * new child does not find the old one's ports, locks or shared memory.
   */
  private cleanUpLeftovers(pgid: number): void {
    const previous = this.leftoverCleanup ?? Promise.resolve();
    const cleanup = previous
      .then(async () => {
        if (isGroupAlive(pgid)) await this.terminate(pgid, pgid);
        removePidFileQuietly(this.opts.pidFile);
      })
      .catch(() => {})
      .finally(() => {
        if (this.leftoverCleanup === cleanup) this.leftoverCleanup = undefined;
      });
    this.leftoverCleanup = cleanup;
  }

  private onStartFailure(message: string): void {
    this.child = undefined;
    this.childExited = undefined;
    if (!this.wanted) return;
    this.scheduleRestart(message);
  }

  private scheduleRestart(reason: string): void {
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.stableTimer = undefined;
    const now = Date.now();
    if (this.flaps.record(now)) this.flappingMode = true;
    const delay = this.flappingMode ? this.backoff.capped() : this.backoff.next();
    const epoch = this.epoch;
    this.update({
      state: this.flappingMode ? 'flapping' : 'backoff',
      pid: undefined,
      adopted: undefined,
      restarts: this.current.restarts + 1,
      lastError: reason,
      retryAt: now + delay,
    });
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (epoch !== this.epoch || !this.wanted) return;
      this.update({ state: this.flappingMode ? 'flapping' : 'starting', retryAt: undefined });
      this.spawnChild(epoch).catch((err) => {
        if (epoch === this.epoch) this.onStartFailure(`cannot start ${this.opts.command}: ${errorMessage(err)}`);
      });
    }, delay);
  }

  // ---- bringing the child down -------------------------------------------

  private async bringDown(): Promise<void> {
    this.wanted = false;
    this.epoch++;
    this.clearTimers();
    const busy = this.child || this.adopted || this.starting || this.leftoverCleanup;
    if (!busy) {
      this.update({ state: 'stopped', pid: undefined, adopted: undefined, retryAt: undefined });
      return;
    }
    this.update({ state: 'stopping', retryAt: undefined });
    try {
      // A start in flight sees the new epoch and gives up at its next step.
      if (this.starting) await this.starting;
      const child = this.child;
      const exited = this.childExited;
      const adopted = this.adopted;
      if (child?.pid !== undefined) {
        await this.terminate(child.pid, child.pid);
        // The group is gone; let libuv reap the main pid so lastExit is filled in.
        if (exited) await Promise.race([exited, delay(1000)]);
      }
      if (adopted) await this.terminate(adopted.record.pid, adopted.pgid);
      if (this.leftoverCleanup) await this.leftoverCleanup;
      removePidFileQuietly(this.opts.pidFile);
    } catch (err) {
      this.update({ lastError: `stopping ${this.name}: ${errorMessage(err)}` });
    }
    this.child = undefined;
    this.childExited = undefined;
    this.adopted = undefined;
    this.stopLogFile();
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.pollTimer = undefined;
    this.update({ state: 'stopped', pid: undefined, adopted: undefined });
  }

  /**
   * The stop signal, wait stopTimeoutMs, SIGKILL, wait. With a group id the whole
   * group is signalled and waited for, so grandchildren cannot outlive a stop.
   */
  private async terminate(pid: number, pgid: number | undefined): Promise<void> {
    const alive = (): boolean => (pgid !== undefined ? isGroupAlive(pgid) : isProcessLive(pid));
    const send = (sig: NodeJS.Signals): void => {
      if (pgid !== undefined && signalGroup(pgid, sig)) return;
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    };
    if (!alive()) return;
    send(this.opts.stopSignal ?? 'SIGTERM');
    if (await waitUntil(() => !alive(), this.opts.stopTimeoutMs)) return;
    send('SIGKILL');
    if (await waitUntil(() => !alive(), KILL_WAIT_MS)) return;
    this.update({ lastError: `${this.name}: process ${pgid !== undefined ? `group ${pgid}` : pid} still alive ${KILL_WAIT_MS} ms after SIGKILL` });
  }

  // ---- helpers -------------------------------------------------------------

  private clearTimers(): void {
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    if (this.pollTimer) clearInterval(this.pollTimer);
    this.restartTimer = undefined;
    this.stableTimer = undefined;
    this.pollTimer = undefined;
  }

  private describeSpawnError(err: unknown): string {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !existsSync(this.opts.cwd)) {
      return `cannot start ${this.opts.command}: working directory ${this.opts.cwd} does not exist`;
    }
    const hint = code === 'ENOENT' ? 'command not found' : code === 'EACCES' ? 'permission denied' : undefined;
    return `cannot start ${this.opts.command}: ${hint ? `${hint} (${code})` : errorMessage(err)}`;
  }

  /** Applies a change; 'since' moves only when the state name changes. Listeners cannot break the runner. */
  private update(change: Partial<RunnerState>): void {
    const next: RunnerState = { ...this.current, ...change };
    for (const key of Object.keys(next) as (keyof RunnerState)[]) {
      if (next[key] === undefined) delete next[key];
    }
    if (next.state !== this.current.state) next.since = Date.now();
    this.current = next;
    try {
      this.emit('state', this.state());
    } catch {
      // A throwing listener is its owner's bug, not a reason to lose the child.
    }
  }
}

/** Resolves a user name (or numeric uid) via /etc/passwd, then `getent passwd` for NSS (LDAP, sssd) users. */
export async function resolveServiceUser(nameOrUid: string): Promise<ServiceUser> {
  let passwd = '';
  try {
    passwd = await readFile('/etc/passwd', 'utf8');
  } catch {
    // No readable /etc/passwd; getent may still know the user.
  }
  const local = findPasswdEntry(passwd, nameOrUid);
  if (local) return local;
  const viaNss = await getentPasswd(nameOrUid);
  const entry = viaNss === undefined ? undefined : findPasswdEntry(viaNss, nameOrUid);
  if (entry) return entry;
  throw new Error(`no such user: ${nameOrUid}`);
}

/** Finds a user in passwd(5) text by name, or by uid when given digits. */
export function findPasswdEntry(passwd: string, nameOrUid: string): ServiceUser | undefined {
  const byUid = /^\d+$/.test(nameOrUid);
  for (const line of passwd.split('\n')) {
    const fields = line.split(':');
    if (fields.length < 7) continue;
    const [name, , uidText, gidText, , home] = fields;
    if (byUid ? uidText !== nameOrUid : name !== nameOrUid) continue;
    const uid = Number(uidText);
    const gid = Number(gidText);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    return { name: name!, uid, gid, home: home || '/' };
  }
  return undefined;
}

function getentPasswd(nameOrUid: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('getent', ['passwd', nameOrUid], { timeout: 5000 }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

/** The group to signal for `pid`: its own when it leads one (never a group it merely belongs to, e.g. ours). */
function leaderGroup(pid: number): number | undefined {
  return readProcStat(pid)?.pgrp === pid ? pid : undefined;
}

function describeExit(code: number | null, signal: NodeJS.Signals | null, stderrTail: string[]): string {
  const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
  return stderrTail.length > 0 ? `${how}; last stderr: ${stderrTail.join(' | ')}` : how;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function removePidFileQuietly(path: string): void {
  try {
    removePidFile(path);
  } catch {
    // Left behind, it is harmless: the start time check rejects a stale one.
  }
}

function unrefStream(stream: Readable | null): void {
  (stream as { unref?: () => void } | null)?.unref?.();
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `done` every GROUP_POLL_MS; true when it held before `timeoutMs` ran out. */
function waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + Math.max(0, timeoutMs);
  return new Promise((resolve) => {
    const check = (): void => {
      if (done()) return resolve(true);
      const left = deadline - Date.now();
      if (left <= 0) return resolve(false);
      setTimeout(check, Math.min(GROUP_POLL_MS, left));
    };
    check();
  });
}
