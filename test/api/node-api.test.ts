/**
 * The HTTP API of one real node (`hasup run` with PostgreSQL), driven by
 * real state changes: a healthy leader, a server put in recovery and
 * promoted again, a postmaster killed, the service stopped. HAProxy from
 * Debian checks /primary and must route a PostgreSQL connection here only
 * while the check says 200.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import WebSocket from 'ws';
import type { ApiEvent } from '../../src/plugins/http/events.js';
import type { ClusterView, Census } from '../../src/plugins/http/cluster-view.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { freePort, serviceUser } from '../support/service-harness.js';
import { ApiNode, Haproxy, eventually } from './api-node.js';

const node = new ApiNode({ index: 31, postgresql: true });
const HEALTH_INTERVAL_MS = 2000; // plans/postgresql/plan.toml [health] interval_ms
let haproxy: Haproxy;

const dataDir = () => join(node.stateDir, 'svc', 'postgresql', 'data');

async function pgQuery<T>(host: string, port: number, text: string): Promise<T[]> {
  const client = new pg.Client({ host, port, user: 'hasup', database: 'postgres', password: node.secrets().postgresql.superuser_password, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Which PostgreSQL answers through HAProxy: its port, or the error when HAProxy routes nowhere. */
async function throughHaproxy(): Promise<number | string> {
  try {
    const rows = await pgQuery<{ port: number }>(haproxy.frontAddr, haproxy.frontPort, 'SELECT inet_server_port() AS port');
    return rows[0]!.port;
  } catch (err) {
    return (err as Error).message;
  }
}

const service = async () => (node.call('/services/postgresql/default').then((r) => (r.json() as { service: ServiceStatus }).service));
const expectStatus = async (path: string, status: number, timeoutMs: number) =>
  eventually(async () => ((await node.status(path)) === status ? true : undefined), timeoutMs, `${path} → ${status}`, 50);

before(async () => {
  await node.start();
  await expectStatus('/primary', 200, 90_000);
  haproxy = new Haproxy(node.base, '127.0.0.32', await freePort());
  haproxy.start({ addr: node.addr, port: node.pgPort, checkPort: node.httpPort, checkPath: '/primary' });
});

after(async () => {
  await haproxy?.stop();
  await node.stop();
});

test('a healthy standalone node is its own writable leader: every check answers from its state', async () => {
  for (const path of ['/primary', '/read-write', '/leader', '/read-only', '/health', '/liveness', '/readiness']) {
    assert.equal(await node.status(path), 200, path);
  }
  assert.equal(await node.status('/replica'), 503);
  assert.equal(await node.status('/replica?lag=16MB'), 503);
  const body = (await node.call('/primary', { token: null })).json() as Record<string, unknown>;
  assert.equal(body.role, 'leader');
  assert.equal(body.writable, true);
  assert.equal(body.lease_in_doubt, false);
  for (const method of ['HEAD', 'OPTIONS']) {
    const res = await node.call('/primary', { method, token: null });
    assert.equal(res.status, 200, method);
    assert.equal(res.text, '');
  }

  const health = await node.call('/services/postgresql/default/health');
  assert.equal(health.status, 200);
  assert.equal((health.json() as { status: string }).status, 'OK');
  const config = (await node.call('/services/postgresql/default/config')).json() as { config: Record<string, unknown> };
  assert.equal(config.config.port, node.pgPort);
  assert.equal((await node.call('/services/postgresql/nosuchgroup')).status, 404);

  const census = (await node.call('/census')).json() as Census;
  const self = census.members.find((m) => m.self)!;
  assert.equal(self.id, census.member_id);
  assert.deepEqual(
    self.services.map((s) => [s.service_group, s.state, s.health, s.role]),
    [['postgresql.default', 'running', 'ok', 'leader']],
  );
  const cluster = (await node.call('/cluster')).json() as ClusterView;
  const group = cluster.service_groups.find((g) => g.service_group === 'postgresql.default')!;
  assert.equal(group.leader, cluster.member_id);
  assert.equal(group.healthy, 1);
  assert.equal(cluster.gossip.alive, 1);

  const status = node.cli('status');
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /postgresql\.default\s+running\s+\d+\s+\S+.*\s+ok\s+leader; 1\/1 healthy, leader self/);
  assert.match(status.stdout, /gossip: 1 alive, 0 suspect, 0 dead/);
  const census2 = node.cli('census');
  assert.equal(census2.status, 0, census2.stderr);
  assert.match(census2.stdout, new RegExp(`${cluster.member_id} \\(self\\)\\s+${node.addr.replaceAll('.', '\\.')}:\\d+\\s+alive`));
  assert.match(census2.stdout, /postgresql\.default: 1\/1 healthy, leader self/);
});

