import type { FastifyInstance } from 'fastify';
import { WireCodec } from '../gossip/codec.js';
import { resolveGossipConfig, type GossipProfile } from '../gossip/config.js';
import { loadKeyring } from '../gossip/keyring-file.js';
import { Memberlist, type MemberView } from '../gossip/memberlist.js';
import { formatPeerAddress } from '../gossip/address.js';
import type { PeerAddress } from '../gossip/transport.js';
import { createUdpTransport, type UdpTransport } from '../gossip/udp-transport.js';
import { butterflyRoutes } from '../plugins/http/butterfly.js';
import { createHttpServer, listen, type HttpListen } from '../plugins/http/server.js';
import type { Logger } from './log.js';
import { StateDir } from './state-dir.js';

export interface DaemonOptions {
  stateDir: string;
  advertise: PeerAddress;
  /** Address to bind the gossip sockets to; defaults to the advertised one. */
  bind?: string;
  peers: PeerAddress[];
  ringKeyFile: string;
  profile: GossipProfile;
  gossipOverrides?: Record<string, unknown>;
  http: HttpListen | null;
  log: Logger;
}

/** Operators are warned when a member's clock is this far from ours. */
export const CLOCK_DRIFT_WARN_MS = 1500;

/**
 * One running member: composes the gossip ring and the HTTP API. Data flows
 * one way: rumor in → membership updated → logged/served.
 */
export class Daemon {
  readonly memberId: string;
  private transport?: UdpTransport;
  private ring?: Memberlist;
  private http?: FastifyInstance;
  private joinTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly opts: DaemonOptions) {
    const state = new StateDir(opts.stateDir);
    state.ensure();
    this.memberId = state.memberId();
    this.log = opts.log.child({ member: this.memberId });
  }

  get memberlist(): Memberlist {
    if (!this.ring) throw new Error('daemon not started');
    return this.ring;
  }

  async start(): Promise<void> {
    const { opts, log } = this;
    const config = resolveGossipConfig(opts.profile, opts.gossipOverrides ?? {});
    const keyring = loadKeyring(opts.ringKeyFile);
    this.transport = await createUdpTransport({
      bindAddr: opts.bind ?? opts.advertise.addr,
      port: opts.advertise.port,
      advertise: opts.advertise,
      log,
    });
    const ring = new Memberlist({
      self: { id: this.memberId, addr: opts.advertise.addr, port: this.transport.local.port },
      config,
      transport: this.transport,
      codec: new WireCodec(keyring),
      log: log.child({ component: 'gossip' }),
    });
    this.ring = ring;
    ring.on('member', (m, prev) => this.onMemberChange(m, prev));
    ring.start();
    log.info({ event: 'started', gossip: formatPeerAddress(this.transport.local), profile: opts.profile }, 'gossip ring started');

    if (opts.http) {
      this.http = await createHttpServer({ log, plugins: [{ plugin: butterflyRoutes, options: { ring } }] });
      const url = await listen(this.http, opts.http);
      log.info({ event: 'http', url }, 'HTTP API listening');
    }
    this.joinPeers(0);
  }

  /**
   * Joins through the configured peers, retrying with a capped backoff until
   * one answers: members may start in any order, and a first member whose
   * peers are all down must keep trying rather than form a ring of one.
   */
  private joinPeers(attempt: number): void {
    const peers = this.opts.peers.filter((p) => !(p.addr === this.opts.advertise.addr && p.port === this.transport!.local.port));
    if (peers.length === 0 || this.stopped) return;
    this.log.info({ event: 'joining', peers: peers.map(formatPeerAddress), attempt }, 'joining the ring');
    void this.memberlist.join(peers).then((answered) => {
      if (this.stopped) return;
      if (answered > 0) {
        this.log.info({ event: 'joined', answered }, 'joined the ring');
        return;
      }
      const delay = Math.min(30_000, 500 * 2 ** attempt);
      this.log.warn({ event: 'join_retry', delay_ms: delay }, `no peer answered; retrying in ${delay} ms`);
      this.joinTimer = setTimeout(() => this.joinPeers(attempt + 1), delay);
    });
  }

  private onMemberChange(m: MemberView, prev: MemberView['state'] | undefined): void {
    const fields = { event: 'member', peer: m.id, address: `${m.addr}:${m.port}`, state: m.state, prev: prev ?? null, incarnation: m.incarnation };
    if (m.state === 'dead' || m.state === 'suspect') this.log.warn(fields, `member ${m.id} is ${m.state}`);
    else this.log.info(fields, `member ${m.id} is ${m.state}`);
    if (m.clockOffsetMs !== undefined && Math.abs(m.clockOffsetMs) > CLOCK_DRIFT_WARN_MS) {
      this.log.warn({ event: 'clock_drift', peer: m.id, offset_ms: Math.round(m.clockOffsetMs) }, `clock of ${m.id} is ${Math.round(m.clockOffsetMs)} ms off`);
    }
  }

  /** Graceful stop: tell the ring we are leaving, then close everything. */
  async stop(opts: { leave: boolean } = { leave: true }): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.joinTimer);
    if (this.ring) {
      if (opts.leave) await this.ring.leave(2000).catch((err) => this.log.warn({ err }, 'leave failed'));
      else await this.ring.stop();
    }
    await this.http?.close();
    await this.transport?.close();
    this.log.info({ event: 'stopped' }, 'stopped');
  }
}
