/**
 * Elasticsearch's security feature on a real node (docs/elasticsearch.md,
 * "Security"): `hasup run` on 127.0.0.42 with a cluster CA in a secrets file
 * from before the Elasticsearch passwords existed (so they are derived),
 * [service.elasticsearch] security = true, and shipping on. Checked from
 * outside, as an operator or an attacker would: HTTPS only, verified against
 * the cluster CA and refused with another; hasup's own health check, shipper
 * and console working through it; what each of hasup's users may and may
 * not do; no password in any log.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Client } from '@elastic/elasticsearch';
import { ApiClient } from '../../src/cli/api-client.js';
import { esPasswords } from '../../src/plugins/elasticsearch/users.js';
import { createCa } from '../../src/supervisor/pki/issue.js';
import { withClusterCa } from '../../src/supervisor/pki/provision.js';
import { generateSecrets, writeSecretsFile, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { EsMembers } from '../support/es-members.js';
import { HASUP_BIN, LocalRing, type MemberProc } from '../support/member-procs.js';
import { eventually } from '../support/eventually.js';

const ADDR_INDEX = 42;
const members = new EsMembers('hasup-es-sec-', [ADDR_INDEX]);
const ring = members.ring;
const addr = LocalRing.addr(ADDR_INDEX);
const stateDir = members.stateDir(ADDR_INDEX);
const serviceDir = members.serviceDir(ADDR_INDEX);
const START_BUDGET_MS = 180_000;
let httpPort = 0;
let node: MemberProc;
let secrets: ClusterSecrets;
let passwords: ReturnType<typeof esPasswords>;
let caPem = '';
let url = '';
const clients: Client[] = [];

const api = () => ApiClient.fromStateDir(stateDir);
const esStatus = async () => (await api().request<{ services: ServiceStatus[] }>('GET', '/services')).services.find((s) => s.name === 'elasticsearch');

function client(auth?: { username: string; password: string }, ca: string = caPem): Client {
  const c = new Client({ node: url, requestTimeout: 30_000, maxRetries: 0, tls: { ca, rejectUnauthorized: true }, ...(auth ? { auth } : {}) });
  clients.push(c);
  return c;
}
const as = (user: 'admin' | 'shipper' | 'reader') => client({ username: `hasup_${user}`, password: passwords[user] });

/** The HTTP status of a client call, or the error's. */
async function statusOf(p: Promise<unknown>): Promise<number | string> {
  try {
    await p;
    return 200;
  } catch (err) {
    const e = err as { meta?: { statusCode?: number }; name?: string; message?: string };
    // A connection that never got an answer has statusCode 0 in the client's meta.
    return e.meta?.statusCode || `${e.name}: ${e.message}`;
  }
}

before(async () => {
  await members.configure({
    elasticsearch: ['cluster_name = "hasup-es-sec"', 'security = true', 'heap = "384m"'],
    shipping: ['journal = false', 'flush_interval_ms = 200', 'metrics_interval_s = 2'],
  });
  httpPort = members.httpPort;
  mkdirSync(stateDir, { recursive: true });
  // A secrets file as a cluster made before the Elasticsearch passwords has it, with a cluster CA.
  const { elasticsearch: _none, ...old } = generateSecrets({ ringKey: false });
  secrets = await withClusterCa(old);
  assert.equal(secrets.elasticsearch, undefined);
  writeSecretsFile(join(stateDir, 'secrets.json'), secrets);
  passwords = esPasswords(secrets);
  caPem = secrets.tls!.ca_cert;
  url = `https://${addr}:${httpPort}`;
});

after(async () => {
  await Promise.allSettled(clients.map((c) => c.close()));
  await members.cleanup();
});

