/**
 * What the demo watches while the cluster comes up: one snapshot from the
 * members' HTTP APIs (the census, the load-balancer checks) and from a
 * PostgreSQL session through HAProxy, a one-line summary of it for the
 * progress lines, and the list of what is still missing, with where to look.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { esAccess, esRequestExtras } from '../src/plugins/elasticsearch/access.js';
import { textRequest } from '../src/plugins/http-json.js';
import { loadSecretsFile } from '../src/supervisor/secrets.js';
import type { Census } from '../src/plugins/http/cluster-view.js';
import { DemoLayout, HAPROXY, MEMBER_PORTS, MEMBERS, memberAddress } from './demo-layout.js';

const API_PORT = MEMBER_PORTS['hasup API'];

export interface GroupHealth {
  healthy: number;
  total: number;
}

export interface ThroughHaproxy {
  /** The server HAProxy sent the session to, as that server sees its own address. */
  addr: string;
  standby: boolean;
}

export interface Snapshot {
  /** Members whose API answered. */
  answering: number[];
  /** Alive members in the ring, as the first answering member sees it. */
  ringAlive: number | null;
  groups: Map<string, GroupHealth>;
  /** Members answering 200 on /primary (exactly one when all is well). */
  primaries: number[];
  /** Members answering 200 on /replica?replication_state=streaming. */
  streaming: number[];
  /** Each member's Elasticsearch cluster status (green, yellow, red), or null when it does not answer. */
  esStatus: Array<string | null>;
  /** A session through HAProxy's write listener: where it landed, or why it failed; null before HAProxy runs. */
  haproxy: ThroughHaproxy | string | null;
}

/**
 * The cluster CA from the secrets file the demo's cluster create wrote
 * (docs/tls.md): the members' API and PostgreSQL are verified against it.
 * Undefined for a cluster without one (its links run in clear text).
 */
let caCache: string | null | undefined;
function clusterCa(): string | undefined {
  if (caCache === undefined) {
    try {
      caCache = (JSON.parse(readFileSync(new DemoLayout().secretsFile, 'utf8')) as { tls?: { ca_cert?: string } }).tls?.ca_cert ?? null;
    } catch {
      return undefined;
    }
  }
  return caCache ?? undefined;
}

function apiBase(i: number): string {
  return `${clusterCa() ? 'https' : 'http'}://${memberAddress(i)}:${API_PORT}`;
}

function tlsOptions(): { tls?: { ca: string } } {
  const ca = clusterCa();
  return ca ? { tls: { ca } } : {};
}

/** Status code of a check on member i's API (0 when it does not answer). */
export async function memberCheck(i: number, path: string): Promise<number> {
  try {
    return (await textRequest('GET', `${apiBase(i)}${path}`, AbortSignal.timeout(1500), undefined, tlsOptions())).status;
  } catch {
    return 0;
  }
}

/**
 * The cluster status as member i's Elasticsearch node sees it, asked as
 * hasup's admin user over HTTPS (the plan's default, security "auto", is on
 * in the demo's cluster: it has a CA), or in clear text when it has none.
 */
async function esClusterStatus(i: number): Promise<string | null> {
  try {
    const layout = new DemoLayout();
    const caFile = join(layout.memberDir(i), 'tls', 'ca.pem');
    const how = esAccess({ cfg: { security: 'auto' }, secrets: loadSecretsFile(layout.secretsFile), caFile: existsSync(caFile) ? caFile : undefined }, 'admin');
    const res = await textRequest('GET', `${how.scheme}://${memberAddress(i)}:${MEMBER_PORTS['Elasticsearch HTTP']}/_cluster/health`, AbortSignal.timeout(1500), undefined, esRequestExtras(how));
    return res.status === 200 ? (JSON.parse(res.text) as { status: string }).status : null;
  } catch {
    return null;
  }
}

async function census(i: number, token: string): Promise<Census | undefined> {
  try {
    const res = await textRequest('GET', `${apiBase(i)}/census`, AbortSignal.timeout(2000), undefined, { ...tlsOptions(), headers: { authorization: `Bearer ${token}` } });
    return res.status === 200 ? (JSON.parse(res.text) as Census) : undefined;
  } catch {
    return undefined;
  }
}

/** Opens a session through HAProxy's listener and asks the server who it is and whether it is a standby. */
export async function sessionThrough(port: number, password: string, run?: (c: pg.Client) => Promise<void>): Promise<ThroughHaproxy> {
  // TLS end to end through HAProxy (TCP mode), verified against the cluster CA: every member certificate names loopback too.
  const ca = clusterCa();
  const client = new pg.Client({ host: HAPROXY.host, port, user: 'hasup', password, database: 'postgres', connectionTimeoutMillis: 3000, query_timeout: 5000, ssl: ca ? { ca } : false });
  client.on('error', () => undefined);
  await client.connect();
  try {
    const row = (await client.query<{ addr: string; standby: boolean }>('SELECT host(inet_server_addr()) AS addr, pg_is_in_recovery() AS standby')).rows[0]!;
    if (run) await run(client);
    return row;
  } finally {
    await client.end().catch(() => undefined);
  }
}

