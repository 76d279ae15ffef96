import type { Command } from 'commander';
import { checkVoterCount, type VotersSet } from '../plugins/etcd/membership.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { ApiClient } from './api-client.js';

/**
 * `hasup cluster set etcd_voters 3|5`: settings of a running cluster, kept
 * in etcd and read by every member (docs/cluster.md, "Growing and
 * shrinking"). Raising etcd_voters makes etcd clients (and the next
 * joiners) take the new seats, one at a time; lowering it demotes nobody.
 */
export const CLUSTER_SETTINGS = ['etcd_voters'] as const;

export function registerClusterSettingCommands(cluster: Command): void {
  cluster
    .command('set <setting> <value>')
    .description('change a setting of the running cluster: etcd_voters 3|5 (etcd clients are promoted to fill new seats; lowering demotes nobody)')
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .action(async (setting: string, value: string, flags: { stateDir: string; api?: string; secrets?: string }) => {
      if (!(CLUSTER_SETTINGS as readonly string[]).includes(setting)) throw new Error(`unknown cluster setting "${setting}"; known: ${CLUSTER_SETTINGS.join(', ')}`);
      if (!/^\d+$/.test(value)) throw new Error(`etcd_voters must be 3 or 5, got ${JSON.stringify(value)}`);
      const voters = checkVoterCount(Number(value));
      const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
      const answer = await api.request<VotersSet>('POST', '/etcd/voters', { voters });
      console.log(`etcd_voters = ${answer.voters} (was ${answer.previous}); ${answer.note}`);
    });
}
