/**
 * One collection round: a list of metric sets, each one Metricbeat-shaped
 * document's worth of fields. The same sample becomes documents for
 * Elasticsearch and values of the /metrics gauges.
 */
export interface MetricSet {
  /** Metricbeat module: system, postgresql, etcd, elasticsearch. */
  module: string;
  /** Metricbeat metricset: cpu, memory, process, database, ... */
  metricset: string;
  /** The service the set is about (service.name); the module when unset. */
  service?: string;
  /** Nested field tree, e.g. { system: { cpu: { total: { norm: { pct: 0.12 } } } } }. */
  fields: Record<string, unknown>;
}

export interface Sample {
  /** ms since the epoch when the round started. */
  time: number;
  sets: MetricSet[];
}

/** The value at a dotted path of a set's field tree (undefined when absent or not a number). */
export function numberAt(fields: Record<string, unknown>, path: string): number | undefined {
  let node: unknown = fields;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'number' && Number.isFinite(node) ? node : undefined;
}

export function stringAt(fields: Record<string, unknown>, path: string): string | undefined {
  let node: unknown = fields;
  for (const key of path.split('.')) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return typeof node === 'string' ? node : undefined;
}
