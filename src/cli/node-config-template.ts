import { cidrContains, formatCidr, networkAround, parseCidr, within } from '../supervisor/cidr.js';

// Where they lived first; cluster.ts and the tests import them from here.
export { cidrContains, DEFAULT_PREFIX, formatCidr, networkAround, parseCidr, type Cidr } from '../supervisor/cidr.js';

/**
 * The hasup.toml that `hasup cluster create|join` writes for a node: just
 * what makes `hasup run --config FILE` work, with every other key left to
 * its documented default (docs/config.md). Pure, so it can be tested by
 * parsing its output with the real schema.
 */
export interface NodeConfigTemplateInput {
  clusterName: string;
  advertise: string;
  /** Members to join through; empty on the founding member. */
  peers: string[];
  stateDir: string;
  secrets: string;
  /** Only when the ring key is not in the secrets file. */
  ringKey?: string;
  etcdVoters: number;
  services: string[];
  /** PostgreSQL's pg_hba networks (see allowedCidrs): the other members and the load balancer connect from these. Absent: the plan's default (loopback only). */
  allowedCidrs?: string[];
  /** A standby cluster's primary (HOST:PORT), and its CA certificates (PEM). */
  standbyOf?: string;
  standbyOfCa?: string;
  /** A warm spare's repository copy (a path) and its re-base schedule (cron, UTC). */
  standbyOfRepo?: string;
  restoreSchedule?: string;
  /** The cluster's own pgBackRest repository ([service.postgresql.backup] repo_path), when it has one from the start. */
  backupRepo?: string;
  /** For the header comment. */
  writtenBy: 'create' | 'join' | 'restore --to-new-cluster';
}

/** TOML basic strings accept JSON's escapes for everything JSON.stringify produces. */
const str = (v: string) => JSON.stringify(v);
const list = (vs: string[]) => `[${vs.map(str).join(', ')}]`;

export function renderNodeConfig(input: NodeConfigTemplateInput): string {
  return [
    `# hasup.toml of member ${input.advertise} in cluster ${input.clusterName}, written by \`hasup ${input.writtenBy.startsWith('restore') ? '' : 'cluster '}${input.writtenBy}\`.`,
    '# Every key and its default: docs/config.md (or `hasup config reference`).',
    '',
    '[member]',
    `advertise = ${str(input.advertise)}`,
    `peers = ${list(input.peers)}`,
    `state_dir = ${str(input.stateDir)}`,
    '# Cluster secrets (mode 0600): ring key, API token, PostgreSQL passwords.',
    `secrets = ${str(input.secrets)}`,
    ...(input.ringKey ? [`ring_key = ${str(input.ringKey)}`] : []),
    '',
    '[cluster]',
    '# The first members (3 or 5) run etcd voting members; later members are etcd clients.',
    `etcd_voters = ${input.etcdVoters}`,
    '',
    '[services]',
    '# Plans started at the first start (e.g. ["postgresql"]); etcd is started by the cluster formation.',
    `load = ${list(input.services)}`,
    '',
    ...(input.allowedCidrs
      ? [
          '[service.postgresql.hba]',
          '# Where PostgreSQL accepts password (scram-sha-256) connections from: loopback and the cluster',
          '# network (`--cluster-cidr`), so followers can replicate and HAProxy can reach the leader.',
          `allowed_cidrs = ${list(input.allowedCidrs)}`,
          '',
        ]
      : []),
    ...(input.standbyOf
      ? [
          '[service.postgresql.ha]',
          '# A standby cluster: its leader streams from the primary cluster here (its HAProxy write port) and never',
          '# promotes until `hasup config apply` sets standby_of = "" (docs/backup.md, "Warm spare").',
          `standby_of = ${str(input.standbyOf)}`,
          ...(input.standbyOfCa
            ? [
                "# The primary cluster's CA: the standby leader streams only from servers with a certificate from it (verify-ca).",
                `standby_of_ca = '''\n${input.standbyOfCa.trim()}\n'''`,
              ]
            : []),
          '',
        ]
      : []),
    ...(input.backupRepo
      ? [
          '[service.postgresql.backup]',
          '# This cluster\'s own pgBackRest repository: its leader archives WAL and takes backups here.',
          `repo_path = ${str(input.backupRepo)}`,
          '',
        ]
      : []),
    ...(input.standbyOfRepo
      ? [
          '[service.postgresql.ha]',
          '# A warm spare kept current from a copy of the primary cluster\'s pgBackRest repository (read only: hasup',
          '# never writes there). Its leader replays the WAL archived there and re-bases on the newest backup on each',
          '# slot of restore_schedule (cron, UTC); it never promotes until `hasup cluster promote` (docs/backup.md).',
          `standby_of_repo = ${str(input.standbyOfRepo)}`,
          ...(input.restoreSchedule ? [`restore_schedule = ${str(input.restoreSchedule)}`] : []),
          '',
        ]
      : []),
  ].join('\n');
}

/** Loopback stays allowed, as in the plan's default (local tools, members on 127.0.0.N). */
const LOOPBACK_CIDR = '127.0.0.0/8';
/**
 * pg_hba's allowed networks for a node: loopback, plus the cluster
 * networks given (`--cluster-cidr`, repeatable), or by default the /24
 * (IPv4) or /64 (IPv6) around the advertised address. The same rule on
 * every node gives every node the same list when all share one network;
 * members on several networks, or a load balancer elsewhere, need each
 * network named on every node.
 */
export function allowedCidrs(advertiseAddress: string, clusterCidrs: string[]): { cidrs: string[]; advertiseCovered: boolean } {
  const networks = clusterCidrs.length > 0 ? clusterCidrs.map(parseCidr) : [networkAround(advertiseAddress)];
  const all = [parseCidr(LOOPBACK_CIDR), ...networks];
  // A network inside another listed one (127.0.0.0/24 in loopback's /8) adds nothing; equal ones are kept once.
  const kept = all.filter((c, i) => !all.some((o, j) => j !== i && within(c, o) && (!within(o, c) || j < i)));
  return { cidrs: kept.map(formatCidr), advertiseCovered: networks.some((n) => cidrContains(n, advertiseAddress)) };
}
