import { EventEmitter } from 'node:events';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { realClock, type Clock, type Random, type Timer } from './clock.js';
import { type DropCounters, type PacketInit, type Rumor, type WireCodec } from './codec.js';
import type { GossipConfig } from './config.js';
import { ENVELOPE_OVERHEAD } from './envelope.js';
import { MemberTable, isLive, judgeClaim, judgeClaimAboutSelf, stateFromWire, type MemberRecord, type MemberStateName } from './member-state.js';
import { RumorStore, normalizeRumor, type StoredRumor } from './rumor-store.js';
import { Suspicion, expectedConfirmations, suspicionTimeouts } from './suspicion.js';
import { MAX_DATAGRAM_BYTES, MAX_STREAM_FRAME_BYTES, type PeerAddress, type Transport } from './transport.js';
import {
  claimFromWire,
  memberRumorEntry,
  memberRumorSize,
  memberRumorToWire,
  memberToWire,
  packetSize,
  rumorSize,
  type MemberClaim,
  type MemberRumorEntry,
  type MemberRumorInit,
} from './wire-member.js';
import { hasup } from './wire-types.js';

/**
 * The membership engine: SWIM failure detection with Lifeguard's refinements,
 * dissemination of member and store rumors by piggybacking and gossip rounds,
 * and push-pull full-state exchange for joins, anti-entropy and healing after
 * partitions. It sees the world only through a Clock, a Random, a Transport
 * and a WireCodec, so the same code runs on UDP sockets and in a simulated
 * network on virtual time.
 */

export interface MemberView extends MemberClaim {
  /** clock.now() of the last state change. */
  since: number;
  /** Smoothed estimate of (their wall clock - ours), from acks. */
  clockOffsetMs?: number;
  /** Smoothed round-trip time of direct probes. */
  rttMs?: number;
}

export interface GossipLog {
  debug(o: object, msg: string): void;
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
}

export interface MemberlistOptions {
  self: { id: string; addr: string; port: number; meta?: Uint8Array };
  config: GossipConfig;
  transport: Transport;
  codec: WireCodec;
  clock?: Clock;
  random?: Random;
  log?: GossipLog;
}

export interface MemberlistStats {
  packetsIn: number;
  packetsOut: number;
  /** UDP and TCP bytes received (sealed). */
  bytesIn: number;
  /** UDP and TCP bytes sent (sealed), requests and answers. */
  bytesOut: number;
  dropped: DropCounters;
  /** Lifeguard local health score (0 = healthy). */
  awareness: number;
  members: Record<MemberStateName, number>;
  /** Rumors waiting to be sent. */
  queued: number;
  pushPullsOut: number;
  pushPullsIn: number;
  pushPullFailures: number;
  /** Pings meant for another member id (a restarted member at a reused address). */
  misdirectedPings: number;
  /** Exceptions caught in handlers (a bug, never a peer's doing). */
  handlerErrors: number;
  /** Probes sent; probes that needed ping-req; probes that failed altogether. */
  probes: number;
  indirectProbes: number;
  failedProbes: number;
  /** Times we refuted a claim that we were suspect or dead. */
  refutations: number;
}

export type MemberlistEvents = {
  member: [member: MemberView, previous: MemberStateName | undefined];
  rumor: [rumor: StoredRumor];
  removed: [member: MemberView];
};

type Queued = { field: 'members'; entry: MemberRumorEntry } | { field: 'rumors'; msg: StoredRumor };

interface AckHandler {
  onAck(ack: hasup.gossip.IAck, from: PeerAddress): void;
  onNack(): void;
  timers: Timer[];
}

interface Probe {
  seq: number;
  targetId: string;
  target: PeerAddress;
  incarnation: number;
  sentAt: number;
  sentWall: number;
  acked: boolean;
  /** A second direct ping went out: an ack's round trip is no longer known. */
  retried: boolean;
  nacks: number;
  expectedNacks: number;
  /** Told the outcome (used by the last-chance probe of a suspicion). */
  onDone?: ((acked: boolean) => void) | undefined;
}

const MAX_PLAINTEXT = MAX_DATAGRAM_BYTES - ENVELOPE_OVERHEAD;
/** Rings up to this size push-pull at the configured interval; bigger ones less often (as memberlist). */
const PUSH_PULL_SCALE_THRESHOLD = 32;
/** A joined member repeats its push-pull after 1-2 times this (see scheduleJoinCatchUp). */
const JOIN_CATCH_UP_MS = 1000;
/** Largest meta a member may carry (the codec refuses members with more). */
export const MAX_MEMBER_META_BYTES = 512;
/** At most this many corrections of stale accusations go back in one packet. */
const MAX_CORRECTIONS = 8;
/** Weight of a new sample in the smoothed RTT and clock offset. */
const SMOOTHING = 0.2;
const noopLog: GossipLog = { debug() {}, info() {}, warn() {} };
const defaultRandom: Random = () => Math.random();

export function pushPullInterval(intervalMs: number, liveMembers: number): number {
  if (liveMembers <= PUSH_PULL_SCALE_THRESHOLD) return intervalMs;
  const multiplier = Math.ceil(Math.log2(liveMembers) - Math.log2(PUSH_PULL_SCALE_THRESHOLD)) + 1;
  return multiplier * intervalMs;
}

