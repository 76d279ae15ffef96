/**
 * The Elasticsearch cluster's pure parts: who bootstraps, the seed hosts
 * file from the census, which departed nodes leave the voting
 * configuration and when the exclusions are cleared, what elasticsearch.yml
 * says on a founder, a joiner and a member on its own, and the
 * `green, 3/3 nodes` of /cluster and `hasup status`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { clusterCell, elasticsearchSummary } from '../../src/cli/census.js';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import { clusterRoleOf, initialMasterNodes } from '../../src/plugins/elasticsearch/bootstrap.js';
import { censusNodes, departedMembers } from '../../src/plugins/elasticsearch/census.js';
import { BOOTSTRAPPED_MARKER, ElasticsearchDriver } from '../../src/plugins/elasticsearch/driver.js';
import { firstAnswer } from '../../src/plugins/elasticsearch/es-http.js';
import { KnownNodes } from '../../src/plugins/elasticsearch/known-nodes.js';
import { SEED_HOSTS_FILE, seedHostsContent, writeSeedHostsFile } from '../../src/plugins/elasticsearch/seed-hosts.js';
import { ABSENT_NODE_ID, coordinationFacts, planExclusions, type ExclusionFacts } from '../../src/plugins/elasticsearch/voting-exclusions.js';
import { buildClusterView } from '../../src/plugins/http/cluster-view.js';
import { mergeLayers, renderTemplates } from '../../src/supervisor/config-layers.js';
import type { DriverContext, ServicePaths } from '../../src/supervisor/driver.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import type { LeadershipState } from '../../src/supervisor/leadership.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { generateSecrets } from '../../src/supervisor/secrets.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { member, rumor } from '../support/census-fixtures.js';

// ---- who bootstraps -------------------------------------------------------------

test('only the founder bootstraps, with itself alone, and only until its node has been in the cluster', () => {
  assert.equal(clusterRoleOf(undefined), 'standalone');
  assert.equal(clusterRoleOf({ cluster_id: 'c', cluster_name: 'n', founder: true, created_at: 0 }), 'founder');
  assert.equal(clusterRoleOf({ cluster_id: 'c', cluster_name: 'n', founder: false, joined_via: '10.0.0.1:9638', created_at: 0 }), 'joiner');

  const facts = { selfName: 'aaaa', formed: false, bootstrapped: false };
  assert.deepEqual(initialMasterNodes({ ...facts, role: 'founder' }), ['aaaa']);
  assert.equal(initialMasterNodes({ ...facts, role: 'founder', formed: true }), null, 'formed: the data says it is in the cluster');
  assert.equal(initialMasterNodes({ ...facts, role: 'founder', bootstrapped: true }), null, 'data wiped on a founder that had formed the cluster: join, never found a second one');
  for (const formed of [false, true]) {
    for (const bootstrapped of [false, true]) assert.equal(initialMasterNodes({ role: 'joiner', selfName: 'bbbb', formed, bootstrapped }), null, 'a joiner never bootstraps');
  }
});

// ---- seed hosts from the census --------------------------------------------------

function fakeRing(members: MemberView[], rumors: StoredRumor[], self: string) {
  return { members: () => members, rumors: (kind?: string) => rumors.filter((r) => kind === undefined || r.kind === kind), self: () => members.find((m) => m.id === self)! };
}

test('census nodes: every member publishing an elasticsearch transport port, alive, suspect or dead; left, departed and port-less ones out; this node from its own config', () => {
  const es = (transport: number) => ({ state: 'running', health: 'ok', ports: { http_port: 9200, transport_port: transport } });
  const members = [
    member('cccc', '10.0.0.13', 'alive'),
    member('aaaa', '10.0.0.11', 'alive'),
    member('bbbb', '10.0.0.12', 'suspect'),
    member('dddd', 'fd00::4', 'dead'),
    member('eeee', '10.0.0.15', 'left'),
    member('ffff', '10.0.0.16', 'departed'),
    member('gggg', '10.0.0.17', 'alive'),
    member('hhhh', '10.0.0.18', 'alive'),
  ];
  const rumors = [
    rumor('aaaa', 'elasticsearch', { ...es(9300), state: 'stopped' }),
    rumor('bbbb', 'elasticsearch', es(9301)),
    rumor('cccc', 'elasticsearch', es(1)), // this member's rumor: its own config wins
    rumor('dddd', 'elasticsearch', es(9300)),
    rumor('eeee', 'elasticsearch', es(9300)),
    rumor('ffff', 'elasticsearch', es(9300)),
    rumor('gggg', 'postgresql', { state: 'running', ports: { port: 5432 } }),
    rumor('hhhh', 'elasticsearch', { state: 'starting', ports: { http_port: 9200 } }),
    rumor('zzzz', 'elasticsearch', es(9300)), // unknown to the ring
  ];
  const self = { name: 'cccc', host: '10.0.0.13', transportPort: 9305 };
  const nodes = censusNodes(fakeRing(members, rumors, 'cccc'), self);
  assert.deepEqual(nodes, [
    { name: 'aaaa', host: '10.0.0.11', transportPort: 9300 },
    { name: 'bbbb', host: '10.0.0.12', transportPort: 9301 },
    self,
    { name: 'dddd', host: 'fd00::4', transportPort: 9300 },
  ]);
  assert.equal(
    seedHostsContent([...nodes].reverse()),
    '# Written by hasup from the gossip census; rewritten when members come and go.\n10.0.0.11:9300\n10.0.0.12:9301\n10.0.0.13:9305\n[fd00::4]:9300\n',
    'one address per line, IPv6 in brackets, in name order whatever the input order',
  );
  assert.deepEqual(departedMembers(fakeRing(members, rumors, 'cccc')), ['ffff']);
  assert.deepEqual(censusNodes(fakeRing([member('cccc', '10.0.0.13', 'alive')], [], 'cccc'), self), [self], 'a census of one: the node alone');
});

test('the seed hosts file is replaced whole and only when its text changes', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-es-seeds-'));
  try {
    const one = seedHostsContent([{ name: 'a', host: '127.0.0.1', transportPort: 9300 }]);
    const two = seedHostsContent([
      { name: 'a', host: '127.0.0.1', transportPort: 9300 },
      { name: 'b', host: '127.0.0.2', transportPort: 9300 },
    ]);
    assert.equal(await writeSeedHostsFile(dir, one), true);
    assert.equal(await writeSeedHostsFile(dir, one), false, 'same list: untouched');
    assert.equal(await writeSeedHostsFile(dir, two), true);
    assert.equal(readFileSync(join(dir, SEED_HOSTS_FILE), 'utf8'), two);
    assert.deepEqual(readdirSync(dir), [SEED_HOSTS_FILE], 'no temporary file left behind');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- departed members and the voting configuration --------------------------------

const facts = (over: Partial<ExclusionFacts>): ExclusionFacts => ({
  departed: [],
  knownIds: new Map([
    ['m1', 'ID1'],
    ['m2', 'ID2'],
    ['m3', 'ID3'],
  ]),
  liveNodes: [
    { id: 'ID1', name: 'm1' },
    { id: 'ID2', name: 'm2' },
  ],
  votingConfig: ['ID1', 'ID2', 'ID3'],
  exclusions: [],
  ...over,
});

test('a departed voter is excluded by id, then the exclusion is cleared once it has taken effect; every step idempotent', () => {
  // 1. m3 departed, still a voter (Elasticsearch keeps three voters while it can): exclude it.
  let plan = planExclusions(facts({ departed: ['m3'] }));
  assert.deepEqual(plan, { exclude: [{ member: 'm3', nodeId: 'ID3' }], clear: false, settled: [], waiting: [] });
  // 2. Excluded, the master has not reconfigured yet: wait, do not exclude again, do not clear.
  plan = planExclusions(facts({ departed: ['m3'], exclusions: [{ node_id: 'ID3', node_name: 'm3' }] }));
  assert.deepEqual(plan, { exclude: [], clear: false, settled: [], waiting: ['m3'] });
  // 3. Out of the voting configuration and not in the cluster: clear the list.
  plan = planExclusions(facts({ departed: ['m3'], votingConfig: ['ID1', 'ID2'], exclusions: [{ node_id: 'ID3', node_name: 'm3' }] }));
  assert.deepEqual(plan, { exclude: [], clear: true, settled: [], waiting: ['m3'] });
  // 4. Cleared: nothing left to do, and a second look (another member, or after a restart) does nothing either.
  plan = planExclusions(facts({ departed: ['m3'], votingConfig: ['ID1', 'ID2'] }));
  assert.deepEqual(plan, { exclude: [], clear: false, settled: [{ member: 'm3', reason: 'not_a_voter' }], waiting: [] });
});

test('exclusions: unknown nodes, non-voters, live excluded nodes and several departures', () => {
  // Never seen in the cluster from here: nothing can be excluded.
  assert.deepEqual(planExclusions(facts({ departed: ['m9'] })).settled, [{ member: 'm9', reason: 'unknown_node' }]);
  // Not a voter (e.g. an even-sized cluster left it out): nothing to do.
  assert.deepEqual(planExclusions(facts({ departed: ['m3'], votingConfig: ['ID1', 'ID2', 'ID4'] })).settled, [{ member: 'm3', reason: 'not_a_voter' }]);
  // A departed member whose node still runs (only hasup died) is excluded too; its exclusion is not cleared while it is in the cluster.
  const stillThere = facts({ departed: ['m2'], votingConfig: ['ID1', 'ID3'], exclusions: [{ node_id: 'ID2', node_name: 'm2' }] });
  assert.equal(planExclusions(stillThere).clear, false);
  // An operator's exclusion of a live node (being retired) holds our clear back until that node is gone.
  const operators = facts({ departed: ['m3'], votingConfig: ['ID2'], exclusions: [{ node_id: 'ID3', node_name: 'm3' }, { node_id: 'ID1', node_name: 'm1' }] });
  assert.equal(planExclusions(operators).clear, false);
  // An exclusion by a name Elasticsearch could not resolve is gone when no live node has that name.
  const absent = facts({ departed: ['m3'], votingConfig: ['ID1', 'ID2'], exclusions: [{ node_id: ABSENT_NODE_ID, node_name: 'old' }] });
  assert.equal(planExclusions(absent).clear, true);
  // Two departures at once: both excluded in one pass, no clear in the same pass.
  const two = planExclusions(facts({ departed: ['m2', 'm3'], liveNodes: [{ id: 'ID1', name: 'm1' }] }));
  assert.deepEqual(two.exclude, [
    { member: 'm2', nodeId: 'ID2' },
    { member: 'm3', nodeId: 'ID3' },
  ]);
  assert.equal(two.clear, false);
  // A node id known only from the live nodes (this member never stored it) is used.
  assert.deepEqual(planExclusions(facts({ departed: ['m2'], knownIds: new Map() })).exclude, [{ member: 'm2', nodeId: 'ID2' }]);
});

test('coordination facts: committed and accepted configurations together, exclusions as listed', () => {
  assert.deepEqual(
    coordinationFacts({ metadata: { cluster_coordination: { last_committed_config: ['A', 'B'], last_accepted_config: ['B', 'C'], voting_config_exclusions: [{ node_id: 'C', node_name: 'c' }] } } }),
    { votingConfig: ['A', 'B', 'C'], exclusions: [{ node_id: 'C', node_name: 'c' }] },
  );
  assert.deepEqual(coordinationFacts({}), { votingConfig: [], exclusions: [] });
});

test('known nodes are remembered across restarts, written only when something is new', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hasup-es-known-'));
  try {
    const file = join(dir, 'svc', 'elasticsearch', 'known-nodes.json');
    const known = new KnownNodes(file);
    assert.deepEqual(known.learn([{ id: 'ID1', name: 'm1' }, { id: 'ID2', name: 'm2' }]), ['m1', 'm2']);
    assert.deepEqual(known.learn([{ id: 'ID1', name: 'm1' }]), []);
    assert.deepEqual(known.learn([{ id: 'ID9', name: 'm1' }]), ['m1'], 'a wiped and restarted node has a new id');
    assert.deepEqual([...new KnownNodes(file).map], [['m1', 'ID9'], ['m2', 'ID2']]);
    writeFileSync(file, 'not json');
    assert.equal(new KnownNodes(file).map.size, 0, 'a damaged file is relearned, not fatal');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function serve(status: number, body: string): Promise<{ server: Server; url: string }> {
  const server = createServer((_req, res) => res.writeHead(status, { 'content-type': 'application/json' }).end(body));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

test('requests go to the first node that answers: past refused connections and nodes without a master; a 4xx is an answer', async (t) => {
  const refused = await serve(200, '{}');
  const refusedUrl = refused.url;
  await new Promise((resolve) => refused.server.close(resolve));
  const noMaster = await serve(503, '{"error":{"type":"master_not_discovered_exception","reason":"null"},"status":503}');
  const ok = await serve(200, '');
  const badRequest = await serve(400, '{"error":{"type":"illegal_argument_exception","reason":"too many exclusions"}}');
  t.after(() => {
    for (const s of [noMaster, ok, badRequest]) s.server.close();
  });
  const answer = await firstAnswer([refusedUrl, noMaster.url, ok.url], 'POST', '/_cluster/voting_config_exclusions?node_ids=X', 2000);
  assert.deepEqual(answer, { status: 200, json: undefined, base: ok.url }, 'an empty 200 body is fine');
  assert.equal((await firstAnswer([badRequest.url, ok.url], 'GET', '/', 2000)).status, 400, 'the cluster said no: not asked again elsewhere');
  assert.equal((await firstAnswer([refusedUrl, noMaster.url], 'GET', '/', 2000)).status, 503, 'every node without a master: the last 5xx');
  await assert.rejects(firstAnswer([refusedUrl], 'GET', '/', 2000), /no Elasticsearch node answered \(http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/);
  await assert.rejects(firstAnswer([], 'GET', '/', 2000), /no Elasticsearch node to ask/);
});

// ---- elasticsearch.yml by role ----------------------------------------------------

const plan = findPlan('elasticsearch', [shippedPlansDir()]);

function context(root: string, memberId: string): DriverContext {
  const paths: ServicePaths = { root, data: join(root, 'data'), config: join(root, 'config'), run: join(root, 'run'), logs: join(root, 'logs') };
  return { plan, paths, cfg: mergeLayers(plan.defaults, []), memberId, ip: '10.0.0.7', secrets: generateSecrets(), log: pino({ level: 'silent' }) };
}

function renderYml(driver: ElasticsearchDriver, ctx: DriverContext): string {
  const svc = { data_dir: ctx.paths.data, config_dir: ctx.paths.config, logs_dir: ctx.paths.logs, run_dir: ctx.paths.run, ...driver.templateValues(ctx) };
  return renderTemplates(plan, { cfg: ctx.cfg, svc, sys: { ip: ctx.ip, member_id: ctx.memberId } }).get('elasticsearch.yml')!;
}

test('elasticsearch.yml: cluster members discover through the seed file; only an unformed founder names initial masters; a member on its own is as before', () => {
  const root = mkdtempSync(join(tmpdir(), 'hasup-es-role-'));
  try {
    const ctx = context(root, 'aaaaaaaaaaaaaaaa');
    mkdirSync(ctx.paths.data, { recursive: true });
    const seedNodes = () => [];
    const founder = new ElasticsearchDriver({ cluster: { role: 'founder', seedNodes } });
    const joiner = new ElasticsearchDriver({ cluster: { role: 'joiner', seedNodes } });

    let yml = renderYml(founder, ctx);
    assert.match(yml, /^discovery\.seed_providers: file$/m);
    assert.match(yml, /^discovery\.seed_hosts: \[\]$/m, 'no static seeds (and no probing of localhost ports)');
    assert.match(yml, /^cluster\.initial_master_nodes: \["aaaaaaaaaaaaaaaa"\]$/m);
    yml = renderYml(joiner, ctx);
    assert.match(yml, /^discovery\.seed_providers: file$/m);
    assert.doesNotMatch(yml, /initial_master_nodes/);

    writeFileSync(join(ctx.paths.root, BOOTSTRAPPED_MARKER), 'x\n');
    assert.doesNotMatch(renderYml(founder, ctx), /initial_master_nodes/, 'a founder whose data dir lost the formed marker does not bootstrap again');

    const alone = renderYml(new ElasticsearchDriver(), ctx);
    assert.doesNotMatch(alone, /seed_providers/);
    assert.match(alone, /^discovery\.seed_hosts: \["10\.0\.0\.7:9300"\]$/m);
    assert.match(alone, /^cluster\.initial_master_nodes: \["aaaaaaaaaaaaaaaa"\]$/m, 'the standalone marker is the data dir one only');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('a cluster member\'s driver writes the census seeds when prepared and again when the census changes', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'hasup-es-seedfile-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const ctx = context(root, 'aaaaaaaaaaaaaaaa');
  mkdirSync(ctx.paths.config, { recursive: true });
  let others = [{ name: 'bbbbbbbbbbbbbbbb', host: '10.0.0.8', transportPort: 9300 }];
  const driver = new ElasticsearchDriver({ cluster: { role: 'joiner', seedNodes: (self) => [self, ...others] } });
  assert.equal(await driver.refreshSeedHosts(), undefined, 'not prepared yet: nowhere to write');
  // prepare() needs a distribution; its health check also records the context, and fails harmlessly here.
  await driver.health({ ...ctx, cfg: { ...ctx.cfg, http_port: 1 } }, AbortSignal.timeout(1000));
  assert.deepEqual(await driver.refreshSeedHosts(), ['10.0.0.7:9300', '10.0.0.8:9300']);
  assert.equal(await driver.refreshSeedHosts(), undefined, 'unchanged census: file untouched');
  others = [...others, { name: 'cccccccccccccccc', host: '10.0.0.9', transportPort: 9300 }];
  const [a, b] = await Promise.all([driver.refreshSeedHosts(), driver.refreshSeedHosts()]);
  assert.deepEqual([a, b], [['10.0.0.7:9300', '10.0.0.8:9300', '10.0.0.9:9300'], undefined], 'concurrent refreshes: one write');
  assert.equal(readFileSync(join(ctx.paths.config, SEED_HOSTS_FILE), 'utf8').split('\n').filter((l) => l && !l.startsWith('#')).length, 3);
  assert.equal(existsSync(join(ctx.paths.config, `${SEED_HOSTS_FILE}.tmp`)), false);
});

// ---- /cluster and hasup status -----------------------------------------------------

const leadership: LeadershipState = { serviceGroup: null, role: 'unknown', holdsLease: false, leaseInDoubt: false, writable: false, replication: null, timeline: null, leader: null, since: 0, reason: 'no PostgreSQL here' };

function esStatus(details: Record<string, unknown> | undefined): ServiceStatus {
  return { name: 'elasticsearch', group: 'default', state: 'running', pid: 10, since: 0, restarts: 0, health: details ? 'ok' : 'critical', healthSince: 0, configVersion: 0, ...(details ? { details } : {}) };
}

test('/cluster: the cluster health and nodes online as this member\'s node reports them, against the members that run Elasticsearch', () => {
  const members = [member('m1', '127.0.0.1', 'alive'), member('m2', '127.0.0.2', 'alive'), member('m3', '127.0.0.3', 'dead'), member('m4', '127.0.0.4', 'left'), member('m5', '127.0.0.5', 'alive')];
  const running = { state: 'running', health: 'ok', pid: 1, since: 0, config_version: 0 };
  const rumors = [rumor('m2', 'elasticsearch', running), rumor('m3', 'elasticsearch', running), rumor('m4', 'elasticsearch', running), rumor('m5', 'postgresql', running)];
  const input = (local: ServiceStatus[]) => ({ memberId: 'm1', members, rumors: (kind: string) => rumors.filter((r) => r.kind === kind), localServices: local, leadership });

  let view = buildClusterView(input([esStatus({ status: 'green', number_of_nodes: 2, number_of_data_nodes: 2 })]));
  assert.deepEqual(view.elasticsearch, { status: 'green', nodes_online: 2, nodes_expected: 3 }, 'the dead member still counts, the one that left does not');
  assert.equal(elasticsearchSummary(view.elasticsearch!), 'green, 2/3 nodes');
  assert.match(clusterCell(view, 'elasticsearch.default'), /^green, 2\/3 nodes; 2\/2 healthy$/, 'the dead member counts as an expected node, not among the live members of the group');
  assert.doesNotMatch(clusterCell(view, 'postgresql.default'), /nodes/);

  view = buildClusterView(input([esStatus(undefined)]));
  assert.deepEqual(view.elasticsearch, { status: null, nodes_online: null, nodes_expected: 3 }, 'no master, no numbers: never stale ones');
  assert.equal(elasticsearchSummary(view.elasticsearch!), 'health unknown, ?/3 nodes');

  const noEs = buildClusterView({ ...input([]), rumors: () => [] });
  assert.equal(noEs.elasticsearch, undefined, 'no member runs Elasticsearch: nothing to show');
});
