/**
 * A snapshot operation that failed, with what kind of failure it was so a
 * caller (the API, the CLI, the backup-set job) can answer it without
 * reading the message. Messages name the cause and what to do; they hold
 * no secret (Elasticsearch runs without credentials here, and no request
 * body is echoed).
 */
export type SnapshotErrorCode =
  /** The repository path is not under path.repo on some node. */
  | 'path-repo'
  /** Some node cannot read or write the repository directory. */
  | 'repository-unreachable'
  /** No such snapshot in the repository. */
  | 'missing'
  /** The snapshot ended FAILED. */
  | 'failed'
  /** The snapshot ended PARTIAL: some shards are not in it. */
  | 'partial'
  /** An index asked for is not in the snapshot. */
  | 'not-in-snapshot'
  /** A restore target exists and the request said not to touch it. */
  | 'index-exists'
  /** A snapshot or restore did not end within its time limit (it goes on in Elasticsearch). */
  | 'timeout'
  /** The request itself is not usable (a bad name, prefix, state). */
  | 'bad-request'
  /** Anything else Elasticsearch answered, or no node answered. */
  | 'elasticsearch';

export class SnapshotError extends Error {
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SnapshotError';
  }
}
