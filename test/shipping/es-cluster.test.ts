/**
 * One Elasticsearch cluster out of three members, with the real servers:
 * `hasup cluster create` on 127.0.0.71, `hasup cluster join` on .72 and .73,
 * then `hasup run` on each (Elasticsearch only, 320 MiB heaps, no etcd).
 *   - the three nodes form ONE cluster (same cluster UUID, 3 nodes seen from
 *     every node); only the founder's elasticsearch.yml names an initial
 *     master; every seed file lists the three transport addresses; /cluster
 *     and `hasup status` say `green, 3/3 nodes`;
 *   - kill -9 of the founder's JVMs (its process group): the supervisor
 *     restarts them, the node rejoins the same cluster, 3/3 again;
 *   - a member stopped and departed (`hasup depart`): its node leaves the
 *     seed files and the voting configuration, and the exclusion is cleared.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterView } from '../../src/plugins/http/cluster-view.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { stillRunning } from '../support/es-jvms.js';
import { EsMembers, clusterFacts as factsVia, nodeIdOf, votersWithout, votingConfig, type ClusterFacts } from '../support/es-members.js';
import { eventually } from '../support/eventually.js';
import { LocalRing } from '../support/member-procs.js';

const FOUNDER = 71;
const INDEXES = [71, 72, 73];
const FORM_BUDGET_MS = 180_000;
const REJOIN_BUDGET_MS = 150_000;
const INDEX = 'es-cluster-test';

const cluster = new EsMembers('hasup-escluster-', INDEXES);
const serviceDir = (i: number) => cluster.serviceDir(i);
const memberIds = cluster.ids;
/** Every JVM of this test's nodes ever seen, so the end can prove each one gone. */
const jvmsSeen = cluster.jvms.seen;

const esUrl = (i: number) => `http://${LocalRing.addr(i)}:${cluster.httpPort}`;

async function es<T>(i: number, path: string, method: 'GET' | 'PUT' | 'POST' = 'GET', body?: unknown): Promise<T> {
  const res = await fetch(`${esUrl(i)}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path} on member ${i}: ${res.status} ${text.slice(0, 300)}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

const clusterFacts = (i: number) => factsVia(es, i);
/** Every listed member's node sees the same cluster with exactly these nodes, in `status`. */
const oneCluster = (indexes: number[], status: string, budgetMs: number, what: string): Promise<ClusterFacts> => cluster.oneCluster(es, indexes, status, budgetMs, what);

const clusterView = (i: number) => cluster.member(i).api<ClusterView>('/cluster');
const esService = async (i: number) => (await cluster.member(i).api<{ services: ServiceStatus[] }>('/services')).services.find((s) => s.name === 'elasticsearch');
const cli = (i: number, ...args: string[]) => cluster.cli(i, ...args);

/** The transport addresses in a member's unicast_hosts.txt, sorted. */
function seedFile(i: number): string[] {
  return readFileSync(join(serviceDir(i), 'config', 'unicast_hosts.txt'), 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .sort();
}

const transportAddr = (i: number) => `${LocalRing.addr(i)}:${cluster.transportPort}`;

/** JVMs of a member's node: both name a path under its service dir. */
const nodeJvms = (i: number) => cluster.jvms.pids(serviceDir(i));

before(async () => {
  await cluster.configure({
    // The Elasticsearch cluster is what is under test: no etcd formation, no shipping.
    cluster: ['etcd = false'],
    // This test reads the cluster in clear text; es-cluster-security.test.ts is the secured one.
    elasticsearch: ['cluster_name = "hasup-es-cluster-test"', 'heap = "320m"', 'security = false'],
    shipping: ['enabled = false'],
  });
  cluster.form('es-cluster-test');
});

after(() => cluster.cleanup());

test('three members form one Elasticsearch cluster of three nodes; status and /cluster say green, 3/3 nodes', async (t) => {
  const started = Date.now();
  await cluster.start();
  const formed = await oneCluster(INDEXES, 'green', FORM_BUDGET_MS, 'one cluster of 3 nodes');
  t.diagnostic(`one cluster ${formed.uuid} of ${formed.nodes.length} nodes ${Date.now() - started} ms after start`);

  for (const i of INDEXES) {
    const yml = readFileSync(join(serviceDir(i), 'config', 'elasticsearch.yml'), 'utf8');
    assert.match(yml, /^discovery\.seed_providers: file$/m, `member ${i} discovers through the seed file`);
    if (i === FOUNDER) assert.match(yml, new RegExp(`^cluster\\.initial_master_nodes: \\["${memberIds.get(i)}"\\]$`, 'm'), 'the founder bootstraps with itself alone');
    else assert.doesNotMatch(yml, /initial_master_nodes/, `member ${i} joins and never bootstraps`);
    await eventually(async () => (JSON.stringify(seedFile(i)) === JSON.stringify(INDEXES.map(transportAddr)) ? true : undefined), 30_000, `member ${i}'s seed file lists all three`);
  }

  // An index with a replica: green needs two nodes holding it.
  await es(FOUNDER, `/${INDEX}`, 'PUT', { settings: { number_of_shards: 1, number_of_replicas: 1 } });
  await es(FOUNDER, `/${INDEX}/_doc/1?refresh=true`, 'PUT', { title: 'written before the kill' });
  await oneCluster(INDEXES, 'green', 60_000, 'green with a replicated index');

  for (const i of INDEXES) {
    const view = await eventually(async () => {
      const v = await clusterView(i);
      return v.elasticsearch?.status === 'green' && v.elasticsearch.nodes_online === 3 ? v : undefined;
    }, 30_000, `/cluster on member ${i} says green with 3 nodes`);
    assert.deepEqual(view.elasticsearch, { status: 'green', nodes_online: 3, nodes_expected: 3 });
  }
  const status = cli(72, 'status');
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /^elasticsearch\.default\s+running\s.*\bok\b.*green, 3\/3 nodes; 3\/3 healthy/m);
  t.diagnostic(status.stdout.split('\n').find((l) => l.startsWith('elasticsearch')) ?? '');
});

