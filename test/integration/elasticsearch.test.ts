/**
 * Elasticsearch 8 under the supervisor: the plan and driver checked on their
 * own (rendering, launch refusals, health interpretation), then one real node
 * (`hasup run` on 127.0.0.41, the Maven-fetched distribution) driven as an
 * operator would: health through the API, index and search with the JS
 * client 8, kill -9 of each JVM, supervisor SIGKILL and adoption, stop.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { ApiClient } from '../../src/cli/api-client.js';
import { interpretClusterHealth } from '../../src/plugins/elasticsearch/cluster-health.js';
import { ElasticsearchDriver } from '../../src/plugins/elasticsearch/driver.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';
import { HASUP_BIN, LocalRing, type MemberProc } from '../support/member-procs.js';
import { eventually } from '../support/eventually.js';
import { esDriverContext, esPlan, renderEsYml } from '../support/es-driver-context.js';
import { stillRunning } from '../support/es-jvms.js';
import { EsMembers } from '../support/es-members.js';

// ---- the plan and driver on their own (no Elasticsearch needed) -------------

const plan = esPlan;

test('every setting of the plan needs a restart (Elasticsearch reads its config only at start)', () => {
  const keys = Object.keys(plan.defaults).sort();
  assert.deepEqual([...plan.manifest.config.restart_keys].sort(), keys);
  assert.equal(plan.manifest.run.env.ES_PATH_CONF, '{{svc.config_dir}}');
});

test('elasticsearch.yml: member id as node name, member address, seed hosts and initial masters from the node list, JSON-quoted', () => {
  const nodes = [
    { name: '0e12a4b5c6d7e8f9', host: '10.0.0.7', transportPort: 9300 },
    { name: '1111111111111111', host: '10.0.0.8', transportPort: 9300 },
    { name: 'aaaaaaaaaaaaaaaa', host: 'fd00::9', transportPort: 9301 },
  ];
  const driver = new ElasticsearchDriver({ clusterNodes: () => nodes });
  const yml = renderEsYml(esDriverContext({ cluster_name: 'prod', http_port: 9201, extra: { 'indices.query.bool.max_clause_count': 4096 } }), driver);
  // "0e12..." unquoted would be a YAML float.
  assert.match(yml, /^node\.name: "0e12a4b5c6d7e8f9"$/m);
  assert.match(yml, /^cluster\.name: "prod"$/m);
  assert.match(yml, /^network\.host: "10\.0\.0\.7"$/m);
  assert.match(yml, /^http\.port: 9201$/m);
  assert.match(yml, /^discovery\.seed_hosts: \["10\.0\.0\.7:9300","10\.0\.0\.8:9300","\[fd00::9\]:9301"\]$/m);
  assert.match(yml, /^cluster\.initial_master_nodes: \["0e12a4b5c6d7e8f9","1111111111111111","aaaaaaaaaaaaaaaa"\]$/m);
  assert.match(yml, /^path\.data: "\/state\/svc\/elasticsearch\/data"$/m);
  assert.match(yml, /^xpack\.security\.enabled: false$/m);
  assert.match(yml, /^indices\.query\.bool\.max_clause_count: 4096$/m);
  assert.match(yml, /^action\.auto_create_index: "\+hasup-\*,\+\.\*,-\*"$/m);
});

test('after the cluster has formed, cluster.initial_master_nodes is no longer rendered', () => {
  const root = mkdtempSync(join(tmpdir(), 'hasup-es-yml-'));
  try {
    const ctx = esDriverContext({}, { root });
    mkdirSync(ctx.paths.data, { recursive: true });
    const driver = new ElasticsearchDriver();
    assert.match(renderEsYml(ctx, driver), /^cluster\.initial_master_nodes: \["0e12a4b5c6d7e8f9"\]$/m);
    writeFileSync(join(ctx.paths.data, 'hasup-cluster-formed'), 'x\n');
    const yml = renderEsYml(ctx, driver);
    assert.doesNotMatch(yml, /initial_master_nodes/);
    assert.match(yml, /^discovery\.seed_hosts: \["10\.0\.0\.7:9300"\]$/m);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('values that would break elasticsearch.yml or the JVM are refused at render time', () => {
  const driver = new ElasticsearchDriver();
  const refused: Array<[TomlTable, RegExp]> = [
    [{ heap: '512' }, /heap must be a JVM size/],
    [{ cluster_name: 'a: b' }, /cluster_name/],
    [{ network_host: 'my-host' }, /network_host must be a literal IP/],
    [{ http_port: 70000 }, /http_port must be a port number/],
    [{ allow_mmap: 'maybe' }, /"allow_mmap" must be true, false or "auto", got string "maybe"/],
    [{ extra: { xpack: { security: { enabled: true } } } }, /extra\.xpack\.security\.enabled is written by hasup/],
    [{ launcher: 'runner' }, /launcher must be one of distribution, maven/],
  ];
  for (const [layer, reason] of refused) assert.throws(() => renderEsYml(esDriverContext(layer), driver), reason, JSON.stringify(layer));
});

test('a missing distribution is refused before anything starts, saying what to do', async () => {
  const root = mkdtempSync(join(tmpdir(), 'hasup-es-prep-'));
  try {
    const maven = new ElasticsearchDriver({ launchEnvironment: { installRoot: root, path: '' } });
    await assert.rejects(maven.prepare(esDriverContext({}, { root: join(root, 'svc') })), /development Elasticsearch is not fetched .*run npm run bootstrap/);
    const installed = new ElasticsearchDriver();
    await assert.rejects(
      installed.prepare(esDriverContext({ launcher: 'distribution', home: join(root, 'no-es') }, { root: join(root, 'svc') })),
      /no Elasticsearch distribution at .*no-es .*bin\/elasticsearch is missing/,
    );
    assert.equal(existsSync(join(root, 'svc', 'data')), false, 'nothing created for a launch that cannot work');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test('cluster health: green ok, yellow ok on one data node but a warning on several, red a warning, no master critical', () => {
  const where = 'http://10.0.0.7:9200';
  const answer = (status: string, dataNodes: number) => ({ cluster_name: 'hasup', status, number_of_nodes: dataNodes, number_of_data_nodes: dataNodes, active_shards: 3, unassigned_shards: 2 });
  assert.equal(interpretClusterHealth(200, answer('green', 3), 'hasup', where).status, 'ok');
  assert.equal(interpretClusterHealth(200, answer('yellow', 1), 'hasup', where).status, 'ok');
  assert.equal(interpretClusterHealth(200, answer('yellow', 3), 'hasup', where).status, 'warning');
  const red = interpretClusterHealth(200, answer('red', 3), 'hasup', where);
  assert.equal(red.status, 'warning');
  assert.deepEqual({ status: red.details?.status, active_shards: red.details?.active_shards }, { status: 'red', active_shards: 3 });
  const noMaster = interpretClusterHealth(503, { error: { type: 'master_not_discovered_exception', reason: 'null' } }, 'hasup', where);
  assert.deepEqual([noMaster.status, noMaster.message], ['critical', `Elasticsearch at ${where} has no elected master yet`]);
  assert.equal(interpretClusterHealth(200, answer('green', 1), 'other', where).status, 'critical', 'another cluster on our port is not us');
});

// ---- one real node under `hasup run` ----------------------------------------

const ADDR_INDEX = 41;
const members = new EsMembers('hasup-es-', [ADDR_INDEX]);
const { base, gossipPort, keyFile, ring } = members;
const addr = LocalRing.addr(ADDR_INDEX);
const stateDir = members.stateDir(ADDR_INDEX);
const serviceDir = members.serviceDir(ADDR_INDEX);
const INDEX = 'hasup-test-docs';
const START_BUDGET_MS = 120_000;
let httpPort = 0;
let node: MemberProc;
let es: Client;
/** Every JVM of this test's Elasticsearch ever seen, so the end can prove each one gone. */
const jvmsSeen = members.jvms.seen;

