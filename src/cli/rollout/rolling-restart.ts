/**
 * `hasup rolling-restart SERVICE` and `hasup upgrade SERVICE --to TO`:
 * restarts one service on every member (on the program TO names, for an
 * upgrade), one member at a time, so the cluster keeps serving (Patroni's "followers
 * first, switchover, leader last"; Elasticsearch's rolling restart with
 * shard allocation held). This module decides and sequences; it reaches
 * the cluster only through the RolloutApi port, so its decisions are unit
 * tested against a fake cluster (test/unit/rolling-restart.test.ts) and the
 * command (rolling-commands.ts) plugs in the members' HTTP APIs.
 *
 * A step that fails stops the rollout where it is: nothing further is
 * touched, and the error says which member and step, what is done and what
 * is left. A member found unhealthy before the start refuses the rollout
 * (restarting a healthy member while another is down could leave no
 * leader or no quorum). An upgrade first asks every member whether it
 * has TO and can run it (nothing changes until all say yes); a member that
 * does not come back healthy on it is put back on its previous program and
 * the rollout stops there.
 */

/** A member running the service, as the cluster reports it. */
export interface RolloutMember {
  member: string;
  /** Alive or suspect in the ring. */
  live: boolean;
  /** The service runs and its health check passes (ok or warning). */
  healthy: boolean;
  /** PostgreSQL: this member holds the leader key and takes writes. */
  leader: boolean;
  /** PostgreSQL replica: streaming from the leader. */
  streaming: boolean;
  /** PostgreSQL replica: bytes behind the leader; null when unknown. */
  lagBytes: number | null;
  /** When the service's process last changed state, on the member's clock (ms); null when unknown. */
  since: number | null;
  /** hasup itself: the member runs PostgreSQL (it must follow the leader, caught up, before the rollout goes on). */
  runsPostgresql?: boolean;
}

export interface RolloutApi {
  /** Every member that runs `serviceGroup` (e.g. postgresql.default), fresh. */
  members(serviceGroup: string): Promise<RolloutMember[]>;
  /** Restarts the service on one member; resolves once its supervisor restarted it, with the new process's `since`. */
  restart(member: string, serviceGroup: string): Promise<number>;
  /** What `to` names on one member (its version), checked there; changes nothing. Throws the member's refusal. */
  checkUpgrade(member: string, serviceGroup: string, to: string): Promise<string>;
  /** Switches one member's service to `to` and restarts it; the new process's `since`. */
  upgrade(member: string, serviceGroup: string, to: string): Promise<number>;
  /** Puts one member's service back on the program it ran before its last upgrade; the new process's `since`. */
  revertUpgrade(member: string, serviceGroup: string): Promise<number>;
  /** PostgreSQL: a planned switchover to `to`; resolves once the new leader runs. */
  switchover(to: string): Promise<void>;
  /** Elasticsearch: cluster.routing.allocation.enable ("primaries" while a node restarts; null puts the default back). */
  setAllocation(value: 'primaries' | null): Promise<void>;
  /** Elasticsearch: the cluster's health status (green, yellow, red) and its node count. */
  searchHealth(): Promise<{ status: string; nodes: number }>;
  sleep(ms: number): Promise<void>;
  now(): number;
}

export interface RolloutOptions {
  service: string;
  group: string;
  /** A replica counts as caught up within this many bytes of the leader. */
  maxLagBytes: number;
  /** How long one member may take to come back healthy (and caught up, and green). */
  memberTimeoutMs: number;
  pollMs: number;
  /** Print the plan only (an upgrade still asks every member whether it can). */
  dryRun: boolean;
  /** hasup upgrade: the version or path each member's service is switched to. Absent: a plain rolling restart. */
  upgradeTo?: string;
  /** Progress, one line at a time. */
  say: (line: string) => void;
}

export const ROLLOUT_DEFAULTS = { maxLagBytes: 1024 * 1024, memberTimeoutMs: 300_000, pollMs: 1000 } as const;

