import type { Random } from '../clock.js';
import type { PacketHandler, PeerAddress, RequestHandler, Transport } from '../transport.js';
import type { VirtualClock } from './virtual-clock.js';

/**
 * An in-memory network on a virtual clock: every member gets a Transport
 * whose datagrams and stream requests travel with latency (base + uniform
 * jitter), datagrams are lost with a probability, and partitions or killed
 * members block both. Stream requests are reliable (TCP) unless blocked; a
 * request to a killed member is refused after a round trip, one across a
 * partition times out.
 */

export interface SimNetworkOptions {
  clock: VirtualClock;
  random: Random;
  /** One-way latency floor, ms. */
  latencyMs?: number;
  /** Uniform extra one-way latency, ms. */
  jitterMs?: number;
  /** Datagram loss probability, 0..1. */
  loss?: number;
}

export interface SimTrafficCounters {
  packetsOut: number;
  bytesOut: number;
  requestsOut: number;
  packetsDropped: number;
  /** Largest datagram sent. */
  maxPacketBytes: number;
}

export function addressKey(a: PeerAddress): string {
  return `${a.addr}:${a.port}`;
}

export class SimTransport implements Transport {
  packetHandler: PacketHandler | undefined;
  requestHandler: RequestHandler | undefined;
  closed = false;
  readonly counters: SimTrafficCounters = { packetsOut: 0, bytesOut: 0, requestsOut: 0, packetsDropped: 0, maxPacketBytes: 0 };

  constructor(
    private readonly net: SimNetwork,
    readonly local: PeerAddress,
  ) {}

  sendPacket(to: PeerAddress, data: Uint8Array): void {
    this.net.deliverPacket(this, to, data);
  }

  request(to: PeerAddress, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.net.deliverRequest(this, to, data, timeoutMs);
  }

  onPacket(handler: PacketHandler): void {
    this.packetHandler = handler;
  }

  onRequest(handler: RequestHandler): void {
    this.requestHandler = handler;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export class SimNetwork {
  private readonly clock: VirtualClock;
  private readonly random: Random;
  private latencyMs: number;
  private jitterMs: number;
  private loss: number;
  private readonly nodes = new Map<string, SimTransport>();
  private readonly killed = new Set<string>();
  private readonly groupOf = new Map<string, number>();
  /** Handler exceptions caught by the network (an engine must never let one escape). */
  handlerErrors = 0;

  constructor(opts: SimNetworkOptions) {
    this.clock = opts.clock;
    this.random = opts.random;
    this.latencyMs = opts.latencyMs ?? 1;
    this.jitterMs = opts.jitterMs ?? 1;
    this.loss = opts.loss ?? 0;
  }

  /** A transport for a new member at `local` (address:port must be unique). */
  transport(local: PeerAddress): SimTransport {
    const key = addressKey(local);
    if (this.nodes.has(key) && !this.nodes.get(key)!.closed) throw new Error(`address ${key} already in use`);
    const t = new SimTransport(this, { ...local });
    this.nodes.set(key, t);
    return t;
  }

  setLoss(probability: number): void {
    if (!(probability >= 0 && probability <= 1)) throw new Error(`loss must be within 0..1, got ${probability}`);
    this.loss = probability;
  }

  setLatency(latencyMs: number, jitterMs: number): void {
    this.latencyMs = latencyMs;
    this.jitterMs = jitterMs;
  }

  /** Members in different groups cannot reach each other; members in no group reach everyone. */
  partition(groups: PeerAddress[][]): void {
    this.groupOf.clear();
    groups.forEach((group, i) => {
      for (const a of group) this.groupOf.set(addressKey(a), i);
    });
  }

  heal(): void {
    this.groupOf.clear();
  }

  /** The member's process is gone: nothing reaches it, it sends nothing, streams to it are refused. */
  kill(a: PeerAddress): void {
    this.killed.add(addressKey(a));
  }

  revive(a: PeerAddress): void {
    this.killed.delete(addressKey(a));
  }

  counters(a: PeerAddress): SimTrafficCounters | undefined {
    return this.nodes.get(addressKey(a))?.counters;
  }

  private blocked(from: string, to: string): boolean {
    const a = this.groupOf.get(from);
    const b = this.groupOf.get(to);
    return a !== undefined && b !== undefined && a !== b;
  }

  private oneWayDelay(): number {
    return this.latencyMs + this.random() * this.jitterMs;
  }

  /** @internal */
  deliverPacket(sender: SimTransport, to: PeerAddress, data: Uint8Array): void {
    const fromKey = addressKey(sender.local);
    if (sender.closed || this.killed.has(fromKey)) return;
    sender.counters.packetsOut++;
    sender.counters.bytesOut += data.length;
    if (data.length > sender.counters.maxPacketBytes) sender.counters.maxPacketBytes = data.length;
    const toKey = addressKey(to);
    if (this.blocked(fromKey, toKey) || (this.loss > 0 && this.random() < this.loss)) {
      sender.counters.packetsDropped++;
      return;
    }
    const from = sender.local;
    this.clock.setTimeout(() => {
      const target = this.nodes.get(toKey);
      if (!target || target.closed || this.killed.has(toKey) || !target.packetHandler) return;
      try {
        target.packetHandler(data, from);
      } catch {
        this.handlerErrors++;
      }
    }, this.oneWayDelay());
  }

  /** @internal */
  deliverRequest(sender: SimTransport, to: PeerAddress, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const fromKey = addressKey(sender.local);
    const toKey = addressKey(to);
    return new Promise<Uint8Array>((resolve, reject) => {
      let settled = false;
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        timeout.cancel();
        fn();
        this.clock.requestFlush();
      };
      const fail = (why: string) => settle(() => reject(new Error(`request to ${toKey}: ${why}`)));
      const timeout = this.clock.setTimeout(() => fail('timed out'), timeoutMs);
      if (sender.closed || this.killed.has(fromKey) || this.blocked(fromKey, toKey)) return; // never connects: times out
      const target = this.nodes.get(toKey);
      if (!target || target.closed || this.killed.has(toKey) || !target.requestHandler) {
        this.clock.setTimeout(() => fail('connection refused'), 2 * this.oneWayDelay());
        return;
      }
      sender.counters.requestsOut++;
      sender.counters.bytesOut += data.length;
      const from = sender.local;
      this.clock.setTimeout(() => {
        if (settled) return;
        if (target.closed || this.killed.has(toKey) || this.blocked(fromKey, toKey) || !target.requestHandler) return;
        let answer: Promise<Uint8Array | undefined>;
        try {
          answer = target.requestHandler(data, from);
        } catch {
          this.handlerErrors++;
          this.clock.setTimeout(() => fail('reset by peer'), this.oneWayDelay());
          return;
        }
        this.clock.requestFlush();
        answer.then(
          (reply) => {
            if (reply === undefined) {
              this.clock.setTimeout(() => fail('closed without an answer'), this.oneWayDelay());
              return;
            }
            if (target.closed || this.killed.has(toKey)) return;
            target.counters.bytesOut += reply.length;
            this.clock.setTimeout(() => {
              if (this.blocked(fromKey, toKey) || this.killed.has(fromKey)) return;
              settle(() => resolve(reply));
            }, this.oneWayDelay());
          },
          () => {
            this.handlerErrors++;
            this.clock.setTimeout(() => fail('reset by peer'), this.oneWayDelay());
          },
        );
      }, this.oneWayDelay());
    });
  }
}
