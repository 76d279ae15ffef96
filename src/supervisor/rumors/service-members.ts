import type { MemberStateName, Memberlist } from '../../gossip/index.js';
import { decodeServiceRumor, isServiceHealthy, parseServiceRumorKey, RUMOR_SERVICE, type ServiceRumorPayload } from './service.js';

/** What the census helpers read of the ring. */
export type CensusSource = Pick<Memberlist, 'members' | 'rumors' | 'self'>;

/** A member that runs the service, as its service rumor says, with the port asked for. */
export interface ServiceMember {
  member: string;
  /** Its gossip address: a member is reached there on every port. */
  addr: string;
  memberState: MemberStateName;
  /** This is the member asking. */
  self: boolean;
  /** The port named in the query. */
  port: number;
  /** Every port its rumor names. */
  ports: Record<string, number>;
  /** Its rumor, decoded. */
  rumor: Partial<ServiceRumorPayload>;
  /** The member is alive and its service runs and passes its health check. */
  healthy: boolean;
}

/** Members whose service may still be reached: left and departed ones have stopped or removed it. */
export const REACHABLE_STATES: ReadonlySet<MemberStateName> = new Set(['alive', 'suspect', 'dead']);

const STATE_RANK: Record<MemberStateName, number> = { alive: 1, suspect: 2, dead: 3, left: 4, departed: 5 };

/**
 * The members that run `service` and publish `port` (a plan port name:
 * client_port, http_port, ...), in order of preference: healthy ones, then
 * alive, suspect and dead ones; within a rank this member first (no network
 * hop), then by id. Only members in `states` count (REACHABLE_STATES by
 * default); a rumor from a member the ring does not know, or without the
 * port, is skipped. A member with several groups of the service appears once,
 * with the first rumor that qualifies.
 */
export function serviceMembers(ring: CensusSource, service: string, port: string, states: ReadonlySet<MemberStateName> = REACHABLE_STATES): ServiceMember[] {
  const self = ring.self().id;
  const members = new Map(ring.members().map((m) => [m.id, m]));
  const out: Array<ServiceMember & { rank: number }> = [];
  const seen = new Set<string>();
  for (const r of ring.rumors(RUMOR_SERVICE)) {
    const key = parseServiceRumorKey(r.key);
    if (!key || key.service !== service || seen.has(key.member)) continue;
    const m = members.get(key.member);
    if (!m || !states.has(m.state)) continue;
    const rumor = decodeServiceRumor(r.payload);
    const ports = rumor?.ports ?? {};
    const at = Object.hasOwn(ports, port) ? ports[port] : undefined;
    if (!rumor || at === undefined) continue;
    seen.add(key.member);
    const healthy = m.state === 'alive' && isServiceHealthy(rumor);
    out.push({ member: m.id, addr: m.addr, memberState: m.state, self: m.id === self, port: at, ports, rumor, healthy, rank: healthy ? 0 : STATE_RANK[m.state] });
  }
  out.sort((a, b) => a.rank - b.rank || Number(b.self) - Number(a.self) || a.member.localeCompare(b.member));
  return out.map(({ rank: _rank, ...m }) => m);
}

/**
 * Where a member's HTTP API is reached: its gossip address, and the API
 * port its service rumors carry (a member serves one API for all its
 * services). Undefined when the ring does not know the member or none of
 * its rumors names the port.
 */
export function memberApiAddress(ring: Pick<Memberlist, 'members' | 'rumors'>, member: string): { addr: string; port: number } | undefined {
  const m = ring.members().find((x) => x.id === member);
  if (!m) return undefined;
  for (const r of ring.rumors(RUMOR_SERVICE)) {
    if (parseServiceRumorKey(r.key)?.member !== member) continue;
    const port = decodeServiceRumor(r.payload)?.api_port;
    if (port !== undefined) return { addr: m.addr, port };
  }
  return undefined;
}
