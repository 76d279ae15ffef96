import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Command } from 'commander';
import { formatPeerAddress, parsePeerAddress, loadKeyring } from '../gossip/index.js';
import { parseEndpoint } from '../ha/index.js';
import { parseCron } from '../plugins/backup/cron.js';
import { checkVoterCount, type RemovedVoter } from '../plugins/etcd/membership.js';
import { readClusterState, writeClusterState } from '../supervisor/cluster-state.js';
import { parseNodeConfig } from '../supervisor/config-file.js';
import { clusterBundle } from '../supervisor/pki/ca-change.js';
import { CA_DAYS } from '../supervisor/pki/issue.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, withClusterCa } from '../supervisor/pki/provision.js';
import { DEFAULT_CLUSTER_NAME, generateSecrets, loadSecretsFile, writeSecretsFile, type ClusterSecrets } from '../supervisor/secrets.js';
import { DEFAULT_STATE_DIR, StateDir } from '../supervisor/state-dir.js';
import { ApiClient } from './api-client.js';
import { registerClusterRoleCommands } from './cluster-role.js';
import { registerClusterSettingCommands } from './cluster-settings.js';
import { allowedCidrs, DEFAULT_PREFIX, renderNodeConfig } from './node-config-template.js';

/**
 * `hasup cluster create` / `hasup cluster join` prepare a node: the cluster
 * secrets, the state directory (marked as belonging to the cluster, and on
 * the first node as its founder) and a hasup.toml. They do not run the
 * daemon: `hasup run --config FILE` (what the systemd unit starts) does,
 * and forms etcd from the ring. `hasup depart` removes a dead member for good.
 */
export const DEFAULT_CONFIG_FILE = '/etc/hasup/hasup.toml';

export interface PrepareFlags {
  advertise: string;
  stateDir: string;
  config: string;
  printConfig?: boolean;
  service: string[];
  clusterCidr: string[];
}

