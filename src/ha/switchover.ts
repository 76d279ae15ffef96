import { randomBytes } from 'node:crypto';
import type { HaContext } from './context.js';
import { switchoverTarget } from './decisions.js';
import type { LeaseKeeper } from './lease.js';
import type { ClusterSnapshot, SwitchoverRequest } from './store.js';

/**
 * Planned leader change: any member records the request; the leader stops
 * its database cleanly, waits until the target has everything up to the
 * shutdown checkpoint, and moves the key to the target's lease in one
 * transaction. No acknowledged write is lost, and the two never take
 * writes at the same time.
 */
export interface SwitchoverResult {
  from: string;
  to: string;
  tookMs: number;
}

export class SwitchoverError extends Error {
  constructor(
    message: string,
    /** HTTP status the API answers with. */
    readonly status: number,
  ) {
    super(message);
  }
}

const POLL_MS = 100;
const CATCHUP_POLL_MS = 50;
const CATCHUP_MS = 15_000;
/** A request the leader never took up (it died) is cleared after this long. */
export const STALE_SWITCHOVER_MS = 60_000;

/** Asks the leader to hand over to `to` (or to the best replica) and waits until a new leader runs. */
export async function requestSwitchover(ctx: HaContext, to: string | null, timeoutMs = 30_000): Promise<SwitchoverResult> {
  const { store } = ctx.deps;
  const started = ctx.clock.now();
  const snap = await store.snapshot();
  const leader = snap.leader?.member;
  if (!leader) throw new SwitchoverError('there is no leader to switch over from', 409);
  if (to === leader) throw new SwitchoverError(`member ${to} is already the leader`, 409);
  const target = switchoverTarget(leader, to, snap);
  if ('error' in target) throw new SwitchoverError(target.error, 412);
  const req: SwitchoverRequest = { from: leader, to, id: randomBytes(6).toString('hex'), requested: ctx.clock.wallNow() };
  if (!(await store.requestSwitchover(req))) throw new SwitchoverError('another switchover is pending', 409);
  ctx.log.info({ event: 'ha_switchover_requested', from: leader, to }, `switchover from ${leader} to ${to ?? 'the best replica'} requested`);
  const deadline = started + timeoutMs;
  while (ctx.clock.now() < deadline && !ctx.closed) {
    await ctx.sleep(POLL_MS);
    let s: ClusterSnapshot;
    try {
      s = await store.snapshot();
    } catch {
      continue;
    }
    const pending = s.switchover?.id === req.id ? s.switchover : null;
    if (pending?.failed) {
      await store.clearSwitchover(req.id).catch(() => undefined);
      throw new SwitchoverError(`the leader did not switch over: ${pending.failed}`, 409);
    }
    const now = s.leader?.member;
    if (now && now !== leader && (to === null || now === to)) {
      const report = s.members.get(now)?.report;
      if (report?.role === 'leader' && report.healthy) return { from: leader, to: now, tookMs: Math.round(ctx.clock.now() - started) };
    }
  }
  await store.clearSwitchover(req.id).catch(() => undefined);
  throw new SwitchoverError(`no new leader within ${timeoutMs} ms`, 504);
}

/** The leader's side. */
export async function carryOutSwitchover(ctx: HaContext, lease: LeaseKeeper, req: SwitchoverRequest, snap: ClusterSnapshot): Promise<void> {
  const { store, db, leadership } = ctx.deps;
  const target = switchoverTarget(ctx.memberId, req.to, snap);
  if ('error' in target) {
    ctx.log.warn({ event: 'ha_switchover_refused', reason: target.error }, `switchover refused: ${target.error}`);
    await store.failSwitchover(req, target.error).catch(() => undefined);
    return;
  }
  const started = ctx.clock.now();
  ctx.transition('handing-over', `switching over to ${target.target}`);
  ctx.log.info({ event: 'ha_switchover', to: target.target }, `switching over to ${target.target}`);
  leadership.update({ fenced: true, reason: `switching over to ${target.target}` });
  const { stoppedAt } = await db.demote(`switchover to ${target.target}`, { stayDown: true, handingOver: true });
  const fail = async (reason: string) => {
    ctx.log.warn({ event: 'ha_switchover_failed', reason }, `switchover failed: ${reason}; staying leader`);
    await store.failSwitchover(req, reason).catch(() => undefined);
    await db.startStandby(ctx.stop.signal).catch((err: unknown) => ctx.log.error({ err }, 'restarting PostgreSQL failed'));
    leadership.update({ fenced: false });
    // Still the key holder: the next turn promotes the standby again.
    if (ctx.phase === 'handing-over') ctx.transition('leader', `switchover failed: ${reason}`);
  };
  if (stoppedAt === null) return fail('could not read the position PostgreSQL stopped at');
  const deadline = ctx.clock.now() + CATCHUP_MS;
  let caughtUp = false;
  while (ctx.clock.now() < deadline && !ctx.closed) {
    const s = await store.snapshot().catch(() => null);
    const pos = s?.members.get(target.target)?.report.wal_position ?? null;
    if (pos !== null && pos > stoppedAt) {
      caughtUp = true;
      break;
    }
    await ctx.sleep(CATCHUP_POLL_MS);
  }
  if (!caughtUp) return fail(`${target.target} did not receive everything up to ${stoppedAt} in time`);
  if (!(await store.handOver(ctx.memberId, ctx.lease!, target.target, target.lease).catch(() => false))) return fail('the leader key could not be handed over');
  ctx.settle(`handed over to ${target.target}`);
  ctx.appliedSync = undefined;
  await lease.disarmFence();
  leadership.update({ fenced: false, holdsLease: false, role: 'replica', primaryWritable: false, reason: `handed over to ${target.target}` });
  ctx.log.info({ event: 'ha_switched_over', to: target.target, took_ms: Math.round(ctx.clock.now() - started) }, `handed leadership to ${target.target}`);
}