test('the event stream tells a WebSocket client about a service restart, the role change and a config application', async () => {
  const before = await service();
  const events: ApiEvent[] = [];
  const ws = new WebSocket(`ws://${node.addr}:${node.httpPort}/events`, { headers: { authorization: `Bearer ${node.token}` } });
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as ApiEvent));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await eventually(async () => (events.some((e) => e.type === 'hello') ? true : undefined), 5000, 'hello');

  const restarted = await node.call('/services/postgresql/default/restart', { method: 'POST' });
  assert.equal(restarted.status, 200, restarted.text);
  const back = await eventually(
    async () => events.find((e) => e.type === 'service' && e.service_group === 'postgresql.default' && e.state === 'running' && e.pid !== before.pid && e.health === 'ok'),
    60_000,
    'service event: running and healthy with a new pid',
  );
  assert.ok(events.some((e) => e.type === 'service' && e.service_group === 'postgresql.default' && e.state !== 'running' && e.time <= back.time), 'the stop was streamed too');
  await eventually(async () => events.find((e) => e.type === 'role' && e.role === 'unknown'), 10_000, 'role event: leadership lost while restarting');
  await eventually(async () => events.find((e) => e.type === 'role' && e.role === 'leader' && e.writable === true), 10_000, 'role event: leader again');
  for (const e of events) assert.ok(typeof e.time === 'number' && Math.abs(Date.now() - e.time) < 120_000, 'every event carries a timestamp');

  const applied = await node.call('/config', { method: 'POST', body: { service_group: 'postgresql.default', version: 5, toml: 'work_mem = "6MB"\n' } });
  assert.equal(applied.status, 200, applied.text);
  await eventually(async () => events.find((e) => e.type === 'config' && e.service_group === 'postgresql.default' && e.version === 5), 10_000, 'config event');
  ws.close();
  await expectStatus('/primary', 200, 30_000);
});

test('HAProxy with option httpchk GET /primary routes to this node only while it is the writable leader', async () => {
  await eventually(async () => ((await throughHaproxy()) === node.pgPort ? true : undefined), 15_000, 'HAProxy routing to the leader');

  // Put PostgreSQL in recovery: it still runs and answers, but is no longer writable.
  const signal = join(dataDir(), 'standby.signal');
  writeFileSync(signal, '');
  const user = serviceUser();
  if (user) chownSync(signal, user.uid, user.gid);
  assert.equal((await node.call('/services/postgresql/default/restart', { method: 'POST' })).status, 200);
  assert.equal(await node.status('/primary'), 503, 'no stale leader: the new postmaster has not been checked yet');
  await expectStatus('/replica', 200, 60_000);
  assert.equal(await node.status('/primary'), 503);
  assert.equal(await node.status('/read-only'), 200);
  assert.equal(await node.status('/readiness'), 200);
  assert.equal(await node.status('/replica?replication_state=streaming'), 503, 'a standalone node does not know its upstream');
  assert.equal(await node.status('/health'), 200, 'a server in recovery is still a healthy service');
  assert.deepEqual(await pgQuery(node.addr, node.pgPort, 'SELECT pg_is_in_recovery() AS r'), [{ r: true }], 'directly, the server answers');
  const refused = await eventually(async () => {
    const r = await throughHaproxy();
    return typeof r === 'string' ? r : undefined;
  }, 5000, 'HAProxy to stop routing');
  assert.doesNotMatch(refused, /password/i);

  await pgQuery(node.addr, node.pgPort, 'SELECT pg_promote()');
  await expectStatus('/primary', 200, 15_000);
  assert.equal(await node.status('/replica'), 503);
  await eventually(async () => ((await throughHaproxy()) === node.pgPort ? true : undefined), 5000, 'HAProxy routing again after promotion');
});