const api = () => ApiClient.fromStateDir(stateDir);
const esStatus = async () => (await api().request<{ services: ServiceStatus[] }>('GET', '/services')).services.find((s) => s.name === 'elasticsearch')!;

function cli(...args: string[]) {
  return spawnSync(process.execPath, [HASUP_BIN, ...args, '--state-dir', stateDir], { encoding: 'utf8', timeout: 120_000 });
}


const healthy = (notPid?: number) =>
  eventually(async () => {
    const s = await esStatus();
    return s.health === 'ok' && s.state === 'running' && s.pid !== notPid ? s : undefined;
  }, START_BUDGET_MS, 'elasticsearch healthy');

/** JVMs of this node: launcher and server. */
const nodeJvms = () => members.jvms.find(serviceDir);

function startNode(): MemberProc {
  return ring.spawn(ADDR_INDEX);
}

async function heapMaxBytes(): Promise<number | undefined> {
  const nodes = await es.nodes.info({ node_id: '_local', metric: 'jvm', filter_path: 'nodes.*.jvm.mem.heap_max_in_bytes' });
  return Object.values(nodes.nodes)[0]?.jvm?.mem?.heap_max_in_bytes;
}

async function searchTestDoc(): Promise<unknown[]> {
  const found = await es.search<{ title: string }>({ index: INDEX, query: { match: { title: 'supervised' } } });
  return found.hits.hits.map((h) => h._source);
}

