import { parse as parseToml, TomlError } from 'smol-toml';

/**
 * The one way hasup checks configuration: the node's hasup.toml, plan
 * manifests, the layers of a service's config (plan defaults < the node's
 * [service.X] table < `config apply`) and the HA settings inside them. One
 * definition gives validation (unknown keys and wrong types are problems
 * that name the key and the reason, never silently defaulted), defaults,
 * and the documentation of every key. A schema for a service's config is
 * derived from its plan's default.toml (schemaOfDefaults): a key's type is
 * its default's.
 */
export type FieldSpec =
  | { type: 'string'; doc: string; default?: string; enum?: readonly string[]; check?: (v: string) => string | undefined }
  | { type: 'integer'; doc: string; default?: number; min?: number; max?: number }
  /** Any finite number, whole or not (TOML writes 1 and 0.5 differently; a duration may be either). */
  | { type: 'number'; doc: string; default?: number; min?: number; max?: number }
  | { type: 'boolean'; doc: string; default?: boolean }
  /** true, false or one of `words` (synchronous_mode = "auto"). */
  | { type: 'boolean-or'; doc: string; words: readonly string[]; default?: boolean | string }
  | { type: 'string[]'; doc: string; default?: string[]; check?: (v: string) => string | undefined }
  /** A list of anything (a plan default that is a list). */
  | { type: 'list'; doc: string; default?: unknown[] }
  | { type: 'table'; doc: string; fields: Schema }
  /** Free-form table (e.g. a service's own config layer), validated elsewhere. */
  | { type: 'any-table'; doc: string };

export type Schema = Record<string, FieldSpec>;

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`${file}${line !== undefined ? `:${line}` : ''}: ${reason}`);
  }
}

export type TomlTable = Record<string, unknown>;

/** Parses TOML text, turning syntax errors into ConfigError with the line. */
export function parseTomlFile(text: string, file: string): TomlTable {
  try {
    return parseToml(text) as TomlTable;
  } catch (err) {
    if (err instanceof TomlError) throw new ConfigError(file, err.line, err.message.split('\n')[0]!);
    throw new ConfigError(file, undefined, (err as Error).message);
  }
}

/** One thing wrong with a configuration: where (the key's path) and why (naming the key). */
export interface Problem {
  path: string[];
  reason: string;
}

export interface CheckOptions {
  /** Fill in the schema's defaults for keys not given (a whole file); off for a partial layer. */
  fill?: boolean;
  /** Where `data` sits in a larger document, for the names in the reasons (e.g. ['ha']). */
  at?: string[];
}

/**
 * Checks `data` against `schema`: every problem, in document order (a
 * table's unknown keys, then its keys in schema order). The value holds the
 * keys that passed, and the defaults when `fill` is set.
 */
export function checkTable(data: TomlTable, schema: Schema, opts: CheckOptions = {}): { value: TomlTable; problems: Problem[] } {
  const problems: Problem[] = [];
  const walk = (obj: TomlTable, spec: Schema, path: string[]): TomlTable => {
    const out: TomlTable = {};
    for (const key of Object.keys(obj)) {
      if (!Object.hasOwn(spec, key)) {
        const known = Object.keys(spec).join(', ');
        problems.push({ path: [...path, key], reason: `unknown key "${[...path, key].join('.')}"${known ? ` (known here: ${known})` : ''}` });
      }
    }
    for (const [key, field] of Object.entries(spec)) {
      const here = [...path, key];
      const value = obj[key];
      if (field.type === 'table') {
        if (value !== undefined && !isTable(value)) {
          problems.push({ path: here, reason: `"${here.join('.')}" must be a table` });
          continue;
        }
        if (value !== undefined || opts.fill) out[key] = walk((value as TomlTable | undefined) ?? {}, field.fields, here);
        continue;
      }
      if (value === undefined) {
        if (opts.fill && 'default' in field && field.default !== undefined) out[key] = field.default;
        continue;
      }
      const reason = valueProblem(field, value, here.join('.'));
      if (reason) problems.push({ path: here, reason });
      else out[key] = value;
    }
    return out;
  };
  const value = walk(data, schema, opts.at ?? []);
  return { value, problems };
}

/**
 * Validates a whole file against `schema` and fills defaults. Throws the
 * first problem as a ConfigError naming the line of the offending key.
 */
export function validate(data: TomlTable, schema: Schema, text: string, file: string): TomlTable {
  const { value, problems } = checkTable(data, schema, { fill: true });
  const first = problems[0];
  if (first) throw new ConfigError(file, keyLines(text).get(first.path.join('.')), first.reason);
  return value;
}

/**
 * The schema a plan's default.toml implies: each key takes values of its
 * default's type; an empty table is open (free-form settings); a default of
 * "auto" also takes true or false.
 */