export function withPrepareFlags(cmd: Command): Command {
  return cmd
    .requiredOption('--advertise <addr[:port]>', 'address other members reach this node at (a literal IP; gossip port 9638)')
    .option('--state-dir <dir>', 'state directory of this node', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--config <file>', 'hasup.toml to write for this node (an existing one is kept)', process.env.HASUP_CONFIG ?? DEFAULT_CONFIG_FILE)
    .option('--print-config', 'print the hasup.toml instead of writing it')
    .option('--service <name>', 'plan to start at the first start, e.g. postgresql (repeatable; etcd is started by the cluster formation)', collect, [])
    .option(
      '--cluster-cidr <cidr>',
      `network the members and the load balancer connect to PostgreSQL from, e.g. 10.0.0.0/24 (repeatable; default: the /${DEFAULT_PREFIX[4]} or /${DEFAULT_PREFIX[6]} around the advertised address)`,
      collect,
      [],
    );
}

export function registerClusterCommands(program: Command): void {
  const cluster = program
    .command('cluster')
    .description('form a cluster: `create` on the first node, `join` on every other (joins may run in parallel)')
    .addHelpText(
      'after',
      `
Then start the daemon on each node: \`hasup run --config FILE\` (or the systemd unit).
The first 3 (or 5) members to run become etcd voting members, later ones etcd clients.`,
    );

  withPrepareFlags(cluster.command('create'))
    .description('first node: write the cluster secrets (ring key, API token, PostgreSQL passwords), mark this node as the founder, write its hasup.toml')
    .option('--secrets <file>', 'cluster secrets file to write, mode 0600 (default: STATE_DIR/secrets.json)')
    .option('--name <name>', 'cluster name, for operators', DEFAULT_CLUSTER_NAME)
    .option('--ca-days <n>', 'validity of the cluster CA in days (member certificates: [tls] member_days)', String(CA_DAYS))
    .option('--etcd-voters <n>', 'members that run an etcd voting member: 3 or 5 (kept in the secrets file, so every join uses it)', '3')
    .option('--standby-of <host:port>', "make this a standby cluster (a warm spare) of the primary cluster whose leader HOST:PORT reaches (its HAProxy write port); needs --primary-secrets")
    .option('--primary-secrets <file>', "with --standby-of or --standby-of-repo: the primary cluster's secrets file, whose PostgreSQL passwords and backup passphrase this cluster shares (its database is a copy)")
    .option('--standby-of-repo <path>', "make this a warm spare kept current from a copy of the primary cluster's pgBackRest repository at PATH (read only; for sites without a network link to it); needs --primary-secrets")
    .option('--restore-schedule <cron>', 'with --standby-of-repo: when the spare re-bases on the newest backup in the copy (cron, 5 fields, UTC), e.g. "30 2 * * *"')
    .action(async (flags: PrepareFlags & { secrets?: string; name: string; etcdVoters: string; caDays: string; standbyOf?: string; primarySecrets?: string; standbyOfRepo?: string; restoreSchedule?: string }) => {
      const voters = checkVoterCount(Number(flags.etcdVoters));
      if (flags.standbyOf !== undefined && !parseEndpoint(flags.standbyOf)) throw new Error(`--standby-of must be HOST:PORT (got ${JSON.stringify(flags.standbyOf)})`);
      const spare = checkSpareFlags(flags);
      if ((flags.standbyOf === undefined && spare === undefined) !== (flags.primarySecrets === undefined)) {
        throw new Error('--standby-of (or --standby-of-repo) and --primary-secrets go together: a standby cluster shares the primary cluster\'s PostgreSQL passwords');
      }
      const primary = flags.primarySecrets === undefined ? undefined : loadSecretsFile(resolve(flags.primarySecrets));
      // The cluster CA is made before anything is written: a failure leaves nothing behind.
      const fresh = await withClusterCa(generateSecrets({ name: flags.name, etcdVoters: voters }), { days: Number(flags.caDays) });
      const p = prepare(flags, voters);
      const secretsFile = resolve(flags.secrets ?? join(p.stateDir, 'secrets.json'));
      if (existsSync(secretsFile)) throw new Error(`${secretsFile} already exists; refusing to overwrite the cluster secrets (a cluster is created once; other nodes use \`hasup cluster join\`)`);
      // A standby cluster's own ring, etcd and API; the primary's database roles and repository passphrase.
      const secrets = primary
        ? { ...fresh, postgresql: primary.postgresql, ...(primary.backup ? { backup: primary.backup } : {}), ...(flags.standbyOf ? { standby_of: flags.standbyOf, ...(primary.tls ? { standby_of_ca: clusterBundle(primary.tls) } : {}) } : {}), ...(spare ? { standby_of_repo: spare.repo, ...(spare.schedule ? { restore_schedule: spare.schedule } : {}) } : {}) }
        : fresh;
      mkdirSync(dirname(secretsFile), { recursive: true, mode: 0o700 });
      writeSecretsFile(secretsFile, secrets);
      writeClusterState(p.stateDir, { cluster_id: secrets.cluster_id!, cluster_name: flags.name, founder: true, created_at: Date.now() });
      const config = finish(p, flags, { clusterName: flags.name, peers: [], secrets: secretsFile, standbyOf: secrets.standby_of, standbyOfCa: secrets.standby_of_ca, standbyOfRepo: secrets.standby_of_repo, restoreSchedule: secrets.restore_schedule, writtenBy: 'create' });
      const tls = await memberTls(p, secrets, secretsFile);
      p.say(`cluster ${flags.name} (id ${secrets.cluster_id}) created; this node is member ${p.memberId}, the etcd founder`);
      if (secrets.standby_of) p.say(`  a standby cluster of ${secrets.standby_of}: its leader copies and then streams from it, and never promotes until standby_of is set to ""`);
      if (secrets.standby_of_repo) {
        p.say(`  a warm spare of the repository copy ${secrets.standby_of_repo} (read only): its leader restores the newest backup there, replays the WAL archived there${secrets.restore_schedule ? `, and re-bases on the newest backup at ${secrets.restore_schedule} (UTC)` : ''}; it never promotes until \`hasup cluster promote\``);
      }
      p.say(`  secrets: ${secretsFile} (mode 0600: copy it to every other node, keep it secret: it holds the cluster CA's key)`);
      p.say(`  config:  ${config}`);
      p.say(`  tls:     ${tls}`);
      p.say(`  PostgreSQL accepts connections from ${p.allowedCidrs.join(', ')} ([service.postgresql.hba] allowed_cidrs)`);
      p.say(`next: hasup run --config ${flags.printConfig ? 'FILE' : config}   (or start the systemd unit)`);
      p.say(`then on every other node: hasup cluster join ${p.advertise} --secrets secrets.json --advertise ITS_ADDRESS`);
    });

  withPrepareFlags(cluster.command('join <peer>'))
    .description('every other node: take the cluster secrets, write this node\'s hasup.toml with PEER to join through')
    .requiredOption('--secrets <file>', 'the cluster secrets file made by `hasup cluster create` (copied into STATE_DIR/secrets.json)')
    .option('--ring-key <file>', 'ring-key file, for a secrets file that holds no ring key')
    .action(async (peerText: string, flags: PrepareFlags & { secrets: string; ringKey?: string }) => {
      const peer = formatPeerAddress(parsePeerAddress(peerText));
      const source = resolve(flags.secrets);
      const secrets = loadSecretsFile(source);
      if (secrets.ring_key === undefined && !flags.ringKey) throw new Error(`${source} holds no ring key (it predates \`hasup cluster create\`); pass --ring-key FILE`);
      if (flags.ringKey) loadKeyring(flags.ringKey);
      const p = prepare(flags, secrets.etcd_voters ?? 3);
      if (peer === formatPeerAddress(parsePeerAddress(p.advertise))) throw new Error(`${peerText} is this node's own address; join through a member that already runs`);
      const secretsFile = installSecrets(source, secrets, join(p.stateDir, 'secrets.json'));
      writeClusterState(p.stateDir, { cluster_id: secrets.cluster_id ?? null, cluster_name: secrets.cluster_name ?? null, founder: false, joined_via: peer, created_at: Date.now() });
      const clusterName = secrets.cluster_name ?? DEFAULT_CLUSTER_NAME;
      const config = finish(p, flags, { clusterName, peers: [peer], secrets: secretsFile, ringKey: flags.ringKey && resolve(flags.ringKey), standbyOf: secrets.standby_of, standbyOfCa: secrets.standby_of_ca, standbyOfRepo: secrets.standby_of_repo, restoreSchedule: secrets.restore_schedule, writtenBy: 'join' });
      const tls = await memberTls(p, secrets, secretsFile);
      p.say(`this node (member ${p.memberId}) is ready to join cluster ${clusterName}${secrets.cluster_id ? ` (id ${secrets.cluster_id})` : ''} through ${peer}`);
      p.say(`  secrets: ${secretsFile}`);
      p.say(`  config:  ${config}`);
      p.say(`  tls:     ${tls}`);
      p.say(`  PostgreSQL accepts connections from ${p.allowedCidrs.join(', ')} ([service.postgresql.hba] allowed_cidrs)`);
      p.say(`next: hasup run --config ${flags.printConfig ? 'FILE' : config}   (or start the systemd unit)`);
    });

  registerClusterRoleCommands(cluster);
  registerClusterSettingCommands(cluster);

  program
    .command('depart <member>')
    .description('permanently remove a stopped or dead member (by id or address): from etcd\'s voting members (an etcd client takes its seat) and the ring; refused when etcd would lose its quorum or the database its last member')
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .action(async (target: string, flags: { stateDir: string; api?: string; secrets?: string }) => {
      const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
      const id = await memberIdOf(api, target);
      const answer = await api.request<{ member: string; etcd: RemovedVoter }>('POST', `/members/${id}/depart`);
      const e = answer.etcd;
      const etcd = e.was_voter
        ? `removed from etcd's voting members (etcd member ${e.etcd_member_id}${e.voters_left === undefined ? '' : `, ${e.voters_left} voters left`})${e.promotes ? `; etcd client ${e.promotes} takes the seat` : ''}${e.note ? `; ${e.note}` : ''}`
        : `it was not an etcd voter${e.note ? ` (${e.note})` : ''}`;
      console.log(`member ${answer.member} departed; ${etcd}`);
    });
}

export interface Prepared {
  stateDir: string;
  memberId: string;
  advertise: string;
  /** The advertised IP alone: what the member certificate names. */
  address: string;
  voters: number;
  /** pg_hba's allowed networks for this node. */
  allowedCidrs: string[];
  configFile: string;
  say: (line: string) => void;
}

/** Checks every flag and claims the state directory before anything is written. */
export function prepare(flags: PrepareFlags, voters: number): Prepared {
  const advertise = parsePeerAddress(flags.advertise);
  let hba: ReturnType<typeof allowedCidrs>;
  try {
    hba = allowedCidrs(advertise.addr, flags.clusterCidr);
  } catch (err) {
    throw new Error(`--cluster-cidr: ${(err as Error).message}`);
  }
  if (!hba.advertiseCovered) {
    // The other members would refuse this one's replication connections (they allow the same networks).
    throw new Error(`the advertised address ${advertise.addr} is in none of the --cluster-cidr networks (${flags.clusterCidr.join(', ')}); name this node's network too`);
  }
  const stateDir = resolve(flags.stateDir);
  const claimed = readClusterState(stateDir);
  if (claimed) {
    throw new Error(`state directory ${stateDir} already belongs to cluster ${claimed.cluster_name ?? '?'} (${claimed.founder ? 'created' : 'joined'} here); use another --state-dir, or remove this one to start over`);
  }
  const state = new StateDir(stateDir);
  state.ensure();
  const say = flags.printConfig ? (line: string) => console.error(line) : (line: string) => console.log(line);
  const advertised = flags.advertise.includes(':') ? formatPeerAddress(advertise) : advertise.addr;
  return { stateDir, memberId: state.memberId(), advertise: advertised, address: advertise.addr, voters, allowedCidrs: hba.cidrs, configFile: resolve(flags.config), say };
}

/** Writes the node's hasup.toml (or prints it, or keeps an existing one). Returns where it is. */
export function finish(p: Prepared, flags: PrepareFlags, o: { clusterName: string; peers: string[]; secrets: string; ringKey?: string; standbyOf?: string; standbyOfCa?: string; standbyOfRepo?: string; restoreSchedule?: string; backupRepo?: string; writtenBy: 'create' | 'join' | 'restore --to-new-cluster' }): string {
  const toml = renderNodeConfig({ ...o, advertise: p.advertise, stateDir: p.stateDir, etcdVoters: p.voters, services: flags.service, allowedCidrs: p.allowedCidrs });
  parseNodeConfig(toml, '(generated hasup.toml)'); // never hand the operator a file `hasup run` would refuse
  if (flags.printConfig) {
    process.stdout.write(toml);
    return '(printed above)';
  }
  if (existsSync(p.configFile)) {
    console.error(`${p.configFile} exists and was kept; make sure it says what this would (not written):\n\n${toml}`);
    return p.configFile;
  }
  mkdirSync(dirname(p.configFile), { recursive: true, mode: 0o755 });
  writeFileSync(p.configFile, toml, { mode: 0o644, flag: 'wx' });
  return p.configFile;
}

/**
 * The member's key and certificate from the cluster CA (STATE_DIR/tls), so
 * the node starts with them; `hasup run` issues them too when missing.
 * Returns a line for the operator.
 */
export async function memberTls(p: Prepared, secrets: ClusterSecrets, secretsFile: string): Promise<string> {
  const tls = await ensureMemberTls({ stateRoot: p.stateDir, memberId: p.memberId, addresses: [p.address], secrets, secretsFile, settings: DEFAULT_TLS_SETTINGS });
  if (!tls.on) return `off: ${tls.reason}`;
  return `${tls.files.cert} (key ${tls.files.key}, mode 0600), valid until ${tls.cert.notAfter.toISOString().slice(0, 10)}, from ${tls.cert.issuer}`;
}

/** The node keeps its own copy of the secrets in its state dir, so the copied-in file can be deleted. */
function installSecrets(source: string, secrets: ClusterSecrets, dest: string): string {
  if (source === dest) return dest;
  if (existsSync(dest)) {
    const present = loadSecretsFile(dest);
    if (JSON.stringify(present) !== JSON.stringify(secrets)) throw new Error(`${dest} already holds other cluster secrets; remove the state directory to start over`);
    return dest;
  }
  writeSecretsFile(dest, secrets);
  return dest;
}

/** A member id as given, or the id of the member at an address (as the local daemon's ring knows it). */
async function memberIdOf(api: ApiClient, target: string): Promise<string> {
  if (/^[0-9a-f]{16}$/.test(target)) return target;
  let addr: string;
  try {
    addr = parsePeerAddress(target).addr;
  } catch {
    throw new Error(`"${target}" is neither a member id (16 hex digits) nor an IP address`);
  }
  const view = await api.request<{ members: Array<{ id: string; address: string; state: string }> }>('GET', '/butterfly');
  const matches = view.members.filter((m) => parsePeerAddress(m.address).addr === addr && m.state !== 'departed');
  if (matches.length === 0) throw new Error(`no member at ${addr} in the ring`);
  if (matches.length > 1) throw new Error(`several members at ${addr} (${matches.map((m) => `${m.id} ${m.state}`).join(', ')}); name one by id`);
  return matches[0]!.id;
}

/** --standby-of-repo and --restore-schedule, checked before anything is written; undefined without them. */
export function checkSpareFlags(flags: { standbyOf?: string; standbyOfRepo?: string; restoreSchedule?: string }): { repo: string; schedule?: string } | undefined {
  if (flags.standbyOfRepo === undefined) {
    if (flags.restoreSchedule !== undefined) throw new Error('--restore-schedule needs --standby-of-repo (it is when the warm spare re-bases on the newest backup there)');
    return undefined;
  }
  if (flags.standbyOf !== undefined) throw new Error('--standby-of and --standby-of-repo exclude each other: a standby cluster streams from its primary cluster or replays a copy of its repository');
  const repo = resolve(flags.standbyOfRepo).replace(/\/+$/, '') || '/';
  if (/[\s'"\\]/.test(repo)) throw new Error(`--standby-of-repo must be a path without spaces or quotes (got ${JSON.stringify(flags.standbyOfRepo)})`);
  if (!existsSync(repo)) throw new Error(`--standby-of-repo: ${repo} does not exist (the copy of the primary cluster's repository must be in place first)`);
  if (!existsSync(join(repo, 'backup', 'hasup'))) throw new Error(`--standby-of-repo: ${repo} holds no pgBackRest stanza "hasup" (no backup/hasup): not a copy of a hasup cluster's repository`);
  const schedule = flags.restoreSchedule?.trim();
  if (schedule) {
    const parsed = parseCron(schedule);
    if ('problem' in parsed) throw new Error(`--restore-schedule ${parsed.problem}`);
  }
  return { repo, ...(schedule ? { schedule } : {}) };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
