import type { FastifyPluginAsync } from 'fastify';
import { ConfigRefused } from '../../supervisor/service.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import { bearerAuth } from './auth.js';

const nameParam = {
  type: 'object',
  required: ['svc'],
  properties: { svc: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' } },
} as const;

const actions = ['load', 'unload', 'start', 'stop', 'restart'] as const;

/**
 * The member's services: `GET /services` (the data behind `hasup status`)
 * and the operations behind `hasup svc load|unload|start|stop` and restarts.
 */
export const servicesRoutes: FastifyPluginAsync<{ supervisor: Supervisor; token: string }> = async (app, { supervisor, token }) => {
  const auth = bearerAuth(token);

  app.get('/services', { onRequest: auth }, async () => ({ services: supervisor.list() }));

  for (const action of actions) {
    app.post<{ Params: { svc: string } }>(`/services/:svc/${action}`, { onRequest: auth, schema: { params: nameParam } }, async (req, reply) => {
      const { svc } = req.params;
      try {
        switch (action) {
          case 'load':
            return { service: await supervisor.load(svc) };
          case 'unload':
            await supervisor.unload(svc);
            return { unloaded: svc };
          case 'start':
            return { service: await supervisor.startService(svc) };
          case 'stop':
            return { service: await supervisor.stopService(svc) };
          case 'restart':
            return { service: await supervisor.restartService(svc) };
        }
      } catch (err) {
        const message = (err as Error).message;
        const code = /not loaded|no plan named/.test(message) ? 404 : /already loaded/.test(message) ? 409 : err instanceof ConfigRefused ? 422 : 500;
        return reply.code(code).send({ error: message });
      }
    });
  }
};
