import type { Clock, Timer } from '../clock.js';

/**
 * Discrete-event time for simulations: timers fire in (time, scheduling
 * order), so a run with the same seed is the same run. Nothing happens
 * between `advance` / `runUntil` calls.
 *
 * Promise continuations (a stream request's answer) are microtasks, which a
 * synchronous event loop would only run at the very end; whoever resolves a
 * promise inside an event calls `requestFlush()` and the loop lets pending
 * microtasks run before the next event.
 */

interface Entry {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export interface VirtualClockOptions {
  /** wallNow() at virtual time 0. */
  startWallMs?: number;
}

export class VirtualClock implements Clock {
  private time = 0;
  private seq = 0;
  private readonly heap: Entry[] = [];
  private readonly startWallMs: number;
  private flushWanted = false;
  private eventsRun = 0;

  constructor(opts: VirtualClockOptions = {}) {
    this.startWallMs = opts.startWallMs ?? 1_700_000_000_000;
  }

  now(): number {
    return this.time;
  }

  wallNow(): number {
    return this.startWallMs + this.time;
  }

  /** Events executed so far (for benchmarks). */
  get executed(): number {
    return this.eventsRun;
  }

  get pending(): number {
    return this.heap.length;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const entry: Entry = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** A clock sharing this scheduler whose wall clock is off by `wallOffsetMs` (clock-drift tests). */
  withWallOffset(wallOffsetMs: number): Clock {
    return {
      now: () => this.now(),
      wallNow: () => this.wallNow() + wallOffsetMs,
      setTimeout: (fn, ms) => this.setTimeout(fn, ms),
    };
  }

  /** Asks the run loop to let microtasks run before the next event. */
  requestFlush(): void {
    this.flushWanted = true;
  }

  /** Runs every event up to now + ms, then sets the time to now + ms. */
  async advance(ms: number): Promise<void> {
    await this.runTo(this.time + ms);
  }

  /**
   * Runs until `done()` holds (checked every `checkEveryMs` of virtual time)
   * or `limitMs` have passed. Returns whether `done()` held.
   */
  async runUntil(done: () => boolean, limitMs: number, checkEveryMs = 10): Promise<boolean> {
    const end = this.time + limitMs;
    await this.flushMicrotasks();
    if (done()) return true;
    while (this.time < end) {
      await this.runTo(Math.min(end, this.time + checkEveryMs));
      if (done()) return true;
    }
    return false;
  }

  private async runTo(target: number): Promise<void> {
    await this.flushMicrotasks();
    while (this.heap.length > 0 && this.heap[0]!.at <= target) {
      const entry = this.pop()!;
      if (entry.cancelled) continue;
      this.time = entry.at;
      this.eventsRun++;
      entry.fn();
      if (this.flushWanted) await this.flushMicrotasks();
    }
    this.time = Math.max(this.time, target);
  }

  private async flushMicrotasks(): Promise<void> {
    this.flushWanted = false;
    // A macrotask boundary drains the whole microtask queue, however deeply chained.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, heap[parent]!)) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): Entry | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    const n = heap.length;
    while (true) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      const child = right < n && before(heap[right]!, heap[left]!) ? right : left;
      if (!before(heap[child]!, last)) break;
      heap[i] = heap[child]!;
      i = child;
    }
    heap[i] = last;
    return top;
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
