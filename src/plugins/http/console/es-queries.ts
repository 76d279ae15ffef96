import { dailyIndex, type Stream } from '../../shipper/indices.js';
import type { LogLevel } from '../../shipper/ecs.js';

/**
 * What the console asks of Elasticsearch, and how it reads the answers:
 * date-histogram aggregations over the shipped metrics (docs/shipping.md
 * names every field) and searches of the shipped logs. Pure: the routes
 * (es-routes.ts) send the bodies. Every query is bounded so the console
 * cannot overload the cluster it watches: only the daily indices of the
 * range, at most MAX_BUCKETS buckets per series and MAX_LOG_HITS hits,
 * ranges of at most 7 days, and a server-side timeout.
 */

export const RANGES_MS = { '15m': 15 * 60_000, '1h': 3_600_000, '6h': 6 * 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 } as const;
export type RangeName = keyof typeof RANGES_MS;
export const MAX_RANGE_MS = RANGES_MS['7d'];
export const MAX_BUCKETS = 240;
export const MAX_LOG_HITS = 500;
/** How long Elasticsearch may work on one console query (its `timeout`); the HTTP request waits a little longer. */
export const QUERY_TIMEOUT_MS = 10_000;

/** Bucket widths the histogram picks from: the smallest giving at most MAX_BUCKETS buckets. */
const STEPS_MS = [10_000, 30_000, 60_000, 120_000, 300_000, 600_000, 1_800_000, 3_600_000, 3 * 3_600_000];

export function bucketMs(rangeMs: number): number {
  return STEPS_MS.find((s) => rangeMs / s <= MAX_BUCKETS) ?? STEPS_MS[STEPS_MS.length - 1]!;
}

/**
 * How a chart's value is made from the documents in a bucket, per member:
 * avg/max of a field; `sum_per_round` sums a field over the documents of
 * one sampling round (network interfaces) and averages the rounds; `rate`
 * turns a counter into a per-second rate between buckets (a counter that
 * went back, a restart, leaves a gap).
 */
type How = 'avg' | 'max' | 'sum_per_round' | 'rate';

export interface ChartDef {
  title: string;
  unit: '%' | 'B' | 'B/s' | '/s' | '';
  dataset: string;
  /** Summed when several (read + write). */
  fields: string[];
  how: How;
  /** Multiplies the value (a 0-1 share shown as %). */
  scale?: number;
  /** Documents to leave out (the loopback interface). */
  exclude?: Record<string, string>;
}

export const CHARTS = {
  cpu: { title: 'CPU busy', unit: '%', dataset: 'system.cpu', fields: ['system.cpu.total.norm.pct'], how: 'avg', scale: 100 },
  memory: { title: 'Memory used', unit: '%', dataset: 'system.memory', fields: ['system.memory.actual.used.pct'], how: 'avg', scale: 100 },
  disk: { title: 'Disk used (fullest filesystem)', unit: '%', dataset: 'system.filesystem', fields: ['system.filesystem.used.pct'], how: 'max', scale: 100 },
  disk_io: { title: 'Disk I/O operations', unit: '/s', dataset: 'system.diskio', fields: ['system.diskio.read.per_sec', 'system.diskio.write.per_sec'], how: 'avg' },
  network: { title: 'Network in + out', unit: 'B/s', dataset: 'system.network', fields: ['system.network.in.bytes_per_sec', 'system.network.out.bytes_per_sec'], how: 'sum_per_round', exclude: { 'system.network.name': 'lo' } },
  pg_tps: { title: 'PostgreSQL transactions', unit: '/s', dataset: 'postgresql.database', fields: ['postgresql.database.transactions.commit', 'postgresql.database.transactions.rollback'], how: 'rate' },
  pg_connections: { title: 'PostgreSQL connections', unit: '', dataset: 'postgresql.database', fields: ['postgresql.activity.connections'], how: 'avg' },
  pg_lag: { title: 'Replication lag (replicas)', unit: 'B', dataset: 'postgresql.database', fields: ['postgresql.replication.replay_gap.bytes'], how: 'max' },
  es_heap: { title: 'Elasticsearch heap used', unit: '%', dataset: 'elasticsearch.node_stats', fields: ['elasticsearch.node.stats.jvm.mem.heap.used.pct'], how: 'avg', scale: 100 },
  es_indexing: { title: 'Elasticsearch indexing', unit: '/s', dataset: 'elasticsearch.node_stats', fields: ['elasticsearch.node.stats.indices.indexing.rate'], how: 'avg' },
} satisfies Record<string, ChartDef>;
export type ChartName = keyof typeof CHARTS;

export interface TimeRange {
  from: number;
  to: number;
}

/** The range ending now (or at `to`), checked: a bad one is an error naming it. */
export function timeRange(q: { range?: string; from?: number; to?: number }, now: number): TimeRange {
  if (q.from !== undefined || q.to !== undefined) {
    const to = q.to ?? now;
    const from = q.from ?? to - RANGES_MS['1h'];
    if (!(from < to)) throw new RangeError('from must be before to');
    if (to - from > MAX_RANGE_MS) throw new RangeError('a range may span at most 7 days');
    return { from, to };
  }
  const name = (q.range ?? '1h') as RangeName;
  const span = RANGES_MS[name];
  if (span === undefined) throw new RangeError(`range must be one of ${Object.keys(RANGES_MS).join(', ')}`);
  return { from: now - span, to: now };
}

