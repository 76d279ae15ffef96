/**
 * Installs the index templates and deletes expired daily indices. Both are
 * idempotent, so every member does them (at start, then every hour) and it
 * does not matter which one gets there first.
 */
import type { Client } from '@elastic/elasticsearch';
import { AUTO_EXPAND_REPLICAS, STREAMS, expiredIndices, indexTemplate, INDEX_PREFIX, type TemplateSettings } from './indices.js';

/**
 * PUT of both templates (the same body again is a no-op for Elasticsearch),
 * then the replica rule on the daily indices that exist: one made before
 * the template, restored from a snapshot or changed by hand follows the
 * node count again (Elasticsearch then adds or drops replicas as nodes join
 * and leave).
 */
export async function installTemplates(client: Client, settings: TemplateSettings): Promise<void> {
  for (const stream of STREAMS) {
    await client.indices.putIndexTemplate({ name: `${INDEX_PREFIX}${stream}`, ...indexTemplate(stream, settings) } as Parameters<Client['indices']['putIndexTemplate']>[0]);
  }
  await client.indices.putSettings({
    index: STREAMS.map((s) => `${INDEX_PREFIX}${s}-*`).join(','),
    settings: { index: { auto_expand_replicas: AUTO_EXPAND_REPLICAS } },
    allow_no_indices: true,
    ignore_unavailable: true,
    expand_wildcards: 'open',
  });
}

/** Deletes daily indices past retention, by exact name; returns the names deleted. */
export async function deleteExpiredIndices(client: Client, retentionDays: number, now = Date.now()): Promise<string[]> {
  const deleted: string[] = [];
  for (const stream of STREAMS) {
    const rows = await client.cat.indices({ index: `${INDEX_PREFIX}${stream}-*`, format: 'json', h: 'index', expand_wildcards: ['open', 'closed'] });
    const names = (rows as Array<{ index?: string }>).map((r) => r.index ?? '').filter(Boolean);
    const expired = expiredIndices(names, stream, retentionDays, now);
    // Small groups keep the URL short; action.destructive_requires_name forbids wildcards here anyway.
    for (let i = 0; i < expired.length; i += 20) {
      const group = expired.slice(i, i + 20);
      await client.indices.delete({ index: group, ignore_unavailable: true });
      deleted.push(...group);
    }
  }
  return deleted;
}
