import type { FastifyPluginAsync } from 'fastify';
import { SwitchoverError } from '../../ha/index.js';
import type { HaOperations } from '../../ha/index.js';

const switchoverBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    to: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'member id of the new leader (default: the most up-to-date healthy replica)' },
  },
} as const;

/**
 * Cluster operations of the PostgreSQL election: planned switchover,
 * pause/resume of automatic failover, and the election's view of every
 * member. A member without the election (standalone, no etcd) answers an
 * honest 501, never a pretended success: a caller that scripted a
 * switchover must learn that nothing moved.
 */
export interface OperationDeps {
  ha?: HaOperations;
}

const NO_HA = { error: 'this member runs no HA election (no etcd endpoints: [cluster] etcd_endpoints, or a cluster formed by hasup cluster create)' };

export const operationRoutes: FastifyPluginAsync<OperationDeps> = async (app, deps) => {
  const ha = deps.ha;
  app.post<{ Body: { to?: string } | null }>(
    '/switchover',
    { schema: { body: switchoverBody, description: 'Planned leader change: the leader stops taking writes, waits until the target has all of its WAL, hands the leader key over; answers once the new leader runs. 409 when refused, 412 when the target cannot take over, 504 when no new leader came up in time.' } },
    async (req, reply) => {
      if (!ha) return reply.code(501).send(NO_HA);
      try {
        const r = await ha.switchover(req.body?.to ?? null);
        return { from: r.from, to: r.to, took_ms: r.tookMs };
      } catch (err) {
        if (err instanceof SwitchoverError) return reply.code(err.status).send({ error: err.message });
        return reply.code(503).send({ error: `switchover failed: ${(err as Error).message}` });
      }
    },
  );
  for (const [url, paused] of [
    ['/pause', true],
    ['/resume', false],
  ] as const) {
    app.post(url, { schema: { description: paused ? 'Pause automatic failover (maintenance): no member takes a vacant leader key until /resume.' : 'Resume automatic failover.' } }, async (_req, reply) => {
      if (!ha) return reply.code(501).send(NO_HA);
      try {
        await ha.setPaused(paused);
        return { paused };
      } catch (err) {
        return reply.code(503).send({ error: `cannot reach etcd: ${(err as Error).message}` });
      }
    });
  }
  app.get('/ha', { schema: { description: 'The PostgreSQL election as this member last read it from etcd: leader, timeline, pause, synchronous set, and every member\'s role, WAL position, lag and sync role; and this member\'s fence.' } }, async (_req, reply) => {
    if (!ha) return reply.code(501).send(NO_HA);
    return { ...ha.view(), fence: ha.fence() };
  });
};
