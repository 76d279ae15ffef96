import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { FenceArmResult, FenceDeadlines, FenceRecord, FenceStatus, LeaderFence } from '../../ha/index.js';
import { installRoot } from '../../supervisor/install-paths.js';
import type { Logger } from '../../supervisor/log.js';

/**
 * The LeaderFence as a separate process: native/fence/hasup-fence.c (see
 * its header for what it does, and docs/fence.md). This side starts it,
 * restarts it when it dies (re-arming it if it was armed), and speaks its
 * one-line protocol over the child's stdin and stdout.
 */
export interface FenceWatchdog {
  device: string;
  timeoutS: number;
}

export interface ProcessFenceOptions {
  /** The fence binary; default dist/bin/hasup-fence of the installation. */
  binary?: string;
  /** PostgreSQL's postmaster.pid (the fence reads it when it acts). */
  pidFile: string;
  /** The cgroup PostgreSQL runs in, if any (killed whole). */
  cgroup?: string;
  /** Where the fence writes what it did, so a restarted supervisor can say so. */
  recordFile: string;
  /** The kernel watchdog to feed while armed, if any (read before each start of the fence). */
  watchdog: () => FenceWatchdog | undefined;
  /** How long the walsenders may go on after every other backend is killed. */
  graceMs?: number;
  log: Logger;
}

const REPLY_TIMEOUT_MS = 1000;
const RESTART_MIN_MS = 100;
const RESTART_MAX_MS = 2000;

interface Pending {
  resolve: (line: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** Timed out: its late reply is still consumed, so the next request gets its own. */
  abandoned: boolean;
}

export function defaultFenceBinary(): string {
  return join(installRoot(), 'dist', 'bin', 'hasup-fence');
}

export class ProcessFence implements LeaderFence {
  readonly freezes = true;
  private child: ChildProcess | null = null;
  private childWatchdog: string | null = null;
  private pending: Pending[] = [];
  private isArmed = false;
  private isFrozen = false;
  /** The last arm asked for (its protocol line), re-sent to a restarted fence. */
  private lastArm: string | null = null;
  /** The leader VIP the fence removes when it acts (its protocol line), sent to every fence started. */
  private vipLine: string | null = null;
  private closing = false;
  private restarts = 0;
  private restartDelay = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | null = null;
  private up: Promise<void> | null = null;
  private readonly listeners: ((cause: string) => void)[] = [];
  /** process.hrtime (CLOCK_MONOTONIC, the fence's clock) minus performance.now(), in ns. */
  private readonly clockOffsetNs: bigint;

  constructor(private readonly opts: ProcessFenceOptions) {
    this.clockOffsetNs = process.hrtime.bigint() - BigInt(Math.round(performance.now() * 1e6));
  }

  /** What the fence did last (maybe before this supervisor started), logged once at start. */
  lastRecord(): FenceRecord | null {
    try {
      return JSON.parse(readFileSync(this.opts.recordFile, 'utf8')) as FenceRecord;
    } catch {
      return null;
    }
  }

  /** Says what the fence did last, if it ever acted (maybe before this supervisor started). The process itself starts on standBy() or the first arm. */
  start(): void {
    const last = this.lastRecord();
    if (last) {
      this.opts.log.warn(
        { event: 'fence_record', ...last },
        `the fence stopped PostgreSQL at ${new Date(last.at_ms).toISOString()} (${last.cause}): ${last.killed} processes killed, ${last.survivors} left`,
      );
    }
  }

  standBy(): void {
    if (this.child || this.up || this.closing || this.restartTimer) return;
    void this.spawnFence();
  }

  async arm(at: FenceDeadlines): Promise<FenceArmResult> {
    const arm = `arm ${this.toMonotonicNs(at.freeze)} ${this.toMonotonicNs(at.kill)} ${this.toMonotonicNs(at.expiry)}`;
    this.lastArm = arm;
    await this.ensureCurrent();
    const reply = await this.request(arm, 'armed');
    this.isArmed = true;
    if (this.isFrozen && at.freeze > performance.now()) {
      this.isFrozen = false;
      this.opts.log.warn({ event: 'fence_thawed' }, 'a lease renewal was confirmed: the fence thawed PostgreSQL');
    }
    const wd = /watchdog=(\w+)/.exec(reply)?.[1];
    return { watchdog: wd === 'active' || wd === 'failed' ? wd : 'off' };
  }

