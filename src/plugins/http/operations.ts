import type { FastifyPluginAsync } from 'fastify';

const switchoverBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    to: { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'member id of the new leader (default: the most up-to-date healthy replica)' },
  },
} as const;

/**
 * Cluster operations that need the HA election. Until it exists the answer
 * is an honest 501, never a pretended success: a caller that scripted a
 * switchover must learn that nothing moved.
 */
export const operationRoutes: FastifyPluginAsync = async (app) => {
  app.post('/switchover', { schema: { body: switchoverBody, description: 'Planned leader change (needs the HA election; 501 until then).' } }, async (_req, reply) =>
    reply.code(501).send({ error: 'switchover needs the HA election, not available yet' }),
  );
};
