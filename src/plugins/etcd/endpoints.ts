import { isIP } from 'node:net';
import type { MemberStateName } from '../../gossip/member-state.js';
import type { Memberlist } from '../../gossip/memberlist.js';
import { parseServiceRumor, parseServiceRumorKey, RUMOR_SERVICE } from '../../supervisor/service-rumor.js';

/**
 * Where the etcd voters are, from the gossip census: every member that
 * publishes an etcd service rumor runs an etcd voting member (clients run
 * none), reached at its gossip address on the client port its rumor names.
 */
export type CensusSource = Pick<Memberlist, 'members' | 'rumors' | 'self'>;

export interface EtcdVoterEndpoint {
  member: string;
  memberState: MemberStateName;
  clientUrl: string;
  /** null when the rumor names no peer port. */
  peerUrl: string | null;
  /** Its member is alive and its etcd runs and answers its health check. */
  healthy: boolean;
}

export const ETCD_SERVICE = 'etcd';

function url(addr: string, port: number): string {
  return `http://${isIP(addr) === 6 ? `[${addr}]` : addr}:${port}`;
}

/**
 * Order of preference: healthy voters, then alive ones whose etcd is not
 * (yet) healthy, then suspect, then dead ones (gossip may be cut while etcd
 * is not). Left and departed members are out: their etcd is stopped or
 * removed. Within a rank this member comes first (no network hop), then by id.
 */
const RANK: Record<MemberStateName, number> = { alive: 1, suspect: 2, dead: 3, left: Infinity, departed: Infinity };

export function etcdVoters(ring: CensusSource): EtcdVoterEndpoint[] {
  const self = ring.self().id;
  const members = new Map(ring.members().map((m) => [m.id, m]));
  const out: Array<EtcdVoterEndpoint & { rank: number }> = [];
  const seen = new Set<string>();
  for (const r of ring.rumors(RUMOR_SERVICE)) {
    const key = parseServiceRumorKey(r.key);
    if (!key || key.service !== ETCD_SERVICE || seen.has(key.member)) continue;
    const m = members.get(key.member);
    if (!m || RANK[m.state] === Infinity) continue;
    const p = parseServiceRumor(r.payload);
    const clientPort = p?.ports?.client_port;
    if (!p || clientPort === undefined) continue;
    seen.add(key.member);
    const healthy = m.state === 'alive' && p.state === 'running' && (p.health === 'ok' || p.health === 'warning');
    const peerPort = p.ports?.peer_port;
    out.push({
      member: m.id,
      memberState: m.state,
      clientUrl: url(m.addr, clientPort),
      peerUrl: peerPort === undefined ? null : url(m.addr, peerPort),
      healthy,
      rank: healthy ? 0 : RANK[m.state],
    });
  }
  out.sort((a, b) => a.rank - b.rank || Number(b.member === self) - Number(a.member === self) || a.member.localeCompare(b.member));
  return out.map(({ rank: _rank, ...v }) => v);
}

/** The etcd voters' client URLs, healthy first: what an etcd client of this member should try, in order. */
export function etcdClientUrls(ring: CensusSource): string[] {
  return etcdVoters(ring).map((v) => v.clientUrl);
}