/** Observations in a row a member must pass after its restart: one could be a report from before it. */
const GOOD_IN_A_ROW = 2;

export type RolloutStep = { kind: 'restart'; member: string } | { kind: 'switchover'; from: string };

export class RolloutError extends Error {}

export interface RolloutResult {
  restarted: string[];
  /** The switchover made, PostgreSQL only. */
  switchover: { from: string; to: string } | null;
  tookMs: number;
}

type Kind = 'postgresql' | 'elasticsearch' | 'hasup' | 'plain';

/** `hasup` is hasup's own process on each member: restarted with its services left running, the PostgreSQL leader's last. */
function kindOf(service: string): Kind {
  return service === 'postgresql' || service === 'elasticsearch' || service === 'hasup' ? service : 'plain';
}

/**
 * The order: PostgreSQL followers first and the leader last, after a
 * switchover away from it; any other service member by member, by id.
 */
export function planRollout(service: string, members: RolloutMember[]): RolloutStep[] {
  const sorted = [...members].sort((a, b) => a.member.localeCompare(b.member, 'en', { numeric: true }));
  const kind = kindOf(service);
  if (kind !== 'postgresql' && kind !== 'hasup') return sorted.map((m) => ({ kind: 'restart', member: m.member }));
  const leader = sorted.find((m) => m.leader);
  const steps: RolloutStep[] = sorted.filter((m) => m !== leader).map((m) => ({ kind: 'restart', member: m.member }));
  if (leader) steps.push({ kind: 'switchover', from: leader.member }, { kind: 'restart', member: leader.member });
  return steps;
}

/** Why the cluster is not fit to start a rollout, or undefined. */
export function refusal(service: string, members: RolloutMember[]): string | undefined {
  if (members.length === 0) return `no member runs ${service}`;
  const bad = members.filter((m) => !m.live || !m.healthy);
  if (bad.length > 0) return `not every member is healthy (${bad.map((m) => `${m.member}: ${m.live ? 'service not healthy' : 'member not alive'}`).join('; ')}): bring them back first`;
  const kind = kindOf(service);
  if (kind !== 'postgresql' && !(kind === 'hasup' && members.some((m) => m.leader))) return undefined;
  const leaders = members.filter((m) => m.leader);
  if (leaders.length !== 1) return leaders.length === 0 ? 'PostgreSQL has no leader' : `several members claim to lead PostgreSQL (${leaders.map((m) => m.member).join(', ')})`;
  if (members.length > 1 && !members.some((m) => !m.leader && m.streaming)) return 'no PostgreSQL follower streams from the leader: a switchover would have no target';
  return undefined;
}

/** The follower to hand over to: healthy, streaming, the least behind (ties by id). */
export function switchoverTarget(members: RolloutMember[], from: string): RolloutMember | undefined {
  return members
    .filter((m) => m.member !== from && m.live && m.healthy && m.streaming && !m.leader)
    .sort((a, b) => (a.lagBytes ?? Infinity) - (b.lagBytes ?? Infinity) || a.member.localeCompare(b.member))[0];
}

export function describeStep(s: RolloutStep, service: string, upgradeTo?: string): string {
  if (s.kind === 'switchover') return `switch the PostgreSQL leader over from ${s.from} to the most caught-up follower`;
  const kind = kindOf(service);
  const extra =
    kind === 'elasticsearch'
      ? ' (shard allocation held to primaries meanwhile, then green awaited)'
      : kind === 'postgresql'
        ? ' and wait until it streams, caught up'
        : kind === 'hasup'
          ? ' (its services left running for the new hasup to adopt) and wait until it is back, its services healthy'
          : ' and wait until it is healthy';
  return upgradeTo === undefined ? `restart ${service} on ${s.member}${extra}` : `switch ${service} on ${s.member} to ${upgradeTo}, restart it${extra}`;
}

