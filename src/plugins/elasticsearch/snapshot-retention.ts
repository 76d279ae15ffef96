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
 *
 * Paired with pgBackRest's retention (`liveBackups`: the labels pgBackRest
 * lists now): a snapshot taken for a backup pgBackRest has expired is
 * deleted too, whatever the count, since the set it belonged to can no
 * longer be restored as one. The same snapshots are never deleted by this
 * rule either (a running one, the newest successful one); a snapshot that
 * names no backup is left to the count.
 */
export interface RetentionPlan {
  keep: SnapshotInfo[];
  /** Oldest first: the order they are deleted in, so a failure part-way leaves the newer ones. */
  delete: SnapshotInfo[];
}

export interface RetentionOptions {
  /** The pgBackRest backup labels that exist; a snapshot naming another is deleted. Unset: the count alone. */
  liveBackups?: ReadonlySet<string>;
}

export function retentionPlan(snapshots: SnapshotInfo[], retention: number, opts: RetentionOptions = {}): RetentionPlan {
  if (!Number.isInteger(retention) || retention < 1) throw new Error(`snapshot retention must be a whole number of at least 1, got ${retention}`);
  const ours = snapshots.filter((s) => isHasupSnapshot(s.name)).sort(byStart);
  const successful = ours.filter((s) => s.state === 'SUCCESS');
  const del = new Set<SnapshotInfo>();
  if (successful.length > retention) {
    const cut = ours.indexOf(successful[successful.length - retention]!);
    for (const s of ours.slice(0, cut)) if (s.state !== 'IN_PROGRESS') del.add(s);
  }
  const live = opts.liveBackups;
  if (live) {
    const newestGood = successful[successful.length - 1];
    for (const s of ours) if (s.pgBackup !== null && !live.has(s.pgBackup) && s.state !== 'IN_PROGRESS' && s !== newestGood) del.add(s);
  }
  return { keep: ours.filter((s) => !del.has(s)), delete: ours.filter((s) => del.has(s)) };
}
