/**
 * The fault campaign (in the spirit of Jepsen's nemesis) on a 3-node
 * namespace cluster behind HAProxy: faults drawn at random with pauses
 * between them, a write checker writing unique ids through HAProxy and
 * straight at every member's PostgreSQL the whole time, and after each fault
 * a wait until the cluster healed by itself (every member back, streaming,
 * one leader). Used by bench/nemesis.ts (long runs) and
 * test/cluster/nemesis.test.ts (a few faults).
 *
 * What it measures, per fault and overall:
 *   lost_acked      acknowledged ids missing from the final leader's table
 *   overlap         acknowledgements by one server after another server
 *                   acknowledged its first write as the new leader, on any path
 *   unavailable_ms  longest stretch with no write acknowledged through HAProxy
 *                   on any of its connections (HAPROXY_CONNECTIONS of them, as
 *                   an application's pool: one connection stalled in TCP
 *                   backoff on a lossy link is not a cluster without a leader)
 *   false failover  the leader moved although the fault was not on it
 *   fences          self-fencing of leaders (ha_fenced) and fence-process actions, by cause
 *   freezes         leaders whose renewals were overdue, their PostgreSQL frozen
 *                   by the fence (ha_suspended): a pause in commits, not a fence,
 *                   unless it ends in one (then it counts there too)
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Ack, WriteChecker, WriteTarget } from './write-checker.js';
import { hasupIn, type HaCluster } from './ha-cluster.js';

/** Connections writing through HAProxy side by side. */
export const HAPROXY_CONNECTIONS = 3;

/** What the campaign's checker writes through: HAProxy (a small pool) and every member directly. */
export function campaignTargets(ha: HaCluster): WriteTarget[] {
  return [{ ...ha.haproxyTarget, connections: HAPROXY_CONNECTIONS }, ...[1, 2, 3].map((i) => ha.nodeTarget(i))];
}

export type FaultKind =
  | 'kill-node'
  | 'kill-hasup'
  | 'stop-hasup'
  | 'stop-node'
  | 'isolate-leader'
  | 'isolate-follower'
  | 'loss'
  | 'kill-etcd'
  | 'switchover';

export const FAULT_KINDS: readonly FaultKind[] = ['kill-node', 'kill-hasup', 'stop-hasup', 'stop-node', 'isolate-leader', 'isolate-follower', 'loss', 'kill-etcd', 'switchover'];

/** Faults whose victim is the leader itself (a leader change is expected); the others must not move it. */
const ON_LEADER: ReadonlySet<FaultKind> = new Set(['kill-node', 'kill-hasup', 'stop-hasup', 'stop-node', 'isolate-leader', 'switchover']);

export interface FaultResult {
  kind: FaultKind;
  victim: number;
  leader_before: number;
  leader_after: number;
  started: number;
  healed_ms: number;
  unavailable_ms: number;
  lost_acked: number;
  overlap_acks: number;
  overlap_ms: number;
  false_failover: boolean;
  /** Fences (self, fence process, peers over SQL) from the fault until the cluster healed. */
  fences: number;
  /** Leaders frozen by their fence for overdue renewals (thawed, or fenced: see fences). */
  freezes: number;
  detail: string;
}

