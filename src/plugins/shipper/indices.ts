/**
 * Where shipped events live in Elasticsearch, and for how long.
 *
 * The development distribution has no ILM and no ingest pipelines
 * (docs/elasticsearch.md), and production should not depend on them either,
 * so retention is done the plain way: one index per stream and UTC day
 * (hasup-logs-2024.06.01, hasup-metrics-2024.06.01), composable index
 * templates that give every such index its mappings and settings, and a
 * periodic sweep that deletes, by exact name, the daily indices older than
 * `retention_days`. The day comes from the event's own @timestamp, so a
 * replayed event lands in the same index as its first copy, where its
 * document id makes the copy a conflict instead of a duplicate.
 */

/** The spool's kind byte for each stream. */
export const KIND_LOGS = 0;
export const KIND_METRICS = 1;
export const STREAMS = ['logs', 'metrics'] as const;
export type Stream = (typeof STREAMS)[number];

export const INDEX_PREFIX = 'hasup-';
/** Bumped when the templates change, so a newer hasup replaces an older template. */
export const TEMPLATE_VERSION = 1;

export function streamOfKind(kind: number): Stream {
  return kind === KIND_METRICS ? 'metrics' : 'logs';
}

const dayCache = new Map<number, string>();
const DAY_MS = 86_400_000;

/** hasup-logs-YYYY.MM.DD of the UTC day `time` falls in. */
export function dailyIndex(stream: Stream, time: number): string {
  const day = Math.floor((Number.isFinite(time) ? time : Date.now()) / DAY_MS);
  let date = dayCache.get(day);
  if (date === undefined) {
    date = new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '.');
    if (dayCache.size > 64) dayCache.clear();
    dayCache.set(day, date);
  }
  return `${INDEX_PREFIX}${stream}-${date}`;
}

/** The UTC day of a daily index name, as ms since the epoch; undefined for any other name. */
export function dayOfIndex(name: string, stream: Stream): number | undefined {
  const match = new RegExp(`^${INDEX_PREFIX}${stream}-(\\d{4})\\.(\\d{2})\\.(\\d{2})$`).exec(name);
  if (!match) return undefined;
  const time = Date.UTC(Number(match[1]), Number(match[2]) - 1, Number(match[3]));
  return Number.isFinite(time) ? time : undefined;
}

/** Daily indices of `stream` whose whole day lies more than `retentionDays` days before `now`. */
export function expiredIndices(names: string[], stream: Stream, retentionDays: number, now: number): string[] {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  const oldestKept = today - retentionDays * DAY_MS;
  return names.filter((n) => {
    const day = dayOfIndex(n, stream);
    return day !== undefined && day < oldestKept;
  });
}

const keyword = { type: 'keyword', ignore_above: 1024 };

/** ECS fields both streams share. */
const commonProperties = {
  '@timestamp': { type: 'date' },
  message: { type: 'text' },
  log: { properties: { level: { type: 'keyword' }, truncated: { type: 'boolean' } } },
  host: { properties: { name: keyword, ip: { type: 'ip' } } },
  service: { properties: { name: keyword } },
  process: { properties: { pid: { type: 'long' }, name: keyword } },
  event: { properties: { dataset: keyword, module: keyword } },
  metricset: { properties: { name: keyword } },
  labels: { type: 'object', dynamic: true },
  error: { properties: { message: { type: 'text' }, type: keyword, stack_trace: { type: 'keyword', index: false, doc_values: false } } },
  systemd: { properties: { unit: keyword } },
  hasup: { properties: { member: { properties: { id: keyword, role: keyword } }, stream: keyword } },
};

/**
 * Any field not listed: strings are keywords (labels, Metricbeat names),
 * Metricbeat's *.pct are floats and other numbers doubles, whatever
 * the first sample looked like (a first value of 0 would otherwise map the
 * field as long and truncate every later fraction).
 */
const dynamicTemplates = [
  // float, not Metricbeat's scaled_float: that type lives in the mapper-extras module, which the development distribution lacks.
  { percentages: { path_match: '*.pct', mapping: { type: 'float' } } },
  { strings_as_keywords: { match_mapping_type: 'string', mapping: keyword } },
  // A gauge whose first sample happened to be whole (load 0, 12 connections) must not truncate later fractions.
  { numbers_as_doubles: { match_mapping_type: 'long', mapping: { type: 'double' } } },
];

/**
 * Replicas of the shipping indices follow Elasticsearch's node count: none
 * (and green) on one node, one from two nodes on, so losing any one node
 * loses no log or metric. One, not two: a second replica would triple the
 * disk of every index to survive two nodes lost at once, which the etcd and
 * PostgreSQL of a three-member cluster do not survive either.
 */
export const AUTO_EXPAND_REPLICAS = '0-1';

export interface TemplateSettings {
  retentionDays: number;
  /** Seconds between refreshes: larger is cheaper to index; events become searchable this late. */
  refreshIntervalS?: number;
}

/** The composable index template of one stream. */
export function indexTemplate(stream: Stream, settings: TemplateSettings): Record<string, unknown> {
  return {
    index_patterns: [`${INDEX_PREFIX}${stream}-*`],
    priority: 200,
    version: TEMPLATE_VERSION,
    _meta: { managed_by: 'hasup', retention_days: settings.retentionDays, description: `hasup ${stream}: one index per UTC day, deleted after retention_days` },
    template: {
      settings: {
        number_of_shards: 1,
        auto_expand_replicas: AUTO_EXPAND_REPLICAS,
        refresh_interval: `${settings.refreshIntervalS ?? 5}s`,
        'mapping.total_fields.limit': 2000,
      },
      mappings: { dynamic_templates: dynamicTemplates, properties: commonProperties },
    },
  };
}
