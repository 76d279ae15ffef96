import type { FastifyPluginAsync } from 'fastify';
import type { WebSocket } from 'ws';
import type { EventEmitter } from 'node:events';
import type { MemberView, MemberlistEvents, MemberStateName, StoredRumor } from '../../gossip/index.js';
import { splitMemberServiceKey } from '../../supervisor/rumors/key.js';
import { decodeRoleRumor, RUMOR_ROLE } from '../../supervisor/rumors/role.js';
import { decodeServiceConfigRumor } from '../../supervisor/rumors/service-config.js';
import { decodeServiceRumor, RUMOR_SERVICE } from '../../supervisor/rumors/service.js';
import { decodeRolloutProgress, RUMOR_ROLLOUT } from '../../supervisor/rumors/rollout.js';

export interface ApiEvent {
  type: 'hello' | 'member' | 'service' | 'role' | 'config' | 'ha-status' | 'rollout';
  /** ms since the epoch. */
  time: number;
  [field: string]: unknown;
}

export interface EventHubOptions {
  /** A client with more than this many bytes waiting to be sent is dropped. */
  maxBufferedBytes?: number;
  maxClients?: number;
  onClients?: (count: number) => void;
  onDropped?: () => void;
}

const WS_TRY_AGAIN_LATER = 1013;

/**
 * Fans events out to WebSocket clients. Each event is serialised once. A
 * client that reads slower than events arrive is cut off as soon as its
 * unsent bytes pass the bound, so no client can make the supervisor's
 * memory grow; it reconnects and re-reads the state from /cluster.
 */
export class EventHub {
  private readonly clients = new Set<WebSocket>();
  private readonly maxBuffered: number;
  private readonly maxClients: number;

  constructor(private readonly opts: EventHubOptions = {}) {
    this.maxBuffered = opts.maxBufferedBytes ?? 1024 * 1024;
    this.maxClients = opts.maxClients ?? 64;
  }

  get size(): number {
    return this.clients.size;
  }

  add(socket: WebSocket, hello: ApiEvent): void {
    if (this.clients.size >= this.maxClients) {
      socket.close(WS_TRY_AGAIN_LATER, `at most ${this.maxClients} event clients`);
      return;
    }
    this.clients.add(socket);
    this.opts.onClients?.(this.clients.size);
    const forget = () => {
      if (this.clients.delete(socket)) this.opts.onClients?.(this.clients.size);
    };
    socket.on('close', forget);
    socket.on('error', forget);
    // Clients only listen; anything they send is ignored (and size-capped by the server).
    socket.on('message', () => {});
    this.sendTo(socket, JSON.stringify(hello));
  }

  publish(event: ApiEvent): void {
    if (this.clients.size === 0) return;
    const text = JSON.stringify(event);
    for (const socket of this.clients) this.sendTo(socket, text);
  }

  closeAll(): void {
    for (const socket of this.clients) socket.terminate();
    this.clients.clear();
    this.opts.onClients?.(0);
  }

  private sendTo(socket: WebSocket, text: string): void {
    if (socket.readyState !== socket.OPEN) return;
    socket.send(text);
    if (socket.bufferedAmount > this.maxBuffered) {
      this.clients.delete(socket);
      this.opts.onClients?.(this.clients.size);
      this.opts.onDropped?.();
      // A close frame would wait behind the backlog; cut the connection instead.
      socket.terminate();
    }
  }
}

/**
 * Turns ring activity into events: membership changes, and the service,
 * role and config rumors of every member (this one's included, since its
 * own rumors pass through the same store). Returns the unsubscriber.
 */
export function watchRing(ring: EventEmitter<MemberlistEvents>, publish: (e: ApiEvent) => void): () => void {
  const services = new Map<string, string>();
  const roles = new Map<string, string>();
  const onMember = (m: MemberView, prev: MemberStateName | undefined) => {
    if (m.state === prev) return;
    publish({ type: 'member', time: Date.now(), member: m.id, address: `${m.addr}:${m.port}`, state: m.state, previous: prev ?? null, incarnation: m.incarnation });
  };
  const onRumor = (r: StoredRumor) => {
    if (r.kind === RUMOR_ROLLOUT) {
      const p = decodeRolloutProgress(r.payload);
      const by = splitMemberServiceKey(r.key)?.member;
      if (p && by) publish({ ...p, type: 'rollout', time: p.at, by });
      return;
    }
    const config = decodeServiceConfigRumor(r);
    if (config) {
      publish({ type: 'config', time: Date.now(), service_group: config.serviceGroup, version: config.version, origin: r.originId });
      return;
    }
    const key = r.kind === RUMOR_SERVICE || r.kind === RUMOR_ROLE ? splitMemberServiceKey(r.key) : undefined;
    if (!key) return;
    const { member, serviceGroup } = key;
    if (r.kind === RUMOR_SERVICE) {
      const p = decodeServiceRumor(r.payload);
      if (!p) return;
      const fingerprint = `${String(p.state)}|${String(p.health)}|${String(p.pid)}`;
      if (services.get(r.key) === fingerprint) return;
      services.set(r.key, fingerprint);
      publish({ type: 'service', time: Date.now(), member, service_group: serviceGroup, state: p.state, health: p.health, pid: p.pid ?? null, config_version: p.config_version ?? 0 });
    } else {
      const role = decodeRoleRumor(r.payload);
      if (!role) return;
      const fingerprint = `${role.role}|${role.writable}|${role.lease_in_doubt}`;
      if (roles.get(r.key) === fingerprint) return;
      roles.set(r.key, fingerprint);
      publish({ type: 'role', time: Date.now(), member, service_group: serviceGroup, role: role.role, writable: role.writable, lease_in_doubt: role.lease_in_doubt, lag_bytes: role.lag_bytes, timeline: role.timeline });
    }
  };
  ring.on('member', onMember);
  ring.on('rumor', onRumor);
  return () => {
    ring.off('member', onMember);
    ring.off('rumor', onRumor);
  };
}

/** `GET /events` (WebSocket): the live event stream; needs the token like every view. */
export const eventRoutes: FastifyPluginAsync<{ hub: EventHub; memberId: string }> = async (app, { hub, memberId }) => {
  app.addHook('onClose', async () => hub.closeAll());
  app.get(
    '/events',
    { websocket: true, schema: { description: 'WebSocket stream of membership, service health, role, config and rollout-progress events, one JSON object per message with a `time` field.' } },
    (socket) => hub.add(socket, { type: 'hello', time: Date.now(), member: memberId }),
  );
};