export function schemaOfDefaults(defaults: TomlTable): Schema {
  const cached = derivedSchemas.get(defaults);
  if (cached) return cached;
  const schema: Schema = {};
  for (const [key, value] of Object.entries(defaults)) {
    const doc = '';
    if (isTable(value)) schema[key] = Object.keys(value).length === 0 ? { type: 'any-table', doc } : { type: 'table', doc, fields: schemaOfDefaults(value) };
    else if (Array.isArray(value)) schema[key] = { type: 'list', doc };
    else if (typeof value === 'number') schema[key] = { type: 'number', doc };
    else if (typeof value === 'boolean') schema[key] = { type: 'boolean', doc };
    else if (value === 'auto') schema[key] = { type: 'boolean-or', doc, words: ['auto'] };
    else if (typeof value === 'string') schema[key] = { type: 'string', doc };
    else throw new Error(`default "${key}": a ${describe(value)} cannot be a setting's default`);
  }
  derivedSchemas.set(defaults, schema);
  return schema;
}
const derivedSchemas = new WeakMap<TomlTable, Schema>();

/**
 * `read` kept per config object: settings read from a merged service config
 * on every request or loop turn are checked once per config (a reload
 * merges a new object; merged configs are never changed in place).
 */
export function perConfig<T>(read: (cfg: TomlTable) => T): (cfg: TomlTable) => T {
  const known = new WeakMap<TomlTable, T>();
  return (cfg) => {
    if (known.has(cfg)) return known.get(cfg) as T;
    const value = read(cfg);
    known.set(cfg, value);
    return value;
  };
}

/** What is wrong with one value, naming the key; undefined when it fits. */
function valueProblem(field: FieldSpec, value: unknown, name: string): string | undefined {
  const wrong = (want: string) => `"${name}" must be ${want}, got ${describe(value)}`;
  switch (field.type) {
    case 'string': {
      if (typeof value !== 'string') return wrong('a string');
      if (field.enum && !field.enum.includes(value)) return `"${name}" must be one of ${field.enum.join(', ')}, got "${value}"`;
      const problem = field.check?.(value);
      return problem ? `"${name}": ${problem}` : undefined;
    }
    case 'integer':
    case 'number': {
      const whole = field.type === 'integer';
      if (typeof value !== 'number' || !Number.isFinite(value) || (whole && !Number.isInteger(value))) return wrong(whole ? 'an integer' : 'a number');
      if (field.min !== undefined && value < field.min) return `"${name}" must be at least ${field.min}, got ${value}`;
      if (field.max !== undefined && value > field.max) return `"${name}" must be at most ${field.max}, got ${value}`;
      return undefined;
    }
    case 'boolean':
      return typeof value === 'boolean' ? undefined : wrong('true or false');
    case 'boolean-or':
      return typeof value === 'boolean' || (typeof value === 'string' && field.words.includes(value)) ? undefined : wrong(`true, false or ${field.words.map((w) => `"${w}"`).join(', ')}`);
    case 'string[]': {
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) return wrong('a list of strings');
      for (const s of value as string[]) {
        const problem = field.check?.(s);
        if (problem) return `"${name}": ${problem}`;
      }
      return undefined;
    }
    case 'list':
      return Array.isArray(value) ? undefined : wrong('a list');
    case 'any-table':
      return isTable(value) ? undefined : `"${name}" must be a table`;
    case 'table':
      return undefined;
  }
}

/** A TOML table: a plain object, not a list or a date. */
export function isTable(v: unknown): v is TomlTable {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (isTable(v)) return 'a table';
  return `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * Maps dotted key paths to the 1-based line that sets them, following table
 * headers. Good enough for error messages; the parser itself is smol-toml.
 */
export function keyLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  let table: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    const header = /^\[\[?\s*([^\]]+?)\s*\]\]?/.exec(line);
    if (header) {
      table = splitKey(header[1]!);
      for (let n = 1; n <= table.length; n++) {
        const path = table.slice(0, n).join('.');
        if (!out.has(path)) out.set(path, i + 1);
      }
      return;
    }
    const assign = /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=/.exec(line);
    if (assign) {
      const key = [...table, ...splitKey(assign[1]!)];
      for (let n = table.length + 1; n <= key.length; n++) {
        const path = key.slice(0, n).join('.');
        if (!out.has(path)) out.set(path, i + 1);
      }
    }
  });
  return out;
}

function splitKey(key: string): string[] {
  return (key.match(/"[^"]*"|'[^']*'|[^.\s]+/g) ?? []).map((k) => k.replace(/^["']|["']$/g, ''));
}

/** Renders the schema as a markdown reference table (kept in docs/). */
export function documentSchema(schema: Schema, prefix: string[] = []): string[] {
  const rows: string[] = [];
  for (const [key, field] of Object.entries(schema)) {
    const name = [...prefix, key].join('.');
    if (field.type === 'table') {
      rows.push(...documentSchema(field.fields, [...prefix, key]));
      continue;
    }
    const def = 'default' in field && field.default !== undefined ? `\`${JSON.stringify(field.default)}\`` : '';
    const type =
      field.type === 'string' && field.enum
        ? field.enum.map((e) => `\`${e}\``).join(' \\| ')
        : field.type === 'boolean-or'
          ? ['true', 'false', ...field.words.map((w) => `\`"${w}"\``)].join(' \\| ')
          : field.type;
    rows.push(`| \`${name}\` | ${type} | ${def} | ${field.doc} |`);
  }
  return rows;
}
