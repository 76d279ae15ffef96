/**
 * One Elasticsearch cluster of three members with its security on
 * (docs/elasticsearch.md, "Security"): `hasup cluster create` on 127.0.0.74,
 * `cluster join` on .75 and .76, `[service.elasticsearch] security = true`,
 * then `hasup run` on each (Elasticsearch only, 320 MiB heaps, no etcd,
 * shipping on).
 *   - the nodes form ONE green cluster of three over TLS transport with each
 *     member's certificate (verification full, client certificates
 *     required), each node with hasup's users in its own file realm (no node
 *     waits on another); /cluster says green, 3/3 (the health checks as
 *     hasup_admin over HTTPS);
 *   - every member's shipper writes into the cluster as hasup_shipper, and
 *     every shipping index gets a replica on another node (three nodes);
 *   - the transport port refuses a TLS client without a certificate and one
 *     whose certificate another CA signed (a node of another CA cannot join);
 *   - a stopped and departed member's node leaves the voting configuration:
 *     the membership work (hasup_admin over HTTPS) is done.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { esAccess, esRequestExtras } from '../../src/plugins/elasticsearch/access.js';
import { jsonRequest } from '../../src/plugins/http-json.js';
import { AUTO_EXPAND_REPLICAS } from '../../src/plugins/shipper/indices.js';
import type { ClusterView } from '../../src/plugins/http/cluster-view.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';
import { loadSecretsFile, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import { EsMembers, nodeIdOf, votersWithout, votingConfig } from '../support/es-members.js';
import { eventually } from '../support/eventually.js';
import { LocalRing } from '../support/member-procs.js';

const FOUNDER = 74;
const INDEXES = [74, 75, 76];
const FORM_BUDGET_MS = 240_000;

const cluster = new EsMembers('hasup-escluster-sec-', INDEXES);
const stateDir = (i: number) => cluster.stateDir(i);
const serviceDir = (i: number) => cluster.serviceDir(i);
const memberIds = cluster.ids;
let secrets: ClusterSecrets;

/** A request to member i's node as hasup_admin, verified against the cluster CA (the member's own bundle). */
async function es<T>(i: number, path: string, body?: unknown): Promise<T> {
  const method = body === undefined ? 'GET' : 'POST';
  const access = esAccess({ cfg: { security: true }, secrets, caFile: join(stateDir(FOUNDER), 'tls', 'ca.pem') }, 'admin');
  const answer = await jsonRequest(method, `https://${LocalRing.addr(i)}:${cluster.httpPort}${path}`, AbortSignal.timeout(10_000), body, esRequestExtras(access));
  if (answer.status !== 200) throw new Error(`${method} ${path} on member ${i}: ${answer.status} ${JSON.stringify(answer.json).slice(0, 300)}`);
  return answer.json as T;
}

/** How a TLS handshake with the transport port ends when presenting `client` (or no certificate). */
function transportHandshake(i: number, client?: { cert: string; key: string }): Promise<string> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (outcome: string) => {
      clearTimeout(timer);
      resolve(outcome);
      socket.destroy();
    };
    const socket = tlsConnect({ host: LocalRing.addr(i), port: cluster.transportPort, ca: secrets.tls!.ca_cert, ...(client ?? {}) }, () => {
      // TLS 1.3: the server checks the client's certificate after the client considers the handshake done; wait for its verdict.
      timer = setTimeout(() => done('open'), 3000);
    });
    socket.on('data', () => done('data'));
    socket.on('error', (err) => done(`error ${(err as NodeJS.ErrnoException).code ?? ''} ${err.message}`));
    socket.on('close', () => done('closed'));
    socket.setTimeout(10_000, () => done('timeout'));
  });
}

before(async () => {
  await cluster.configure({ cluster: ['etcd = false'], elasticsearch: ['cluster_name = "hasup-es-sec-cluster"', 'security = true', 'heap = "320m"'], shipping: ['journal = false', 'flush_interval_ms = 500'] });
  cluster.form('es-sec-test');
  secrets = loadSecretsFile(join(stateDir(FOUNDER), 'secrets.json'));
  assert.ok(secrets.tls && secrets.elasticsearch, 'cluster create writes a CA and the Elasticsearch passwords');
});

after(() => cluster.cleanup());

