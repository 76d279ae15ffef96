import type { Command } from 'commander';
import { describeTarget, type RestoreRequest } from '../ha/index.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import type { SnapshotJobView } from '../plugins/backup/snapshot-jobs.js';
import { ApiClient, ApiError } from './api-client.js';
import { followSnapshotRestore, snapshotRestoreDoneText } from './snapshot-commands.js';
import { NEW_CLUSTER_DEFAULTS, restoreToNewCluster, type NewClusterFlags } from './restore-new-cluster.js';

/**
 * `hasup restore (--latest | --time T | --lsn L | --set LABEL) --yes`: the
 * whole cluster back from the backup repository, with the local member as
 * the restorer (docs/backup.md). The target is checked against the
 * repository before anything stops; then the command follows the restore
 * until it is done or failed, printing what it does. A backup set's
 * Elasticsearch snapshot is restored after PostgreSQL, and followed too.
 */
interface RestoreFlags extends Partial<Omit<NewClusterFlags, 'latest' | 'time' | 'lsn' | 'set' | 'secrets' | 'stateDir'>> {
  toNewCluster?: boolean;
  stateDir: string;
  api?: string;
  secrets?: string;
  json?: boolean;
  latest?: boolean;
  time?: string;
  lsn?: string;
  set?: string;
  yes?: boolean;
  wait: boolean;
}

const POLL_MS = 2000;

