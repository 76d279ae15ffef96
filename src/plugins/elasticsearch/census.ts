import type { MemberStateName } from '../../gossip/member-state.js';
import type { Memberlist } from '../../gossip/memberlist.js';
import { parseServiceRumor, parseServiceRumorKey, RUMOR_SERVICE } from '../../supervisor/service-rumor.js';
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
export type CensusSource = Pick<Memberlist, 'members' | 'rumors' | 'self'>;

export const ELASTICSEARCH_SERVICE = 'elasticsearch';

const SEED_STATES: ReadonlySet<MemberStateName> = new Set(['alive', 'suspect', 'dead']);

/** This node (from its own config, which is fresher than its rumor) and every other seed in the census, by name. */
export function censusNodes(ring: CensusSource, self: ElasticsearchNode): ElasticsearchNode[] {
  const members = new Map(ring.members().map((m) => [m.id, m]));
  const nodes = new Map<string, ElasticsearchNode>([[self.name, self]]);
  for (const r of ring.rumors(RUMOR_SERVICE)) {
    const key = parseServiceRumorKey(r.key);
    if (!key || key.service !== ELASTICSEARCH_SERVICE || nodes.has(key.member)) continue;
    const m = members.get(key.member);
    if (!m || !SEED_STATES.has(m.state)) continue;
    const port = parseServiceRumor(r.payload)?.ports?.transport_port;
    if (port === undefined) continue;
    nodes.set(m.id, { name: m.id, host: m.addr, transportPort: port });
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
