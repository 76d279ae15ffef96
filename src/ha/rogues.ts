import { sameRogues } from '../supervisor/leadership.js';
import type { HaContext } from './context.js';
import type { ClusterSnapshot } from './store.js';
import type { RoguePrimary } from './view.js';

/** How often every member asks each peer's database whether it takes writes. */
const ROGUE_CHECK_MS = 2000;

/**
 * Every ROGUE_CHECK_MS, in the background: asks each peer seen lately
 * whether its database takes writes. One that does while the leader key
 * (read afresh from the store, so a just-elected leader is never taken for
 * one) names someone else is a rogue primary: its supervisor and fence are
 * gone or stalled. It is reported on every view and fenced over SQL. With
 * no leader at all and failover paused (maintenance) it is only reported.
 */
export class RogueWatch {
  private readonly rogues = new Map<string, RoguePrimary>();
  private checkedAt = -Infinity;
  private checking = false;

  constructor(private readonly ctx: HaContext) {}

  list(): RoguePrimary[] {
    return [...this.rogues.values()];
  }

  /** Starts a check in the background when one is due. */
  poke(): void {
    const ctx = this.ctx;
    if (this.checking || ctx.clock.now() - this.checkedAt < ROGUE_CHECK_MS || ctx.closed) return;
    this.checking = true;
    this.checkedAt = ctx.clock.now();
    void this.check().finally(() => (this.checking = false));
  }

  /** One round over every peer (exposed for tests). */
  async check(): Promise<void> {
    const ctx = this.ctx;
    const { db, store } = ctx.deps;
    const s = ctx.settings();
    const found = new Set<string>();
    for (const peer of [...ctx.addresses.values()].filter((p) => p.member !== ctx.memberId)) {
      if ((await db.peerRole(peer, ctx.timeout(1000))) !== 'primary') continue;
      let fresh: ClusterSnapshot;
      try {
        fresh = await store.snapshot({ timeoutMs: s.retryTimeoutMs });
      } catch {
        continue; // cannot tell who leads: never fence on a guess
      }
      if (fresh.leader?.member === peer.member) continue;
      found.add(peer.member);
      let rogue = this.rogues.get(peer.member);
      if (!rogue) {
        rogue = { member: peer.member, since: ctx.clock.wallNow(), action: null };
        this.rogues.set(peer.member, rogue);
        ctx.log.error(
          { event: 'ha_rogue_primary', member: peer.member, leader: fresh.leader?.member ?? null },
          `CRITICAL: member ${peer.member}'s PostgreSQL takes writes without the leader lease (${fresh.leader ? `${fresh.leader.member} leads` : 'nobody leads'})`,
        );
      }
      if (!fresh.leader && fresh.paused) continue;
      try {
        const did = await db.fencePeer(peer, ctx.timeout(3000));
        rogue.action = `fenced over SQL by ${ctx.memberId}: ${did}`;
        ctx.log.error({ event: 'ha_rogue_fenced', member: peer.member, action: did }, `fenced member ${peer.member}'s rogue primary over SQL: ${did}`);
      } catch (err) {
        ctx.log.warn({ event: 'ha_rogue_fence_failed', member: peer.member, reason: (err as Error).message }, `could not fence member ${peer.member} over SQL: ${(err as Error).message}`);
      }
    }
    for (const m of [...this.rogues.keys()]) {
      if (found.has(m)) continue;
      this.rogues.delete(m);
      ctx.log.info({ event: 'ha_rogue_gone', member: m }, `member ${m}'s PostgreSQL no longer takes writes`);
    }
    const list = this.list();
    const { leadership } = ctx.deps;
    if (!sameRogues(leadership.current.rogues, list)) leadership.update({ rogues: list });
  }
}