export class Memberlist extends EventEmitter<MemberlistEvents> {
  private readonly cfg: GossipConfig;
  private readonly transport: Transport;
  private readonly codec: WireCodec;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly log: GossipLog;

  private readonly table = new MemberTable();
  private readonly me: MemberRecord;
  private readonly store = new RumorStore();
  private readonly queue: BroadcastQueue<Queued>;
  private readonly awareness: Awareness;
  private readonly suspicions = new Map<string, Suspicion>();
  private readonly ackHandlers = new Map<string, AckHandler>();

  private started = false;
  private stopped = false;
  private leaving = false;
  private seq: number;
  private probeOrder: string[] = [];
  private probeIndex = 0;
  private lastGossipAt = -Infinity;
  private gossipTimer: Timer | undefined;
  private readonly timers = new Map<string, Timer>();

  private readonly counters = {
    packetsIn: 0,
    packetsOut: 0,
    bytesIn: 0,
    bytesOut: 0,
    pushPullsOut: 0,
    pushPullsIn: 0,
    pushPullFailures: 0,
    misdirectedPings: 0,
    handlerErrors: 0,
    probes: 0,
    indirectProbes: 0,
    failedProbes: 0,
    refutations: 0,
  };

  constructor(opts: MemberlistOptions) {
    super();
    this.cfg = { ...opts.config };
    this.transport = opts.transport;
    this.codec = opts.codec;
    this.clock = opts.clock ?? realClock;
    this.random = opts.random ?? defaultRandom;
    this.log = opts.log ?? noopLog;
    this.queue = new BroadcastQueue<Queued>(this.cfg.retransmitMult);
    this.awareness = new Awareness(this.cfg.awarenessMaxMultiplier);
    this.seq = Math.floor(this.random() * 0xffff);
    checkMeta(opts.self.meta);
    this.me = {
      id: opts.self.id,
      addr: opts.self.addr,
      port: opts.self.port,
      incarnation: 0,
      state: 'alive',
      meta: opts.self.meta ?? new Uint8Array(0),
      since: this.clock.now(),
    };
    this.table.add(this.me);
    this.store.onChange((r) => this.onStoreChange(r));
    this.transport.onPacket((data, from) => this.receivePacket(data, from));
    this.transport.onRequest((data, from) => this.receiveRequest(data, from));
  }

  // ---------------------------------------------------------------- public API

  /** Starts probing, gossip, push-pull, reconnect and reaping timers. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    // Our own existence is the first rumor we spread.
    this.enqueueMember(this.me, this.me.id);
    // Random phases so members that start together do not act in lockstep.
    this.schedule('probe', this.random() * this.cfg.probeIntervalMs, () => this.probeRound());
    this.schedule('pushPull', this.random() * this.pushPullIntervalNow(), () => this.pushPullRound());
    this.schedule('reconnect', this.random() * this.cfg.reconnectIntervalMs, () => this.reconnectRound());
    this.schedule('reap', this.reapIntervalMs(), () => this.reapRound());
  }

  /**
   * Full-state exchange with each peer, in parallel. Returns how many
   * answered; unreachable peers are not an error.
   */
  async join(peers: PeerAddress[]): Promise<number> {
    if (this.stopped) return 0;
    const others = peers.filter((p) => !(p.addr === this.me.addr && p.port === this.me.port));
    const answers = await Promise.all(others.map((p) => this.pushPull(p, true).catch(() => false)));
    const answered = answers.filter(Boolean).length;
    if (answered > 0) this.scheduleJoinCatchUp();
    return answered;
  }

  /**
   * The state a join brings in predates members joining at the same moment,
   * and those are learned only by gossip, which reaches a member only once
   * others know of it. One more exchange a moment later, once the joins
   * around ours have spread, closes that gap instead of leaving it to the
   * periodic push-pull.
   */
  private scheduleJoinCatchUp(): void {
    const delay = JOIN_CATCH_UP_MS * (1 + this.random());
    this.schedule('joinCatchUp', delay, () => {
      const [peer] = this.table.sample(1, this.random, (m) => m.state === 'alive' && m !== this.me);
      if (peer && !this.leaving) void this.pushPull({ addr: peer.addr, port: peer.port }, false);
    });
  }

  /**
   * Graceful leave: tells the ring we are LEFT, waits until that rumor has
   * been sent its full retransmit count (or `timeoutMs`), then stops.
   */
  async leave(timeoutMs = this.cfg.leaveTimeoutMs): Promise<void> {
    if (this.stopped) return;
    if (!this.leaving) {
      this.leaving = true;
      const previous = this.me.state;
      this.table.setState(this.me, 'left', this.me.incarnation, this.clock.now());
      this.emitMember(this.me, previous);
      this.log.info({ event: 'leaving', incarnation: this.me.incarnation }, 'leaving the ring');
      if (this.table.liveCount > 0) {
        await new Promise<void>((resolve) => {
          const timer = this.clock.setTimeout(resolve, timeoutMs);
          this.enqueueMember(this.me, this.me.id, () => {
            timer.cancel();
            resolve();
          });
        });
      }
    }
    await this.stop();
  }

