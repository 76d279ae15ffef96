import { formatHostPort, type MemberStateName } from '../../gossip/index.js';
import { serviceMembers, type CensusSource } from '../../supervisor/rumors/service-members.js';

/**
 * The other members' Elasticsearch nodes, from the gossip census: every
 * member whose service rumor says it runs elasticsearch, reached at its
 * gossip address on the http_port the rumor names. The shipper fails over
 * to these, in this order, when the local node (and any configured URL)
 * does not answer: alive members with a healthy node first, then alive ones,
 * then suspect ones; dead, left and departed members are left out.
 * `scheme`: https when Elasticsearch security is on (access.ts); the whole
 * cluster agrees on it, so this member's setting stands for every node.
 */
const FAILOVER_STATES: ReadonlySet<MemberStateName> = new Set(['alive', 'suspect']);

export function elasticsearchPeerUrls(ring: CensusSource, scheme: 'http' | 'https' = 'http'): string[] {
  return serviceMembers(ring, 'elasticsearch', 'http_port', FAILOVER_STATES)
    .filter((m) => !m.self)
    .map((m) => `${scheme}://${formatHostPort(m.addr, m.port)}`);
}
