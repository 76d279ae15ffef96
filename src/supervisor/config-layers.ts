import type { Plan } from './plan.js';
import { checkTable, isTable, schemaOfDefaults, type TomlTable } from './toml-schema.js';

/**
 * Config layers, later wins: the plan's default.toml < the node's user config
 * < the gossiped `config apply` document. Each upper layer is checked against
 * the schema its defaults imply (toml-schema's schemaOfDefaults: a key's type
 * is its default's, an empty table takes any keys, "auto" also takes true or
 * false), so a typo is an error rather than a setting that silently does
 * nothing.
 */
export interface ConfigLayer {
  name: string;
  data: TomlTable;
}

export class LayerError extends Error {}

export function mergeLayers(defaults: TomlTable, layers: ConfigLayer[]): TomlTable {
  const schema = schemaOfDefaults(defaults);
  let merged = structuredClone(defaults);
  for (const layer of layers) {
    const problem = checkTable(layer.data, schema).problems[0];
    if (problem) throw new LayerError(`${layer.name}: ${problem.reason}`);
    merged = mergeInto(merged, layer.data);
  }
  return merged;
}

/** `upper` over `base`, table by table (a copy; neither is changed). */
export function mergeInto(base: TomlTable, upper: TomlTable): TomlTable {
  const out: TomlTable = { ...base };
  for (const [key, value] of Object.entries(upper)) {
    out[key] = isTable(value) ? mergeInto((base[key] as TomlTable | undefined) ?? {}, value) : value;
  }
  return out;
}

/** Dotted paths whose values differ between two merged configs. */
export function changedKeys(before: TomlTable, after: TomlTable, path: string[] = []): string[] {
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  const out: string[] = [];
  for (const key of keys) {
    const a = before[key];
    const b = after[key];
    const here = [...path, key];
    if (isTable(a) && isTable(b)) out.push(...changedKeys(a, b, here));
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
