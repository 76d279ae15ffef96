import { formatHostPort, type MemberStateName } from '../../gossip/index.js';
import { serviceMembers, type CensusSource } from '../../supervisor/rumors/service-members.js';

/**
 * Where the etcd voters are, from the gossip census: every member that
 * publishes an etcd service rumor runs an etcd voting member (clients run
 * none), reached at its gossip address on the client port its rumor names,
 * over TLS (https) when this member's TLS is on (tls.ts).
 */
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

/**
 * Order of preference (serviceMembers'): healthy voters, then alive ones
 * whose etcd is not (yet) healthy, then suspect, then dead ones (gossip may
 * be cut while etcd is not). Left and departed members are out: their etcd
 * is stopped or removed. Within a rank this member comes first (no network
 * hop), then by id.
 */
export function etcdVoters(ring: CensusSource, scheme: 'http' | 'https' = 'http'): EtcdVoterEndpoint[] {
  return serviceMembers(ring, ETCD_SERVICE, 'client_port').map((m) => {
    const peerPort = m.ports.peer_port;
    return {
      member: m.member,
      memberState: m.memberState,
      clientUrl: `${scheme}://${formatHostPort(m.addr, m.port)}`,
      peerUrl: peerPort === undefined ? null : `${scheme}://${formatHostPort(m.addr, peerPort)}`,
      healthy: m.healthy,
    };
  });
}

/** The etcd voters' client URLs, healthy first: what an etcd client of this member should try, in order. */
export function etcdClientUrls(ring: CensusSource, scheme: 'http' | 'https' = 'http'): string[] {
  return etcdVoters(ring, scheme).map((v) => v.clientUrl);
}