export async function rollingRestart(api: RolloutApi, o: RolloutOptions): Promise<RolloutResult> {
  const sg = `${o.service}.${o.group}`;
  const kind = kindOf(o.service);
  const upgradeTo = o.upgradeTo;
  const what = upgradeTo === undefined ? `rolling restart of ${sg}` : `upgrade of ${sg} to ${upgradeTo}`;
  const started = api.now();
  const members = await api.members(sg);
  const steps = planRollout(o.service, members);
  const refused = refusal(o.service, members);
  o.say(`plan for ${sg} (${members.length} members):`);
  steps.forEach((s, i) => o.say(`  ${i + 1}. ${describeStep(s, o.service, upgradeTo)}`));
  if (refused) throw new RolloutError(`${what} refused: ${refused}; nothing was ${upgradeTo === undefined ? 'restarted' : 'changed'}`);
  if (upgradeTo !== undefined) await checkEveryMember(api, o, sg, upgradeTo, members);
  const result: RolloutResult = { restarted: [], switchover: null, tookMs: 0 };
  if (o.dryRun) return result;

  const where = (i: number, why: string) => {
    const left = steps.slice(i + 1).filter((s) => s.kind === 'restart').map((s) => s.member);
    const done = upgradeTo === undefined ? 'restarted' : 'upgraded';
    return new RolloutError(`${what} stopped at step ${i + 1} (${describeStep(steps[i]!, o.service, upgradeTo)}): ${why}; ${done}: ${result.restarted.join(', ') || 'none'}; not touched: ${left.join(', ') || 'none'}`);
  };
  let allocationHeld = false;
  for (const [i, step] of steps.entries()) {
    try {
      if (step.kind === 'switchover') {
        const target = switchoverTarget(await api.members(sg), step.from);
        if (!target) throw new Error('no healthy, streaming follower to hand over to');
        o.say(`[${i + 1}/${steps.length}] switchover ${step.from} -> ${target.member}`);
        await api.switchover(target.member);
        result.switchover = { from: step.from, to: target.member };
        continue;
      }
      o.say(`[${i + 1}/${steps.length}] ${upgradeTo === undefined ? 'restarting' : `switching to ${upgradeTo} and restarting`} ${o.service} on ${step.member}`);
      // The old leader, just handed over, is first waited on until it follows the new one: restarting it (or its
      // hasup) while it rewinds would cut the rewind short and start it over.
      if (result.switchover?.from === step.member) await waitBack(api, o, sg, step.member, null);
      if (kind === 'elasticsearch') {
        await api.setAllocation('primaries');
        allocationHeld = true;
      }
      if (upgradeTo === undefined) await waitBack(api, o, sg, step.member, await api.restart(step.member, sg));
      else await upgradeOne(api, o, sg, step.member, upgradeTo);
      if (kind === 'elasticsearch') {
        await api.setAllocation(null);
        allocationHeld = false;
        await waitGreen(api, o, members.length);
      }
      result.restarted.push(step.member);
      o.say(`[${i + 1}/${steps.length}] ${step.member} is back${kind === 'postgresql' ? ', streaming and caught up' : kind === 'elasticsearch' ? ', cluster green' : ''}`);
    } catch (err) {
      // Shard allocation stays held on a failure: the replicas are not copied about while the operator looks at the node.
      const held = allocationHeld ? '; shard allocation is still held to primaries (set cluster.routing.allocation.enable back to null once the node is back)' : '';
      throw where(i, `${(err as Error).message}${held}`);
    }
  }
  result.tookMs = Math.round(api.now() - started);
  o.say(`${what} done in ${(result.tookMs / 1000).toFixed(1)} s${result.switchover ? ` (leader now ${result.switchover.to})` : ''}`);
  return result;
}

