import type { RouteOptions } from 'fastify';

/**
 * GET /openapi.json: an OpenAPI 3 description built from the routes' own
 * schemas as they are registered (an onRoute hook), so the document cannot
 * drift from what the server checks. Fastify's automatic HEAD twin of every
 * GET route is left out; a route that lists HEAD itself (the checks) keeps it.
 */
export interface OpenApiInfo {
  title: string;
  version: string;
  description: string;
}

type JsonObject = Record<string, unknown>;

declare module 'fastify' {
  /** What a route's schema may say for the OpenAPI document besides what is checked. */
  interface FastifySchema {
    description?: string;
    /** [] for a route that needs no token (the load-balancer checks). */
    security?: unknown[];
  }
}

interface RouteSchema {
  description?: string;
  params?: JsonObject;
  querystring?: JsonObject;
  body?: JsonObject;
  response?: Record<string, JsonObject>;
  security?: unknown[];
}

export class OpenApiDocument {
  private readonly paths: Record<string, Record<string, JsonObject>> = {};

  constructor(private readonly info: OpenApiInfo) {}

  /** The onRoute hook. */
  readonly onRoute = (route: RouteOptions): void => {
    if (route.method === 'HEAD') return;
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map((m) => m.toLowerCase());
    const path = route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const operation = describe((route.schema ?? {}) as RouteSchema);
    const entry = (this.paths[path] ??= {});
    for (const method of methods) entry[method] = operation;
  };

  toJSON(): JsonObject {
    return {
      openapi: '3.1.0',
      info: this.info,
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      paths: this.paths,
    };
  }
}

function describe(schema: RouteSchema): JsonObject {
  const parameters = [...parametersOf(schema.params, 'path'), ...parametersOf(schema.querystring, 'query')];
  const responses: Record<string, JsonObject> = {};
  for (const [status, body] of Object.entries(schema.response ?? {})) {
    responses[status] = { description: String(body.description ?? `HTTP ${status}`), content: { 'application/json': { schema: body } } };
  }
  if (Object.keys(responses).length === 0) responses.default = { description: 'JSON answer' };
  return {
    ...(schema.description ? { description: schema.description } : {}),
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(schema.body ? { requestBody: { required: !nullable(schema.body), content: { 'application/json': { schema: schema.body } } } } : {}),
    ...(schema.security ? { security: schema.security } : {}),
    responses,
  };
}

function parametersOf(schema: JsonObject | undefined, where: 'path' | 'query'): JsonObject[] {
  const properties = (schema?.properties ?? {}) as Record<string, JsonObject>;
  const required = new Set((schema?.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return { name, in: where, required: where === 'path' || required.has(name), ...(description ? { description } : {}), schema: rest };
  });
}

function nullable(schema: JsonObject): boolean {
  return Array.isArray(schema.type) && schema.type.includes('null');
}
