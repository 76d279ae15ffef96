import type { FastifyPluginAsync } from 'fastify';
import type { Memberlist, MemberView } from '../../gossip/index.js';

/**
 * `/butterfly`: the raw gossip state of this member (Habitat's name for it):
 * every member with its state and incarnation, the rumor store, and the
 * ring's traffic counters.
 */
export const butterflyRoutes: FastifyPluginAsync<{ ring: Memberlist }> = async (app, { ring }) => {
  app.get('/butterfly', async () => {
    const self = ring.self();
    return {
      self: viewMember(self),
      members: ring.members().map(viewMember),
      rumors: ring.rumors().map((r) => ({
        kind: r.kind,
        key: r.key,
        version: r.version,
        origin: r.originId,
        payload: Buffer.from(r.payload ?? new Uint8Array()).toString('base64'),
      })),
      stats: ring.stats(),
    };
  });
};

function viewMember(m: MemberView) {
  return {
    id: m.id,
    address: `${m.addr}:${m.port}`,
    state: m.state,
    incarnation: m.incarnation,
    since_ms: m.since,
    clock_offset_ms: m.clockOffsetMs ?? null,
    rtt_ms: m.rttMs ?? null,
  };
}