  /**
   * The operator's permanent removal of a dead or left member: gossiped as
   * DEPARTED, which nothing can undo (the member cannot come back under this id).
   */
  depart(memberId: string): void {
    if (memberId === this.me.id) throw new Error('a member cannot depart itself; use leave()');
    const record = this.table.get(memberId);
    if (!record) throw new Error(`unknown member ${memberId}`);
    if (record.state === 'departed') return;
    if (isLive(record.state)) {
      throw new Error(`member ${memberId} is ${record.state}; only a dead or left member can be departed`);
    }
    this.log.warn({ event: 'depart', member: memberId }, `member ${memberId} departed by the operator`);
    this.applyClaim({ ...record, state: 'departed' }, this.me.id);
  }

  /** Stops every timer (the transport stays open; its owner closes it). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers.values()) t.cancel();
    this.timers.clear();
    this.gossipTimer?.cancel();
    this.gossipTimer = undefined;
    for (const h of this.ackHandlers.values()) for (const t of h.timers) t.cancel();
    this.ackHandlers.clear();
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
    this.queue.clear();
  }

  members(): MemberView[] {
    return [...this.table.values()].map(view);
  }

  self(): MemberView {
    return view(this.me);
  }

  member(id: string): MemberView | undefined {
    const r = this.table.get(id);
    return r && view(r);
  }

  /** Members in `state`, ourselves included (O(1)). */
  count(state: MemberStateName): number {
    return this.table.count(state);
  }

  /** Replaces our meta; a new incarnation carries it to everyone. */
  updateMeta(meta: Uint8Array): void {
    checkMeta(meta);
    if (this.stopped || this.leaving || this.me.state === 'departed') return;
    this.me.meta = meta;
    this.me.incarnation++;
    this.enqueueMember(this.me, this.me.id);
    this.emitMember(this.me, this.me.state);
  }

  /**
   * Stores and gossips a rumor originating here. Returns false if the store
   * already holds this version or a newer one.
   */
  publish(r: { kind: string; key: string; version: number; payload: Uint8Array }): boolean {
    if (!r.kind || r.kind.length > 32) throw new Error(`rumor kind must be 1..32 characters, got "${r.kind}"`);
    if (!r.key || r.key.length > 256) throw new Error(`rumor key must be 1..256 characters`);
    if (!Number.isSafeInteger(r.version) || r.version < 0) throw new Error(`rumor version must be a non-negative integer, got ${r.version}`);
    if (this.stopped) return false;
    return this.store.apply({ kind: r.kind, key: r.key, version: r.version, payload: r.payload, originId: this.me.id });
  }

  rumors(kind?: string): StoredRumor[] {
    return this.store.all(kind);
  }

  stats(): MemberlistStats {
    const c = this.counters;
    return {
      packetsIn: c.packetsIn,
      packetsOut: c.packetsOut,
      bytesIn: c.bytesIn,
      bytesOut: c.bytesOut,
      dropped: { ...this.codec.dropped },
      awareness: this.awareness.score,
      members: {
        alive: this.table.count('alive'),
        suspect: this.table.count('suspect'),
        dead: this.table.count('dead'),
        left: this.table.count('left'),
        departed: this.table.count('departed'),
      },
      queued: this.queue.size,
      pushPullsOut: c.pushPullsOut,
      pushPullsIn: c.pushPullsIn,
      pushPullFailures: c.pushPullFailures,
      misdirectedPings: c.misdirectedPings,
      handlerErrors: c.handlerErrors,
      probes: c.probes,
      indirectProbes: c.indirectProbes,
      failedProbes: c.failedProbes,
      refutations: c.refutations,
    };
  }

  // ---------------------------------------------------------------- timers

  private schedule(name: string, delayMs: number, fn: () => void): void {
    if (this.stopped) return;
    this.timers.set(
      name,
      this.clock.setTimeout(() => {
        this.timers.delete(name);
        if (!this.stopped) this.guard(name, fn);
      }, delayMs),
    );
  }

