import type { BackupType } from './info.js';

/**
 * The cluster's record of scheduled backup slots: before the leader runs a
 * slot it claims it, create-if-absent, so a slot runs once however many
 * members lead during it (a new leader finds the slot claimed and does
 * nothing). The record says who claimed each slot and how it ended, which
 * is how a new leader learns that its predecessor's backup was interrupted
 * and which slots were missed while there was no leader. In etcd for a
 * cluster (etcd-slot-claims.ts); in memory for a member on its own, which
 * is its only leader.
 */
export type ClaimState = 'claimed' | 'running' | 'done' | 'failed' | 'covered' | 'interrupted' | 'not-started';

export interface SlotClaim {
  type: BackupType;
  /** The slot's time, ms since the epoch. */
  at: number;
  member: string;
  /** Names the claimant's attempt, so a claim whose answer was lost is recognised as its own when read back. */
  token: string;
  state: ClaimState;
  claimed_at: number;
  /** The backup job that runs the slot. */
  job?: string;
  /** covered: the slot of a larger type that ran instead. */
  covered_by?: { type: BackupType; at: number };
  /** done: the backup made. */
  label?: string;
  /** failed, interrupted, not-started: why. */
  error?: string;
}

export interface SlotClaims {
  /**
   * Claims every slot in `claims` (the first is the one that runs, the
   * others are covered by it), all or none, only if none of them is claimed
   * yet. True when this claim holds them (also when it already did: an
   * earlier attempt whose answer was lost). Throws when the outcome is
   * unknown; asking again with the same token is safe.
   */
  claim(claims: SlotClaim[]): Promise<boolean>;
  /** Records how a claimed slot goes on (running, done, failed, ...); does nothing when the slot's claim is gone (pruned). */
  update(claim: SlotClaim): Promise<void>;
  /** The claims kept, oldest first. */
  recent(): Promise<SlotClaim[]>;
  /** Deletes all but the newest `keep` claims of `type`; returns how many went. */
  prune(type: BackupType, keep: number): Promise<number>;
}

/** A slot's name in the record: its type and its time in ISO 8601 (sorts by time). */
export function slotName(type: BackupType, at: number): string {
  return `${type}/${new Date(at).toISOString()}`;
}

/** A claim as stored, or undefined for a value that is not one (never throws). */
export function parseClaim(text: string): SlotClaim | undefined {
  try {
    const c = JSON.parse(text) as Partial<SlotClaim>;
    if ((c.type === 'full' || c.type === 'diff' || c.type === 'incr') && typeof c.at === 'number' && typeof c.member === 'string' && typeof c.token === 'string' && typeof c.state === 'string') return c as SlotClaim;
  } catch {
    // Not JSON: not a claim.
  }
  return undefined;
}

/** For a member on its own: it is the only one that could claim. */
export class MemorySlotClaims implements SlotClaims {
  private readonly claims = new Map<string, SlotClaim>();

  async claim(claims: SlotClaim[]): Promise<boolean> {
    const first = claims[0];
    if (!first) return false;
    const held = this.claims.get(slotName(first.type, first.at));
    if (held) return held.token === first.token;
    if (claims.some((c) => this.claims.has(slotName(c.type, c.at)))) return false;
    for (const c of claims) this.claims.set(slotName(c.type, c.at), { ...c });
    return true;
  }

  async update(claim: SlotClaim): Promise<void> {
    const name = slotName(claim.type, claim.at);
    if (this.claims.has(name)) this.claims.set(name, { ...claim });
  }

  async recent(): Promise<SlotClaim[]> {
    return [...this.claims.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, c]) => ({ ...c }));
  }

  async prune(type: BackupType, keep: number): Promise<number> {
    const names = [...this.claims.keys()].filter((n) => n.startsWith(`${type}/`)).sort();
    const gone = names.slice(0, Math.max(0, names.length - keep));
    for (const n of gone) this.claims.delete(n);
    return gone.length;
  }
}
