import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import type { Logger } from '../../supervisor/log.js';

export interface HttpListen {
  host: string;
  port: number;
}

/**
 * The member's HTTP API. Each concern is an encapsulated fastify plugin
 * (routes + schemas + its own dependencies passed as options), so the
 * daemon composes exactly the routes it has the parts for.
 */
export async function createHttpServer(opts: {
  log: Logger;
  plugins: Array<{ plugin: FastifyPluginAsync<never>; options?: object }>;
}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.log.child({ component: 'http' }) as FastifyBaseLogger,
    disableRequestLogging: true,
    bodyLimit: 1024 * 1024,
  });
  for (const { plugin, options } of opts.plugins) {
    await app.register(plugin as FastifyPluginAsync<object>, options ?? {});
  }
  return app;
}

export async function listen(app: FastifyInstance, where: HttpListen): Promise<string> {
  try {
    return await app.listen({ host: where.host, port: where.port });
  } catch (err) {
    throw new Error(`cannot listen for HTTP on ${where.host}:${where.port}: ${(err as Error).message}`);
  }
}