  private guard(what: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.counters.handlerErrors++;
      this.log.warn({ err, event: 'handler_error', in: what }, `gossip ${what} failed`);
    }
  }

  // ---------------------------------------------------------------- probing (SWIM + Lifeguard)

  private probeRound(): void {
    const intervalMs = this.awareness.scale(this.cfg.probeIntervalMs);
    this.schedule('probe', intervalMs, () => this.probeRound());
    if (this.leaving || this.me.state === 'departed') return;
    const target = this.nextProbeTarget();
    if (target) this.probe(target, intervalMs);
  }

  /**
   * Round-robin over a shuffled list, as memberlist: every member is probed
   * once per round, and a new member is inserted at a random place in the
   * rest of the current round.
   */
  private nextProbeTarget(): MemberRecord | undefined {
    for (let pass = 0; pass < 2; pass++) {
      while (this.probeIndex < this.probeOrder.length) {
        const r = this.table.get(this.probeOrder[this.probeIndex++]!);
        if (r && r !== this.me && isLive(r.state)) return r;
      }
      this.probeOrder = [];
      for (const r of this.table.values()) if (r !== this.me && isLive(r.state)) this.probeOrder.push(r.id);
      shuffle(this.probeOrder, this.random);
      this.probeIndex = 0;
      if (this.probeOrder.length === 0) return undefined;
    }
    return undefined;
  }

  private addToProbeOrder(id: string): void {
    this.probeOrder.push(id);
    const last = this.probeOrder.length - 1;
    const span = last - this.probeIndex + 1;
    if (span <= 1) return;
    const at = this.probeIndex + Math.floor(this.random() * span);
    [this.probeOrder[at], this.probeOrder[last]] = [this.probeOrder[last]!, this.probeOrder[at]!];
  }

  private probe(target: MemberRecord, intervalMs: number, onDone?: (acked: boolean) => void): void {
    const probe: Probe = {
      onDone,
      seq: this.nextSeq(),
      targetId: target.id,
      target: { addr: target.addr, port: target.port },
      incarnation: target.incarnation,
      sentAt: this.clock.now(),
      sentWall: this.clock.wallNow(),
      acked: false,
      retried: false,
      nacks: 0,
      expectedNacks: 0,
    };
    const key = String(probe.seq);
    this.counters.probes++;
    const handler: AckHandler = {
      onAck: (ack, from) => {
        if (probe.acked) return;
        probe.acked = true;
        this.awareness.applyDelta(-1);
        const direct = from.addr === probe.target.addr && from.port === probe.target.port;
        if (direct && !probe.retried) this.recordTiming(probe, Number(ack.clockMs ?? 0));
        this.dropAckHandler(key);
        probe.onDone?.(true);
      },
      onNack: () => {
        probe.nacks++;
      },
      timers: [],
    };
    this.ackHandlers.set(key, handler);
    // Lifeguard buddy system: a suspect hears about it first thing, so it can refute at once.
    const leading = target.state === 'suspect' ? [memberRumorToWire(memberRumorEntry(target, this.me.id))] : [];
    this.send(probe.target, { ping: { seq: probe.seq, targetId: target.id } }, leading);
    handler.timers.push(
      this.clock.setTimeout(() => this.guard('indirect probe', () => this.indirectProbe(probe)), this.awareness.scale(this.cfg.probeTimeoutMs)),
      this.clock.setTimeout(() => this.guard('probe deadline', () => this.probeDeadline(probe)), intervalMs),
    );
  }

  /**
   * The direct ack did not come in time: ask k others to try (SWIM ping-req),
   * wanting nacks (Lifeguard), and ping once more directly ourselves (a
   * single lost datagram should not be enough to need the others; memberlist
   * uses a TCP ping for the same purpose).
   */
  private indirectProbe(probe: Probe): void {
    if (probe.acked || this.stopped) return;
    const target = this.table.get(probe.targetId);
    if (!target || !isLive(target.state)) {
      // Someone else settled its fate meanwhile; this probe tells us nothing about our own health.
      this.dropAckHandler(String(probe.seq));
      return;
    }
    const leading = target.state === 'suspect' ? [memberRumorToWire(memberRumorEntry(target, this.me.id))] : [];
    probe.retried = true;
    this.send(probe.target, { ping: { seq: probe.seq, targetId: probe.targetId } }, leading);
    const helpers = this.table.sample(this.cfg.indirectChecks, this.random, (m) => m.state === 'alive' && m !== this.me && m !== target);
    probe.expectedNacks = helpers.length;
    this.counters.indirectProbes++;
    const pingReq = {
      seq: probe.seq,
      target: memberToWire(target, false),
      fromId: this.me.id,
      fromAddr: this.me.addr,
      fromPort: this.me.port,
      wantNack: true,
    };
    for (const h of helpers) this.send(h, { pingReq });
  }

  private probeDeadline(probe: Probe): void {
    this.dropAckHandler(String(probe.seq));
    if (probe.acked || this.stopped) return;
    this.counters.failedProbes++;
    // Lifeguard: missing nacks mean our own network is the likely problem.
    if (probe.expectedNacks > 0) this.awareness.applyDelta(probe.expectedNacks - probe.nacks);
    else this.awareness.applyDelta(1);
    const target = this.table.get(probe.targetId);
    if (target && isLive(target.state)) {
      this.log.debug({ event: 'probe_failed', member: probe.targetId, nacks: probe.nacks }, `probe of ${probe.targetId} failed`);
      this.applyClaim({ ...target, incarnation: probe.incarnation, state: 'suspect' }, this.me.id);
    }
    probe.onDone?.(false);
  }

  private dropAckHandler(key: string): void {
    const h = this.ackHandlers.get(key);
    if (!h) return;
    for (const t of h.timers) t.cancel();
    this.ackHandlers.delete(key);
  }

  private recordTiming(probe: Probe, remoteWallMs: number): void {
    const r = this.table.get(probe.targetId);
    if (!r) return;
    const rtt = this.clock.now() - probe.sentAt;
    r.rttMs = r.rttMs === undefined ? rtt : r.rttMs + SMOOTHING * (rtt - r.rttMs);
    if (remoteWallMs > 0) {
      // Their clock when they answered, against ours half a round trip after we asked.
      const sample = remoteWallMs - (probe.sentWall + rtt / 2);
      r.clockOffsetMs = r.clockOffsetMs === undefined ? sample : r.clockOffsetMs + SMOOTHING * (sample - r.clockOffsetMs);
    }
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0;
    if (this.seq === 0) this.seq = 1;
    return this.seq;
  }

  // ---------------------------------------------------------------- receiving

  private receivePacket(data: Uint8Array, from: PeerAddress): void {
    if (this.stopped) return;
    this.counters.packetsIn++;
    this.counters.bytesIn += data.length;
    const decoded = this.codec.decode(data, MAX_DATAGRAM_BYTES);
    if (!decoded.ok) return;
    const p = decoded.packet;
    this.guard('packet', () => {
      // Piggybacked rumors first: a suspect refutes before it acks, so the ack carries the refutation.
      let corrections: MemberRumorInit[] | undefined;
      for (const r of p.members) {
        const m = r.member;
        if (!m || this.alreadyKnown(m)) continue;
        const newer = this.correctionFor(m);
        if (newer) {
          corrections ??= [];
          if (corrections.length < MAX_CORRECTIONS) corrections.push(memberRumorToWire(memberRumorEntry(newer, '')));
          continue;
        }
        this.applyClaim(claimFromWire(m), r.fromId ?? '');
      }
      for (const r of p.rumors) this.store.apply(r);
      if (p.ping) {
        // Corrections ride on the ack.
        this.onPing(p.ping, from, corrections);
        return;
      }
      if (p.ack) this.ackHandlers.get(String(p.ack.seq ?? 0))?.onAck(p.ack, from);
      else if (p.nack) this.ackHandlers.get(String(p.nack.seq ?? 0))?.onNack();
      else if (p.pingReq) this.onPingReq(p.pingReq, from);
      if (corrections) this.send(from, {}, corrections);
    });
  }

  private onPing(ping: hasup.gossip.IPing, from: PeerAddress, corrections?: MemberRumorInit[]): void {
    // A restarted member at a reused address must not answer for its predecessor.
    if (ping.targetId && ping.targetId !== this.me.id) {
      this.counters.misdirectedPings++;
      if (corrections) this.send(from, {}, corrections);
      return;
    }
    this.send(from, { ack: { seq: ping.seq ?? 0, clockMs: Math.round(this.clock.wallNow()) } }, corrections);
  }

  private onPingReq(req: hasup.gossip.IPingReq, from: PeerAddress): void {
    const target = req.target;
    if (!target?.id) return;
    const requesterSeq = req.seq ?? 0;
    if (target.id === this.me.id) {
      this.send(from, { ack: { seq: requesterSeq, clockMs: Math.round(this.clock.wallNow()) } });
      return;
    }
    const seq = this.nextSeq();
    const key = String(seq);
    let answered = false;
    const handler: AckHandler = {
      onAck: (ack) => {
        if (answered) return;
        answered = true;
        this.send(from, { ack: { seq: requesterSeq, clockMs: Number(ack.clockMs ?? 0) } });
        this.dropAckHandler(key);
      },
      onNack: () => {},
      timers: [],
    };
    this.ackHandlers.set(key, handler);
    this.send({ addr: target.addr ?? '', port: target.port ?? 0 }, { ping: { seq, targetId: target.id } });
    handler.timers.push(
      this.clock.setTimeout(() => {
        if (!answered && req.wantNack) this.send(from, { nack: { seq: requesterSeq } });
      }, this.cfg.probeTimeoutMs),
      this.clock.setTimeout(() => this.dropAckHandler(key), this.cfg.probeIntervalMs),
    );
  }

  // ---------------------------------------------------------------- member rumors

  /**
   * A claim that shows the sender missed something important; returns our
   * record so we can tell the sender directly:
   * - it accuses a member (maybe us) of being suspect or dead at an
   *   incarnation that member has already refuted: otherwise the sender
   *   would declare a live member dead;
   * - it speaks of a departed member as if it were still around: otherwise
   *   the sender would let it back in.
   */
  private correctionFor(m: hasup.gossip.IMember): MemberRecord | undefined {
    const known = this.table.get(m.id ?? '');
    if (!known) return undefined;
    const state = stateFromWire(m.state);
    if (known.state === 'departed') return state === 'departed' ? undefined : known;
    if (state !== 'suspect' && state !== 'dead') return undefined;
    if (known.state !== 'alive' || known.incarnation <= (m.incarnation ?? 0)) return undefined;
    if (known === this.me && this.leaving) return undefined;
    return known;
  }

  /**
   * Most rumors a member receives repeat what it knows (that is how an
   * epidemic works); recognise those without building a claim.
   */
  private alreadyKnown(m: hasup.gossip.IMember): boolean {
    const known = this.table.get(m.id ?? '');
    return (
      known !== undefined && known !== this.me && known.state !== 'suspect' && known.incarnation === (m.incarnation ?? 0) && known.state === stateFromWire(m.state)
    );
  }

  /**
   * Applies one claim about a member (from a rumor, a push-pull, or our own
   * probing) according to the merge rules in member-state.ts.
   */
  private applyClaim(claim: MemberClaim, fromId: string): void {
    if (!claim.id) return;
    if (claim.id === this.me.id) {
      this.applyClaimAboutSelf(claim);
      return;
    }
    const current = this.table.get(claim.id);
    const verdict = judgeClaim(current, claim);
    if (verdict === 'ignore') return;
    if (verdict === 'confirm') {
      // Lifeguard: an independent suspicion shortens the timeout; pass it on so others count it too.
      if (current && this.suspicions.get(claim.id)?.confirm(fromId)) this.enqueueMember(current, fromId);
      return;
    }
    const now = this.clock.now();
    const previous = current?.state;
    let record = current;
    if (!record) {
      record = { ...claim, since: now };
      this.table.add(record);
    } else {
      if (claim.state === 'alive') {
        record.addr = claim.addr;
        record.port = claim.port;
        record.meta = claim.meta;
      }
      this.table.setState(record, claim.state, claim.incarnation, now);
    }
    if (isLive(claim.state) && (previous === undefined || !isLive(previous))) this.addToProbeOrder(record.id);
    if (claim.state === 'suspect') this.startSuspicion(record, fromId);
    else this.cancelSuspicion(record.id);
    if (claim.state === 'dead' || claim.state === 'suspect') {
      this.log.debug({ event: 'member_' + claim.state, member: record.id, incarnation: record.incarnation, from: fromId }, `${record.id} is ${claim.state}`);
    }
    this.enqueueMember(record, fromId);
    this.emitMember(record, previous);
  }

  private applyClaimAboutSelf(claim: MemberClaim): void {
    const verdict = judgeClaimAboutSelf(this.me, claim, this.leaving);
    if (verdict.kind === 'ignore') return;
    if (verdict.kind === 'departed') {
      const previous = this.me.state;
      this.table.setState(this.me, 'departed', this.me.incarnation, this.clock.now());
      this.log.warn({ event: 'departed' }, 'this member was departed by an operator; it can no longer take part in the ring');
      this.enqueueMember(this.me, this.me.id);
      this.emitMember(this.me, previous);
      return;
    }
    this.log.info(
      { event: 'refute', claimed: claim.state, claimed_incarnation: claim.incarnation, incarnation: verdict.incarnation },
      `refuting a claim that we are ${claim.state}`,
    );
    this.me.incarnation = verdict.incarnation;
    if (claim.state !== 'alive') this.counters.refutations++;
    // Lifeguard: having to refute suggests we are the slow one.
    if (claim.state !== 'alive') this.awareness.applyDelta(1);
    this.enqueueMember(this.me, this.me.id);
  }

  private startSuspicion(record: MemberRecord, fromId: string): void {
    this.cancelSuspicion(record.id);
    const n = this.table.liveCount;
    const id = record.id;
    const incarnation = record.incarnation;
    const suspicion = new Suspicion(this.clock, fromId, expectedConfirmations(this.cfg.suspicionMult, n), suspicionTimeouts(this.cfg, n), (confirmed) =>
      this.guard('suspicion timeout', () => this.suspicionExpired(id, incarnation, confirmed)),
    );
    this.suspicions.set(id, suspicion);
  }

  private cancelSuspicion(id: string): void {
    const s = this.suspicions.get(id);
    if (!s) return;
    s.cancel();
    this.suspicions.delete(id);
  }

  /**
   * A suspicion that nobody else confirmed may be ours alone because we
   * missed the refutation (every rumor has a small chance of missing a given
   * member). Before declaring such a member dead we probe it once more, with
   * the suspicion in front (buddy system): a live member answers with its
   * refutation, or corrects our stale view. Confirmed suspicions, the usual
   * case for a member that really died, are not delayed.
   */
  private suspicionExpired(id: string, incarnation: number, confirmed: boolean): void {
    this.suspicions.delete(id);
    const record = this.table.get(id);
    if (this.stopped || !record || record.state !== 'suspect' || record.incarnation !== incarnation) return;
    if (confirmed) {
      this.declareDead(record);
      return;
    }
    this.probe(record, this.awareness.scale(this.cfg.probeIntervalMs), (acked) => {
      const current = this.table.get(id);
      if (this.stopped || !current || current.state !== 'suspect' || current.incarnation !== incarnation) return;
      // Answered but not refuted (the refutation is still on its way): give it another full suspicion period.
      if (acked) this.startSuspicion(current, this.me.id);
      else this.declareDead(current);
    });
  }

  private declareDead(record: MemberRecord): void {
    this.log.info({ event: 'member_dead', member: record.id, incarnation: record.incarnation }, `${record.id} declared dead`);
    this.cancelSuspicion(record.id);
    this.table.setState(record, 'dead', record.incarnation, this.clock.now());
    this.enqueueMember(record, this.me.id);
    this.emitMember(record, 'suspect');
  }

  // ---------------------------------------------------------------- store rumors

  private onStoreChange(r: StoredRumor): void {
    const size = rumorSize(r);
    if (size <= MAX_PLAINTEXT) {
      this.queue.enqueue(`r:${r.kind}\u0000${r.key}`, { field: 'rumors', msg: r }, size);
      this.armGossip();
    } else {
      this.pushOverStream(r);
    }
    this.emitSafe('rumor', r);
  }

  /**
   * A rumor too big for a datagram goes to a few members over streams (a
   * push-pull frame without members means "rumors only"); they pass it on
   * the same way, and anti-entropy catches anyone missed.
   */
  private pushOverStream(r: StoredRumor): void {
    if (!this.started || this.stopped) return;
    const frame = this.codec.encode({ pushPull: { members: [], rumors: [r], fromId: this.me.id } });
    const targets = this.table.sample(2 * this.cfg.gossipNodes, this.random, (m) => m.state === 'alive' && m !== this.me);
    for (const t of targets) {
      this.counters.bytesOut += frame.length;
      this.transport.request({ addr: t.addr, port: t.port }, frame, this.cfg.streamTimeoutMs).then(
        (reply) => {
          this.counters.bytesIn += reply.length;
        },
        () => {},
      );
    }
  }

  // ---------------------------------------------------------------- dissemination

  private enqueueMember(record: MemberRecord, fromId: string, onEnd?: () => void): void {
    const entry = memberRumorEntry(record, fromId);
    this.queue.enqueue(`m:${record.id}`, { field: 'members', entry }, memberRumorSize(entry), onEnd);
    this.armGossip();
  }

  /**
   * Gossip rounds run only while something is queued. The first round after
   * a quiet spell goes out at once (news spreads at network speed), later
   * ones at most once per gossip interval.
   */
  private armGossip(): void {
    if (!this.started || this.stopped || this.gossipTimer) return;
    const delay = Math.max(0, this.lastGossipAt + this.cfg.gossipIntervalMs - this.clock.now());
    this.gossipTimer = this.clock.setTimeout(() => {
      this.gossipTimer = undefined;
      if (!this.stopped) this.guard('gossip', () => this.gossipRound());
    }, delay);
  }

  private gossipRound(): void {
    if (this.queue.isEmpty) return;
    const now = this.clock.now();
    this.lastGossipAt = now;
    const targets = this.table.sample(
      this.cfg.gossipNodes,
      this.random,
      (m) => m !== this.me && (isLive(m.state) || (m.state === 'dead' && now - m.since < this.cfg.gossipToTheDeadMs)),
    );
    for (const t of targets) {
      if (this.queue.isEmpty) break;
      this.send(t, {});
    }
    // With nobody to talk to, wait for a member to appear (that queues a rumor and re-arms).
    if (targets.length > 0 && !this.queue.isEmpty) this.armGossip();
  }

  /**
   * Sends one datagram: `body` plus `leading` member rumors, filled up with
   * queued rumors to the datagram limit. A packet with nothing to carry is
   * not sent.
   */
  private send(to: PeerAddress, body: PacketInit, leading: MemberRumorInit[] = []): void {
    const members: MemberRumorInit[] = [...leading];
    const rumors: Rumor[] = [];
    let budget = MAX_PLAINTEXT - packetSize({ ...body, members });
    // Leading rumors (corrections can carry meta) must never push the packet over the limit.
    while (budget < 0 && members.length > 0) {
      members.pop();
      budget = MAX_PLAINTEXT - packetSize({ ...body, members });
    }
    for (const item of this.queue.take(budget, this.table.liveCount)) {
      if (item.field === 'members') members.push(memberRumorToWire(item.entry));
      else rumors.push(item.msg);
    }
    const packet: PacketInit = { ...body, members, rumors };
    const isEmpty = !body.ping && !body.ack && !body.nack && !body.pingReq && members.length === 0 && rumors.length === 0;
    if (isEmpty) return;
    const data = this.codec.encode(packet);
    if (data.length > MAX_DATAGRAM_BYTES) {
      // Cannot happen by construction; refuse rather than send what peers would drop.
      this.log.warn({ event: 'oversized_packet', bytes: data.length }, 'refusing to send an oversized datagram');
      return;
    }
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    this.transport.sendPacket(to, data);
  }

  // ---------------------------------------------------------------- push-pull

  private pushPullIntervalNow(): number {
    return pushPullInterval(this.cfg.pushPullIntervalMs, this.table.liveCount);
  }

  private pushPullRound(): void {
    this.schedule('pushPull', this.pushPullIntervalNow(), () => this.pushPullRound());
    if (this.leaving) return;
    const [peer] = this.table.sample(1, this.random, (m) => m.state === 'alive' && m !== this.me);
    if (peer) void this.pushPull({ addr: peer.addr, port: peer.port }, false);
  }

  /**
   * Serf's reconnect, which is what heals partitions: each member tries a
   * random dead member with probability dead/alive, so the ring tries each
   * dead one about once per period. A member that is in fact alive learns
   * from our state that it was declared dead, refutes, and answers with its
   * own state, which brings its side of the ring back to us.
   */
  private reconnectRound(): void {
    this.schedule('reconnect', this.cfg.reconnectIntervalMs, () => this.reconnectRound());
    const dead = this.table.count('dead');
    if (dead === 0 || this.leaving || this.me.state !== 'alive') return;
    if (this.random() >= dead / Math.max(1, this.table.liveCount)) return;
    const [peer] = this.table.sample(1, this.random, (m) => m.state === 'dead');
    if (peer) void this.pushPull({ addr: peer.addr, port: peer.port }, false);
  }

  private localState(join: boolean): PacketInit {
    const members = [...this.table.values()].map((r) => memberToWire(r, true));
    return { pushPull: { members, rumors: this.store.all(), join, fromId: this.me.id } };
  }

  private async pushPull(to: PeerAddress, join: boolean): Promise<boolean> {
    if (this.stopped) return false;
    const request = this.codec.encode(this.localState(join));
    this.counters.pushPullsOut++;
    this.counters.bytesOut += request.length;
    let reply: Uint8Array;
    try {
      reply = await this.transport.request(to, request, this.cfg.streamTimeoutMs);
    } catch (err) {
      this.counters.pushPullFailures++;
      this.log.debug({ event: 'push_pull_failed', peer: `${to.addr}:${to.port}`, err: String(err) }, 'push-pull failed');
      return false;
    }
    if (this.stopped) return false;
    this.counters.bytesIn += reply.length;
    const decoded = this.codec.decode(reply, MAX_STREAM_FRAME_BYTES);
    const state = decoded.ok ? decoded.packet.pushPull : undefined;
    if (!state) {
      this.counters.pushPullFailures++;
      return false;
    }
    this.guard('push-pull merge', () => this.mergeRemoteState(state));
    return true;
  }

  private async receiveRequest(data: Uint8Array, _from: PeerAddress): Promise<Uint8Array | undefined> {
    if (this.stopped) return undefined;
    this.counters.bytesIn += data.length;
    const decoded = this.codec.decode(data, MAX_STREAM_FRAME_BYTES);
    const state = decoded.ok ? decoded.packet.pushPull : undefined;
    if (!state) return undefined;
    this.counters.pushPullsIn++;
    let reply: Uint8Array | undefined;
    this.guard('push-pull answer', () => {
      if ((state.members ?? []).length === 0) {
        for (const r of state.rumors ?? []) this.store.apply(r);
        reply = this.codec.encode({ pushPull: { fromId: this.me.id } });
        return;
      }
      // Merge first, so a member that learns it was declared dead answers with its refutation.
      this.mergeRemoteState(state);
      reply = this.codec.encode(this.localState(false));
    });
    if (reply) this.counters.bytesOut += reply.length;
    return reply;
  }

  private mergeRemoteState(state: hasup.gossip.IPushPull): void {
    const remoteId = state.fromId ?? '';
    for (const m of state.members ?? []) {
      const claim = claimFromWire(m);
      // Tombstones of members we never knew are not taken from full state: a
      // tombstone travels as a rumor when it is new, and re-learning old ones
      // here would keep them alive forever, passed back and forth.
      if (claim.state === 'departed' && claim.id !== this.me.id && !this.table.get(claim.id)) continue;
      // As memberlist: another member's verdict of death only makes us suspect
      // (its view may be stale); the member gets the chance to refute.
      if (claim.state === 'dead' && claim.id !== this.me.id) claim.state = 'suspect';
      this.applyClaim(claim, remoteId);
    }
    for (const r of state.rumors ?? []) this.store.apply(normalizeRumor(r));
  }

  // ---------------------------------------------------------------- reaping

  private reapIntervalMs(): number {
    return Math.max(1000, Math.min(60_000, this.cfg.deadReclaimMs / 4, this.cfg.departedReclaimMs / 4));
  }

  private reapRound(): void {
    this.schedule('reap', this.reapIntervalMs(), () => this.reapRound());
    const now = this.clock.now();
    const expired: MemberRecord[] = [];
    for (const r of this.table.values()) {
      if (r === this.me) continue;
      const age = now - r.since;
      if (((r.state === 'dead' || r.state === 'left') && age >= this.cfg.deadReclaimMs) || (r.state === 'departed' && age >= this.cfg.departedReclaimMs)) {
        expired.push(r);
      }
    }
    for (const r of expired) {
      this.table.remove(r.id);
      this.cancelSuspicion(r.id);
      this.log.debug({ event: 'member_reaped', member: r.id, state: r.state }, `forgot ${r.state} member ${r.id}`);
      this.emitSafe('removed', view(r));
    }
  }

  // ---------------------------------------------------------------- events

  private emitMember(record: MemberRecord, previous: MemberStateName | undefined): void {
    if (this.listenerCount('member') > 0) this.emitSafe('member', view(record), previous);
  }

  private emitSafe<K extends keyof MemberlistEvents>(event: K, ...args: MemberlistEvents[K]): void {
    try {
      (this.emit as (e: string, ...a: unknown[]) => boolean)(event, ...args);
    } catch (err) {
      this.counters.handlerErrors++;
      this.log.warn({ err, event: 'listener_error', on: event }, `a ${event} listener threw`);
    }
  }
}

function checkMeta(meta: Uint8Array | undefined): void {
  if (meta && meta.length > MAX_MEMBER_META_BYTES) throw new Error(`member meta is ${meta.length} bytes; at most ${MAX_MEMBER_META_BYTES} are allowed`);
}

function view(r: MemberRecord): MemberView {
  const v: MemberView = { id: r.id, addr: r.addr, port: r.port, incarnation: r.incarnation, state: r.state, meta: r.meta, since: r.since };
  if (r.clockOffsetMs !== undefined) v.clockOffsetMs = r.clockOffsetMs;
  if (r.rttMs !== undefined) v.rttMs = r.rttMs;
  return v;
}

function shuffle<T>(items: T[], random: Random): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
