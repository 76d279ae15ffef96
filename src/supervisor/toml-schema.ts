import { parse as parseToml, TomlError } from 'smol-toml';

/**
 * A small declarative schema for the TOML files operators write. One
 * definition gives validation (unknown keys and wrong types are errors that
 * name the file and line), defaults, and the documentation of every key.
 */
export type FieldSpec =
  | { type: 'string'; doc: string; default?: string; enum?: readonly string[]; check?: (v: string) => string | undefined }
  | { type: 'integer'; doc: string; default?: number; min?: number; max?: number }
  | { type: 'boolean'; doc: string; default?: boolean }
  | { type: 'string[]'; doc: string; default?: string[]; check?: (v: string) => string | undefined }
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

/**
 * Validates `data` against `schema` and fills defaults. Throws the first
 * problem as a ConfigError naming the line of the offending key.
 */
export function validate(data: TomlTable, schema: Schema, text: string, file: string): TomlTable {
  const lines = keyLines(text);
  const fail = (path: string[], reason: string): never => {
    throw new ConfigError(file, lines.get(path.join('.')), reason);
  };
  const walk = (obj: TomlTable, spec: Schema, path: string[]): TomlTable => {
    const out: TomlTable = {};
    for (const key of Object.keys(obj)) {
      if (!(key in spec)) {
        const known = Object.keys(spec).join(', ');
        fail([...path, key], `unknown key "${[...path, key].join('.')}"${known ? ` (known here: ${known})` : ''}`);
      }
    }
    for (const [key, field] of Object.entries(spec)) {
      const here = [...path, key];
      const name = here.join('.');
      const value = obj[key];
      if (field.type === 'table') {
        if (value !== undefined && !isTable(value)) fail(here, `"${name}" must be a table`);
        out[key] = walk((value as TomlTable | undefined) ?? {}, field.fields, here);
        continue;
      }
      if (value === undefined) {
        if ('default' in field && field.default !== undefined) out[key] = field.default;
        continue;
      }
      out[key] = checkValue(field, value, name, (reason) => fail(here, reason));
    }
    return out;
  };
  return walk(data, schema, []);
}

function checkValue(field: FieldSpec, value: unknown, name: string, fail: (reason: string) => never): unknown {
  switch (field.type) {
    case 'string': {
      if (typeof value !== 'string') fail(`"${name}" must be a string, got ${describe(value)}`);
      const s = value as string;
      if (field.enum && !field.enum.includes(s)) fail(`"${name}" must be one of ${field.enum.join(', ')}, got "${s}"`);
      const problem = field.check?.(s);
      if (problem) fail(`"${name}": ${problem}`);
      return s;
    }
    case 'integer': {
      if (typeof value !== 'number' || !Number.isInteger(value)) fail(`"${name}" must be an integer, got ${describe(value)}`);
      const n = value as number;
      if (field.min !== undefined && n < field.min) fail(`"${name}" must be at least ${field.min}, got ${n}`);
      if (field.max !== undefined && n > field.max) fail(`"${name}" must be at most ${field.max}, got ${n}`);
      return n;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail(`"${name}" must be true or false, got ${describe(value)}`);
      return value;
    case 'string[]': {
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) fail(`"${name}" must be a list of strings, got ${describe(value)}`);
      for (const s of value as string[]) {
        const problem = field.check?.(s);
        if (problem) fail(`"${name}": ${problem}`);
      }
      return value;
    }
    case 'any-table':
      if (!isTable(value)) fail(`"${name}" must be a table`);
      return value;
    case 'table':
      return value;
  }
}

function isTable(v: unknown): v is TomlTable {
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
    const type = field.type === 'string' && field.enum ? field.enum.map((e) => `\`${e}\``).join(' \\| ') : field.type;
    rows.push(`| \`${name}\` | ${type} | ${def} | ${field.doc} |`);
  }
  return rows;
}