test('kill -9 of the postmaster: /health and /primary 503 within one health interval, 200 again after the restart', async () => {
  const before = await service();
  const killedAt = Date.now();
  process.kill(before.pid!, 'SIGKILL');
  await expectStatus('/health', 503, HEALTH_INTERVAL_MS);
  const took = Date.now() - killedAt;
  assert.ok(took <= HEALTH_INTERVAL_MS, `503 after ${took} ms`);
  assert.equal(await node.status('/primary'), 503);
  await expectStatus('/primary', 200, 60_000);
  await expectStatus('/health', 200, 10_000);
});

test('hasup svc stop postgresql: /health 503 within one health interval, /primary 503, HAProxy stops routing', async () => {
  await eventually(async () => ((await throughHaproxy()) === node.pgPort ? true : undefined), 10_000, 'HAProxy routing');
  const stopped = node.cli('svc', 'stop', 'postgresql');
  assert.equal(stopped.status, 0, stopped.stderr);
  const since = Date.now();
  await expectStatus('/health', 503, HEALTH_INTERVAL_MS);
  assert.ok(Date.now() - since <= HEALTH_INTERVAL_MS);
  assert.equal(await node.status('/primary'), 503);
  assert.equal(await node.status('/readiness'), 503);
  assert.equal(await node.status('/liveness'), 200, 'the supervisor itself is fine');
  const health = await node.call('/services/postgresql/default/health');
  assert.equal(health.status, 503);
  assert.equal(typeof (await throughHaproxy()), 'string');

  const started = node.cli('svc', 'start', 'postgresql');
  assert.equal(started.status, 0, started.stderr);
  await expectStatus('/primary', 200, 60_000);
});

test('/metrics: gossip counters, restarts per service, health results, request latency', async () => {
  const res = await node.call('/metrics', { token: null });
  assert.equal(res.status, 200);
  const value = (line: RegExp) => {
    const m = res.text.split('\n').find((l) => line.test(l));
    return m === undefined ? undefined : Number(m.split(' ').pop());
  };
  assert.ok((value(/^hasup_service_restarts_total\{service="postgresql.default"\}/) ?? 0) >= 3, 'API restart, recovery restart and kill -9 counted');
  assert.ok((value(/^hasup_service_health_changes_total\{service="postgresql.default",status="unknown"\}/) ?? 0) >= 1, "svc stop made the health unknown");
  assert.equal(value(/^hasup_service_up\{service="postgresql.default"\}/), 1);
  assert.equal(value(/^hasup_gossip_members\{state="alive"\}/), 1);
  assert.ok(value(/^hasup_gossip_dropped_packets_total\{reason="auth_failed"\}/) !== undefined);
  assert.ok((value(/^hasup_http_request_duration_seconds_count\{method="GET",route="\/primary",status="200"\}/) ?? 0) >= 1);
  assert.ok((value(/^hasup_http_request_duration_seconds_count\{method="GET",route="\/primary",status="503"\}/) ?? 0) >= 1);
});