test('kill -9 of a node\'s JVMs: the supervisor restarts them and the node rejoins the same cluster', async (t) => {
  const before = await clusterFacts(FOUNDER);
  const service = await esService(FOUNDER);
  assert.ok(service?.pid, 'the founder\'s Elasticsearch runs');
  const jvms = nodeJvms(FOUNDER);
  assert.equal(jvms.length, 2, 'launcher and server JVM');
  // The launcher leads the process group that holds both JVMs.
  const killedAt = Date.now();
  process.kill(-service.pid, 'SIGKILL');

  const degraded = await eventually(async () => {
    const v = await clusterView(72);
    return v.elasticsearch?.nodes_online === 2 ? v : undefined;
  }, 60_000, 'member 72 sees 2 of 3 nodes');
  assert.match(`${degraded.elasticsearch!.nodes_online}/${degraded.elasticsearch!.nodes_expected}`, /^2\/3$/);

  const after = await oneCluster(INDEXES, 'green', REJOIN_BUDGET_MS, 'the killed node back: 3 nodes, green');
  t.diagnostic(`rejoined, green with 3 nodes ${Date.now() - killedAt} ms after the kill`);
  assert.equal(after.uuid, before.uuid, 'the same cluster: the restarted founder did not bootstrap a new one');
  const restarted = await esService(FOUNDER);
  assert.notEqual(restarted?.pid, service.pid, 'a new launcher');
  assert.ok((restarted?.restarts ?? 0) >= 1);
  for (const pid of jvms) assert.equal(stillRunning(pid, jvmsSeen.get(pid)!), false, `killed JVM ${pid} is gone`);
  const doc = await es<{ _source: { title: string } }>(FOUNDER, `/${INDEX}/_doc/1`);
  assert.equal(doc._source.title, 'written before the kill');
  await eventually(async () => {
    const v = await clusterView(FOUNDER);
    return v.elasticsearch?.status === 'green' && v.elasticsearch.nodes_online === 3 && v.elasticsearch.nodes_expected === 3 ? v : undefined;
  }, 30_000, '/cluster on the founder says green, 3/3 again');
});

test('a stopped and departed member leaves the seed files and the voting configuration; the exclusion is cleared', async (t) => {
  const gone = 73;
  const goneId = memberIds.get(gone)!;
  const goneNodeId = await nodeIdOf(es, FOUNDER, goneId);
  assert.ok(goneNodeId, 'member 73\'s node is in the cluster');
  await cluster.member(gone).stop();
  await eventually(async () => (JSON.stringify(seedFile(FOUNDER)) === JSON.stringify([FOUNDER, 72].map(transportAddr)) ? true : undefined), 30_000, 'the stopped member out of the seed file');

  const coordination = () => votingConfig(es, FOUNDER);
  assert.ok((await coordination()).last_committed_config.includes(goneNodeId), 'with two nodes left, Elasticsearch keeps the stopped node a voter by itself');

  const depart = await cluster.depart(FOUNDER, goneId);
  t.diagnostic(depart.stdout.trim());
  const started = Date.now();
  const settled = await votersWithout(es, FOUNDER, goneNodeId, 60_000, 500);
  t.diagnostic(`voting configuration ${JSON.stringify(settled.last_committed_config)} ${Date.now() - started} ms after depart`);
  const events = cluster.events();
  assert.ok(events.some((e) => e.event === 'es_voter_excluded' && e.peer === goneId), 'the exclusion is logged');
  const counts = new Map<string, number>();
  for (const e of events) if (e.component === 'es-membership') counts.set(`${e.event} (level ${e.level})`, (counts.get(`${e.event} (level ${e.level})`) ?? 0) + 1);
  t.diagnostic(`cluster work logged: ${[...counts].map(([k, n]) => `${k} ×${n}`).join(', ')}`);
  await eventually(async () => {
    const v = await clusterView(FOUNDER);
    return v.elasticsearch?.nodes_online === 2 && v.elasticsearch.nodes_expected === 2 ? v : undefined;
  }, 30_000, '/cluster counts the departed member out: 2/2');
});