test('security on: hasup brings Elasticsearch up over HTTPS, its health check passing as hasup_admin', async (t) => {
  const started = Date.now();
  node = ring.spawn(ADDR_INDEX);
  await ring.ready([ADDR_INDEX], 30_000);
  const up = await eventually(async () => {
    const s = await esStatus();
    members.jvms.find(serviceDir);
    return s?.health === 'ok' && s.state === 'running' ? s : undefined;
  }, START_BUDGET_MS, 'elasticsearch healthy with security on');
  t.diagnostic(`hasup run to Elasticsearch healthy with security: ${Date.now() - started} ms`);
  assert.equal(up.details?.status === 'green' || up.details?.status === 'yellow', true);

  const config = join(serviceDir, 'config');
  const yml = readFileSync(join(config, 'elasticsearch.yml'), 'utf8');
  assert.match(yml, /^xpack\.security\.enabled: true$/m);
  assert.match(yml, /^xpack\.security\.http\.ssl\.enabled: true$/m);
  for (const f of ['tls/ca.pem', 'tls/member.pem', 'tls/member.key', 'users', 'users_roles', 'roles.yml']) assert.ok(existsSync(join(config, f)), f);
  assert.equal(statSync(join(config, 'tls', 'member.key')).mode & 0o077, 0, 'the key is the service user\'s alone');
  assert.equal(statSync(join(config, 'users')).mode & 0o077, 0);
  const users = readFileSync(join(config, 'users'), 'utf8');
  assert.match(users, /^hasup_admin:\{PBKDF2\}10000\$/m);
  for (const p of Object.values(passwords)) assert.ok(!users.includes(p));
});

