import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { UpgradeRefused } from '../../supervisor/driver.js';
import { ConfigRefused, type ServiceStatus } from '../../supervisor/service.js';
import type { Supervisor } from '../../supervisor/supervisor.js';
import { redactSecrets } from './redact.js';

const SVC = { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$', description: 'service (plan) name' } as const;
const GROUP = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]{0,62}$', description: 'service group' } as const;
const nameParam = { type: 'object', required: ['svc'], additionalProperties: false, properties: { svc: SVC } } as const;
const groupParams = { type: 'object', required: ['svc', 'group'], additionalProperties: false, properties: { svc: SVC, group: GROUP } } as const;

const actions = ['load', 'unload', 'start', 'stop', 'restart'] as const;

type Lookup = Pick<Supervisor, 'list' | 'get' | 'load' | 'unload' | 'startService' | 'stopService' | 'restartService' | 'checkUpgrade' | 'upgradeService' | 'revertUpgrade'>;

const upgradeBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    to: { type: 'string', minLength: 1, maxLength: 4096, description: 'a version or an absolute path, as the service takes it' },
    check: { type: 'boolean', description: 'only check what `to` names here; change nothing' },
    revert: { type: 'boolean', description: 'back to what ran before the last upgrade on this member' },
  },
} as const;

/**
 * The member's services: `GET /services` (the data behind `hasup status`),
 * one service group's status, health and merged config, and the operations
 * behind `hasup svc load|unload|start|stop|restart`. The token check is the
 * server's (every route here needs it).
 */
export const servicesRoutes: FastifyPluginAsync<{ supervisor: Lookup }> = async (app, { supervisor }) => {
  const find = (svc: string, group: string) => {
    const s = supervisor.get(svc);
    return s && s.group === group ? s : undefined;
  };
  const notFound = (reply: FastifyReply, svc: string, group: string) =>
    reply.code(404).send({ error: `no service group ${svc}.${group} on this member (loaded: ${supervisor.list().map((s) => `${s.name}.${s.group}`).join(', ') || 'none'})` });

  app.get('/services', { schema: { description: 'Every service of this member: state, pid, time in state, health.' } }, async () => ({ services: supervisor.list() }));

  app.get<{ Params: { svc: string; group: string } }>('/services/:svc/:group', { schema: { params: groupParams, description: 'One service group on this member.' } }, async (req, reply) => {
    const s = find(req.params.svc, req.params.group);
    return s ? { service: s.status() } : notFound(reply, req.params.svc, req.params.group);
  });

  app.get<{ Params: { svc: string; group: string } }>(
    '/services/:svc/:group/health',
    { schema: { params: groupParams, description: "The service's last health check: 200 for OK and WARNING, 503 for CRITICAL and UNKNOWN." } },
    async (req, reply) => {
      const s = find(req.params.svc, req.params.group);
      if (!s) return notFound(reply, req.params.svc, req.params.group);
      const st: ServiceStatus = s.status();
      const healthy = st.health === 'ok' || st.health === 'warning';
      return reply.code(healthy ? 200 : 503).send({ status: st.health.toUpperCase(), message: st.healthMessage ?? null, since: st.healthSince, state: st.state, details: st.details ?? {} });
    },
  );

  app.get<{ Params: { svc: string; group: string } }>(
    '/services/:svc/:group/config',
    { schema: { params: groupParams, description: 'The merged config in force (plan defaults < hasup.toml < config apply), secrets redacted.' } },
    async (req, reply) => {
      const s = find(req.params.svc, req.params.group);
      if (!s) return notFound(reply, req.params.svc, req.params.group);
      return { service_group: `${s.name}.${s.group}`, version: s.status().configVersion, config: redactSecrets(s.config()) };
    },
  );

  app.post<{ Params: { svc: string; group: string } }>(
    '/services/:svc/:group/restart',
    { schema: { params: groupParams, description: 'Restart one service group on this member.' } },
    async (req, reply) => {
      if (!find(req.params.svc, req.params.group)) return notFound(reply, req.params.svc, req.params.group);
      return run(reply, async () => ({ service: await supervisor.restartService(req.params.svc) }));
    },
  );

  app.post<{ Params: { svc: string; group: string }; Body: { to?: string; check?: boolean; revert?: boolean } }>(
    '/services/:svc/:group/upgrade',
    {
      schema: {
        params: groupParams,
        body: upgradeBody,
        description: 'hasup upgrade on this member: { to, check: true } checks what `to` names (200 { version }); { to } switches the service to it and restarts it; { revert: true } goes back to what ran before. 422 when refused, nothing changed.',
      },
    },
    async (req, reply) => {
      const { svc, group } = req.params;
      if (!find(svc, group)) return notFound(reply, svc, group);
      const { to, check, revert } = req.body ?? {};
      if (revert === true) {
        if (to !== undefined || check === true) return reply.code(400).send({ error: 'revert takes neither to nor check' });
        return run(reply, async () => ({ service: await supervisor.revertUpgrade(svc) }));
      }
      if (to === undefined) return reply.code(400).send({ error: 'to (a version or a path) is required' });
      if (check === true) return run(reply, async () => ({ version: (await supervisor.checkUpgrade(svc, to)).version }));
      return run(reply, async () => ({ service: await supervisor.upgradeService(svc, to) }));
    },
  );

  for (const action of actions) {
    app.post<{ Params: { svc: string } }>(`/services/:svc/${action}`, { schema: { params: nameParam, description: `hasup svc ${action}` } }, async (req, reply) => {
      const { svc } = req.params;
      return run(reply, async () => {
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
      });
    });
  }
};

async function run(reply: FastifyReply, work: () => Promise<object>) {
  try {
    return await work();
  } catch (err) {
    const message = (err as Error).message;
    const code = /not loaded|no plan named/.test(message) ? 404 : /already loaded|no upgrade of .* to undo/.test(message) ? 409 : err instanceof ConfigRefused || err instanceof UpgradeRefused ? 422 : 500;
    return reply.code(code).send({ error: message });
  }
}
