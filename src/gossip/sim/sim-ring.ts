import { WireCodec } from '../codec.js';
import { resolveGossipConfig, type GossipConfig } from '../config.js';
import { Keyring } from '../keyring.js';
import type { Random } from '../clock.js';
import type { MemberStateName } from '../member-state.js';
import { Memberlist, type MemberView } from '../memberlist.js';
import type { PeerAddress } from '../transport.js';
import { SimNetwork, type SimTrafficCounters, type SimTransport } from './sim-network.js';
import { childRandom, seededRandom } from './seeded-random.js';
import { VirtualClock } from './virtual-clock.js';

/**
 * A ring of simulated members on one virtual clock and one in-memory
 * network, each a real Memberlist with a real (encrypting) WireCodec. Used by
 * the simulation tests and bench/gossip.ts.
 */

export interface SimRingOptions {
  seed?: number;
  config?: GossipConfig;
  latencyMs?: number;
  jitterMs?: number;
  loss?: number;
}

export interface SimMember {
  index: number;
  id: string;
  addr: PeerAddress;
  ml: Memberlist;
  transport: SimTransport;
  counters: SimTrafficCounters;
  /** False once killed or left. */
  running: boolean;
}

export type MemberEventListener = (observer: SimMember, member: MemberView, previous: MemberStateName | undefined) => void;

export class SimRing {
  readonly clock = new VirtualClock();
  readonly net: SimNetwork;
  readonly config: GossipConfig;
  readonly members: SimMember[] = [];
  private readonly keyring = new Keyring(Keyring.generateKey());
  private readonly seed: number;
  private readonly random: Random;
  private readonly listeners: MemberEventListener[] = [];
  /** Processes started so far; each gets its own random stream. */
  private boots = 0;
  private forwarding = false;

  constructor(opts: SimRingOptions = {}) {
    this.seed = opts.seed ?? 1;
    this.random = seededRandom(this.seed);
    this.config = opts.config ?? resolveGossipConfig('lan');
    this.net = new SimNetwork({
      clock: this.clock,
      random: seededRandom(this.seed ^ 0x5bd1e995),
      latencyMs: opts.latencyMs ?? 1,
      jitterMs: opts.jitterMs ?? 2,
      loss: opts.loss ?? 0,
    });
  }

  /** A codec holding this ring's key (to craft packets in tests). */
  codec(): WireCodec {
    return new WireCodec(this.keyring);
  }

  /** Calls `listener` for every member event of every member (also ones added later). */
  onMemberEvent(listener: MemberEventListener): void {
    if (!this.forwarding) {
      this.forwarding = true;
      for (const m of this.members) this.forwardEvents(m);
    }
    this.listeners.push(listener);
  }

  /** Removes a listener added with onMemberEvent. */
  offMemberEvent(listener: MemberEventListener): void {
    const at = this.listeners.indexOf(listener);
    if (at >= 0) this.listeners.splice(at, 1);
  }

  private forwardEvents(member: SimMember): void {
    // Members without listeners skip building event views (a large share of a 1000-member join).
    member.ml.on('member', (view, previous) => {
      for (const l of this.listeners) l(member, view, previous);
    });
  }

  /** Creates (and starts) `count` new members. */
  add(count: number): SimMember[] {
    const out: SimMember[] = [];
    for (let i = 0; i < count; i++) {
      const index = this.members.length;
      const id = Array.from({ length: 16 }, () => Math.floor(this.random() * 16).toString(16)).join('');
      const addr = { addr: `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}`, port: 7946 };
      const member = this.boot(index, id, addr);
      this.members.push(member);
      out.push(member);
    }
    return out;
  }

  /** Every member joins through `seeds` (indexes), at random moments within `spreadMs`. */
  joinAll(seeds: number[] = [0], spreadMs = 0, who: SimMember[] = this.members): void {
    const seedAddrs = seeds.map((i) => this.members[i]!.addr);
    for (const m of who) {
      if (seeds.includes(m.index)) continue;
      this.clock.setTimeout(() => void m.ml.join(seedAddrs), this.random() * spreadMs);
    }
  }

  /** kill -9: the process is gone without a word. */
  kill(m: SimMember): void {
    this.net.kill(m.addr);
    m.running = false;
    void m.ml.stop();
    void m.transport.close();
  }

  /** Graceful leave; resolves when the member has stopped. */
  async leave(m: SimMember, timeoutMs?: number): Promise<void> {
    await m.ml.leave(timeoutMs);
    m.running = false;
    await m.transport.close();
  }

  /** A new process with the same id and address (its incarnation starts from 0 again). */
  restart(m: SimMember): SimMember {
    return this.restartWithWallOffset(m, 0);
  }

  /** As restart, on a host whose wall clock is `wallOffsetMs` off (clock-drift tests). */
  restartWithWallOffset(m: SimMember, wallOffsetMs: number): SimMember {
    if (m.running) this.kill(m);
    this.net.revive(m.addr);
    const fresh = this.boot(m.index, m.id, m.addr, wallOffsetMs);
    this.members[m.index] = fresh;
    return fresh;
  }

  /**
   * Runs the clock until `promise` settles (a join, a leave), at most
   * `limitMs` of virtual time, and returns its result.
   */
  async settle<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
    let settled = false;
    const observed = promise.finally(() => (settled = true));
    observed.catch(() => {});
    if (!(await this.clock.runUntil(() => settled, limitMs, 1))) throw new Error(`still pending after ${limitMs} ms of virtual time`);
    return promise;
  }

  running(): SimMember[] {
    return this.members.filter((m) => m.running);
  }

  /** Whether every running member sees exactly the running members as alive and nothing else live. */
  converged(): boolean {
    const running = this.running();
    const n = running.length;
    return running.every((m) => m.ml.count('alive') === n && m.ml.count('suspect') === 0);
  }

  /** Whether every running member other than `subjectId` itself sees it in `state`. */
  allSee(subjectId: string, state: MemberStateName): boolean {
    return this.running().every((m) => m.id === subjectId || m.ml.member(subjectId)?.state === state);
  }

  /** Bytes sent by all members so far. */
  bytesSent(): number {
    let total = 0;
    for (const m of this.members) total += m.counters.bytesOut;
    return total;
  }

  /** Largest datagram any member sent. */
  maxPacketBytes(): number {
    let max = 0;
    for (const m of this.members) max = Math.max(max, m.counters.maxPacketBytes);
    return max;
  }

  private boot(index: number, id: string, addr: PeerAddress, wallOffsetMs = 0): SimMember {
    const transport = this.net.transport(addr);
    const ml = new Memberlist({
      self: { id, addr: addr.addr, port: addr.port },
      config: this.config,
      transport,
      codec: new WireCodec(this.keyring),
      clock: wallOffsetMs === 0 ? this.clock : this.clock.withWallOffset(wallOffsetMs),
      random: childRandom(this.seed, this.boots++),
    });
    const member: SimMember = { index, id, addr, ml, transport, counters: transport.counters, running: true };
    if (this.forwarding) this.forwardEvents(member);
    ml.start();
    return member;
  }
}
