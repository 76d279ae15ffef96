import type { PairableSnapshot } from './backup-sets.js';

/**
 * The port through which backups reach Elasticsearch snapshots: what a
 * backup set needs of them, and nothing of how they are taken. The
 * composition root (src/node/search-snapshots.ts) adapts the
 * Elasticsearch plugin's EsSnapshots to it, with the member's
 * Elasticsearch config ([snapshot] repo_path, retention, indices) and the
 * cluster's nodes; tests give a fake. Where snapshots are off (no
 * Elasticsearch here, or repo_path empty) there is no SearchSnapshots at
 * all, and backups go on as they did without them.
 *
 * Errors thrown by these calls are the Elasticsearch plugin's
 * SnapshotError, whose `code` (missing, not-in-snapshot, index-exists,
 * ...) the routes answer by; their messages name the cause and hold no
 * secret.
 */
export interface SearchSnapshot extends PairableSnapshot {
  endedAt: Date | null;
  /** Index names it holds, sorted. */
  indices: string[];
  /** The size of the indices it holds (files shared with other snapshots counted in each); null when unknown. */
  sizeBytes: number | null;
  /** Shards counted once it ended; null while it runs. */
  shards: { total: number; successful: number; failed: number } | null;
  /** Why it failed (FAILED), from Elasticsearch. */
  reason: string | null;
  /** Per failed shard: "index[shard]: reason". */
  failures: string[];
}

export type SearchRestoreMode = 'refuse' | 'replace' | 'rename';

export interface SearchRestoreRequest {
  /** Names or `*` patterns, or all: every index but the dot ones. */
  indices: 'all' | string[];
  mode: SearchRestoreMode;
  /** rename only (default "restored-"). */
  renamePrefix?: string;
}

export interface SearchRestorePlan {
  /** Indices taken from the snapshot. */
  sources: string[];
  /** Their names once restored. */
  targets: string[];
  /** Existing indices deleted first (replace). */
  deleteFirst: string[];
}

export interface SearchSnapshots {
  /** The repository directory ([snapshot] repo_path), for messages. */
  readonly repoPath: string;
  /**
   * Takes a snapshot for the pgBackRest backup `pgBackup` (its label in
   * the snapshot's metadata) and follows it to its end. Resolves with the
   * snapshot as it ended and, unless it ended SUCCESS, what is wrong with
   * it; throws when it could not be started or followed.
   */
  take(opts: { pgBackup: string; member: string; signal?: AbortSignal; onProgress?: (p: { shardsDone: number; shardsTotal: number }) => void }): Promise<{ snapshot: SearchSnapshot; problem: string | null }>;
  /** Every snapshot in the repository, oldest first. */
  list(): Promise<SearchSnapshot[]>;
  /**
   * Deletes hasup's snapshots beyond the configured retention and, given
   * `liveBackups`, those whose pgBackRest backup is not among them (it
   * expired). Oldest first; stops at the first failure.
   */
  applyRetention(liveBackups: ReadonlySet<string> | null): Promise<{ deleted: string[] }>;
  /** What restore() would do, or why it would refuse, changing nothing. */
  planRestore(name: string, req: SearchRestoreRequest): Promise<SearchRestorePlan>;
  /** Restores as planned, following it until every restored index has its primaries. */
  restore(name: string, req: SearchRestoreRequest, opts?: { signal?: AbortSignal; onProgress?: (p: { primariesActive: number; primariesTotal: number }) => void }): Promise<SearchRestorePlan>;
  /** An index hasup writes itself (its shipped logs and metrics), which a backup set's restore leaves alone. */
  ownIndex(name: string): boolean;
}