test('three members with security on form one green cluster over TLS transport; /cluster says green, 3/3', async (t) => {
  const started = Date.now();
  await cluster.start();
  const formed = await cluster.oneCluster(es, INDEXES, 'green', FORM_BUDGET_MS, 'one green cluster of 3 nodes');
  t.diagnostic(`one cluster ${formed.uuid} of 3 nodes, security on, ${Date.now() - started} ms after start`);
  for (const i of INDEXES) {
    const yml = readFileSync(join(serviceDir(i), 'config', 'elasticsearch.yml'), 'utf8');
    assert.match(yml, /^xpack\.security\.transport\.ssl\.verification_mode: "full"$/m);
    const view = await eventually(async () => {
      const v = await cluster.member(i).api<ClusterView>('/cluster');
      return v.elasticsearch?.status === 'green' && v.elasticsearch.nodes_online === 3 ? v : undefined;
    }, 60_000, `/cluster on member ${i}: green, 3 nodes`);
    assert.deepEqual(view.elasticsearch, { status: 'green', nodes_online: 3, nodes_expected: 3 });
  }
});

test("every member's shipper writes into the secured cluster", async () => {
  const from = await eventually(
    async () => {
      const r = await es<{ aggregations: { m: { buckets: Array<{ key: string }> } } }>(FOUNDER, '/hasup-logs-*/_search?size=0&filter_path=aggregations', { aggs: { m: { terms: { field: 'hasup.member.id', size: 10 } } } }).catch(() => undefined);
      const keys = (r?.aggregations.m.buckets ?? []).map((b) => b.key).sort();
      return keys.length === 3 ? keys : undefined;
    },
    90_000,
    'log documents from all three members',
    1000,
  );
  assert.deepEqual(from, INDEXES.map((i) => memberIds.get(i)!).sort());
  // The replica rule (auto_expand_replicas 0-1, docs/shipping.md): with three nodes every shipping index has a
  // replica, started on another node than its primary, so losing one node loses no log line.
  await eventually(
    async () => {
      const shards = await es<Array<{ index: string; prirep: string; state: string; node: string | null }>>(FOUNDER, '/_cat/shards/hasup-*?format=json&h=index,prirep,state,node');
      const byIndex = new Map<string, typeof shards>();
      for (const sh of shards) byIndex.set(sh.index, [...(byIndex.get(sh.index) ?? []), sh]);
      const ok = [...byIndex.values()].every((list) => {
        const started = list.filter((x) => x.state === 'STARTED');
        const p = started.find((x) => x.prirep === 'p');
        const r = started.find((x) => x.prirep === 'r');
        return p && r && p.node !== r.node;
      });
      return byIndex.size > 0 && ok ? true : undefined;
    },
    90_000,
    'every shipping index with a started replica on another node than its primary',
    1000,
  );
  assert.equal((await es<{ status: string }>(FOUNDER, '/_cluster/health/hasup-*')).status, 'green');
  const settings = await es<Record<string, { settings: { index: { auto_expand_replicas?: string; number_of_replicas: string } } }>>(FOUNDER, '/hasup-*/_settings');
  for (const [index, v] of Object.entries(settings)) {
    assert.equal(v.settings.index.auto_expand_replicas, AUTO_EXPAND_REPLICAS, `${index} follows the node count`);
    assert.equal(v.settings.index.number_of_replicas, '1', `${index} has one replica on three nodes`);
  }
});

test('the transport port takes only certificates of the cluster CA', async () => {
  const foreign = await createCa({ name: 'foreign' });
  const impostor = await issueMemberCert({ ca: foreign, memberId: 'ffffffffffffffff', addresses: [LocalRing.addr(FOUNDER)] });
  const none = await transportHandshake(FOUNDER);
  const other = await transportHandshake(FOUNDER, { cert: impostor.cert, key: impostor.key });
  assertRefused(none, 'without a client certificate');
  assertRefused(other, 'with a certificate of another CA');
  const own = await transportHandshake(FOUNDER, { cert: readFileSync(join(stateDir(75), 'tls', 'member.pem'), 'utf8'), key: readFileSync(join(stateDir(75), 'tls', 'member.key'), 'utf8') });
  assert.equal(own, 'open', "a member's own certificate gets through the handshake and the connection stays open");
});

function assertRefused(outcome: string, what: string): void {
  assert.match(outcome, /^(error|closed)/, `the transport port accepted a TLS client ${what}: ${outcome}`);
}

test('a stopped and departed member leaves the voting configuration (membership work as hasup_admin over HTTPS)', async () => {
  const gone = 76;
  const goneId = memberIds.get(gone)!;
  const goneNodeId = await nodeIdOf(es, FOUNDER, goneId);
  assert.ok(goneNodeId);
  await cluster.member(gone).stop();
  const coordination = () => votingConfig(es, FOUNDER);
  assert.ok((await coordination()).last_committed_config.includes(goneNodeId), 'still a voter before the depart');
  await cluster.depart(FOUNDER, goneId);
  await votersWithout(es, FOUNDER, goneNodeId, 90_000, 1000);
  const events = cluster.events();
  assert.ok(events.some((e) => e.event === 'es_voter_excluded' && e.peer === goneId));
});
