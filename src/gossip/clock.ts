/**
 * Time as the gossip layer sees it. Protocol code never calls Date.now() or
 * setTimeout directly, so the same code runs on the wall clock in a real
 * member and on a virtual clock in simulations of 1000+ members.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Milliseconds; monotonic within one clock. */
  now(): number;
  /** Wall-clock milliseconds since the epoch (what acks carry for offset estimates). */
  wallNow(): number;
  setTimeout(fn: () => void, ms: number): Timer;
}

export const realClock: Clock = {
  now: () => performance.now(),
  wallNow: () => Date.now(),
  setTimeout(fn, ms) {
    const handle = setTimeout(fn, Math.max(0, ms));
    handle.unref?.();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** Deterministic or real randomness; simulations pass a seeded one. */
export type Random = () => number;
