import { byStart, isHasupSnapshot, type SnapshotInfo } from './snapshot-info.js';

/**
 * Which of hasup's snapshots retention deletes (pure). `retention` counts
 * successful snapshots, because a failed or partial one cannot stand in
 * for a good one: the `retention` newest successful snapshots are kept,
 * and so is everything taken after the oldest of them (a failed snapshot
 * between two good ones ages out with them). Every completed snapshot
 * older than that is deleted, oldest first. Never deleted: a running
 * snapshot, the newest successful one (retention is at least 1), and
 * snapshots hasup did not name (an operator's own, in the same repository).
 * With fewer successful snapshots than `retention`, nothing is deleted.
 */
export interface RetentionPlan {
  keep: SnapshotInfo[];
  /** Oldest first: the order they are deleted in, so a failure part-way leaves the newer ones. */
  delete: SnapshotInfo[];
}

export function retentionPlan(snapshots: SnapshotInfo[], retention: number): RetentionPlan {
  if (!Number.isInteger(retention) || retention < 1) throw new Error(`snapshot retention must be a whole number of at least 1, got ${retention}`);
  const ours = snapshots.filter((s) => isHasupSnapshot(s.name)).sort(byStart);
  const successful = ours.filter((s) => s.state === 'SUCCESS');
  if (successful.length <= retention) return { keep: ours, delete: [] };
  const oldestKept = successful[successful.length - retention]!;
  const cut = ours.indexOf(oldestKept);
  const older = ours.slice(0, cut);
  const del = older.filter((s) => s.state !== 'IN_PROGRESS');
  return { keep: ours.filter((s) => !del.includes(s)), delete: del };
}
