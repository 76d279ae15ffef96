import type { Clock, Timer } from './clock.js';

/**
 * Lifeguard's dynamic suspicion timeout. A suspicion starts with a long
 * timeout (max) so a healthy member that is merely slow to hear about it has
 * time to refute; every independent confirmation (another member that failed
 * to reach it) shrinks the timeout logarithmically towards min, so a member
 * that is really gone is declared dead quickly.
 */

export interface SuspicionTimeouts {
  minMs: number;
  maxMs: number;
}

export interface SuspicionSettings {
  suspicionMult: number;
  suspicionMaxTimeoutMult: number;
  probeIntervalMs: number;
}

/**
 * min = suspicionMult * nodeScale probe intervals, max = suspicionMaxTimeoutMult * min.
 *
 * Bigger rings need longer for a refutation to reach everyone. memberlist
 * scales by log10(n); here a refutation does not wait for the next probe to
 * be piggybacked but is gossiped at once and then every gossip interval, so
 * its spread grows more slowly with n: nodeScale = (1 + log10(n)) / 2, which
 * equals memberlist's scale up to 10 members (1) and is 2 at 1000.
 */
export function suspicionNodeScale(liveMembers: number): number {
  return Math.max(1, (1 + Math.log10(Math.max(1, liveMembers))) / 2);
}

export function suspicionTimeouts(settings: SuspicionSettings, liveMembers: number): SuspicionTimeouts {
  const nodeScale = suspicionNodeScale(liveMembers);
  const minMs = Math.floor(settings.suspicionMult * nodeScale * settings.probeIntervalMs);
  return { minMs, maxMs: minMs * settings.suspicionMaxTimeoutMult };
}

/**
 * Independent confirmations that bring the timeout down to min. With too few
 * members to ever collect them, none are expected (the timeout is min).
 */
export function expectedConfirmations(suspicionMult: number, liveMembers: number): number {
  const k = Math.max(0, suspicionMult - 2);
  return liveMembers - 2 < k ? 0 : k;
}

/**
 * Total timeout (from the start of the suspicion) after `confirmations` of
 * the `expected` independent confirmations: max at 0, min at `expected`,
 * logarithmic in between.
 */
export function suspicionTimeoutMs(confirmations: number, expected: number, t: SuspicionTimeouts): number {
  if (expected < 1) return t.minMs;
  const fraction = Math.log(Math.min(confirmations, expected) + 1) / Math.log(expected + 1);
  const raw = Math.floor(t.maxMs - fraction * (t.maxMs - t.minMs));
  return Math.max(t.minMs, raw);
}

/**
 * One running suspicion of one member. `onTimeout` fires once, on the clock,
 * never synchronously from `confirm` (callers are in the middle of merging a
 * rumor); it is told whether all expected confirmations arrived.
 */
export class Suspicion {
  private readonly confirmedBy = new Set<string>();
  private confirmations = 0;
  private timer: Timer;
  private readonly startedAt: number;
  private done = false;

  constructor(
    private readonly clock: Clock,
    from: string,
    private readonly expected: number,
    private readonly timeouts: SuspicionTimeouts,
    private readonly onTimeout: (fullyConfirmed: boolean) => void,
  ) {
    this.startedAt = clock.now();
    // The one who raised the suspicion does not confirm it.
    this.confirmedBy.add(from);
    this.timer = clock.setTimeout(() => this.fire(), suspicionTimeoutMs(0, expected, timeouts));
  }

  get confirmationCount(): number {
    return this.confirmations;
  }

  /** Total timeout as it stands now (ms from the start of the suspicion). */
  get timeoutMs(): number {
    return suspicionTimeoutMs(this.confirmations, this.expected, this.timeouts);
  }

  /**
   * Counts a confirmation from `from`. Returns true if it was new (the caller
   * then re-gossips it so others can count it too).
   */
  confirm(from: string): boolean {
    if (this.done || this.confirmations >= this.expected || this.confirmedBy.has(from)) return false;
    this.confirmedBy.add(from);
    this.confirmations++;
    const remaining = this.timeoutMs - (this.clock.now() - this.startedAt);
    this.timer.cancel();
    this.timer = this.clock.setTimeout(() => this.fire(), Math.max(0, remaining));
    return true;
  }

  cancel(): void {
    this.done = true;
    this.timer.cancel();
  }

  private fire(): void {
    if (this.done) return;
    this.done = true;
    this.onTimeout(this.confirmations >= this.expected);
  }
}
