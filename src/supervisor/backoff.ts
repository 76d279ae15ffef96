/**
 * Restart pacing for a supervised child: exponential backoff with jitter, and
 * a sliding-window counter that tells a crash loop ("flapping") apart from an
 * occasional crash.
 *
 * Jitter is subtractive: a delay is drawn from [base·(1−jitter), base], where
 * base = min(maxMs, initialMs·factor^attempt). Subtracting (rather than adding
 * and clamping) keeps every delay at or under maxMs while still spreading
 * restarts of many nodes that crashed together, so they do not stampede a
 * shared dependency at the same instant.
 */

export interface BackoffOptions {
  /** Delay before the first restart, in ms. */
  initialMs: number;
  /** Cap on any delay, in ms. A crash loop settles at this pace. */
  maxMs: number;
  /** Growth per consecutive restart (>= 1). */
  factor: number;
  /** Fraction of the delay that is randomised away, 0..1. */
  jitter: number;
  /**
   * A child that stays up this long is considered healthy again: the next
   * crash starts over at initialMs. Default 10 000 ms.
   */
  stableMs?: number;
}

export const DEFAULT_STABLE_MS = 10_000;

/** Smallest delay ever returned: even a misconfigured backoff never spins the CPU. */
export const MIN_DELAY_MS = 10;

/**
 * The delay before restart number `attempt` (0-based). `random` returns a
 * value in [0, 1); pass a fixed function to make the result deterministic.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const { initial, max, factor } = sanitize(opts);
  // Grow step by step rather than with Math.pow so a huge attempt count neither
  // overflows to Infinity nor loops longer than it takes to reach the cap.
  let base = initial;
  if (factor > 1) {
    for (let i = 0; i < attempt && base < max; i++) base *= factor;
  }
  return jittered(Math.min(base, max), opts, random);
}

/** The delay at the cap (what a flapping service waits between tries). */
export function cappedDelay(opts: BackoffOptions, random: () => number = Math.random): number {
  return jittered(sanitize(opts).max, opts, random);
}

function sanitize(opts: BackoffOptions): { initial: number; max: number; factor: number } {
  const initial = Math.max(MIN_DELAY_MS, finiteOr(opts.initialMs, MIN_DELAY_MS));
  const max = Math.max(initial, finiteOr(opts.maxMs, initial));
  const factor = Math.max(1, finiteOr(opts.factor, 1));
  return { initial, max, factor };
}

function jittered(base: number, opts: BackoffOptions, random: () => number): number {
  const jitter = Math.min(1, Math.max(0, finiteOr(opts.jitter, 0)));
  const r = Math.min(1, Math.max(0, finiteOr(random(), 0)));
  return Math.max(MIN_DELAY_MS, Math.round(base * (1 - jitter * r)));
}

function finiteOr(value: number, fallback: number): number {
  return Number.isFinite(value) ? value : fallback;
}

/** Stateful backoff: counts consecutive restarts and forgets them after a stable run. */
export class Backoff {
  private attemptCount = 0;

  constructor(
    private readonly opts: BackoffOptions,
    private readonly random: () => number = Math.random,
  ) {}

  /** Consecutive restarts since the last reset. */
  get attempt(): number {
    return this.attemptCount;
  }

  get stableMs(): number {
    return this.opts.stableMs ?? DEFAULT_STABLE_MS;
  }

  /** The delay before the next restart; each call counts as one more restart. */
  next(): number {
    const delay = backoffDelay(this.attemptCount, this.opts, this.random);
    this.attemptCount++;
    return delay;
  }

  /** The capped delay, used while flapping; does not advance the attempt count. */
  capped(): number {
    return cappedDelay(this.opts, this.random);
  }

  /** Tell the backoff how long the child stayed up; a stable run resets it. */
  recordUptime(uptimeMs: number): void {
    if (uptimeMs >= this.stableMs) this.reset();
  }

  reset(): void {
    this.attemptCount = 0;
  }
}

export interface FlappingOptions {
  /** Sliding window, in ms. */
  windowMs: number;
  /** More restarts than this within the window means the service is flapping. */
  maxRestarts: number;
}

/** Remembers restart times within a sliding window. */
export class FlapDetector {
  private restarts: number[] = [];

  constructor(private readonly opts: FlappingOptions) {}

  /** Record a restart at `now` (ms); returns true when this restart makes the service flapping. */
  record(now: number): boolean {
    this.restarts.push(now);
    this.prune(now);
    return this.restarts.length > this.opts.maxRestarts;
  }

  /** Restarts within the window ending at `now`. */
  count(now: number): number {
    this.prune(now);
    return this.restarts.length;
  }

  clear(): void {
    this.restarts = [];
  }

  private prune(now: number): void {
    const cutoff = now - this.opts.windowMs;
    let drop = 0;
    while (drop < this.restarts.length && this.restarts[drop]! <= cutoff) drop++;
    if (drop > 0) this.restarts.splice(0, drop);
  }
}