test('no secret appears in any answer of any endpoint, nor in the log', async () => {
  const secrets = node.secrets();
  const ringKeys = readFileSync(node.keyFile, 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));
  const ringKeyInSecrets = (secrets as { ring_key?: string }).ring_key;
  const needles = [secrets.api_token, secrets.postgresql.superuser_password, secrets.postgresql.replication_password, ...ringKeys, ...(ringKeyInSecrets ? [ringKeyInSecrets] : [])];
  assert.ok(needles.every((n) => n.length >= 16));

  const spec = (await node.call('/openapi.json')).json() as { paths: Record<string, Record<string, unknown>> };
  const answers: string[] = [];
  let fetched = 0;
  for (const [path, methods] of Object.entries(spec.paths)) {
    const url = path.replace('{svc}', 'postgresql').replace('{group}', 'default');
    for (const method of Object.keys(methods)) {
      if (url === '/events') continue; // the WebSocket stream, read in the test above
      if (method === 'post' && /\/(restart|stop|unload|load|start)$/.test(url)) continue; // operations changing the node; their answers are service statuses
      const body = method === 'post' ? (url === '/config' ? { service_group: 'postgresql.default', version: 1, toml: 'work_mem = 1' } : {}) : undefined;
      for (const token of [node.token, null, 'wrong-token']) {
        const res = await node.call(url, { method: method.toUpperCase(), token, body });
        answers.push(`${method} ${url} ${res.status} ${res.text}`);
        fetched++;
      }
    }
  }
  assert.ok(fetched >= 60, `fetched ${fetched} answers`);
  const restart = await node.call('/services/postgresql/default/restart', { method: 'POST' });
  answers.push(restart.text);
  const all = answers.join('\n');
  assert.match(all, /"service_group":"postgresql.default"/, 'the answers hold real data');
  for (const needle of needles) assert.ok(!all.includes(needle), 'a secret leaked into an API answer');
  const log = [...node.node!.events.map((e) => JSON.stringify(e)), ...node.node!.stderr].join('\n');
  assert.ok(log.length > 1000);
  for (const needle of needles) assert.ok(!log.includes(needle), 'a secret leaked into the log');
  await expectStatus('/primary', 200, 60_000);
});

test('a second member joins: membership event, and the census shows both members with their services and roles from gossip', async () => {
  const events: ApiEvent[] = [];
  const ws = new WebSocket(`ws://${node.addr}:${node.httpPort}/events`, { headers: { authorization: `Bearer ${node.token}` } });
  ws.on('message', (data: Buffer) => events.push(JSON.parse(data.toString()) as ApiEvent));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const second = new ApiNode({ index: 37, postgresql: true, joins: node });
  try {
    const proc = await second.start();
    const joined = await eventually(async () => events.find((e) => e.type === 'member' && e.state === 'alive' && e.member !== undefined && e.member === proc.memberId), 30_000, 'member event for the joiner');
    assert.equal(joined.address, `${second.addr}:${second.gossipPort}`);
    // Two standalone nodes each lead their own PostgreSQL: the census shows both claims and names no single leader.
    const group = await eventually(async () => {
      const census = (await node.call('/census')).json() as Census;
      const g = census.service_groups.find((x) => x.service_group === 'postgresql.default');
      return g && g.leaders.length === 2 ? { census, g } : undefined;
    }, 90_000, 'both members leading in the census');
    assert.equal(group.g.leader, null);
    assert.equal(group.g.healthy, 2);
    const remote = group.census.members.find((m) => m.id === proc.memberId)!;
    assert.equal(remote.self, false);
    assert.deepEqual(
      remote.services.map((s) => [s.service_group, s.state, s.health, s.role, s.writable]),
      [['postgresql.default', 'running', 'ok', 'leader', true]],
    );
    assert.ok(events.some((e) => e.type === 'role' && e.member === proc.memberId && e.role === 'leader'), 'the remote role change was streamed');
    const cluster = (await node.call('/cluster')).json() as ClusterView;
    assert.equal(cluster.gossip.alive, 2);
    const status = node.cli('status');
    assert.match(status.stdout, /2 members claim leader/);
  } finally {
    ws.close();
    await second.stop();
  }
});
