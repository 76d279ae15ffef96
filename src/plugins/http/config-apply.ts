import type { FastifyPluginAsync } from 'fastify';
import { ConfigError, parseTomlFile } from '../../supervisor/toml-schema.js';
import { ConfigRefused } from '../../supervisor/service.js';
import type { Supervisor } from '../../supervisor/supervisor.js';

export interface ConfigPublisher {
  /** Gossips the document; false when the ring already holds this or a newer version. */
  publish(serviceGroup: string, version: number, toml: string): boolean;
}

const body = {
  type: 'object',
  required: ['service_group', 'version', 'toml'],
  additionalProperties: false,
  properties: {
    service_group: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}\\.[a-z0-9][a-z0-9_-]{0,62}$' },
    version: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    toml: { type: 'string', maxLength: 256 * 1024 },
  },
} as const;

/**
 * `POST /config`: `hasup config apply SVC.GROUP VERSION FILE`. The document
 * is validated here (TOML syntax, known keys and types, the service's own
 * check) before it is gossiped; a version that is not higher than the one in
 * force is refused with 409. The token check is the server's.
 */
export const configApplyRoutes: FastifyPluginAsync<{ supervisor: Pick<Supervisor, 'checkConfig' | 'applyConfig' | 'configInForce'>; ring: ConfigPublisher }> = async (app, { supervisor, ring }) => {
  app.get<{ Params: { service_group: string } }>(
    '/config/:service_group',
    {
      schema: {
        params: { type: 'object', required: ['service_group'], properties: { service_group: body.properties.service_group } },
        description: 'hasup config show: the config document applied to SVC.GROUP through the ring, as this member holds it (version 0 and an empty document when none was).',
      },
    },
    async (req) => {
      const inForce = supervisor.configInForce(req.params.service_group);
      return { service_group: req.params.service_group, version: inForce?.version ?? 0, data: inForce?.data ?? {} };
    },
  );

  app.post<{ Body: { service_group: string; version: number; toml: string } }>('/config', { schema: { body, description: 'hasup config apply: validate a TOML document for SVC.GROUP, gossip it, apply it here.' } }, async (req, reply) => {
    const { service_group: serviceGroup, version, toml } = req.body;
    let data;
    try {
      data = parseTomlFile(toml, 'document');
    } catch (err) {
      return reply.code(400).send({ error: (err as ConfigError).message });
    }
    try {
      await supervisor.checkConfig(serviceGroup, { version, data });
    } catch (err) {
      const message = (err as Error).message;
      return reply.code(/not newer/.test(message) ? 409 : err instanceof ConfigRefused ? 422 : 500).send({ error: message });
    }
    if (!ring.publish(serviceGroup, version, toml)) {
      return reply.code(409).send({ error: `the ring already holds version ${version} or newer of ${serviceGroup}` });
    }
    try {
      const outcome = await supervisor.applyConfig(serviceGroup, { version, data });
      return { service_group: serviceGroup, version, outcome };
    } catch (err) {
      return reply.code(422).send({ error: (err as Error).message, gossiped: true });
    }
  });
};
