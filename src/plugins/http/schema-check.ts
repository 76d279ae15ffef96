import type { FastifySchemaCompiler, FastifySchemaValidationError, FastifySerializerCompiler, FastifyServerOptions } from 'fastify';

/**
 * Request validation and response serialisation for the API's routes,
 * without Ajv and fast-json-stringify. Both generate and compile code for
 * every schema and stay loaded for the life of the process: together about
 * an eighth of an idle member's memory, for a handful of small, fixed
 * schemas (path parameters, check query strings, the switchover body).
 *
 * The subset of JSON Schema checked here is what those schemas use: type
 * (one or a list), properties, required, additionalProperties: false,
 * pattern, enum, minLength/maxLength, minimum/maximum. A schema using any
 * other keyword is refused when its route is registered, so no schema can
 * quietly check less than it says. Errors have Ajv's shape (keyword,
 * instancePath, params, message), which the API's error handler words.
 */

/** Ajv's error shape, which Fastify passes on as `err.validation`. */
export type SchemaError = FastifySchemaValidationError;

type JsonType = 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'null' | 'array';

interface Schema {
  type?: JsonType | JsonType[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  pattern?: string;
  enum?: unknown[];
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
}

/** Keywords that only document (OpenAPI), besides the checked ones. */
const DOC_KEYWORDS = new Set(['description', 'title', 'examples', 'example', 'default', '$comment']);
const CHECKED_KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'pattern', 'enum', 'minLength', 'maxLength', 'minimum', 'maximum']);

export type Check = (data: unknown) => SchemaError | undefined;

/** Compiles a schema into a check; throws on a keyword outside the subset. */
export function compileSchema(schema: unknown, path = '#'): Check {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error(`schema ${path} must be an object`);
  for (const key of Object.keys(schema)) {
    if (!CHECKED_KEYWORDS.has(key) && !DOC_KEYWORDS.has(key)) throw new Error(`schema ${path}: keyword "${key}" is not supported by hasup's schema checker`);
  }
  const s = schema as Schema;
  const types = s.type === undefined ? undefined : Array.isArray(s.type) ? s.type : [s.type];
  const pattern = s.pattern === undefined ? undefined : new RegExp(s.pattern, 'u');
  const properties = Object.entries(s.properties ?? {}).map(([name, sub]) => [name, compileSchema(sub, `${path}/properties/${name}`)] as const);
  const known = new Set(Object.keys(s.properties ?? {}));
  const required = s.required ?? [];
  const fail = (keyword: string, at: string, params: Record<string, unknown>, message: string): SchemaError => ({ keyword, instancePath: at, schemaPath: `${path}/${keyword}`, params, message });

  const check = (data: unknown, at: string): SchemaError | undefined => {
    if (types && !types.some((t) => hasType(data, t))) return fail('type', at, { type: types.join(',') }, `must be ${types.join(',')}`);
    if (s.enum && !s.enum.some((v) => v === data)) return fail('enum', at, { allowedValues: s.enum }, `must be one of ${s.enum.map((v) => JSON.stringify(v)).join(', ')}`);
    if (typeof data === 'string') {
      const length = [...data].length;
      if (s.minLength !== undefined && length < s.minLength) return fail('minLength', at, { limit: s.minLength }, `must NOT have fewer than ${s.minLength} characters`);
      if (s.maxLength !== undefined && length > s.maxLength) return fail('maxLength', at, { limit: s.maxLength }, `must NOT have more than ${s.maxLength} characters`);
      if (pattern && !pattern.test(data)) return fail('pattern', at, { pattern: s.pattern }, `must match pattern "${s.pattern}"`);
    }
    if (typeof data === 'number') {
      if (s.minimum !== undefined && data < s.minimum) return fail('minimum', at, { limit: s.minimum }, `must be >= ${s.minimum}`);
      if (s.maximum !== undefined && data > s.maximum) return fail('maximum', at, { limit: s.maximum }, `must be <= ${s.maximum}`);
    }
    if (typeof data === 'object' && data !== null && !Array.isArray(data)) {
      const record = data as Record<string, unknown>;
      for (const name of required) {
        if (!Object.hasOwn(record, name)) return fail('required', at, { missingProperty: name }, `must have required property '${name}'`);
      }
      if (s.additionalProperties === false) {
        for (const name of Object.keys(record)) {
          if (!known.has(name)) return fail('additionalProperties', at, { additionalProperty: name }, 'must NOT have additional properties');
        }
      }
      for (const [name, sub] of properties) {
        if (!Object.hasOwn(record, name)) continue;
        const error = sub(record[name]);
        if (error) return { ...error, instancePath: `${at}/${name}${error.instancePath}` };
      }
    }
    return undefined;
  };
  return (data) => check(data, '');
}

function hasType(data: unknown, type: JsonType): boolean {
  switch (type) {
    case 'null':
      return data === null;
    case 'array':
      return Array.isArray(data);
    case 'object':
      return typeof data === 'object' && data !== null && !Array.isArray(data);
    case 'integer':
      return Number.isInteger(data);
    case 'number':
      return typeof data === 'number' && Number.isFinite(data);
    default:
      return typeof data === type;
  }
}

/**
 * Fastify's compiler factories (the `schemaController.compilersFactory`
 * option). A validator answers false and leaves its error in `.errors`,
 * as Ajv's do. Responses are plain JSON.stringify: a response schema
 * documents the answer, it does not filter it.
 */
const buildValidator = (): FastifySchemaCompiler<unknown> => (route) => {
  const check = compileSchema(route.schema);
  const validate = (data: unknown): boolean => {
    const error = check(data);
    validate.errors = error ? [error] : null;
    return error === undefined;
  };
  validate.errors = null as FastifySchemaValidationError[] | null;
  return validate;
};

const buildSerializer = (): FastifySerializerCompiler<unknown> => () => (data: unknown) => JSON.stringify(data);

/** Fastify types these factories after Ajv's; at run time a factory only has to return a schema compiler. */
export const schemaCompilers = { buildValidator, buildSerializer } as unknown as NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
