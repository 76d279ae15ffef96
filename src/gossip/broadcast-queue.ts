/**
 * Rumors waiting to be piggybacked or gossiped. Every rumor is sent a
 * limited number of times, retransmitMult * ceil(log10(n + 1)): enough for an
 * epidemic to reach all n members with high probability, and no more.
 *
 * Rumors sent fewest times go first (new information spreads first), the
 * newest first among equals. A newer rumor for the same key (the same member,
 * the same store slot) replaces the queued older one, which is never sent again.
 */

export function retransmitLimit(retransmitMult: number, liveMembers: number): number {
  return retransmitMult * Math.ceil(Math.log10(liveMembers + 1));
}

/** Why a queued rumor left the queue. */
export type BroadcastEnd = 'sent' | 'invalidated' | 'cleared';

interface Item<T> {
  key: string;
  value: T;
  size: number;
  transmits: number;
  onEnd?: ((end: BroadcastEnd) => void) | undefined;
  prev: Item<T> | undefined;
  next: Item<T> | undefined;
}

/** Items with the same transmit count, newest at the head. */
interface Level<T> {
  head: Item<T> | undefined;
  count: number;
}

/** Smallest piggyback worth looking for once the packet is nearly full. */
const MIN_USEFUL_BYTES = 16;
/**
 * Once something did not fit, look at only this many more rumors for a
 * smaller one: a full scan of a long queue for every packet is quadratic.
 */
const MISFIT_SCAN_LIMIT = 32;

export class BroadcastQueue<T> {
  private readonly byKey = new Map<string, Item<T>>();
  private readonly levels: Level<T>[] = [];

  constructor(private readonly retransmitMult: number) {}

  get size(): number {
    return this.byKey.size;
  }

  get isEmpty(): boolean {
    return this.byKey.size === 0;
  }

  has(key: string): boolean {
    return this.byKey.has(key);
  }

  /** Times the queued rumor for `key` has been sent so far (undefined if none is queued). */
  transmitsOf(key: string): number | undefined {
    return this.byKey.get(key)?.transmits;
  }

  /**
   * Queues `value` (whose encoded piggyback size is `size` bytes) under `key`,
   * replacing any older rumor with the same key. `onEnd` is told when the rumor
   * leaves the queue.
   */
  enqueue(key: string, value: T, size: number, onEnd?: (end: BroadcastEnd) => void): void {
    const old = this.byKey.get(key);
    if (old) {
      this.unlink(old);
      this.byKey.delete(key);
      old.onEnd?.('invalidated');
    }
    const item: Item<T> = { key, value, size, transmits: 0, onEnd, prev: undefined, next: undefined };
    this.byKey.set(key, item);
    this.link(item);
  }

  /**
   * Takes rumors whose sizes add up to at most `budgetBytes`, fewest-sent and
   * newest first, skipping ones that do not fit. Each taken rumor counts one
   * transmission and leaves the queue when it reaches the limit for `liveMembers`.
   */
  take(budgetBytes: number, liveMembers: number): T[] {
    if (this.byKey.size === 0 || budgetBytes < MIN_USEFUL_BYTES) return [];
    const taken: Item<T>[] = [];
    let remaining = budgetBytes;
    let misfits = 0;
    scan: for (const level of this.levels) {
      for (let item = level?.head; item; item = item.next) {
        if (item.size > remaining) {
          if (++misfits > MISFIT_SCAN_LIMIT) break scan;
          continue;
        }
        taken.push(item);
        remaining -= item.size;
        if (remaining < MIN_USEFUL_BYTES) break scan;
      }
    }
    const limit = Math.max(1, retransmitLimit(this.retransmitMult, liveMembers));
    // Re-linked in reverse so that, at their new level, they keep their newest-first order.
    for (let i = taken.length - 1; i >= 0; i--) {
      const item = taken[i]!;
      this.unlink(item);
      item.transmits++;
      if (item.transmits >= limit) {
        this.byKey.delete(item.key);
        item.onEnd?.('sent');
      } else {
        this.link(item);
      }
    }
    return taken.map((i) => i.value);
  }

  /** Drops everything (stop). */
  clear(): void {
    const items = [...this.byKey.values()];
    this.byKey.clear();
    this.levels.length = 0;
    for (const item of items) item.onEnd?.('cleared');
  }

  private link(item: Item<T>): void {
    let level = this.levels[item.transmits];
    if (!level) {
      for (let i = this.levels.length; i <= item.transmits; i++) this.levels[i] = { head: undefined, count: 0 };
      level = this.levels[item.transmits]!;
    }
    item.prev = undefined;
    item.next = level.head;
    if (level.head) level.head.prev = item;
    level.head = item;
    level.count++;
  }

  private unlink(item: Item<T>): void {
    const level = this.levels[item.transmits]!;
    if (item.prev) item.prev.next = item.next;
    else level.head = item.next;
    if (item.next) item.next.prev = item.prev;
    item.prev = undefined;
    item.next = undefined;
    level.count--;
  }
}
