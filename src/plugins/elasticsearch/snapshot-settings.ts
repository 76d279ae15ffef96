import { checkTable, isTable, perConfig, type Schema, type TomlTable } from '../../supervisor/toml-schema.js';

/**
 * The [snapshot] table of the Elasticsearch service config
 * (plans/elasticsearch/default.toml): where the cluster's snapshots go and
 * how many are kept. Types come from the plan's defaults like every other
 * key; this schema adds what a type cannot say (an absolute path, a count
 * of at least one, index patterns Elasticsearch accepts), so a bad value is
 * refused with the key before it reaches elasticsearch.yml.
 */
export interface SnapshotSettings {
  /** The fs repository's directory, every node reaches it; "" = snapshots off. Rendered as path.repo. */
  repoPath: string;
  /** Successful snapshots kept (older ones are deleted after each new one). */
  retention: number;
  /** Index patterns a snapshot takes, comma-separated, as Elasticsearch's `indices`. */
  indices: string;
  /** Problems with keys present (refused by checkSnapshotSettings). */
  invalid: string[];
}

const absolute = (v: string) => (v === '' || v.startsWith('/') ? undefined : `must be an absolute path or "" (got ${JSON.stringify(v)})`);
// path.repo is written as a YAML string (JSON-quoted) but a newline would still end the line.
const oneLine = (v: string) => (/[\n\r\0]/.test(v) ? 'must be one line' : undefined);

/** A comma-separated list of index names or patterns, each optionally excluded with "-". */
function indexPatterns(v: string): string | undefined {
  const parts = v.split(',');
  for (const part of parts) {
    if (!/^-?[a-z0-9*.+_][a-z0-9*.+_-]*$/.test(part)) {
      return `must be comma-separated index names or patterns (lowercase, no spaces), e.g. "*" or "hasup-logs-*,hasup-metrics-*" (got ${JSON.stringify(v)})`;
    }
  }
  return undefined;
}

export const SNAPSHOT_SETTINGS_SCHEMA: Schema = {
  repo_path: { type: 'string', doc: 'the snapshot repository, a directory every node reaches; "" = snapshots off', default: '', check: (v) => oneLine(v) ?? absolute(v) },
  retention: { type: 'integer', doc: 'successful snapshots kept; older ones are deleted after each snapshot', default: 7, min: 1, max: 10_000 },
  indices: { type: 'string', doc: 'index patterns a snapshot takes, comma-separated', default: '*', check: indexPatterns },
};

const DEFAULTS = checkTable({}, SNAPSHOT_SETTINGS_SCHEMA, { fill: true }).value;

/** The settings from a merged Elasticsearch service config (its [snapshot] table), read once per config object. */
export const snapshotSettingsFrom = perConfig(readSnapshotSettings);

function readSnapshotSettings(cfg: TomlTable): SnapshotSettings {
  const table = cfg.snapshot;
  const { value, problems } = checkTable(isTable(table) ? table : {}, SNAPSHOT_SETTINGS_SCHEMA, { fill: true, at: ['snapshot'] });
  if (table !== undefined && !isTable(table)) problems.unshift({ path: ['snapshot'], reason: '"snapshot" must be a table' });
  // A refused key keeps its default here; `invalid` says why, and checkSnapshotSettings refuses the table.
  const get = <T>(key: string) => (value[key] ?? DEFAULTS[key]) as T;
  return { repoPath: get<string>('repo_path'), retention: get<number>('retention'), indices: get<string>('indices'), invalid: problems.map((p) => p.reason) };
}

export function snapshotsEnabled(s: SnapshotSettings): boolean {
  return s.repoPath !== '';
}

/** Why the table cannot be used, naming the keys, or undefined. */
export function checkSnapshotSettings(s: SnapshotSettings): string | undefined {
  return s.invalid.length > 0 ? s.invalid.join('; ') : undefined;
}

/**
 * elasticsearch.yml's path.repo as JSON (a one-element list), or "" when
 * snapshots are off: Elasticsearch refuses an fs repository outside it.
 * Throws the refused keys, which the supervisor reports as a render failure.
 */
export function pathRepoValue(cfg: TomlTable): string {
  const s = snapshotSettingsFrom(cfg);
  const problem = checkSnapshotSettings(s);
  if (problem) throw new Error(`elasticsearch: ${problem}`);
  return snapshotsEnabled(s) ? JSON.stringify([s.repoPath]) : '';
}