/** Every member must have `to` and be able to run it before any is touched. */
async function checkEveryMember(api: RolloutApi, o: RolloutOptions, sg: string, to: string, members: RolloutMember[]): Promise<void> {
  const answers = await Promise.all(
    members.map(async (m) => {
      try {
        return { member: m.member, version: await api.checkUpgrade(m.member, sg, to) };
      } catch (err) {
        return { member: m.member, error: (err as Error).message };
      }
    }),
  );
  const refused = answers.filter((a) => 'error' in a);
  if (refused.length > 0) throw new RolloutError(`upgrade of ${sg} to ${to} refused: ${refused.map((a) => `${a.member}: ${a.error}`).join('; ')}; nothing was changed`);
  o.say(`every member has it: ${answers.map((a) => `${a.member} ${a.version}`).join(', ')}`);
}

/**
 * One member onto `to`, waited on like a restart. When it does not come
 * back healthy there, it is put back on its previous program (and waited
 * on again) before the failure is reported: the rollout never leaves a
 * member on a program that failed.
 */
async function upgradeOne(api: RolloutApi, o: RolloutOptions, sg: string, member: string, to: string): Promise<void> {
  let failure: Error;
  try {
    await waitBack(api, o, sg, member, await api.upgrade(member, sg, to));
    return;
  } catch (err) {
    failure = err as Error;
  }
  o.say(`${member} did not come back on ${to}: putting it back on its previous program`);
  try {
    await waitBack(api, o, sg, member, await api.revertUpgrade(member, sg));
  } catch (err) {
    throw new Error(`${failure.message}; putting it back on its previous program failed too: ${(err as Error).message}`);
  }
  throw new Error(`${failure.message}; ${member} is back on its previous program and healthy`);
}

/**
 * Until the member's new process (its `since` at least the restart's; any
 * process when `restartedSince` is null) is healthy (PostgreSQL, and hasup
 * on a PostgreSQL member: a follower streaming within maxLagBytes), seen so
 * GOOD_IN_A_ROW times in a row: the census is gossip, and a report from
 * before the restart must not pass for one after it.
 */
async function waitBack(api: RolloutApi, o: RolloutOptions, sg: string, member: string, restartedSince: number | null): Promise<void> {
  const deadline = api.now() + o.memberTimeoutMs;
  let good = 0;
  let last = 'not seen yet';
  while (api.now() < deadline) {
    await api.sleep(o.pollMs);
    const m = (await api.members(sg).catch(() => [])).find((x) => x.member === member);
    const kind = kindOf(o.service);
    const replicates = kind === 'postgresql' || (kind === 'hasup' && m?.runsPostgresql === true);
    const ok =
      !!m &&
      m.live &&
      m.healthy &&
      (restartedSince === null || (m.since !== null && m.since >= restartedSince)) &&
      (!replicates || m.leader || (m.streaming && m.lagBytes !== null && m.lagBytes <= o.maxLagBytes));
    if (m) last = !m.live ? 'member not alive' : !m.healthy ? 'not healthy' : !m.streaming && !m.leader ? 'not streaming' : `${m.lagBytes ?? '?'} bytes behind`;
    good = ok ? good + 1 : 0;
    if (good >= GOOD_IN_A_ROW) return;
  }
  throw new Error(`${member} did not come back within ${Math.round(o.memberTimeoutMs / 1000)} s (last seen: ${last})`);
}

async function waitGreen(api: RolloutApi, o: RolloutOptions, nodes: number): Promise<void> {
  const deadline = api.now() + o.memberTimeoutMs;
  let last = 'unknown';
  while (api.now() < deadline) {
    const h = await api.searchHealth().catch((err: unknown) => ({ status: `unreachable (${(err as Error).message})`, nodes: 0 }));
    last = `${h.status}, ${h.nodes}/${nodes} nodes`;
    if (h.status === 'green' && h.nodes >= nodes) return;
    await api.sleep(o.pollMs);
  }
  throw new Error(`Elasticsearch not back to green with ${nodes} nodes within ${Math.round(o.memberTimeoutMs / 1000)} s (last: ${last}); shard allocation is enabled again`);
}
