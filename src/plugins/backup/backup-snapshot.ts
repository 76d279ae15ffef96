import type { SearchSnapshots } from './search-snapshots.js';

/**
 * The Elasticsearch side of a backup set: once a pgBackRest backup has
 * succeeded, the leader takes a snapshot naming its label, then applies
 * snapshot retention, paired with pgBackRest's (a snapshot whose backup
 * pgBackRest has expired goes too). Nothing here fails the backup: a
 * snapshot that could not be taken, or ended partial or failed, and a
 * retention that could not finish are said in the outcome, beside the
 * backup, and the set is then incomplete.
 *
 * The snapshot begins when the backup has ended, so the set's two sides
 * are not one instant: PostgreSQL can be restored to any moment after the
 * backup, Elasticsearch only to the snapshot.
 */
export interface SnapshotOutcome {
  /** The snapshot's name; null when none could be started. */
  name: string | null;
  /** How it ended (SUCCESS, PARTIAL, FAILED); null when it was not taken to its end. */
  state: string | null;
  /** Why it is not a whole snapshot; null when it is. */
  error: string | null;
  took_ms: number;
  /** What retention deleted afterwards, and why it stopped if it did; null when it did not run (cancelled). */
  retention: { deleted: string[]; error: string | null } | null;
}

export interface SnapshotForBackupInput {
  /** The pgBackRest label of the backup just made. */
  label: string;
  member: string;
  /** The labels pgBackRest lists now (after its expire); null when they cannot be read (retention then counts only). */
  liveBackups: () => Promise<ReadonlySet<string> | null>;
  signal: AbortSignal;
  /** Told what the step does, in words (the job's progress detail). */
  onProgress: (detail: string) => void;
  /** An error as the operator may see it (secrets blanked out). */
  describe: (err: unknown) => string;
  now: () => number;
}

export async function snapshotForBackup(search: SearchSnapshots, input: SnapshotForBackupInput): Promise<SnapshotOutcome> {
  const started = input.now();
  const outcome: SnapshotOutcome = { name: null, state: null, error: null, took_ms: 0, retention: null };
  input.onProgress(`taking an Elasticsearch snapshot for backup ${input.label}`);
  try {
    const { snapshot, problem } = await search.take({
      pgBackup: input.label,
      member: input.member,
      signal: input.signal,
      onProgress: (p) => input.onProgress(`taking an Elasticsearch snapshot for backup ${input.label}: ${p.shardsDone} of ${p.shardsTotal} shards`),
    });
    outcome.name = snapshot.name;
    outcome.state = snapshot.state;
    outcome.error = problem;
  } catch (err) {
    outcome.error = input.describe(err);
  }
  if (!input.signal.aborted) {
    input.onProgress('applying snapshot retention');
    const live = await input.liveBackups().catch(() => null);
    outcome.retention = await search.applyRetention(live).then(
      (r) => ({ deleted: r.deleted, error: null }),
      (err: unknown) => ({ deleted: [], error: input.describe(err) }),
    );
  }
  outcome.took_ms = input.now() - started;
  return outcome;
}