  async disarm(): Promise<void> {
    this.lastArm = null;
    if (!this.child) {
      this.isArmed = false;
      return;
    }
    await this.request('disarm', 'disarmed');
    this.isArmed = false;
    this.isFrozen = false;
  }

  async kill(): Promise<void> {
    this.lastArm = null;
    if (!this.child) return;
    await this.request('kill', 'killed');
    this.isArmed = false;
    this.isFrozen = false;
  }

  armed(): boolean {
    return this.isArmed;
  }

  /**
   * The leader VIP (ADDRESS/PREFIX on an interface) the fence removes,
   * over netlink, whenever it freezes or kills PostgreSQL: the VIP then
   * goes at the freeze deadline even with this process stalled or dead
   * (docs/vip.md). null: none. Sent now if the fence runs, and to every
   * fence started later.
   */
  guardAddress(vip: { address: string; prefix: number; interface: string } | null): void {
    this.vipLine = vip ? `vip ${vip.address}/${vip.prefix} ${vip.interface}` : 'vip off';
    if (this.child) this.sendVip();
  }

  private sendVip(): void {
    const line = this.vipLine;
    if (!line) return;
    this.request(line, 'vip').catch((err: unknown) => this.opts.log.error({ event: 'fence_vip_failed', err }, `the fence did not take the leader VIP: ${(err as Error).message}`));
  }

  onFenced(listener: (cause: string) => void): void {
    this.listeners.push(listener);
  }

  status(): FenceStatus {
    const pid = this.child?.pid ?? null;
    return {
      pid,
      armed: this.isArmed,
      frozen: this.isFrozen,
      restarts: this.restarts,
      rss_kb: pid ? rssKb(pid) : null,
      watchdog: this.childWatchdog,
      last_fence: this.lastRecord(),
    };
  }

  /**
   * Ends the fence: it exits quietly when disarmed, and stops PostgreSQL
   * first when still armed (a leader's supervisor going away).
   */
  async close(): Promise<void> {
    this.closing = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin?.end();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
  }

  private toMonotonicNs(ms: number): bigint {
    return BigInt(Math.round(ms * 1e6)) + this.clockOffsetNs;
  }

  /** A fence running with the watchdog settings in force (restarted between two arms when they changed). */
  private async ensureCurrent(): Promise<void> {
    if (this.up) await this.up;
    const wanted = this.opts.watchdog()?.device ?? null;
    if (this.child && wanted !== this.childWatchdog && !this.isArmed) {
      this.opts.log.info({ event: 'fence_restart', watchdog: wanted }, `restarting the fence for the watchdog setting (${wanted ?? 'off'})`);
      await this.stopChild();
    }
    if (!this.child) await this.spawnFence();
    if (!this.child) throw new Error('the fence is not running');
  }