/** The daily indices a range touches, newest first (Elasticsearch is told to skip missing ones). */
export function indicesFor(stream: Stream, r: TimeRange): string[] {
  const out: string[] = [];
  for (let day = Math.floor(r.to / 86_400_000); day >= Math.floor(r.from / 86_400_000); day--) out.push(dailyIndex(stream, day * 86_400_000));
  return out;
}

/** The search path for a stream and range: explicit indices, missing ones skipped. */
export function searchPath(stream: Stream, r: TimeRange): string {
  return `/${indicesFor(stream, r).join(',')}/_search?ignore_unavailable=true&allow_no_indices=true`;
}

const rangeFilter = (r: TimeRange) => ({ range: { '@timestamp': { gte: r.from, lte: r.to, format: 'epoch_millis' } } });

export function chartQuery(name: ChartName, r: TimeRange, member: string | null): object {
  const def: ChartDef = CHARTS[name];
  const step = bucketMs(r.to - r.from);
  const filter: object[] = [{ term: { 'event.dataset': def.dataset } }, rangeFilter(r)];
  if (member) filter.push({ term: { 'hasup.member.id': member } });
  const values: Record<string, object> = {};
  def.fields.forEach((field, i) => {
    values[`v${i}`] = { [def.how === 'avg' ? 'avg' : def.how === 'sum_per_round' ? 'sum' : 'max']: { field } };
  });
  if (def.how === 'sum_per_round') values.rounds = { cardinality: { field: '@timestamp' } };
  return {
    size: 0,
    timeout: `${QUERY_TIMEOUT_MS / 1000}s`,
    query: { bool: { filter, ...(def.exclude ? { must_not: Object.entries(def.exclude).map(([k, v]) => ({ term: { [k]: v } })) } : {}) } },
    aggs: {
      members: {
        terms: { field: 'hasup.member.id', size: 50 },
        aggs: {
          t: {
            date_histogram: { field: '@timestamp', fixed_interval: `${step / 1000}s`, min_doc_count: 0, extended_bounds: { min: r.from, max: r.to } },
            aggs: values,
          },
        },
      },
    },
  };
}

export interface ChartSeries {
  member: string;
  /** One value per bucket of `times`; null where the member sent nothing. */
  values: (number | null)[];
}

export interface ChartData {
  name: ChartName;
  title: string;
  unit: string;
  bucket_ms: number;
  /** Bucket starts, ms since the epoch, shared by every series. */
  times: number[];
  series: ChartSeries[];
}

interface Bucket {
  key: number;
  doc_count: number;
  rounds?: { value: number | null };
  [agg: string]: unknown;
}

/** The chart from an aggregation answer; throws when the answer has not the shape asked for. */
export function parseChart(name: ChartName, r: TimeRange, answer: unknown): ChartData {
  const def: ChartDef = CHARTS[name];
  const step = bucketMs(r.to - r.from);
  const members = (answer as { aggregations?: { members?: { buckets?: { key: string; t: { buckets: Bucket[] } }[] } } }).aggregations?.members?.buckets;
  if (!Array.isArray(members)) throw new Error('Elasticsearch answered without the aggregation asked for');
  const first = Math.floor(r.from / step) * step;
  const times: number[] = [];
  for (let t = first; t <= r.to; t += step) times.push(t);
  const series = members
    .map((m) => {
      const byTime = new Map(m.t.buckets.map((b) => [b.key, b]));
      const raw = times.map((t) => bucketValue(def, byTime.get(t)));
      return { member: m.key, values: def.how === 'rate' ? rates(raw, step) : raw.map((v) => (v === null ? null : round(v * (def.scale ?? 1)))) };
    })
    .sort((a, b) => a.member.localeCompare(b.member));
  return { name, title: def.title, unit: def.unit, bucket_ms: step, times, series };
}

function bucketValue(def: ChartDef, b: Bucket | undefined): number | null {
  if (!b || b.doc_count === 0) return null;
  let sum = 0;
  for (let i = 0; i < def.fields.length; i++) {
    const v = (b[`v${i}`] as { value: number | null } | undefined)?.value;
    if (typeof v !== 'number') return null;
    sum += v;
  }
  if (def.how === 'sum_per_round') {
    const rounds = b.rounds?.value;
    return rounds ? sum / rounds : null;
  }
  return sum;
}