before(async () => {
  await members.configure({ elasticsearch: ['cluster_name = "hasup-es-test"'] });
  httpPort = members.httpPort;
  mkdirSync(stateDir, { recursive: true });
  es = new Client({ node: `http://${addr}:${httpPort}`, requestTimeout: 30_000 });
});

after(async () => {
  await es?.close();
  await members.cleanup();
});

test('hasup run refuses an Elasticsearch distribution that is not there, naming the fix', () => {
  const file = join(base, 'missing-es.toml');
  writeFileSync(file, '[services]\nload = ["elasticsearch"]\n[service.elasticsearch]\nlauncher = "distribution"\nhome = "/nonexistent/elasticsearch"\n');
  const run = spawnSync(
    process.execPath,
    [HASUP_BIN, 'run', '--config', file, '--advertise', `${addr}:${gossipPort + 7}`, '--ring-key', keyFile, '--state-dir', join(base, 'missing-es-state'), '--no-http'],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /no Elasticsearch distribution at \/nonexistent\/elasticsearch/);
});

test('a node brings up Elasticsearch: healthy through the API, index and search with the client 8', async (t) => {
  const started = Date.now();
  node = startNode();
  await ring.ready([ADDR_INDEX], 30_000);
  const up = await healthy();
  t.diagnostic(`hasup run to Elasticsearch healthy: ${Date.now() - started} ms (${up.healthSince - up.since} ms from JVM spawn)`);
  assert.equal(up.details?.status, 'green');
  assert.equal(up.details?.number_of_nodes, 1);

  const jvms = nodeJvms();
  assert.deepEqual(jvms.map((j) => j.role).sort(), ['launcher', 'server']);
  const launcher = jvms.find((j) => j.role === 'launcher')!;
  assert.equal(launcher.pid, up.pid, 'the supervised pid is the launcher JVM');
  assert.equal(jvms.find((j) => j.role === 'server')!.ppid, launcher.pid);
  t.diagnostic(`RSS: ${jvms.map((j) => `${j.role} ${j.rssMiB} MiB`).join(', ')}`);
  if (process.getuid?.() === 0) {
    const owner = readFileSync(`/proc/${launcher.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1];
    assert.notEqual(owner, '0', 'Elasticsearch runs as the service user, not root');
  }

  const memberId = readFileSync(join(stateDir, 'member-id'), 'utf8').trim();
  const nodes = await es.nodes.info({ node_id: '_local', filter_path: 'nodes.*.name,nodes.*.http.publish_address' });
  const self = Object.values(nodes.nodes)[0]!;
  assert.equal(self.name, memberId);
  assert.equal(self.http?.publish_address, `${addr}:${httpPort}`);
  assert.equal(await heapMaxBytes(), 512 * 1024 * 1024, 'the default heap, Xms = Xmx');

  const doc = { title: 'supervised search engine', at: new Date().toISOString() };
  await es.index({ index: INDEX, id: '1', document: doc, refresh: 'wait_for' });
  assert.deepEqual(await searchTestDoc(), [doc]);
  await assert.rejects(es.index({ index: 'mistyped-index', document: { x: 1 } }), /index_not_found_exception/, 'auto_create_index keeps stray names out');

  // The index wants a replica that one node cannot hold: yellow, which is healthy for a single node.
  const yellow = await eventually(async () => {
    const s = await esStatus();
    return s.details?.status === 'yellow' ? s : undefined;
  }, 30_000, 'health to see the yellow cluster');
  assert.equal(yellow.health, 'ok');
  assert.match(cli('status').stdout, /elasticsearch\.default\s+running\s+\d+\s+\S+\s+ok/);
});

test('kill -9 of the server JVM: restarted, healthy again, the document still there', async (t) => {
  const before = await healthy();
  const server = nodeJvms().find((j) => j.role === 'server')!;
  const killedAt = Date.now();
  process.kill(server.pid, 'SIGKILL');
  const after = await healthy(before.pid);
  t.diagnostic(`server JVM kill -9 to healthy: ${Date.now() - killedAt} ms`);
  assert.ok(after.restarts > before.restarts, 'the restart is counted');
  assert.deepEqual((await searchTestDoc()).length, 1);
  assert.equal(nodeJvms().length, 2, 'one launcher and one server, nothing left over');
});

test('kill -9 of the launcher JVM: its orphaned server is stopped, a fresh pair started, data intact', async (t) => {
  const before = await healthy();
  const oldServer = nodeJvms().find((j) => j.role === 'server')!;
  const killedAt = Date.now();
  process.kill(before.pid!, 'SIGKILL');
  const after = await healthy(before.pid);
  t.diagnostic(`launcher JVM kill -9 to healthy: ${Date.now() - killedAt} ms`);
  const jvms = nodeJvms();
  assert.equal(jvms.length, 2);
  assert.ok(!jvms.some((j) => j.pid === oldServer.pid), 'the old server JVM is gone');
  assert.equal(jvms.find((j) => j.role === 'launcher')!.pid, after.pid);
  assert.deepEqual((await searchTestDoc()).length, 1);
});

test('config apply restarts Elasticsearch with the new setting; a value that cannot work is refused and the old one stays', async (t) => {
  const before = await healthy();
  const good = join(base, 'heap.toml');
  writeFileSync(good, 'heap = "384m"\n');
  const appliedAt = Date.now();
  const applied = cli('config', 'apply', 'elasticsearch.default', '1', good);
  assert.equal(applied.status, 0, applied.stderr);
  assert.match(applied.stdout, /restarted/);
  const after = await healthy(before.pid);
  t.diagnostic(`config apply (restart) to healthy: ${Date.now() - appliedAt} ms`);
  assert.equal(await heapMaxBytes(), 384 * 1024 * 1024);

  const bad = join(base, 'bad-heap.toml');
  writeFileSync(bad, 'heap = "lots"\n');
  const refused = cli('config', 'apply', 'elasticsearch.default', '2', bad);
  assert.notEqual(refused.status, 0);
  assert.match(refused.stderr, /heap must be a JVM size/);
  assert.equal((await esStatus()).pid, after.pid, 'a refused config touches nothing');
  assert.match(readFileSync(join(serviceDir, 'config', 'elasticsearch.yml'), 'utf8'), /^cluster\.name: "hasup-es-test"$/m);
  assert.deepEqual((await searchTestDoc()).length, 1);
});

test('SIGKILL of the supervisor, then a restart: the JVMs are adopted, not started twice', async () => {
  const before = await healthy();
  const jvmsBefore = nodeJvms().map((j) => j.pid).sort();
  node.kill9();
  await node.exited;
  node = startNode();
  await ring.ready([ADDR_INDEX], 30_000);
  const after = await healthy();
  assert.equal(after.pid, before.pid, 'the running launcher is adopted');
  assert.deepEqual(nodeJvms().map((j) => j.pid).sort(), jvmsBefore, 'exactly the same two JVMs on the data dir');
  assert.deepEqual((await searchTestDoc()).length, 1);
});

test('svc stop: SIGTERM is a clean stop (no restart), no JVM left behind', async () => {
  const before = await healthy();
  const stopped = cli('svc', 'stop', 'elasticsearch');
  assert.equal(stopped.status, 0, stopped.stderr);
  assert.deepEqual(nodeJvms(), []);
  for (const [pid, cmdline] of jvmsSeen) assert.equal(stillRunning(pid, cmdline), false, `JVM ${pid} is gone`);
  await new Promise((r) => setTimeout(r, 1500));
  const s = await esStatus();
  assert.equal(s.state, 'stopped', 'exit 143 after our own SIGTERM is not a crash to restart');
  assert.equal(s.restarts, 0);
  assert.deepEqual(nodeJvms(), []);
  assert.ok(!stillRunning(before.pid!, jvmsSeen.get(before.pid!) ?? ''));
});
