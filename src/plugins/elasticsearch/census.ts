import type { Memberlist } from '../../gossip/index.js';
import { serviceMembers, type CensusSource } from '../../supervisor/rumors/service-members.js';
import type { ElasticsearchNode } from './settings.js';

/**
 * The Elasticsearch nodes of the cluster, from the gossip census: every
 * member whose service rumor says it runs elasticsearch, reached at its
 * gossip address on the transport_port the rumor names (so an
 * Elasticsearch node must publish the member's own address: network_host
 * empty or equal to it).
 *
 * Alive, suspect and dead members are seeds: a dead one costs Elasticsearch
 * a refused connection, and gossip may be cut while the transport layer is
 * not. A member that left (stopped on purpose) or was departed is not: its
 * node is gone. The node's own state (running, stopped) does not matter
 * either: the address stays the same, and keeping it keeps the file still.
 */
export const ELASTICSEARCH_SERVICE = 'elasticsearch';

/** This node (from its own config, which is fresher than its rumor) and every other seed in the census, by name. */
export function censusNodes(ring: CensusSource, self: ElasticsearchNode): ElasticsearchNode[] {
  const nodes = new Map<string, ElasticsearchNode>([[self.name, self]]);
  for (const m of serviceMembers(ring, ELASTICSEARCH_SERVICE, 'transport_port')) {
    if (!nodes.has(m.member)) nodes.set(m.member, { name: m.member, host: m.addr, transportPort: m.port });
  }
  return [...nodes.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** Departed members: their Elasticsearch node, if it was a voter, leaves the voting configuration. */
export function departedMembers(ring: Pick<Memberlist, 'members'>): string[] {
  return ring
    .members()
    .filter((m) => m.state === 'departed')
    .map((m) => m.id)
    .sort();
}