export interface NemesisOptions {
  ha: HaCluster;
  checker: WriteChecker;
  /** Random source in [0, 1). */
  random: () => number;
  /** How long a pause or a partition lasts: [min, max] ms. */
  holdMs: [number, number];
  /** How long the packet loss phase lasts. */
  lossMs: number;
  /** Quiet time between faults. */
  pauseMs: number;
  progress: (msg: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Nemesis {
  readonly results: FaultResult[] = [];

  constructor(private readonly o: NemesisOptions) {}

  private pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.o.random() * xs.length)]!;
  }

  private hold(): number {
    const [lo, hi] = this.o.holdMs;
    return Math.round(lo + this.o.random() * (hi - lo));
  }

  /** Runs one fault of `kind`, waits until the cluster healed, and records what the writers saw. */
  async run(kind: FaultKind): Promise<FaultResult> {
    const { ha } = this.o;
    const leader = await ha.whole(180_000);
    const followers = [1, 2, 3].filter((i) => i !== leader);
    const victim = kind === 'isolate-follower' ? this.pick(followers) : kind === 'kill-etcd' ? this.pick([1, 2, 3]) : leader;
    const started = Date.now();
    this.o.progress(`${kind} on node ${victim} (leader node ${leader})`);
    const detail = await this.inject(kind, victim, leader);
    const after = await ha.whole(180_000);
    const healedMs = Date.now() - started;
    await sleep(this.o.pauseMs);
    const windowAcks = this.o.checker.acks.filter((a) => a.sentAt >= started - 500);
    const overlap = overlapOf(windowAcks, ha.address(leader), ha.address(after));
    const result: FaultResult = {
      kind,
      victim,
      leader_before: leader,
      leader_after: after,
      started,
      healed_ms: healedMs,
      unavailable_ms: this.o.checker.longestGap('haproxy', started, started + healedMs),
      lost_acked: 0,
      overlap_acks: overlap.acks,
      overlap_ms: overlap.ms,
      false_failover: !ON_LEADER.has(kind) && after !== leader,
      fences: Object.values(this.fences(started, started + healedMs)).reduce((a, b) => a + b, 0),
      freezes: this.count('ha_suspended', started, started + healedMs),
      detail,
    };
    this.results.push(result);
    this.o.progress(`  healed in ${healedMs} ms, leader node ${after}; unavailable ${result.unavailable_ms} ms, overlap ${overlap.acks} acks / ${overlap.ms} ms, ${result.fences} fences, ${result.freezes} freezes${result.false_failover ? ', FALSE FAILOVER' : ''}`);
    return result;
  }

  private async inject(kind: FaultKind, victim: number, leader: number): Promise<string> {
    const { ha } = this.o;
    const node = ha.cluster.node(victim);
    switch (kind) {
      case 'kill-node':
        await ha.killNode(victim);
        await sleep(2000);
        ha.startNode(victim);
        return 'kill -9 of every process of the node, then hasup started again';
      case 'kill-hasup': {
        const m = ha.member(victim);
        process.kill(m.pid, 'SIGKILL');
        await m.exited;
        await sleep(1000);
        ha.startNode(victim);
        return 'kill -9 of hasup alone (PostgreSQL left running), then hasup started again (adopts its children)';
      }
      case 'stop-hasup': {
        const ms = this.hold();
        const pid = ha.member(victim).pid;
        process.kill(pid, 'SIGSTOP');
        await sleep(ms);
        process.kill(pid, 'SIGCONT');
        return `SIGSTOP of hasup for ${ms} ms`;
      }
      case 'stop-node': {
        const ms = this.hold();
        const pids = node.pids();
        for (const pid of pids) signalQuietly(pid, 'SIGSTOP');
        await sleep(ms);
        for (const pid of pids) signalQuietly(pid, 'SIGCONT');
        return `SIGSTOP of every process of the node (${pids.length}) for ${ms} ms`;
      }
      case 'isolate-leader':
      case 'isolate-follower': {
        const ms = this.hold();
        await ha.cluster.isolate(victim);
        try {
          await sleep(ms);
        } finally {
          await ha.cluster.heal(victim);
        }
        return `node cut off (nftables) for ${ms} ms`;
      }
      case 'loss':
        for (const i of [1, 2, 3]) await ha.cluster.loss(i, 10);
        try {
          await sleep(this.o.lossMs);
        } finally {
          await ha.cluster.clearFaults();
        }
        return `10% packet loss on every node for ${this.o.lossMs} ms`;
      case 'kill-etcd': {
        const pid = Number(readFileSync(join(node.stateDir, 'svc', 'etcd', 'run', 'hasup-child.pid'), 'utf8').split('\n')[0]);
        signalQuietly(pid, 'SIGKILL');
        return `kill -9 of node ${victim}'s etcd member (pid ${pid})${victim === leader ? ', on the leader\'s node' : ''}`;
      }
      case 'switchover': {
        const from = ha.cluster.node(this.pick([1, 2, 3].filter((i) => i !== leader)));
        const r = await hasupIn(from, ['switchover', '--state-dir', from.stateDir]);
        if (r.code !== 0) throw new Error(`switchover failed: ${r.stderr}`);
        return r.stdout.trim();
      }
    }
  }

  /** After the campaign: lost acknowledged writes, attributed to the fault during which they were sent. */
  async countLost(finalLeader: number): Promise<number> {
    const missing = new Set(await this.o.checker.missing(this.o.ha.nodeTarget(finalLeader)));
    const byId = new Map(this.o.checker.acks.map((a) => [a.id, a]));
    for (const id of missing) {
      const a = byId.get(id)!;
      const r = [...this.results].reverse().find((x) => x.started - 500 <= a.sentAt);
      if (r) r.lost_acked++;
    }
    return missing.size;
  }

  /** How many `event` lines every member logged between `since` and `until`. */
  count(event: string, since: number, until = Infinity): number {
    let n = 0;
    for (const node of this.o.ha.cluster.nodes) for (const m of node.members) for (const e of m.events) if (e.event === event && e.time >= since && e.time <= until) n++;
    return n;
  }

  /** Fences between `since` and `until`, by cause: ha_fenced reasons (first words), the fence process's actions, SQL fences of rogues. */
  fences(since: number, until = Infinity): Record<string, number> {
    const out: Record<string, number> = {};
    for (const n of this.o.ha.cluster.nodes) {
      for (const m of n.members) {
        for (const e of m.events) {
          if (e.time < since || e.time > until) continue;
          if (e.event === 'ha_fenced') bump(out, `self: ${fenceCause(String(e.reason ?? ''))}`);
          if (e.event === 'fence_acted') bump(out, `fence process: ${String(e.cause ?? '?')}`);
          if (e.event === 'ha_rogue_fenced') bump(out, 'peer: rogue primary fenced over SQL');
        }
      }
    }
    return out;
  }
}

function bump(o: Record<string, number>, k: string): void {
  o[k] = (o[k] ?? 0) + 1;
}

/** "no lease renewal confirmed for 2013 ms" -> "no lease renewal confirmed". */
function fenceCause(reason: string): string {
  return reason.replace(/\s*(for|after)?\s*\d+\s*ms\b.*$/, '').replace(/\d+/g, 'N').trim() || 'unknown';
}

/**
 * Overlap across one leader change: acknowledgements by the old leader's
 * server after the new leader's server acknowledged its first write (on any
 * path), and how long after that first write the last of them came.
 */
export function overlapOf(acks: Ack[], oldServer: string, newServer: string): { acks: number; ms: number } {
  if (oldServer === newServer) return { acks: 0, ms: 0 };
  const firstNew = Math.min(...acks.filter((a) => a.server === newServer).map((a) => a.ackedAt));
  if (!Number.isFinite(firstNew)) return { acks: 0, ms: 0 };
  const late = acks.filter((a) => a.server === oldServer && a.ackedAt > firstNew);
  return { acks: late.length, ms: late.length ? Math.max(...late.map((a) => a.ackedAt)) - firstNew : 0 };
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}
