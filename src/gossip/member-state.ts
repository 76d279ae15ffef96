import { MemberState } from './codec.js';
import type { Random } from './clock.js';

/**
 * The member table and the pure rules that decide whether a rumor about a
 * member changes what we believe. Everything here is synchronous and free of
 * timers so the rules can be tested exhaustively.
 */

export type MemberStateName = 'alive' | 'suspect' | 'dead' | 'left' | 'departed';

/** At equal incarnation a later state overrides an earlier one. */
export const STATE_ORDER: Readonly<Record<MemberStateName, number>> = { alive: 0, suspect: 1, dead: 2, left: 3, departed: 4 };

const FROM_WIRE: Readonly<Record<number, MemberStateName>> = {
  [MemberState.ALIVE]: 'alive',
  [MemberState.SUSPECT]: 'suspect',
  [MemberState.DEAD]: 'dead',
  [MemberState.LEFT]: 'left',
  [MemberState.DEPARTED]: 'departed',
};

const TO_WIRE: Readonly<Record<MemberStateName, MemberState>> = {
  alive: MemberState.ALIVE,
  suspect: MemberState.SUSPECT,
  dead: MemberState.DEAD,
  left: MemberState.LEFT,
  departed: MemberState.DEPARTED,
};

export function stateFromWire(state: MemberState | null | undefined): MemberStateName {
  return FROM_WIRE[state ?? MemberState.ALIVE] ?? 'alive';
}

export function stateToWire(state: MemberStateName): MemberState {
  return TO_WIRE[state];
}

/** What a rumor claims about one member's life. */
export interface Claim {
  incarnation: number;
  state: MemberStateName;
}

export interface MemberRecord extends Claim {
  id: string;
  addr: string;
  port: number;
  meta: Uint8Array;
  /** clock.now() of the last state change. */
  since: number;
  rttMs?: number;
  clockOffsetMs?: number;
}

/**
 * - `apply`: the claim is news; it replaces what we hold.
 * - `confirm`: another member independently suspects one we already suspect
 *   at this incarnation (Lifeguard counts these).
 * - `ignore`: stale or already known.
 */
export type Verdict = 'apply' | 'confirm' | 'ignore';

/**
 * Rules for a claim about some other member.
 *
 * DEPARTED is final both ways: nothing overrides a tombstone, and a departure
 * overrides everything whatever its incarnation (only an operator issues it).
 * Otherwise the higher incarnation wins, since only the member itself raises
 * it; at equal incarnation the later state in ALIVE < SUSPECT < DEAD < LEFT wins.
 * A member we do not know is only learned from an ALIVE claim (or kept as a
 * tombstone from a DEPARTED one): stale suspicions of forgotten members must
 * not resurrect them.
 */
export function judgeClaim(current: Claim | undefined, incoming: Claim): Verdict {
  if (current === undefined) return incoming.state === 'alive' || incoming.state === 'departed' ? 'apply' : 'ignore';
  if (current.state === 'departed') return 'ignore';
  if (incoming.state === 'departed') return 'apply';
  if (incoming.incarnation !== current.incarnation) return incoming.incarnation > current.incarnation ? 'apply' : 'ignore';
  if (STATE_ORDER[incoming.state] > STATE_ORDER[current.state]) return 'apply';
  if (incoming.state === 'suspect' && current.state === 'suspect') return 'confirm';
  return 'ignore';
}

export type SelfVerdict = { kind: 'ignore' } | { kind: 'refute'; incarnation: number } | { kind: 'departed' };

/**
 * Rules for a claim about ourselves. We are the only authority on our own
 * liveness, so a claim that we are suspect, dead or gone at an incarnation we
 * have reached (or one from a previous life, higher than ours) is refuted by
 * moving past it; the new incarnation then beats the claim everywhere. While
 * leaving we accept our own departure and refute nothing. An operator's
 * DEPARTED cannot be refuted.
 */
