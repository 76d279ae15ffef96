import { Option, type Command } from 'commander';
import type { SearchRestoreMode } from '../plugins/backup/search-snapshots.js';
import type { SnapshotJobView, SnapshotListing } from '../plugins/backup/snapshot-jobs.js';
import { formatBytes } from '../plugins/backup/pgbackrest.js';
import { client, follow, plain, table, withFlags, type Flags } from './backup-commands.js';

/**
 * Elasticsearch snapshots from the command line, through the local
 * daemon's API (docs/backup.md, "Elasticsearch snapshots"):
 *
 *   hasup snapshot list [--json]
 *   hasup snapshot restore NAME --indices a,b|all --mode refuse|replace|rename [--rename-prefix P] --yes
 *
 * A restore is checked by the daemon before anything changes (a snapshot or
 * index that is not there, an index in the way with refuse), then followed
 * until every restored index has its primary shards.
 */
export function registerSnapshotCommands(program: Command): void {
  const snapshot = program.command('snapshot').description('Elasticsearch snapshots (set [service.elasticsearch.snapshot] repo_path on every member); a backup takes one for its backup set');

  withFlags(snapshot.command('list'))
    .description('every snapshot in the repository: name, state, start, the pgBackRest backup it was taken for, indices, size')
    .action(async (flags: Flags) => {
      const listing = await client(flags)
        .request<SnapshotListing>('GET', '/snapshots')
        .catch((err: unknown) => {
          throw plain(err);
        });
      console.log(flags.json ? JSON.stringify(listing, null, 2) : snapshotListText(listing));
    });

  withFlags(snapshot.command('restore'))
    .description('restore indices of a snapshot, from this member; refused with the reason, nothing changed, when a snapshot or index is not there or an index is in the way with --mode refuse')
    .argument('<name>', 'the snapshot (hasup snapshot list)')
    .requiredOption('--indices <list>', 'comma-separated index names or * patterns, or all (every index in the snapshot but the dot ones)')
    .addOption(
      new Option('--mode <mode>', 'refuse: nothing is done when an index to restore exists; replace: existing indices of those names are deleted first (what they hold now is lost); rename: restored beside them as <prefix><name>')
        .choices(['refuse', 'replace', 'rename'])
        .makeOptionMandatory(),
    )
    .option('--rename-prefix <prefix>', 'with --mode rename: the restored indices\' prefix (default restored-)')
    .option('--yes', 'really do it')
    .option('--no-wait', 'start the restore and return')
    .action(async (name: string, flags: Flags & { indices: string; mode: SearchRestoreMode; renamePrefix?: string; yes?: boolean; wait: boolean }) => {
      if (!flags.yes) {
        const what = flags.mode === 'replace' ? 'deletes the existing indices of those names first (what they hold now is lost), then restores them' : flags.mode === 'rename' ? 'restores the indices beside the live ones under a prefix' : 'restores the indices, and does nothing when one of them exists';
        throw new Error(`a snapshot restore with --mode ${flags.mode} ${what}. Run again with --yes`);
      }
      const api = client(flags);
      const body = { name, indices: flags.indices, mode: flags.mode, ...(flags.renamePrefix !== undefined ? { rename_prefix: flags.renamePrefix } : {}) };
      const started = await api.request<{ job: SnapshotJobView; plan: { sources: string[]; targets: string[]; delete_first: string[] } }>('POST', '/snapshot/restore', body).catch((err: unknown) => {
        throw plain(err);
      });
      let job = started.job;
      if (!flags.json) {
        const deleted = started.plan.delete_first.length > 0 ? `; deleting first: ${started.plan.delete_first.join(', ')}` : '';
        console.log(`snapshot restore ${job.id} of ${name} started on member ${job.member}: ${started.plan.sources.join(', ')} as ${started.plan.targets.join(', ')}${deleted}`);
      }
      if (!flags.wait) {
        if (flags.json) console.log(JSON.stringify(started, null, 2));
        return;
      }
      job = await followSnapshotRestore(api, job, (line) => {
        if (!flags.json) console.log(`  ${line}`);
      });
      if (flags.json) console.log(JSON.stringify(job, null, 2));
      if (job.state === 'failed') throw new Error(`snapshot restore ${job.id} failed: ${job.error ?? 'no reason given'}`);
      if (!flags.json) console.log(snapshotRestoreDoneText(job));
    });
}

/** Follows a snapshot restore job until it ends, telling `say` each new step. */
export function followSnapshotRestore(api: ReturnType<typeof client>, job: SnapshotJobView, say: (line: string) => void): Promise<SnapshotJobView> {
  return follow(api, `/snapshot/jobs/${job.id}`, job, snapshotProgressText, (j) => say(snapshotProgressText(j)));
}

export function snapshotProgressText(j: SnapshotJobView): string {
  return j.progress.detail ?? (j.progress.percent !== null ? `${j.progress.percent}% of the primary shards active` : 'running');
}

export function snapshotRestoreDoneText(j: SnapshotJobView): string {
  const took = j.took_ms !== null ? ` in ${(j.took_ms / 1000).toFixed(1)} s` : '';
  const r = j.restored;
  if (!r) return `snapshot restore ${j.id} of ${j.snapshot} done${took}`;
  const deleted = r.deleted_first.length > 0 ? ` (replacing ${r.deleted_first.length} existing)` : '';
  return `snapshot ${j.snapshot} restored${took}: ${r.targets.join(', ')}${deleted}`;
}

const when = (iso: string | null) => (iso ? `${iso.slice(0, 19).replace('T', ' ')}Z` : '-');

export function snapshotListText(l: SnapshotListing): string {
  const head = `Elasticsearch snapshots in ${l.repo_path}, read by member ${l.member}`;
  if (l.snapshots.length === 0) return `${head}\nno snapshots yet (a backup takes one: hasup backup create)`;
  const rows = [['NAME', 'STATE', 'STARTED', 'BACKUP', 'INDICES', 'SIZE']];
  for (const s of l.snapshots) rows.push([s.name, s.state, when(s.started_at), s.pg_backup ?? '-', String(s.indices.length), s.size_bytes === null ? '-' : formatBytes(s.size_bytes)]);
  const problems = l.snapshots.filter((s) => s.problem).map((s) => `  ${s.name}: ${s.problem}`);
  return [head, '', table(rows), ...(problems.length > 0 ? ['', 'not whole:', ...problems] : [])].join('\n');
}