export function registerRestoreCommand(program: Command): void {
  program
    .command('restore')
    .description('restore the whole PostgreSQL cluster from the backup repository, this member restoring: every member stops PostgreSQL, this one replays to the target and leads on a new timeline, the others follow it')
    .option('--latest', 'replay every archived WAL segment (the newest state the repository holds)')
    .option('--time <time>', 'replay up to a moment, with its zone (2026-12-07T03:00:00Z)')
    .option('--lsn <lsn>', 'replay up to a WAL position (0/3000060)')
    .option('--set <label>', "a backup set: PostgreSQL to the end of that backup (hasup backup list) and, when the set has an Elasticsearch snapshot, the snapshot's indices (replacing the existing ones)")
    .option('--yes', 'really do it: the running cluster\'s data is replaced by the restored one')
    .option('--no-wait', 'start the restore and return')
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .option('--json', 'print the final state as JSON')
    .option('--to-new-cluster', 'restore into a new cluster on this node (a node of no cluster), beside the running one, which is never touched: needs --repo, --source-secrets and --advertise; --secrets is then the new secrets file to write')
    .option('--repo <n|path>', "the repository to restore from: 1 or 2 (repo_path or repo2_path; with two, hasup chooses the first holding a backup for the target whose archiving does not fail); with --to-new-cluster: its path (read only; a copy of it is fine)")
    .option('--source-secrets <file>', "with --to-new-cluster: the secrets file of the cluster that wrote the repository (its PostgreSQL passwords and the repository's passphrase)")
    .option('--new-repo <path>', "with --to-new-cluster: the new cluster's own repository, where it archives (default: archiving off); never the source")
    .option('--advertise <addr[:port]>', "with --to-new-cluster: this node's address (as for cluster create)")
    .option('--config <file>', 'with --to-new-cluster: the hasup.toml to write', process.env.HASUP_CONFIG ?? '/etc/hasup/hasup.toml')
    .option('--print-config', 'with --to-new-cluster: print the hasup.toml instead of writing it')
    .option('--service <name>', 'with --to-new-cluster: plans to start (default postgresql; repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--cluster-cidr <cidr>', 'with --to-new-cluster: as for cluster create (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--name <name>', 'with --to-new-cluster: the new cluster\'s name', `${NEW_CLUSTER_DEFAULTS.name}-restored`)
    .option('--etcd-voters <n>', 'with --to-new-cluster: 3 or 5', '3')
    .option('--ca-days <n>', 'with --to-new-cluster: validity of the new cluster CA in days', NEW_CLUSTER_DEFAULTS.caDays)
    .option('--pg-bin-dir <dir>', "with --to-new-cluster: PostgreSQL's programs", '/usr/lib/postgresql/15/bin')
    .option('--pgbackrest-bin <file>', 'with --to-new-cluster: the pgbackrest executable', '/usr/bin/pgbackrest')
    .option('--service-user <user>', 'with --to-new-cluster, as root: the user PostgreSQL runs as', 'hasup')
    .option('--recovery-timeout <s>', 'with --to-new-cluster: how long the replay to the target may take', '86400')
    .action(async (flags: RestoreFlags) => {
      if (flags.toNewCluster) {
        if (!flags.repo || !flags.sourceSecrets || !flags.advertise) throw new Error('--to-new-cluster needs --repo PATH, --source-secrets FILE and --advertise ADDR');
        await restoreToNewCluster(flags as unknown as NewClusterFlags);
        return;
      }
      if (flags.repo !== undefined && flags.repo !== '1' && flags.repo !== '2') throw new Error(`--repo is 1 or 2 (a repository of this cluster); a path goes with --to-new-cluster (got ${JSON.stringify(flags.repo.slice(0, 80))})`);
      for (const f of ['sourceSecrets', 'newRepo', 'advertise'] as const) {
        if (flags[f] !== undefined) throw new Error(`--${f.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} goes with --to-new-cluster`);
      }
      const body = {
        ...(flags.latest ? { latest: true } : {}),
        ...(flags.time !== undefined ? { time: flags.time } : {}),
        ...(flags.lsn !== undefined ? { lsn: flags.lsn } : {}),
        ...(flags.set !== undefined ? { set: flags.set } : {}),
      };
      if (Object.keys(body).length !== 1) throw new Error('give exactly one of --latest, --time, --lsn or --set');
      if (!flags.yes) {
        const search =
          flags.set !== undefined
            ? " With --set, when the set has an Elasticsearch snapshot, its indices are then restored with mode replace: the existing indices of those names are deleted first and what they hold since the snapshot is lost (hasup's own logs and metrics are left as they are)."
            : '';
        throw new Error(
          `a restore stops PostgreSQL on every member and replaces the cluster's data with the repository's (writes after the target are gone from the running cluster; a member's copy that cannot be rewound is set aside, not deleted).${search} Run again with --yes`,
        );
      }
      const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
      const started = await api
        .request<{ restore: RestoreRequest; snapshot_restore?: SnapshotJobView | null; snapshot_note?: string | null }>('POST', '/restore', { ...body, ...(flags.repo ? { repo: Number(flags.repo) } : {}) })
        .catch((err: unknown) => {
          throw err instanceof ApiError && typeof err.body.error === 'string' ? new Error(err.body.error) : err;
        });
      let r = started.restore;
      const search = started.snapshot_restore ?? null;
      if (!flags.json) {
        const repo = (r.target as { repo?: number }).repo;
        console.log(`cluster restore ${r.id} to ${describeTarget(r.target)}${repo ? ` from repository ${repo}` : ''} started, member ${r.member} restoring`);
        if (search) console.log(`then snapshot ${search.snapshot} (${describeIndices(search)}, replacing the existing ones), job ${search.id}`);
        if (started.snapshot_note) console.log(started.snapshot_note);
      }
      if (!flags.wait) {
        if (flags.json) console.log(JSON.stringify(flags.set !== undefined ? { ...r, snapshot_restore: search, snapshot_note: started.snapshot_note ?? null } : r, null, 2));
        return;
      }
      let shown = '';
      let failures = 0;
      while (r.state === 'stopping' || r.state === 'restoring') {
        await new Promise((res) => setTimeout(res, POLL_MS));
        try {
          const now = (await api.request<{ restore: RestoreRequest | null }>('GET', '/restore', undefined, { timeoutMs: 10_000 })).restore;
          failures = 0;
          if (now && now.id === r.id) r = now;
        } catch (err) {
          if (++failures >= 15) throw new Error(`lost track of restore ${r.id} on ${api.url}: ${(err as Error).message}`);
          continue;
        }
        const line = `${r.state}: ${r.detail}`;
        if (line !== shown && !flags.json) console.log(`  ${line}`);
        shown = line;
      }
      if (r.state === 'failed') {
        if (flags.json) console.log(JSON.stringify(r, null, 2));
        throw new Error(`cluster restore ${r.id} failed: ${r.detail}${search ? `; snapshot ${search.snapshot} was not restored` : ''}`);
      }
      if (!flags.json) console.log(`cluster restore ${r.id} done: ${r.detail}`);
      if (!search) {
        if (flags.json) console.log(JSON.stringify(r, null, 2));
        return;
      }
      const job = await followSnapshotRestore(api, search, (line) => {
        if (!flags.json) console.log(`  ${line}`);
      });
      if (flags.json) console.log(JSON.stringify({ ...r, snapshot_restore: job }, null, 2));
      if (job.state === 'failed') {
        throw new Error(`PostgreSQL is restored, but the snapshot restore ${job.id} failed: ${job.error ?? 'no reason given'}; retry it with hasup snapshot restore ${job.snapshot} --indices ${job.request.indices === 'all' ? 'all' : job.request.indices.join(',')} --mode replace --yes`);
      }
      if (!flags.json) console.log(snapshotRestoreDoneText(job));
    });
}

function describeIndices(j: SnapshotJobView): string {
  const list = j.request.indices;
  if (list === 'all') return 'every index';
  return list.length <= 5 ? list.join(', ') : `${list.slice(0, 5).join(', ')} and ${list.length - 5} more`;
}