export function judgeClaimAboutSelf(self: Claim, incoming: Claim, leaving: boolean): SelfVerdict {
  if (self.state === 'departed') return { kind: 'ignore' };
  if (incoming.state === 'departed') return { kind: 'departed' };
  if (leaving) return { kind: 'ignore' };
  if (incoming.state === 'alive') {
    return incoming.incarnation > self.incarnation ? { kind: 'refute', incarnation: incoming.incarnation + 1 } : { kind: 'ignore' };
  }
  if (incoming.incarnation >= self.incarnation) return { kind: 'refute', incarnation: incoming.incarnation + 1 };
  return { kind: 'ignore' };
}

/** States in which a member takes part in the protocol (is probed, counts towards n). */
export function isLive(state: MemberStateName): boolean {
  return state === 'alive' || state === 'suspect';
}

/**
 * Members by id, plus a dense id array so that picking random members is
 * O(k) rather than O(n) (needed for 1000-member simulations).
 */
export class MemberTable {
  private readonly byId = new Map<string, MemberRecord>();
  private readonly ids: string[] = [];
  private readonly index = new Map<string, number>();
  private live = 0;
  private readonly counts: Record<MemberStateName, number> = { alive: 0, suspect: 0, dead: 0, left: 0, departed: 0 };

  get size(): number {
    return this.byId.size;
  }

  /** Members that are alive or suspect, ourselves included. */
  get liveCount(): number {
    return this.live;
  }

  /** Members currently in `state` (ourselves included). */
  count(state: MemberStateName): number {
    return this.counts[state];
  }

  get(id: string): MemberRecord | undefined {
    return this.byId.get(id);
  }

  values(): IterableIterator<MemberRecord> {
    return this.byId.values();
  }

  add(record: MemberRecord): void {
    if (this.byId.has(record.id)) throw new Error(`member ${record.id} already in the table`);
    this.byId.set(record.id, record);
    this.index.set(record.id, this.ids.length);
    this.ids.push(record.id);
    if (isLive(record.state)) this.live++;
    this.counts[record.state]++;
  }

  /** Changes a member's state; keeps the live count right. */
  setState(record: MemberRecord, state: MemberStateName, incarnation: number, now: number): void {
    if (isLive(record.state)) this.live--;
    if (isLive(state)) this.live++;
    this.counts[record.state]--;
    this.counts[state]++;
    if (record.state !== state) record.since = now;
    record.state = state;
    record.incarnation = incarnation;
  }

  remove(id: string): MemberRecord | undefined {
    const record = this.byId.get(id);
    if (!record) return undefined;
    this.byId.delete(id);
    const at = this.index.get(id)!;
    const last = this.ids.pop()!;
    if (last !== id) {
      this.ids[at] = last;
      this.index.set(last, at);
    }
    this.index.delete(id);
    if (isLive(record.state)) this.live--;
    this.counts[record.state]--;
    return record;
  }

  /**
   * Up to k distinct members that satisfy `accept`, picked at random. Tries
   * random positions first (cheap when most members qualify), then falls
   * back to a scan from a random start so a rare qualifying member is still found.
   */
  sample(k: number, random: Random, accept: (m: MemberRecord) => boolean): MemberRecord[] {
    const n = this.ids.length;
    const out: MemberRecord[] = [];
    if (k <= 0 || n === 0) return out;
    const chosen = new Set<string>();
    for (let tries = 0; tries < 3 * k + 8 && out.length < k; tries++) {
      const id = this.ids[Math.floor(random() * n)]!;
      if (chosen.has(id)) continue;
      const m = this.byId.get(id)!;
      if (!accept(m)) continue;
      chosen.add(id);
      out.push(m);
    }
    if (out.length < k) {
      const start = Math.floor(random() * n);
      for (let i = 0; i < n && out.length < k; i++) {
        const id = this.ids[(start + i) % n]!;
        if (chosen.has(id)) continue;
        const m = this.byId.get(id)!;
        if (!accept(m)) continue;
        chosen.add(id);
        out.push(m);
      }
    }
    return out;
  }

  /** All ids, in table order (a copy). */
  idList(): string[] {
    return [...this.ids];
  }
}
