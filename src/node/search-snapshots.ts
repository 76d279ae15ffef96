import type { SearchSnapshots } from '../plugins/backup/search-snapshots.js';
import { driverAccess, elasticsearchUrl } from '../plugins/elasticsearch/driver.js';
import { checkSnapshotSettings, snapshotSettingsFrom, snapshotsEnabled, type SnapshotSettings } from '../plugins/elasticsearch/snapshot-settings.js';
import { assertSucceeded, EsSnapshots, esRequestOver } from '../plugins/elasticsearch/snapshots.js';
import { dayOfIndex, STREAMS } from '../plugins/shipper/indices.js';
import type { DriverContext } from '../supervisor/driver.js';

/**
 * The backup plugin's port to Elasticsearch snapshots (SearchSnapshots),
 * made of the Elasticsearch plugin's EsSnapshots: with this member's
 * Elasticsearch config in force ([snapshot] repo_path, retention,
 * indices) and its nodes, the local one first, then the other members'
 * from the census. Undefined while snapshots are off here: Elasticsearch
 * is not loaded on this member, repo_path is empty, or the [snapshot]
 * table is refused (its render already says why).
 */
export interface SearchSnapshotsSource {
  /** The Elasticsearch service's driver context with the config in force; undefined where it is not loaded. */
  context: () => DriverContext | undefined;
  /** The other members' Elasticsearch HTTP URLs, best first. */
  peers: () => string[];
}

export function searchSnapshotsFrom(source: SearchSnapshotsSource): () => SearchSnapshots | undefined {
  // One adapter per config in force: the settings are read once per config object.
  let cache: { cfg: DriverContext['cfg']; value: SearchSnapshots | undefined } | undefined;
  return () => {
    const ctx = source.context();
    if (!ctx) return undefined;
    if (cache?.cfg !== ctx.cfg) {
      const settings = snapshotSettingsFrom(ctx.cfg);
      const on = snapshotsEnabled(settings) && checkSnapshotSettings(settings) === undefined;
      cache = { cfg: ctx.cfg, value: on ? adapt(new EsSnapshots({ request: esRequestOver(() => [elasticsearchUrl(ctx), ...source.peers()], 30_000, () => driverAccess(ctx, 'admin')), repoPath: settings.repoPath }), settings) : undefined };
    }
    return cache.value;
  };
}

export function adapt(es: EsSnapshots, settings: SnapshotSettings): SearchSnapshots {
  return {
    repoPath: settings.repoPath,
    async take({ pgBackup, member, signal, onProgress }) {
      await es.ensureRepository();
      const name = await es.start({ indices: settings.indices, pgBackup, member });
      const snapshot = await es.wait(name, { ...(signal ? { signal } : {}), onProgress: (p) => onProgress?.({ shardsDone: p.shardsDone, shardsTotal: p.shardsTotal }) });
      let problem: string | null = null;
      try {
        assertSucceeded(snapshot);
      } catch (err) {
        problem = (err as Error).message;
      }
      return { snapshot, problem };
    },
    list: () => es.list(),
    async applyRetention(liveBackups) {
      const { deleted } = await es.applyRetention(settings.retention, liveBackups ? { liveBackups } : {});
      return { deleted };
    },
    planRestore: (name, req) => es.planRestore(name, req),
    restore: (name, req, opts = {}) => es.restore(name, req, opts),
    ownIndex: (name) => STREAMS.some((stream) => dayOfIndex(name, stream) !== undefined),
  };
}
