/**
 * Backup sets: a pgBackRest backup and the Elasticsearch snapshot taken
 * with it, listed (and later restored) as one, so that the database and
 * the search data come back from the same moment. Pure: it pairs what
 * `pgbackrest info` and Elasticsearch's snapshot listing already say.
 *
 * The types below are only what pairing needs, so that this module depends
 * on neither the pgBackRest wrapper nor the Elasticsearch plugin; their
 * BackupInfo and SnapshotInfo fit them as they are.
 */
export interface PairableBackup {
  label: string;
  stoppedAt: Date;
}

export interface PairableSnapshot {
  name: string;
  /** Elasticsearch's state: SUCCESS, PARTIAL, FAILED, IN_PROGRESS... */
  state: string;
  startedAt: Date | null;
  /** The pgBackRest label it was taken for (its metadata.pg_backup), or null. */
  pgBackup: string | null;
}

export interface BackupSet<B extends PairableBackup, S extends PairableSnapshot> {
  pg: B | null;
  es: S | null;
  /** label: the snapshot's metadata names the backup; time: taken soon after it; null: one side alone. */
  pairedBy: 'label' | 'time' | null;
  /** The set's moment: the backup's end, else the snapshot's start. */
  at: Date | null;
  /** Both sides present and the snapshot whole: the set restores the cluster as it was. */
  complete: boolean;
}

export interface PairingOptions {
  /**
   * How long after a backup ended a snapshot without a label may start and
   * still be taken as its pair. A snapshot hasup takes for a backup names
   * it; this is for snapshots taken by other means.
   */
  windowMs?: number;
}

export const DEFAULT_PAIRING_WINDOW_MS = 10 * 60_000;

/**
 * Pairs each backup with the snapshot whose metadata names its label (the
 * successful one, newest, when several do), and failing that with the
 * unlabelled snapshot that started closest after the backup ended, within
 * the window; closer pairs are made first, so two backups never share a
 * snapshot. A snapshot naming a backup that is not listed (expired) is
 * never given to another. Everything left over is a set of one. Oldest
 * first.
 */
export function pairBackupSets<B extends PairableBackup, S extends PairableSnapshot>(backups: B[], snapshots: S[], opts: PairingOptions = {}): Array<BackupSet<B, S>> {
  const windowMs = opts.windowMs ?? DEFAULT_PAIRING_WINDOW_MS;
  const pairOf = new Map<B, { es: S; by: 'label' | 'time' }>();
  const taken = new Set<S>();

  const byLabel = new Map<string, S[]>();
  for (const s of snapshots) if (s.pgBackup !== null) byLabel.set(s.pgBackup, [...(byLabel.get(s.pgBackup) ?? []), s]);
  for (const b of backups) {
    const named = byLabel.get(b.label);
    if (!named) continue;
    const best = [...named].sort((x, y) => Number(y.state === 'SUCCESS') - Number(x.state === 'SUCCESS') || time(y.startedAt) - time(x.startedAt))[0]!;
    pairOf.set(b, { es: best, by: 'label' });
    taken.add(best);
  }

  const candidates: Array<{ b: B; s: S; gap: number }> = [];
  for (const b of backups) {
    if (pairOf.has(b)) continue;
    for (const s of snapshots) {
      if (s.pgBackup !== null || s.startedAt === null) continue;
      const gap = s.startedAt.getTime() - b.stoppedAt.getTime();
      if (gap >= 0 && gap <= windowMs) candidates.push({ b, s, gap });
    }
  }
  candidates.sort((x, y) => x.gap - y.gap || time(x.b.stoppedAt) - time(y.b.stoppedAt));
  for (const { b, s } of candidates) {
    if (pairOf.has(b) || taken.has(s)) continue;
    pairOf.set(b, { es: s, by: 'time' });
    taken.add(s);
  }

  const sets: Array<BackupSet<B, S>> = backups.map((b) => {
    const pair = pairOf.get(b);
    return { pg: b, es: pair?.es ?? null, pairedBy: pair?.by ?? null, at: b.stoppedAt, complete: pair?.es.state === 'SUCCESS' };
  });
  for (const s of snapshots) if (!taken.has(s)) sets.push({ pg: null, es: s, pairedBy: null, at: s.startedAt, complete: false });
  return sets.sort((x, y) => time(x.at) - time(y.at) || (x.pg ? 0 : 1) - (y.pg ? 0 : 1));
}

function time(d: Date | null): number {
  return d?.getTime() ?? 0;
}
