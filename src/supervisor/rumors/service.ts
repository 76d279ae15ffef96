import { findPlan } from '../plan.js';
import type { ServiceStatus } from '../service.js';
import type { TomlTable } from '../toml-schema.js';
import { hasupVersion } from '../version.js';
import { jsonObjectPayload, memberServiceKey, splitMemberServiceKey } from './key.js';

/**
 * The service rumor: what one member says about one of its services (key
 * MEMBER/SVC.GROUP), and with it what other members need to reach it: the
 * ports the service listens on and the member's HTTP API port. Addresses are
 * not repeated here: a member is reached at its gossip address. Published on
 * every status change of the service (daemon.ts); read through
 * decodeServiceRumor, or serviceMembers (service-members.ts) for "who runs
 * service X, and where".
 */
export const RUMOR_SERVICE = 'service';

export interface ServiceRumorPayload {
  state: string;
  pid: number | null;
  health: string;
  since: number;
  config_version: number;
  /** Plan port name → port, e.g. { client_port: 2379, peer_port: 2380 } for etcd, { port: 5432 } for PostgreSQL. */
  ports?: Record<string, number>;
  /** The member's HTTP API port; absent when it serves none. */
  api_port?: number;
  /** The plan's version of the service; absent from members that predate it. */
  version?: string;
  /** The member's hasup version; absent from members that predate it. */
  hasup_version?: string;
}

export function serviceRumorKey(memberId: string, name: string, group: string): string {
  return memberServiceKey(memberId, `${name}.${group}`);
}

/** MEMBER/SVC.GROUP → { member, service, group }; undefined for a malformed key. */
export function parseServiceRumorKey(key: string): { member: string; service: string; group: string } | undefined {
  const split = splitMemberServiceKey(key);
  if (!split) return undefined;
  const dot = split.serviceGroup.indexOf('.');
  if (dot <= 0) return undefined;
  return { member: split.member, service: split.serviceGroup.slice(0, dot), group: split.serviceGroup.slice(dot + 1) };
}

export function encodeServiceRumor(s: ServiceStatus, ports: Record<string, number> | undefined, apiPort: number | undefined): Uint8Array {
  const payload: ServiceRumorPayload = { state: s.state, pid: s.pid ?? null, health: s.health, since: s.since, config_version: s.configVersion, hasup_version: hasupVersion() };
  if (s.version !== undefined) payload.version = s.version;
  if (ports && Object.keys(ports).length > 0) payload.ports = ports;
  if (apiPort !== undefined) payload.api_port = apiPort;
  return Buffer.from(JSON.stringify(payload));
}

/**
 * The rumor a member publishes for one of its services, ready for the ring.
 * `version` comes from nextRumorVersion (key.ts).
 */
export function serviceRumor(memberId: string, s: ServiceStatus, ports: Record<string, number> | undefined, apiPort: number | undefined, version: number): { kind: string; key: string; version: number; payload: Uint8Array } {
  return { kind: RUMOR_SERVICE, key: serviceRumorKey(memberId, s.name, s.group), version, payload: encodeServiceRumor(s, ports, apiPort) };
}

/**
 * A peer's payload, or undefined when it is not a JSON object; unknown or
 * mistyped port fields are dropped, other fields are passed on as they came.
 * Never throws.
 */
export function decodeServiceRumor(payload: Uint8Array): Partial<ServiceRumorPayload> | undefined {
  const data = jsonObjectPayload(payload);
  if (!data) return undefined;
  const p = data as Partial<ServiceRumorPayload>;
  const ports: Record<string, number> = {};
  if (typeof p.ports === 'object' && p.ports !== null) {
    for (const [name, port] of Object.entries(p.ports)) if (isPort(port)) ports[name] = port;
  }
  return { ...p, ports, api_port: isPort(p.api_port) ? p.api_port : undefined };
}

/** A running service whose last health check passed (ok or warning). */
export function isServiceHealthy(p: Partial<ServiceRumorPayload>): boolean {
  return p.state === 'running' && (p.health === 'ok' || p.health === 'warning');
}

function isPort(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
}

/**
 * The ports a service listens on, from its plan's [ports] table (port name →
 * config key) and its merged config: what a member puts in its service
 * rumors. Plans are read once per service name.
 */
export class ServicePorts {
  private readonly mapping = new Map<string, Record<string, string>>();

  constructor(private readonly planPath: string[]) {}

  of(service: string, cfg: TomlTable | undefined): Record<string, number> {
    if (!cfg) return {};
    let keys = this.mapping.get(service);
    if (!keys) {
      try {
        keys = findPlan(service, this.planPath).manifest.ports;
      } catch {
        keys = {};
      }
      this.mapping.set(service, keys);
    }
    const out: Record<string, number> = {};
    for (const [name, key] of Object.entries(keys)) {
      const value = Number(dotted(cfg, key));
      if (isPort(value)) out[name] = value;
    }
    return out;
  }
}

function dotted(cfg: TomlTable, key: string): unknown {
  let at: unknown = cfg;
  for (const part of key.split('.')) {
    if (typeof at !== 'object' || at === null) return undefined;
    at = (at as TomlTable)[part];
  }
  return at;
}
