/**
 * The fence: what guarantees, outside the supervisor's own process, that a
 * leader's PostgreSQL stops taking writes before its lease can expire, if
 * the supervisor stops renewing for any reason (stalled, stopped, killed,
 * crashed, its event loop blocked). The HA controller arms it after every
 * confirmed renewal while it leads, and before it promotes; it disarms it
 * once PostgreSQL no longer takes writes here. The implementation
 * (src/plugins/fence/process-fence.ts) is a small separate process that
 * first freezes PostgreSQL (reversibly: a later arm thaws it) and kills it
 * later.
 */
export interface FenceDeadlines {
  freeze: number;
  kill: number;
  expiry: number;
}

export interface FenceArmResult {
  /** The kernel watchdog: opened and fed, not configured, or asked for but not usable. */
  watchdog: 'active' | 'off' | 'failed';
}

export interface LeaderFence {
  /**
   * Arms (or re-arms) the fence, and thaws a PostgreSQL it froze. At
   * `at.freeze` PostgreSQL stops taking writes (with a fence that `freezes`,
   * it is stopped, and thawed again by the next arm; otherwise killed),
   * at `at.kill` it is killed, unless armed again before; `at.expiry` is
   * the earliest moment the lease can expire (the kernel watchdog is fed
   * only while a reboot would still come before it). All on the
   * controller's monotonic clock. Resolves once the fence confirmed;
   * rejects when it cannot be armed.
   */
  arm(at: FenceDeadlines): Promise<FenceArmResult>;
  /** Stops guarding (PostgreSQL here takes no writes any more); a frozen PostgreSQL is killed first. */
  disarm(): Promise<void>;
  /** Kills PostgreSQL now if the fence is armed (a frozen primary is demoted this way: it cannot shut down). */
  kill(): Promise<void>;
  /**
   * True when the fence stops PostgreSQL reversibly at the freeze deadline,
   * so the supervisor may wait for a late renewal instead of demoting. A
   * fence that guards nothing (NoFence) does not.
   */
  readonly freezes: boolean;
  /** This member runs the database: have the fence ready (idempotent; a member without one runs no fence). */
  standBy(): void;
  /** True between a confirmed arm and the next disarm or fence. */
  armed(): boolean;
  /** Called when the fence stopped PostgreSQL on its own (the supervisor was late). */
  onFenced(listener: (cause: string) => void): void;
}

/** What the fence last did (written by the fence itself, so it outlives the supervisor). */
export interface FenceRecord {
  at_ms: number;
  cause: string;
  postmaster: number;
  killed: number;
  survivors: number;
  cgroup: boolean;
}

/** The fence as views show it. */
export interface FenceStatus {
  pid: number | null;
  armed: boolean;
  /** PostgreSQL is stopped by the fence (renewals overdue), waiting for a renewal or the kill. */
  frozen: boolean;
  restarts: number;
  rss_kb: number | null;
  watchdog: string | null;
  last_fence: FenceRecord | null;
}

/** A fence that guards nothing: for a member without PostgreSQL, and for tests that need none. */
export class NoFence implements LeaderFence {
  readonly freezes = false;
  private isArmed = false;
  async arm(): Promise<FenceArmResult> {
    this.isArmed = true;
    return { watchdog: 'off' };
  }
  async disarm(): Promise<void> {
    this.isArmed = false;
  }
  async kill(): Promise<void> {}
  standBy(): void {}
  armed(): boolean {
    return this.isArmed;
  }
  onFenced(): void {}
}
