import { isIP } from 'node:net';
import type { Memberlist } from '../../gossip/memberlist.js';
import { parseServiceRumor, parseServiceRumorKey, RUMOR_SERVICE } from '../../supervisor/service-rumor.js';

/**
 * The other members' Elasticsearch nodes, from the gossip census: every
 * member whose service rumor says it runs elasticsearch, reached at its
 * gossip address on the http_port the rumor names. The shipper fails over
 * to these, in this order, when the local node (and any configured URL)
 * does not answer: alive members with a healthy node first, then alive ones,
 * then suspect ones; dead, left and departed members are left out.
 */
export type CensusSource = Pick<Memberlist, 'members' | 'rumors' | 'self'>;

const RANK: Record<string, number> = { alive: 1, suspect: 2 };

export function elasticsearchPeerUrls(ring: CensusSource): string[] {
  const self = ring.self().id;
  const members = new Map(ring.members().map((m) => [m.id, m]));
  const found: Array<{ url: string; rank: number; member: string }> = [];
  const seen = new Set<string>();
  for (const r of ring.rumors(RUMOR_SERVICE)) {
    const key = parseServiceRumorKey(r.key);
    if (!key || key.service !== 'elasticsearch' || key.member === self || seen.has(key.member)) continue;
    const m = members.get(key.member);
    const rank = m ? RANK[m.state] : undefined;
    const p = parseServiceRumor(r.payload);
    const port = p?.ports?.http_port;
    if (!m || rank === undefined || !p || port === undefined) continue;
    seen.add(key.member);
    const healthy = m.state === 'alive' && p.state === 'running' && (p.health === 'ok' || p.health === 'warning');
    found.push({ url: `http://${isIP(m.addr) === 6 ? `[${m.addr}]` : m.addr}:${port}`, rank: healthy ? 0 : rank, member: m.id });
  }
  found.sort((a, b) => a.rank - b.rank || a.member.localeCompare(b.member));
  return found.map((f) => f.url);
}
