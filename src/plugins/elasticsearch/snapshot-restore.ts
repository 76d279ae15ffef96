import { SnapshotError } from './snapshot-error.js';
import type { SnapshotInfo } from './snapshot-info.js';

/**
 * What a restore does, decided before anything is sent (pure).
 *
 * Elasticsearch restores an index only where none of that name is open:
 * it overwrites a closed index and refuses an open one. hasup makes the
 * choice explicit instead of closing indices behind the operator's back:
 *
 * - `refuse` (the default): when any target exists (open or closed) the
 *   restore is refused, naming them. Nothing is changed.
 * - `replace`: the existing targets are deleted first, then restored from
 *   the snapshot; what they held since the snapshot is lost.
 * - `rename`: each index is restored beside the live one as
 *   `<prefix><name>` (`restored-` by default), aliases left out (they would
 *   point at both); refused when such a copy already exists.
 *
 * `all` is every index in the snapshot except those whose name starts with
 * "." (system and hidden indices: Elasticsearch restores those through
 * feature states, and overwriting them under a running cluster is not a
 * data restore). A name is taken as given; a pattern with `*` matches
 * the snapshot's indices, not the dot ones unless it starts with ".".
 * A name or pattern that matches nothing in the snapshot is refused.
 */
export type RestoreMode = 'refuse' | 'replace' | 'rename';

export interface RestoreRequest {
  indices: 'all' | string[];
  mode?: RestoreMode;
  /** For `rename`; default "restored-". */
  renamePrefix?: string;
}

export interface RestorePlan {
  /** Indices taken from the snapshot. */
  sources: string[];
  /** Their names in the cluster once restored. */
  targets: string[];
  /** Existing indices deleted before the restore (replace only). */
  deleteFirst: string[];
  /** The body of POST _snapshot/<repo>/<name>/_restore. */
  body: Record<string, unknown>;
}

export const DEFAULT_RENAME_PREFIX = 'restored-';
/** How many names a message lists before it says "and N more". */
const NAMES_SHOWN = 10;

export function planRestore(snapshot: SnapshotInfo, req: RestoreRequest, existing: ReadonlySet<string>): RestorePlan {
  const mode = req.mode ?? 'refuse';
  if (snapshot.state !== 'SUCCESS' && snapshot.state !== 'PARTIAL') {
    throw new SnapshotError('bad-request', `snapshot ${snapshot.name} is ${snapshot.state}: only a SUCCESS or PARTIAL snapshot can be restored`);
  }
  const sources = selectIndices(snapshot, req.indices);
  const prefix = mode === 'rename' ? (req.renamePrefix ?? DEFAULT_RENAME_PREFIX) : '';
  if (mode === 'rename') {
    if (!/^[a-z0-9][a-z0-9._-]*$/.test(prefix)) throw new SnapshotError('bad-request', `rename prefix ${JSON.stringify(prefix)} must be lowercase letters, digits, ".", "_" or "-", not starting with a symbol`);
  }
  const targets = sources.map((s) => prefix + s);
  const tooLong = targets.find((t) => Buffer.byteLength(t) > 255);
  if (tooLong) throw new SnapshotError('bad-request', `restored index name ${tooLong.slice(0, 80)}... is longer than Elasticsearch's 255 bytes`);
  const present = targets.filter((t) => existing.has(t));
  if (present.length > 0 && mode === 'refuse') {
    throw new SnapshotError(
      'index-exists',
      `restoring ${snapshot.name} would overwrite ${present.length === 1 ? 'an existing index' : `${present.length} existing indices`}: ${names(present)}. ` +
        `Nothing was changed. Restore with replace (those indices are deleted first: what they hold now is lost) or with rename (restored beside them as ${DEFAULT_RENAME_PREFIX}<name>)`,
    );
  }
  if (present.length > 0 && mode === 'rename') {
    throw new SnapshotError('index-exists', `restoring ${snapshot.name} renamed would overwrite ${names(present)}, which already exist: delete them or choose another prefix. Nothing was changed`);
  }
  const body: Record<string, unknown> = {
    indices: sources.join(','),
    ignore_unavailable: false,
    // Templates, pipelines and cluster settings stay as the running cluster has them.
    include_global_state: false,
    include_aliases: mode !== 'rename',
  };
  if (mode === 'rename') {
    body.rename_pattern = '(.+)';
    body.rename_replacement = `${prefix}$1`;
  }
  return { sources, targets, deleteFirst: mode === 'replace' ? present : [], body };
}

function selectIndices(snapshot: SnapshotInfo, wanted: 'all' | string[]): string[] {
  if (wanted === 'all') {
    const all = snapshot.indices.filter((i) => !i.startsWith('.'));
    if (all.length === 0) throw new SnapshotError('not-in-snapshot', `snapshot ${snapshot.name} holds no index to restore (only system or hidden ones, or none)`);
    return all;
  }
  if (wanted.length === 0) throw new SnapshotError('bad-request', 'name at least one index to restore, or all');
  const chosen = new Set<string>();
  const unmatched: string[] = [];
  for (const w of wanted) {
    if (!/^[a-z0-9*.+_][a-z0-9*.+_-]*$/.test(w)) throw new SnapshotError('bad-request', `${JSON.stringify(w.slice(0, 80))} is not an index name or pattern (lowercase, no spaces or commas; "*" matches any characters)`);
    const matches = w.includes('*') ? snapshot.indices.filter((i) => wildcard(w).test(i) && (w.startsWith('.') || !i.startsWith('.'))) : snapshot.indices.filter((i) => i === w);
    if (matches.length === 0) unmatched.push(w);
    for (const m of matches) chosen.add(m);
  }
  if (unmatched.length > 0) {
    const has = snapshot.indices.length === 0 ? 'no index' : names(snapshot.indices);
    throw new SnapshotError('not-in-snapshot', `${unmatched.map((u) => JSON.stringify(u)).join(', ')} ${unmatched.length === 1 ? 'is' : 'are'} not in snapshot ${snapshot.name}, which holds ${has}. Nothing was changed`);
  }
  return [...chosen].sort();
}

function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

function names(list: string[]): string {
  const shown = list.slice(0, NAMES_SHOWN).join(', ');
  return list.length > NAMES_SHOWN ? `${shown} and ${list.length - NAMES_SHOWN} more` : shown;
}
