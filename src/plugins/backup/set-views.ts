import type { SetBrief } from '../../supervisor/rumors/backup.js';
import { pairBackupSets } from './backup-sets.js';
import type { BackupInfo } from './info.js';
import type { SearchSnapshot } from './search-snapshots.js';

/**
 * Elasticsearch snapshots and backup sets as the routes answer and the CLI
 * prints them: plain JSON, times as ISO strings (pure).
 */
export interface SnapshotJson {
  name: string;
  /** Elasticsearch's state: SUCCESS, PARTIAL, FAILED, IN_PROGRESS. */
  state: string;
  started_at: string | null;
  ended_at: string | null;
  /** The pgBackRest backup it was taken for, or null. */
  pg_backup: string | null;
  indices: string[];
  size_bytes: number | null;
  shards: { total: number; successful: number; failed: number } | null;
  /** Why it failed, or its failed shards (the first few), when it is not whole; null when it is. */
  problem: string | null;
}

const FAILURES_SHOWN = 3;

export function snapshotJson(s: SearchSnapshot): SnapshotJson {
  const failures = s.failures.slice(0, FAILURES_SHOWN).join('; ') + (s.failures.length > FAILURES_SHOWN ? `; and ${s.failures.length - FAILURES_SHOWN} more` : '');
  return {
    name: s.name,
    state: s.state,
    started_at: iso(s.startedAt),
    ended_at: iso(s.endedAt),
    pg_backup: s.pgBackup,
    indices: s.indices,
    size_bytes: s.sizeBytes,
    shards: s.shards,
    problem: s.state === 'SUCCESS' || s.state === 'IN_PROGRESS' ? null : (s.reason ?? (failures || null)),
  };
}

export interface BackupSetJson {
  /** The pgBackRest backup's label; null for a snapshot with no backup (it expired, or was taken by other means). */
  backup: string | null;
  /** The snapshot paired with it; null: "no snapshot". */
  snapshot: { name: string; state: string } | null;
  /** label: the snapshot names the backup; time: taken soon after it, naming none; null: one side alone. */
  paired_by: 'label' | 'time' | null;
  /** The backup's end, else the snapshot's start. */
  at: string | null;
  /** Both sides there and the snapshot whole. */
  complete: boolean;
}

/** The backups and snapshots as sets (backup-sets.ts), oldest first. */
export function backupSetsJson(backups: BackupInfo[], snapshots: SearchSnapshot[]): BackupSetJson[] {
  return pairBackupSets(backups, snapshots).map((set) => ({
    backup: set.pg?.label ?? null,
    snapshot: set.es ? { name: set.es.name, state: set.es.state } : null,
    paired_by: set.pairedBy,
    at: iso(set.at),
    complete: set.complete,
  }));
}

/** The newest set with a usable backup, for the report and `hasup status`; null when there is no backup. */
export function lastSetBrief(backups: BackupInfo[], snapshots: SearchSnapshot[]): SetBrief | null {
  const usable = backups.filter((b) => !b.error);
  const last = pairBackupSets(usable, snapshots)
    .filter((s) => s.pg !== null)
    .pop();
  if (!last?.pg) return null;
  return { label: last.pg.label, snapshot: last.es?.name ?? null, state: last.es?.state ?? null, complete: last.complete };
}

function iso(d: Date | null): string | null {
  return d ? d.toISOString() : null;
}