/** Per-second rates between neighbouring buckets of a counter's maximum; a counter that went back (a restart) leaves a gap. */
function rates(counters: (number | null)[], stepMs: number): (number | null)[] {
  return counters.map((v, i) => {
    const before = i > 0 ? counters[i - 1] : null;
    if (v === null || before === null || before === undefined || v < before) return null;
    return round((v - before) / (stepMs / 1000));
  });
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/** The supervisor's log events that mark a chart's time axis: leadership changes (failovers, switchovers, fencing) and services failing (restarts follow). */
export const MARK_EVENTS: Record<string, 'failover' | 'restart'> = {
  ha_promoted: 'failover',
  ha_switched_over: 'failover',
  ha_fenced: 'failover',
  ha_demoted: 'failover',
  health: 'restart',
};

export function marksQuery(r: TimeRange, member: string | null): object {
  const filter: object[] = [{ term: { 'service.name': 'hasup' } }, { terms: { 'labels.event': Object.keys(MARK_EVENTS) } }, rangeFilter(r)];
  if (member) filter.push({ term: { 'hasup.member.id': member } });
  return {
    size: 200,
    timeout: `${QUERY_TIMEOUT_MS / 1000}s`,
    track_total_hits: false,
    _source: ['@timestamp', 'message', 'labels.event', 'labels.health', 'hasup.member.id'],
    sort: [{ '@timestamp': 'desc' }],
    // A service's health going critical is its failure; its recovery is not a mark.
    query: { bool: { filter, must_not: [{ bool: { filter: [{ term: { 'labels.event': 'health' } }], must_not: [{ term: { 'labels.health': 'critical' } }] } }] } },
  };
}

export interface ChartMark {
  time: number;
  kind: 'failover' | 'restart';
  member: string;
  text: string;
}

export function parseMarks(answer: unknown): ChartMark[] {
  return searchHits(answer)
    .map((h) => {
      const s = h._source as { '@timestamp'?: string; message?: string; labels?: { event?: string }; hasup?: { member?: { id?: string } } };
      return { time: Date.parse(s['@timestamp'] ?? ''), kind: MARK_EVENTS[s.labels?.event ?? ''] ?? 'restart', member: s.hasup?.member?.id ?? '?', text: s.message ?? '' };
    })
    .filter((m) => Number.isFinite(m.time))
    .reverse();
}

/** Levels from most to least severe; a level filter keeps the chosen one and everything more severe. */
export const LOG_LEVELS: LogLevel[] = ['emergency', 'alert', 'critical', 'error', 'warning', 'notice', 'info', 'debug', 'trace'];

export interface LogSearch {
  text?: string;
  member?: string;
  service?: string;
  level?: LogLevel;
  /** Only events after this (ms since the epoch): the live tail asks for what is new. */
  after?: number;
  size?: number;
}

export function logQuery(q: LogSearch, r: TimeRange): object {
  const from = q.after !== undefined ? Math.max(r.from, q.after + 1) : r.from;
  const filter: object[] = [rangeFilter({ from, to: r.to })];
  if (q.member) filter.push({ term: { 'hasup.member.id': q.member } });
  if (q.service) filter.push({ term: { 'service.name': q.service } });
  if (q.level) filter.push({ terms: { 'log.level': LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(q.level) + 1) } });
  // simple_query_string never fails on syntax: a stray quote or bracket is searched for, not an error.
  const must = q.text?.trim() ? [{ simple_query_string: { query: q.text.trim(), fields: ['message'], default_operator: 'and' } }] : [];
  return {
    size: Math.min(q.size ?? 100, MAX_LOG_HITS),
    timeout: `${QUERY_TIMEOUT_MS / 1000}s`,
    track_total_hits: 10_000,
    _source: ['@timestamp', 'message', 'log.level', 'service.name', 'hasup.member.id', 'host.name'],
    sort: [{ '@timestamp': 'desc' }],
    query: { bool: { filter, must } },
  };
}

export interface LogLine {
  id: string;
  time: number;
  member: string;
  service: string;
  level: string;
  message: string;
}

export interface LogPage {
  lines: LogLine[];
  /** Matches in all ("at least" when over 10 000). */
  total: number;
  total_is_lower_bound: boolean;
  /** Elasticsearch stopped at its timeout: the lines are what it found by then. */
  timed_out: boolean;
}

export function parseLogs(answer: unknown): LogPage {
  const a = answer as { timed_out?: boolean; hits?: { total?: { value?: number; relation?: string } } };
  const lines = searchHits(answer).map((h) => {
    const s = h._source as { '@timestamp'?: string; message?: string; log?: { level?: string }; service?: { name?: string }; hasup?: { member?: { id?: string } } };
    return { id: h._id, time: Date.parse(s['@timestamp'] ?? ''), member: s.hasup?.member?.id ?? '', service: s.service?.name ?? '', level: s.log?.level ?? '', message: s.message ?? '' };
  });
  return { lines, total: a.hits?.total?.value ?? lines.length, total_is_lower_bound: a.hits?.total?.relation === 'gte', timed_out: a.timed_out === true };
}

function searchHits(answer: unknown): { _id: string; _source: unknown }[] {
  const hits = (answer as { hits?: { hits?: unknown } }).hits?.hits;
  if (!Array.isArray(hits)) throw new Error('Elasticsearch answered without search hits');
  return hits as { _id: string; _source: unknown }[];
}
