import type { Rumor } from './codec.js';

/**
 * The supervisor's rumors, stored without being understood. A slot is
 * (kind, key); within a slot the higher version wins. Two different rumors
 * with the same version (two members published concurrently) are ordered by
 * payload bytes, then origin, so every member keeps the same winner whatever
 * order they arrive in. Any kind is accepted: a new kind needs no change here.
 */

/** A rumor with every field present (what the store keeps and hands out). */
export interface StoredRumor {
  kind: string;
  key: string;
  version: number;
  payload: Uint8Array;
  originId: string;
}

export function normalizeRumor(r: Rumor): StoredRumor {
  return {
    kind: r.kind ?? '',
    key: r.key ?? '',
    version: Number(r.version ?? 0),
    payload: r.payload ?? new Uint8Array(0),
    originId: r.originId ?? '',
  };
}

/** > 0 when `a` beats `b` in the same slot, < 0 when it loses, 0 when they are the same rumor. */
export function compareRumors(a: StoredRumor, b: StoredRumor): number {
  if (a.version !== b.version) return a.version > b.version ? 1 : -1;
  const byPayload = Buffer.compare(a.payload, b.payload);
  if (byPayload !== 0) return byPayload;
  return a.originId === b.originId ? 0 : a.originId > b.originId ? 1 : -1;
}

export type RumorListener = (rumor: StoredRumor, previous: StoredRumor | undefined) => void;

export class RumorStore {
  private readonly kinds = new Map<string, Map<string, StoredRumor>>();
  private readonly listeners: RumorListener[] = [];
  private count = 0;

  get size(): number {
    return this.count;
  }

  /** Called after every change of a slot's winner. */
  onChange(listener: RumorListener): void {
    this.listeners.push(listener);
  }

  get(kind: string, key: string): StoredRumor | undefined {
    return this.kinds.get(kind)?.get(key);
  }

  /** Every stored rumor, or those of one kind. */
  all(kind?: string): StoredRumor[] {
    if (kind !== undefined) return [...(this.kinds.get(kind)?.values() ?? [])];
    const out: StoredRumor[] = [];
    for (const slots of this.kinds.values()) out.push(...slots.values());
    return out;
  }

  /** Stores `rumor` if it beats the slot's current one. Returns whether it did. */
  apply(rumor: Rumor | StoredRumor): boolean {
    const incoming = normalizeRumor(rumor);
    let slots = this.kinds.get(incoming.kind);
    const current = slots?.get(incoming.key);
    if (current && compareRumors(incoming, current) <= 0) return false;
    if (!slots) {
      slots = new Map();
      this.kinds.set(incoming.kind, slots);
    }
    slots.set(incoming.key, incoming);
    if (!current) this.count++;
    for (const listener of this.listeners) listener(incoming, current);
    return true;
  }
}
