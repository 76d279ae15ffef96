/**
 * A fake of the backup plugin's port to Elasticsearch snapshots
 * (SearchSnapshots), in memory: snapshots taken end as told, the cluster's
 * indices are a set, restores are planned by the Elasticsearch plugin's
 * own pure rule (so refusals are the real SnapshotErrors), and every call
 * is recorded.
 */
import type { SearchRestorePlan, SearchRestoreRequest, SearchSnapshot, SearchSnapshots } from '../../src/plugins/backup/search-snapshots.js';
import { SnapshotError } from '../../src/plugins/elasticsearch/snapshot-error.js';
import { planRestore } from '../../src/plugins/elasticsearch/snapshot-restore.js';
import type { SnapshotInfo } from '../../src/plugins/elasticsearch/snapshot-info.js';

export function snapshot(name: string, state: string, startIso: string, pgBackup: string | null, indices: string[] = ['orders']): SearchSnapshot {
  const start = new Date(startIso);
  return {
    name,
    state,
    startedAt: start,
    endedAt: state === 'IN_PROGRESS' ? null : new Date(start.getTime() + 1000),
    pgBackup,
    indices,
    sizeBytes: 500 * indices.length,
    shards: state === 'IN_PROGRESS' ? null : { total: indices.length, successful: state === 'SUCCESS' ? indices.length : indices.length - 1, failed: state === 'SUCCESS' ? 0 : 1 },
    reason: state === 'FAILED' ? 'all shards failed' : null,
    failures: state === 'PARTIAL' ? [`${indices[0]}[0]: primary shard is not allocated`] : [],
  };
}

export class FakeSearch implements SearchSnapshots {
  readonly repoPath = '/srv/es-snapshots';
  snapshots: SearchSnapshot[] = [];
  /** Indices in the cluster now. */
  readonly indices = new Set<string>();
  calls: string[] = [];
  /** How the next snapshot ends, or the error take() throws. */
  takeEnds: 'SUCCESS' | 'PARTIAL' | 'FAILED' | Error = 'SUCCESS';
  listError: Error | undefined;
  retentionError: Error | undefined;
  /** What each applyRetention was given. */
  readonly retentionLive: Array<ReadonlySet<string> | null> = [];
  /** A snapshot, once it reported progress, waits for this before it ends. */
  takeGate: Promise<void> | undefined;
  /** A restore waits for this before it ends (progress can be seen meanwhile). */
  restoreGate: Promise<void> | undefined;
  /** Names restore() deleted first and restored, in order. */
  readonly restored: Array<{ name: string; req: SearchRestoreRequest }> = [];
  private n = 0;

  async take(opts: { pgBackup: string; member: string; signal?: AbortSignal; onProgress?: (p: { shardsDone: number; shardsTotal: number }) => void }): Promise<{ snapshot: SearchSnapshot; problem: string | null }> {
    this.calls.push(`take ${opts.pgBackup}`);
    if (this.takeEnds instanceof Error) throw this.takeEnds;
    opts.onProgress?.({ shardsDone: 1, shardsTotal: 2 });
    await this.takeGate;
    const s = snapshot(`hasup-20261207-10000${this.n++}-abcd`, this.takeEnds, new Date(Date.UTC(2026, 11, 7, 10, 0, 30 + this.n)).toISOString(), opts.pgBackup, [...this.indices].sort());
    this.snapshots.push(s);
    const problem = this.takeEnds === 'SUCCESS' ? null : this.takeEnds === 'PARTIAL' ? `snapshot ${s.name} is partial: 1 of ${s.indices.length} shards are not in it` : `snapshot ${s.name} ended FAILED: all shards failed`;
    return { snapshot: s, problem };
  }

  async list(): Promise<SearchSnapshot[]> {
    this.calls.push('list');
    if (this.listError) throw this.listError;
    return [...this.snapshots];
  }

  async applyRetention(live: ReadonlySet<string> | null): Promise<{ deleted: string[] }> {
    this.calls.push('retention');
    this.retentionLive.push(live);
    if (this.retentionError) throw this.retentionError;
    const gone = this.snapshots.filter((s) => live !== null && s.pgBackup !== null && !live.has(s.pgBackup));
    this.snapshots = this.snapshots.filter((s) => !gone.includes(s));
    return { deleted: gone.map((s) => s.name) };
  }

  async planRestore(name: string, req: SearchRestoreRequest): Promise<SearchRestorePlan> {
    this.calls.push(`plan ${name} ${req.mode}`);
    return this.plan(name, req);
  }

  async restore(name: string, req: SearchRestoreRequest, opts: { signal?: AbortSignal; onProgress?: (p: { primariesActive: number; primariesTotal: number }) => void } = {}): Promise<SearchRestorePlan> {
    this.calls.push(`restore ${name} ${req.mode}`);
    const plan = this.plan(name, req);
    for (const d of plan.deleteFirst) this.indices.delete(d);
    opts.onProgress?.({ primariesActive: 0, primariesTotal: plan.targets.length });
    await this.restoreGate;
    for (const t of plan.targets) this.indices.add(t);
    opts.onProgress?.({ primariesActive: plan.targets.length, primariesTotal: plan.targets.length });
    this.restored.push({ name, req });
    return plan;
  }

  ownIndex(name: string): boolean {
    return /^hasup-(logs|metrics)-\d{4}\.\d{2}\.\d{2}$/.test(name);
  }

  private plan(name: string, req: SearchRestoreRequest): SearchRestorePlan {
    const s = this.snapshots.find((x) => x.name === name);
    if (!s) throw new SnapshotError('missing', `there is no snapshot ${name} in repository hasup (${this.repoPath})`);
    const info: SnapshotInfo = { ...s, uuid: s.name, shardCounts: Object.fromEntries(s.indices.map((i) => [i, 1])), metadata: {} };
    return planRestore(info, req, this.indices);
  }
}