  private spawnFence(): Promise<void> {
    if (this.up) return this.up;
    this.up = new Promise<void>((resolve) => {
      const binary = this.opts.binary ?? defaultFenceBinary();
      const wd = this.opts.watchdog();
      const args = ['--pidfile', this.opts.pidFile, '--record', this.opts.recordFile, '--grace-ms', String(this.opts.graceMs ?? 100)];
      if (this.opts.cgroup) args.push('--cgroup', this.opts.cgroup);
      if (wd) args.push('--watchdog', wd.device, '--watchdog-timeout', String(wd.timeoutS));
      // detached: its own process group, so a signal to the supervisor's group leaves it standing.
      const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
      let settled = false;
      const done = () => {
        if (!settled) {
          settled = true;
          this.up = null;
          resolve();
        }
      };
      child.once('spawn', () => {
        this.child = child;
        this.childWatchdog = wd?.device ?? null;
        this.opts.log.info({ event: 'fence_started', pid: child.pid, watchdog: this.childWatchdog }, `fence started (pid ${child.pid})`);
        done();
        // Before any arm: the VIP goes whenever the fence acts.
        this.sendVip();
        // A restarted fence takes over the guard at once.
        if (this.lastArm) {
          this.request(this.lastArm, 'armed').then(
            () => (this.isArmed = true),
            (err: unknown) => this.opts.log.error({ event: 'fence_rearm_failed', err }, 'could not re-arm the restarted fence'),
          );
        }
      });
      child.once('error', (err) => {
        this.opts.log.error({ event: 'fence_spawn_failed', err, binary }, `cannot start the fence ${binary}: ${err.message}`);
        done();
        this.scheduleRestart();
      });
      child.once('exit', (code, signal) => this.onExit(child, code, signal));
      createInterface({ input: child.stdout! }).on('line', (line) => this.onLine(line));
      createInterface({ input: child.stderr! }).on('line', (line) => this.opts.log.warn({ event: 'fence_log' }, line));
    });
    return this.up;
  }

  private onLine(line: string): void {
    if (line.startsWith('frozen ')) {
      this.isFrozen = true;
      this.opts.log.warn({ event: 'fence_froze', stopped: Number(line.split(' ')[1] ?? 0) }, 'lease renewals overdue: the fence froze PostgreSQL (no writes until a renewal is confirmed)');
      return;
    }
    if (line.startsWith('fenced ')) {
      this.isFrozen = false;
      const [, cause = 'unknown', killed = '0', survivors = '0'] = line.split(' ');
      this.isArmed = false;
      this.lastArm = null;
      this.opts.log.error(
        { event: 'fence_acted', cause, killed: Number(killed), survivors: Number(survivors) },
        `the fence stopped PostgreSQL (${cause}): ${killed} processes killed, ${survivors} left`,
      );
      for (const l of this.listeners) l(cause);
      return;
    }
    const head = this.pending.shift();
    if (!head || head.abandoned) return;
    clearTimeout(head.timer);
    if (line.startsWith('error')) head.reject(new Error(`the fence refused: ${line}`));
    else head.resolve(line);
  }

  private onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child !== child) return;
    this.child = null;
    const wasArmed = this.isArmed;
    this.isArmed = false;
    for (const p of this.pending.splice(0)) {
      clearTimeout(p.timer);
      if (!p.abandoned) p.reject(new Error('the fence exited'));
    }
    if (this.closing) return;
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (wasArmed) this.opts.log.error({ event: 'fence_died', how, armed: true }, `the fence died (${how}) while guarding the primary; restarting it`);
    else this.opts.log.warn({ event: 'fence_died', how, armed: false }, `the fence exited (${how}); restarting it`);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.closing || this.restartTimer) return;
    const delay = this.restartDelay;
    this.restartDelay = Math.min(RESTART_MAX_MS, this.restartDelay * 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restarts++;
      void this.spawnFence().then(() => {
        if (this.child) this.restartDelay = RESTART_MIN_MS;
      });
    }, delay);
    this.restartTimer.unref();
  }

  private async stopChild(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = null;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin?.end(); // disarmed: it exits quietly
    await exited;
  }

  private request(line: string, expect: string): Promise<string> {
    const child = this.child;
    if (!child?.stdin?.writable) return Promise.reject(new Error('the fence is not running'));
    return new Promise<string>((resolve, reject) => {
      const entry: Pending = {
        resolve: (reply) => (reply.startsWith(expect) ? resolve(reply) : reject(new Error(`unexpected fence reply: ${reply}`))),
        reject,
        timer: setTimeout(() => {
          entry.abandoned = true;
          reject(new Error(`the fence did not answer "${line.split(' ')[0]}" within ${REPLY_TIMEOUT_MS} ms`));
        }, REPLY_TIMEOUT_MS),
        abandoned: false,
      };
      this.pending.push(entry);
      child.stdin!.write(`${line}\n`);
    });
  }
}

function rssKb(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}
