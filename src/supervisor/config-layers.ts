import type { Plan } from './plan.js';
import type { TomlTable } from './toml-schema.js';

/**
 * Config layers, later wins: the plan's default.toml < the node's user config
 * < the gossiped `config apply` document. Every key of an upper layer must
 * exist in the defaults with the same type, so a typo is an error rather
 * than a setting that silently does nothing. An empty table in the defaults
 * is open: any keys may go under it (free-form extra settings). A setting
 * whose default is the string "auto" may also be set to true or false.
 */
export interface ConfigLayer {
  name: string;
  data: TomlTable;
}

export class LayerError extends Error {}

export function mergeLayers(defaults: TomlTable, layers: ConfigLayer[]): TomlTable {
  let merged = structuredClone(defaults);
  for (const layer of layers) merged = mergeInto(merged, layer.data, defaults, [], layer.name);
  return merged;
}

function mergeInto(base: TomlTable, upper: TomlTable, shape: TomlTable | undefined, path: string[], layer: string): TomlTable {
  const out: TomlTable = { ...base };
  const open = shape !== undefined && Object.keys(shape).length === 0;
  for (const [key, value] of Object.entries(upper)) {
    const here = [...path, key].join('.');
    const expected = shape?.[key];
    if (!open && shape !== undefined && !(key in shape)) throw new LayerError(`${layer}: unknown setting "${here}"`);
    if (!open && expected !== undefined && kind(expected) !== kind(value) && !(expected === 'auto' && typeof value === 'boolean')) {
      throw new LayerError(`${layer}: "${here}" must be ${kind(expected)}, got ${kind(value)}`);
    }
    if (kind(value) === 'a table') {
      out[key] = mergeInto((base[key] as TomlTable | undefined) ?? {}, value as TomlTable, open ? undefined : (expected as TomlTable | undefined), [...path, key], layer);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function kind(v: unknown): string {
  if (Array.isArray(v)) return 'a list';
  if (v instanceof Date) return 'a date';
  if (typeof v === 'object' && v !== null) return 'a table';
  if (typeof v === 'number') return 'a number';
  return `a ${typeof v}`;
}

/** Dotted paths whose values differ between two merged configs. */
export function changedKeys(before: TomlTable, after: TomlTable, path: string[] = []): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out: string[] = [];
  for (const key of keys) {
    const a = before[key];
    const b = after[key];
    const here = [...path, key];
    if (kind(a) === 'a table' && kind(b) === 'a table') out.push(...changedKeys(a as TomlTable, b as TomlTable, here));
    else if (JSON.stringify(a) !== JSON.stringify(b)) out.push(here.join('.'));
  }
  return out;
}

/** True when any changed key is, or lies under, one of the plan's restart keys. */
export function needsRestart(changed: string[], restartKeys: string[]): boolean {
  return changed.some((key) => restartKeys.some((r) => key === r || key.startsWith(`${r}.`)));
}

export class RenderError extends Error {}

/** What templates see: {{cfg.*}} the merged config, {{svc.*}} paths and identity, {{sys.*}} the member. */
export interface RenderContext {
  cfg: TomlTable;
  svc: Record<string, unknown>;
  sys: Record<string, unknown>;
}

/** Renders every template of the plan; any failure names the template. */
export function renderTemplates(plan: Plan, ctx: RenderContext): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, template] of plan.templates) {
    try {
      out.set(name, template(ctx));
    } catch (err) {
      throw new RenderError(`${plan.manifest.name}: template ${name}.hbs: ${(err as Error).message}`);
    }
  }
  return out;
}