export async function observe(o: { token: string; password: string; haproxyRunning: boolean }): Promise<Snapshot> {
  const views = await Promise.all(MEMBERS.map((i) => census(i, o.token)));
  const answering = MEMBERS.filter((_, n) => views[n] !== undefined);
  const view = views.find((v) => v !== undefined);
  const groups = new Map<string, GroupHealth>();
  for (const g of view?.service_groups ?? []) groups.set(g.service_group, { healthy: g.healthy, total: g.total });
  const checks = await Promise.all(
    MEMBERS.map(async (i) => ({
      i,
      primary: await memberCheck(i, '/primary'),
      streaming: await memberCheck(i, '/replica?replication_state=streaming'),
    })),
  );
  const esStatus = await Promise.all(MEMBERS.map(esClusterStatus));
  let haproxy: Snapshot['haproxy'] = null;
  if (o.haproxyRunning) {
    try {
      haproxy = await sessionThrough(HAPROXY.writePort, o.password);
    } catch (err) {
      haproxy = (err as Error).message || String(err);
    }
  }
  return {
    answering,
    ringAlive: view ? view.members.filter((m) => m.state === 'alive').length : null,
    groups,
    primaries: checks.filter((c) => c.primary === 200).map((c) => c.i),
    streaming: checks.filter((c) => c.streaming === 200).map((c) => c.i),
    esStatus,
    haproxy,
  };
}

function groupText(s: Snapshot, group: string, name: string): string {
  const g = s.groups.get(group);
  return g ? `${name} ${g.healthy}/${MEMBERS.length} healthy` : `${name} -`;
}

/** One progress line: the ring, each service, the leader and replicas, HAProxy. */
export function summary(s: Snapshot): string {
  if (s.answering.length === 0) return 'waiting for the members\' APIs';
  const parts = [`ring ${s.ringAlive ?? '?'}/${MEMBERS.length} alive`, groupText(s, 'etcd.default', 'etcd')];
  const leader = s.primaries.length === 1 ? memberAddress(s.primaries[0]!) : s.primaries.length === 0 ? 'none yet' : `${s.primaries.length} claim it!`;
  parts.push(`postgresql leader ${leader}, ${s.streaming.length}/${MEMBERS.length - 1} replicas streaming`);
  const esColours = [...new Set(s.esStatus.filter((c) => c !== null))];
  parts.push(`${groupText(s, 'elasticsearch.default', 'elasticsearch')}${esColours.length > 0 ? ` (${esColours.join('/')})` : ''}`);
  if (s.haproxy === null) parts.push('haproxy not started');
  else if (typeof s.haproxy === 'string') parts.push('haproxy: no writable server yet');
  else parts.push(`haproxy → ${s.haproxy.addr}${s.haproxy.standby ? ' (a standby!)' : ''}`);
  return parts.join(' · ');
}

/** What is not ready yet, each with where to look; empty when the cluster is up. */
export function unmet(s: Snapshot, layout: DemoLayout): string[] {
  const out: string[] = [];
  const log = (i: number, what: string) => layout.show(`${layout.memberDir(i)}/${what}`);
  for (const i of MEMBERS) if (!s.answering.includes(i)) out.push(`member ${i}'s API (${apiBase(i)}) does not answer: see ${layout.show(layout.logFile(i))}`);
  if (s.ringAlive !== MEMBERS.length) out.push(`the ring has ${s.ringAlive ?? 0} of ${MEMBERS.length} members alive: see each member's hasup.log`);
  const etcd = s.groups.get('etcd.default');
  if ((etcd?.healthy ?? 0) < MEMBERS.length) out.push(`etcd: ${etcd?.healthy ?? 0} of ${MEMBERS.length} voters healthy: see ${log(1, 'logs/services.log')} (and members 2, 3); \`GET /etcd\` on a member shows its role and last error`);
  if (s.primaries.length !== 1) out.push(`PostgreSQL: ${s.primaries.length} members answer 200 on /primary (want 1): see ${log(1, 'hasup.log')} for ha_ events, and logs/services.log`);
  if (s.streaming.length !== MEMBERS.length - 1) out.push(`PostgreSQL: ${s.streaming.length} of ${MEMBERS.length - 1} replicas streaming (/replica?replication_state=streaming): see logs/services.log of the others`);
  const es = s.groups.get('elasticsearch.default');
  if ((es?.healthy ?? 0) < MEMBERS.length) out.push(`Elasticsearch: ${es?.healthy ?? 0} of ${MEMBERS.length} nodes healthy: see ${log(1, 'svc/elasticsearch/logs/')} (and members 2, 3)`);
  // Red is normal for a moment after a restart, while the primaries recover; usable means green or yellow.
  const notUsable = MEMBERS.map((i, n) => ({ i, status: s.esStatus[n] ?? null })).filter((m) => m.status !== 'green' && m.status !== 'yellow');
  if (notUsable.length > 0) {
    const first = memberAddress(notUsable[0]!.i);
    out.push(`Elasticsearch cluster status ${notUsable.map((m) => `${m.status ?? 'unknown'} on member ${m.i}`).join(', ')} (want green or yellow): \`curl --cacert ${new DemoLayout().memberDir(1)}/tls/ca.pem -u hasup_admin https://${first}:${MEMBER_PORTS['Elasticsearch HTTP']}/_cluster/health\` (the password: elasticsearch.admin_password in the secrets file)`);
  }
  if (s.haproxy === null) out.push('HAProxy has not been started (it is, once the ring has every member)');
  else if (typeof s.haproxy === 'string') out.push(`no session through HAProxy's write listener ${HAPROXY.host}:${HAPROXY.writePort} (${s.haproxy}): see ${layout.show(layout.haproxyLog)}`);
  else if (s.haproxy.standby || (s.primaries.length === 1 && s.haproxy.addr !== memberAddress(s.primaries[0]!))) out.push(`HAProxy's write listener reached ${s.haproxy.addr}, which is not the leader`);
  return out;
}
