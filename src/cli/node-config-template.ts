import { isIP } from 'node:net';

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
  /** A standby cluster's primary (HOST:PORT). */
  standbyOf?: string;
  /** For the header comment. */
  writtenBy: 'create' | 'join';
}

/** TOML basic strings accept JSON's escapes for everything JSON.stringify produces. */
const str = (v: string) => JSON.stringify(v);
const list = (vs: string[]) => `[${vs.map(str).join(', ')}]`;

export function renderNodeConfig(input: NodeConfigTemplateInput): string {
  return [
    `# hasup.toml of member ${input.advertise} in cluster ${input.clusterName}, written by \`hasup cluster ${input.writtenBy}\`.`,
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
          '',
        ]
      : []),
  ].join('\n');
}

/** Loopback stays allowed, as in the plan's default (local tools, members on 127.0.0.N). */
const LOOPBACK_CIDR = '127.0.0.0/8';
/** The network assumed around an advertised address when no --cluster-cidr is given. */
export const DEFAULT_PREFIX = { 4: 24, 6: 64 } as const;

export interface Cidr {
  family: 4 | 6;
  /** The network's address bytes (host bits zero). */
  bytes: number[];
  prefix: number;
}

/**
 * Parses "ADDRESS/PREFIX" (IPv4 or IPv6). Host bits are cleared, so
 * "10.0.0.17/24" is the network 10.0.0.0/24. Throws an error that says what
 * is wrong and what is expected.
 */
export function parseCidr(text: string): Cidr {
  const expected = 'expected ADDRESS/PREFIX, e.g. 10.0.0.0/24 or fd00:1::/64';
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`"${text}" is not a CIDR: no /PREFIX (${expected}; one host is /32 or /128)`);
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  const family = isIP(address);
  if (family === 0 || address.includes('%')) throw new Error(`"${text}" is not a CIDR: "${address}" is not a literal IP address (${expected})`);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) throw new Error(`"${text}" is not a CIDR: the prefix length must be 0-${max} for IPv${family}`);
  const prefix = Number(prefixText);
  return { family: family as 4 | 6, bytes: maskBytes(addressBytes(address), prefix), prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatAddress(c.family, c.bytes)}/${c.prefix}`;
}

/** The network of `prefix` bits (default /24 or /64) that holds `address`. */
export function networkAround(address: string, prefix?: number): Cidr {
  const family = isIP(address);
  if (family === 0) throw new Error(`"${address}" is not a literal IP address`);
  const bits = prefix ?? DEFAULT_PREFIX[family as 4 | 6];
  return { family: family as 4 | 6, bytes: maskBytes(addressBytes(address), bits), prefix: bits };
}

export function cidrContains(c: Cidr, address: string): boolean {
  if (isIP(address) !== c.family) return false;
  return maskBytes(addressBytes(address), c.prefix).every((b, i) => b === c.bytes[i]);
}

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

/** Whether network `inner` lies wholly inside network `outer`. */
function within(inner: Cidr, outer: Cidr): boolean {
  return inner.family === outer.family && inner.prefix >= outer.prefix && maskBytes(inner.bytes, outer.prefix).every((b, i) => b === outer.bytes[i]);
}

function addressBytes(address: string): number[] {
  if (isIP(address) === 4) return address.split('.').map(Number);
  // An IPv6 address may end in dotted IPv4 (::ffff:10.0.0.1): rewrite it as two hex groups.
  const text = address.replace(/(\d+)\.(\d+)\.(\d+)\.(\d+)$/, (_m, a: string, b: string, c: string, d: string) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
  const [head, tail] = text.includes('::') ? (text.split('::') as [string, string]) : [text, undefined];
  const groups = (s: string) => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const front = groups(head);
  const back = tail === undefined ? [] : groups(tail);
  const all = [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
  return all.flatMap((g) => [g >> 8, g & 0xff]);
}

function maskBytes(bytes: number[], prefix: number): number[] {
  return bytes.map((b, i) => {
    const keep = Math.max(0, Math.min(8, prefix - i * 8));
    return b & (0xff << (8 - keep)) & 0xff;
  });
}

function formatAddress(family: 4 | 6, bytes: number[]): string {
  if (family === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The URL parser writes IPv6 in its canonical compressed form.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}