test('HTTPS only, verified against the cluster CA: another CA is refused, clear text gets no answer, no user is 401', async () => {
  const health = await as('admin').cluster.health();
  assert.equal(health.cluster_name, 'hasup-es-sec');

  const other = await createCa({ name: 'another' });
  const wrongCa = await statusOf(client({ username: 'hasup_admin', password: passwords.admin }, other.cert).cluster.health());
  assert.match(String(wrongCa), /ConnectionError: .*(self.signed|unable to verify|certificate)/i);

  const plain = await new Promise<string>((resolve) => {
    const req = httpRequest(`http://${addr}:${httpPort}/_cluster/health`, { timeout: 10_000 }, (res) => resolve(`answered ${res.statusCode}`));
    req.on('error', (err) => resolve(`error ${(err as NodeJS.ErrnoException).code ?? err.message}`));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
  assert.match(plain, /^error /, `a clear-text request must get no answer, got ${plain}`);

  assert.equal(await statusOf(client().cluster.health()), 401);
  assert.equal(await statusOf(client({ username: 'hasup_admin', password: `${passwords.admin}x` }).cluster.health()), 401);
  assert.equal(await statusOf(client({ username: 'elastic', password: 'changeme' }).cluster.health()), 401);
});

test("hasup's shipper writes its logs through it, and the console reads them as hasup_reader", async () => {
  const reader = as('reader');
  const found = await eventually(async () => {
    const r = await reader.search({ index: 'hasup-logs-*', size: 1, query: { match_all: {} } }).catch(() => undefined);
    return r && r.hits.hits.length > 0 ? r : undefined;
  }, 60_000, 'shipped log lines in hasup-logs-*');
  assert.ok(found.hits.hits.length > 0);
  type NodeStatsDoc = { elasticsearch?: { node?: { stats?: { indices?: { indexing?: { index_total?: number } } } } } };
  const stats = await eventually(async () => {
    const r = await reader.search<NodeStatsDoc>({ index: 'hasup-metrics-*', size: 20, query: { term: { 'event.module': 'elasticsearch' } } }).catch(() => undefined);
    return r?.hits.hits.find((h) => typeof h._source?.elasticsearch?.node?.stats?.indices?.indexing?.index_total === 'number');
  }, 60_000, "the node's stats read by the metric collector (as hasup_admin) and shipped");
  assert.ok(stats);
  const logs = await api().request<{ lines?: unknown[] }>('GET', '/ui/logs?range=1h&size=5');
  assert.ok(Array.isArray(logs.lines) && logs.lines.length > 0, `the console's log search answers through the reader: ${JSON.stringify(logs).slice(0, 300)}`);
});

test('hasup_shipper: documents into hasup-logs-*, nothing else (another index, overwrite, read, cluster administration refused)', async () => {
  const shipper = as('shipper');
  const created = await shipper.bulk({ operations: [{ create: { _index: 'hasup-logs-x' } }, { message: 'from the shipper user', '@timestamp': new Date().toISOString() }] });
  assert.equal(created.errors, false, JSON.stringify(created.items));
  const elsewhere = await shipper.bulk({ operations: [{ create: { _index: 'hasup-other-x' } }, { message: 'no' }] });
  assert.equal(elsewhere.items[0]?.create?.status, 403);
  assert.match(String(elsewhere.items[0]?.create?.error?.type), /security_exception/);
  assert.equal(await statusOf(shipper.index({ index: 'hasup-logs-x', id: 'over', document: { message: 'index, not create' } })), 403, 'create_doc only: no index/overwrite');
  assert.equal(await statusOf(shipper.search({ index: 'hasup-logs-x' })), 403);
  assert.equal(await statusOf(shipper.cluster.putSettings({ persistent: { 'cluster.routing.allocation.enable': 'none' } })), 403);
  assert.equal(await statusOf(shipper.indices.delete({ index: 'hasup-logs-x' })), 403);
  assert.equal(await statusOf(shipper.cluster.health()), 403);
});

test('hasup_reader: searches the log and metric indices, writes nothing, administers nothing', async () => {
  const reader = as('reader');
  const found = await eventually(async () => {
    const r = await reader.search<{ message: string }>({ index: 'hasup-logs-x', query: { match: { message: 'shipper' } } });
    return r.hits.hits.length > 0 ? r : undefined;
  }, 20_000, 'the shipper user\'s document visible to the reader');
  assert.equal(found.hits.hits[0]?._source?.message, 'from the shipper user');
  assert.equal(await statusOf(reader.indices.getMapping({ index: 'hasup-logs-x' })), 200, 'view_index_metadata');
  // No write privilege on any index: the bulk request as a whole is refused.
  assert.equal(await statusOf(reader.bulk({ operations: [{ create: { _index: 'hasup-logs-x' } }, { message: 'reader writes' }] })), 403);
  assert.equal(await statusOf(reader.index({ index: 'hasup-logs-x', document: { message: 'reader writes' } })), 403);
  assert.equal(await statusOf(reader.indices.delete({ index: 'hasup-logs-x' })), 403);
  assert.equal(await statusOf(reader.cluster.putSettings({ persistent: { 'cluster.routing.allocation.enable': 'all' } })), 403);
});

test('hasup status does not list Elasticsearch as clear text; no password in any log', async () => {
  const status = spawnSync(process.execPath, [HASUP_BIN, 'status', '--state-dir', stateDir], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(status.status, 0, status.stderr);
  assert.match(status.stdout, /tls: on/);
  assert.doesNotMatch(status.stdout, /clear text: .*Elasticsearch/);

  const secretsSeen: string[] = [];
  const texts: Array<[string, string]> = [['hasup stdout', JSON.stringify(node.events)], ['hasup stderr', node.stderr.join('\n')]];
  for (const dir of [join(stateDir, 'logs'), join(serviceDir, 'logs')]) {
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) {
      const file = join(dir, f);
      if (statSync(file).isFile()) texts.push([file, readFileSync(file, 'utf8')]);
    }
  }
  assert.ok(texts.length >= 3, 'there are logs to look at');
  for (const [where, text] of texts) {
    for (const [user, p] of Object.entries(passwords)) if (text.includes(p)) secretsSeen.push(`${user}'s password in ${where}`);
    if (text.includes(secrets.api_token)) secretsSeen.push(`the API token in ${where}`);
  }
  assert.deepEqual(secretsSeen, []);
  assert.ok(node.events.some((e) => (e as { event?: string }).event === 'es_security_files'), 'the driver said what it wrote');
});
