import type { Command } from 'commander';
import { describeTarget, type RestoreRequest } from '../ha/index.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { ApiClient, ApiError } from './api-client.js';

/**
 * `hasup restore (--latest | --time T | --lsn L) --yes`: the whole cluster
 * back from the backup repository, with the local member as the restorer
 * (docs/backup.md). The target is checked against the repository's
 * recoverability window before anything stops; then the command follows
 * the restore until it is done or failed, printing what it does.
 */
interface RestoreFlags {
  stateDir: string;
  api?: string;
  secrets?: string;
  json?: boolean;
  latest?: boolean;
  time?: string;
  lsn?: string;
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
    .option('--yes', 'really do it: the running cluster\'s data is replaced by the restored one')
    .option('--no-wait', 'start the restore and return')
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .option('--json', 'print the final state as JSON')
    .action(async (flags: RestoreFlags) => {
      const body = { ...(flags.latest ? { latest: true } : {}), ...(flags.time !== undefined ? { time: flags.time } : {}), ...(flags.lsn !== undefined ? { lsn: flags.lsn } : {}) };
      if (Object.keys(body).length !== 1) throw new Error('give exactly one of --latest, --time or --lsn');
      if (!flags.yes) {
        throw new Error(
          'a restore stops PostgreSQL on every member and replaces the cluster\'s data with the repository\'s (writes after the target are gone from the running cluster; a member\'s copy that cannot be rewound is set aside, not deleted). Run again with --yes',
        );
      }
      const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
      const started = await api.request<{ restore: RestoreRequest }>('POST', '/restore', body).catch((err: unknown) => {
        throw err instanceof ApiError && typeof err.body.error === 'string' ? new Error(err.body.error) : err;
      });
      let r = started.restore;
      if (!flags.json) console.log(`cluster restore ${r.id} to ${describeTarget(r.target)} started, member ${r.member} restoring`);
      if (!flags.wait) {
        if (flags.json) console.log(JSON.stringify(r, null, 2));
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
      if (flags.json) console.log(JSON.stringify(r, null, 2));
      if (r.state === 'failed') throw new Error(`cluster restore ${r.id} failed: ${r.detail}`);
      if (!flags.json) console.log(`cluster restore ${r.id} done: ${r.detail}`);
    });
}
