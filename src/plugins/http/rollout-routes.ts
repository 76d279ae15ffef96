import type { FastifyPluginAsync } from 'fastify';
import { ROLLOUT_LINE_MAX, type RolloutProgress } from '../../supervisor/rumors/rollout.js';

const progressBody = {
  type: 'object',
  required: ['id', 'command', 'service_group', 'to', 'line', 'state'],
  additionalProperties: false,
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' },
    command: { type: 'string', enum: ['rolling-restart', 'upgrade'] },
    service_group: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}\\.[a-z0-9][a-z0-9_-]{0,62}$' },
    to: { type: ['string', 'null'], maxLength: 4096 },
    line: { type: 'string', maxLength: ROLLOUT_LINE_MAX * 4 },
    state: { type: 'string', enum: ['running', 'done', 'failed'] },
  },
} as const;

/**
 * `POST /rollouts/progress`: a line of a rollout this member's operator
 * runs (hasup rolling-restart, hasup upgrade), gossiped to every member
 * (the rollout rumor) and shown on their /events.
 */
export const rolloutRoutes: FastifyPluginAsync<{ publish: (p: RolloutProgress) => void }> = async (app, { publish }) => {
  app.post<{ Body: Omit<RolloutProgress, 'at'> }>(
    '/rollouts/progress',
    { schema: { body: progressBody, description: "A line of a rollout's progress (hasup rolling-restart, hasup upgrade), gossiped to every member's /events as a rollout event." } },
    async (req, reply) => {
      publish({ ...req.body, at: Date.now() });
      return reply.code(202).send({ published: true });
    },
  );
};
