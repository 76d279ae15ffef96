import { readFileSync } from 'node:fs';
import websocket from '@fastify/websocket';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyPluginAsync, type FastifyRequest } from 'fastify';
import type { Logger } from '../../supervisor/log.js';
import { apiAuth } from './auth.js';
import { OpenApiDocument } from './openapi.js';
import { schemaCompilers } from './schema-check.js';
import type { SessionStore } from './sessions.js';

export interface HttpTls {
  /** PEM files. */
  cert: string;
  key: string;
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  clientCa?: string;
}

/** Which route classes answer without the bearer token (load balancers and Prometheus rarely carry one). */
export interface OpenAccess {
  checks: boolean;
  metrics: boolean;
}

export interface HttpListen {
  host: string;
  port: number;
  tls?: HttpTls;
  open?: OpenAccess;
}

/** Route classes, set in a route's `config.access`; anything unmarked needs a token or a console session. `public`: the console's page and login, which carry no data. */
export type RouteAccess = 'check' | 'metrics' | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * The member's HTTP API. Each concern is an encapsulated fastify plugin
 * (routes + schemas + its own dependencies passed as options), so the
 * daemon composes exactly the routes it has the parts for. Shared here:
 * TLS, the token check, strict validation with errors naming the field,
 * the body limit, and the OpenAPI description built from route schemas.
 */
export async function createHttpServer(opts: {
  log: Logger;
  token: string;
  /** The read-only token (auth.ts); absent where the secrets file predates it. */
  viewerToken?: string;
  /** The console's login sessions; absent: bearer tokens only. */
  sessions?: SessionStore;
  tls?: HttpTls;
  open?: OpenAccess;
  /** Told the duration of every answered request (metrics). */
  onResponse?: (req: FastifyRequest, statusCode: number, seconds: number) => void;
  plugins: Array<{ plugin: FastifyPluginAsync<never>; options?: object }>;
}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.log.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: BODY_LIMIT_BYTES,
    // Stopping the member must not wait on a client that keeps its connection open.
    forceCloseConnections: true,
    // hasup's own schema checker (unknown fields are errors, not silently dropped, so a typo is reported).
    schemaController: { compilersFactory: schemaCompilers },
    ...(opts.tls ? { https: httpsOptions(opts.tls) } : {}),
  }) as unknown as FastifyInstance;

  const openapi = new OpenApiDocument({ title: 'hasup member API', version: '1', description: 'Load-balancer checks, cluster views and operations of one hasup member.' });
  app.addHook('onRoute', openapi.onRoute);
  // Before the token hook: the websocket plugin's own onRequest hook must run first, or a
  // refused upgrade leaves its socket open.
  await app.register(websocket, { options: { maxPayload: 4096 } });
  const open = opts.open ?? { checks: true, metrics: true };
  const auth = apiAuth({ token: opts.token, viewerToken: opts.viewerToken, sessions: opts.sessions });
  app.addHook('onRequest', async (req, reply) => {
    const access = req.routeOptions.config?.access;
    if (access === 'check' && open.checks) return;
    if (access === 'metrics' && open.metrics) return;
    if (access === 'public') return;
    return auth(req, reply);
  });
  if (opts.onResponse) {
    const observe = opts.onResponse;
    app.addHook('onResponse', async (req, reply) => observe(req, reply.statusCode, reply.elapsedTime / 1000));
  }
  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err.validation) return reply.code(400).send({ error: describeValidation(err.validationContext ?? 'request', err.validation) });
    const status = err.statusCode ?? 500;
    if (status >= 400 && status < 500) return reply.code(status).send({ error: err.message });
    req.log.error({ err, route: req.routeOptions.url }, 'request failed');
    return reply.code(500).send({ error: 'internal error; see the supervisor log' });
  });
  app.setNotFoundHandler((req, reply) => reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` }));

  app.get('/openapi.json', { schema: { description: 'This description (OpenAPI 3), generated from the route schemas.' } }, async () => openapi.toJSON());

  for (const { plugin, options } of opts.plugins) {
    await app.register(plugin as FastifyPluginAsync<object>, options ?? {});
  }
  return app;
}

/** One sentence naming the field, e.g. `body/version must be integer` or `querystring: unknown field "lga"`. */
function describeValidation(context: string, errors: NonNullable<FastifyError['validation']>): string {
  const e = errors[0];
  if (!e) return `invalid ${context}`;
  const where = `${context}${e.instancePath}`;
  const params = e.params as Record<string, unknown>;
  if (e.keyword === 'additionalProperties') return `${where}: unknown field "${String(params.additionalProperty)}"`;
  if (e.keyword === 'required') return `${where}: missing field "${String(params.missingProperty)}"`;
  return `${where} ${e.message ?? 'is invalid'}`;
}

function httpsOptions(tls: HttpTls) {
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new Error(`cannot read the HTTP API TLS ${what} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  return {
    cert: read(tls.cert, 'certificate'),
    key: read(tls.key, 'key'),
    ...(tls.clientCa ? { ca: read(tls.clientCa, 'client CA'), requestCert: true, rejectUnauthorized: true } : {}),
  };
}

export async function listen(app: FastifyInstance, where: HttpListen): Promise<string> {
  try {
    return await app.listen({ host: where.host, port: where.port });
  } catch (err) {
    throw new Error(`cannot listen for HTTP on ${where.host}:${where.port}: ${(err as Error).message}`);
  }
}
