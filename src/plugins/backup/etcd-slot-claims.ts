import type { CallOptions, EtcdClient } from '../etcd/client.js';
import type { BackupType } from './info.js';
import { parseClaim, slotName, type SlotClaim, type SlotClaims } from './slot-claims.js';

/**
 * The slot record in etcd: one key per slot, `<prefix><type>/<ISO time>`,
 * its value the claim as JSON. Claiming is one transaction that creates
 * every key of the set only if none exists (version 0), so of two leaders
 * racing for a slot (one that has not noticed it lost the lead yet, and
 * its successor) exactly one gets it. The keys carry no lease: a claim
 * outlives its claimant, which is the point.
 *
 * The prefix is the cluster's (/hasup/<cluster>/backup/<group>/slots/),
 * beside the HA store's keys and not under them: the HA loop reads its
 * whole prefix every turn and watches it, and needs none of these.
 */
export class EtcdSlotClaims implements SlotClaims {
  readonly prefix: string;

  constructor(
    private readonly client: Pick<EtcdClient, 'txn' | 'get' | 'range' | 'delete'>,
    prefix: string,
    private readonly call: CallOptions = { timeoutMs: 5000 },
  ) {
    this.prefix = prefix.endsWith('/') ? prefix : `${prefix}/`;
  }

  async claim(claims: SlotClaim[]): Promise<boolean> {
    const first = claims[0];
    if (!first) return false;
    const r = await this.client.txn(
      {
        compare: claims.map((c) => ({ key: this.key(c), target: 'version' as const, result: 'equal' as const, version: 0 })),
        success: claims.map((c) => ({ put: { key: this.key(c), value: JSON.stringify(c) } })),
      },
      this.call,
    );
    if (r.succeeded) return true;
    // Ours already, from an attempt whose answer was lost?
    const held = await this.client.get(this.key(first), this.call);
    return held !== undefined && parseClaim(held.value)?.token === first.token;
  }

  async update(claim: SlotClaim): Promise<void> {
    // Only while the key exists: a claim pruned meanwhile is not brought back.
    const key = this.key(claim);
    await this.client.txn({ compare: [{ key, target: 'version', result: 'greater', version: 0 }], success: [{ put: { key, value: JSON.stringify(claim) } }] }, this.call);
  }

  async recent(): Promise<SlotClaim[]> {
    const r = await this.client.range(this.prefix, { prefix: true, ...this.call });
    return r.kvs
      .sort((a, b) => (a.key < b.key ? -1 : 1))
      .map((kv) => parseClaim(kv.value))
      .filter((c): c is SlotClaim => c !== undefined)
      .sort((a, b) => a.at - b.at);
  }

  async prune(type: BackupType, keep: number): Promise<number> {
    const r = await this.client.range(`${this.prefix}${type}/`, { prefix: true, ...this.call });
    const keys = r.kvs.map((kv) => kv.key).sort();
    const gone = keys.slice(0, Math.max(0, keys.length - keep));
    for (const key of gone) await this.client.delete(key, this.call);
    return gone.length;
  }

  private key(c: { type: BackupType; at: number }): string {
    return `${this.prefix}${slotName(c.type, c.at)}`;
  }
}
