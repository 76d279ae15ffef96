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
 *   - every member's shipper writes into the cluster as hasup_shipper;
 *   - the transport port refuses a TLS client without a certificate and one
 *     whose certificate another CA signed (a node of another CA cannot join);
 *   - a stopped and departed member's node leaves the voting configuration:
 *     the membership work (hasup_admin over HTTPS) is done.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { esAccess, esRequestExtras } from '../../src/plugins/elasticsearch/access.js';
import { jsonRequest } from '../../src/plugins/http-json.js';
import type { ClusterView } from '../../src/plugins/http/cluster-view.js';
import { createCa, issueMemberCert } from '../../src/supervisor/pki/issue.js';
import { loadSecretsFile, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import { eventually } from '../support/eventually.js';
import { HASUP_BIN, LocalRing, generateRingKey, randomPortBase, type MemberProc } from '../support/member-procs.js';
import { freePort } from '../support/service-harness.js';

const FOUNDER = 74;
const INDEXES = [74, 75, 76];
const FORM_BUDGET_MS = 240_000;

const base = mkdtempSync(join(tmpdir(), 'hasup-escluster-sec-'));
chmodSync(base, 0o755);
const keyFile = join(base, 'ring.key');
const configFile = join(base, 'hasup.toml');
const gossipPort = randomPortBase();
const stateDir = (i: number) => join(base, `member-${i}`);
const serviceDir = (i: number) => join(stateDir(i), 'svc', 'elasticsearch');
let httpPort = 0;
let transportPort = 0;
let ring: LocalRing;
let secrets: ClusterSecrets;
const members = new Map<number, MemberProc>();
const memberIds = new Map<number, string>();
const jvmsSeen = new Map<number, string>();

/** A request to member i's node as hasup_admin, verified against the cluster CA (the member's own bundle). */
async function es<T>(i: number, path: string, body?: unknown): Promise<T> {
  const method = body === undefined ? 'GET' : 'POST';
  const access = esAccess({ cfg: { security: true }, secrets, caFile: join(stateDir(FOUNDER), 'tls', 'ca.pem') }, 'admin');
  const answer = await jsonRequest(method, `https://${LocalRing.addr(i)}:${httpPort}${path}`, AbortSignal.timeout(10_000), body, esRequestExtras(access));
  if (answer.status !== 200) throw new Error(`${method} ${path} on member ${i}: ${answer.status} ${JSON.stringify(answer.json).slice(0, 300)}`);
  return answer.json as T;
}

async function clusterFacts(i: number): Promise<{ uuid: string; nodes: string[]; status: string }> {
  const meta = await es<{ metadata: { cluster_uuid: string } }>(i, '/_cluster/state/metadata?filter_path=metadata.cluster_uuid');
  const nodes = await es<Array<{ name: string }>>(i, '/_cat/nodes?format=json&h=name');
  const health = await es<{ status: string }>(i, '/_cluster/health');
  return { uuid: meta.metadata.cluster_uuid, nodes: nodes.map((n) => n.name).sort(), status: health.status };
}

function nodeJvms(i: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (!argv[0]?.endsWith('/java') || !argv.some((a) => a.includes(`${serviceDir(i)}/`))) continue;
      jvmsSeen.set(Number(entry), argv.join(' '));
      pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

function stillRunning(pid: number, cmdline: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ') === cmdline;
  } catch {
    return false;
  }
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
    const socket = tlsConnect({ host: LocalRing.addr(i), port: transportPort, ca: secrets.tls!.ca_cert, ...(client ?? {}) }, () => {
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
  httpPort = await freePort();
  transportPort = await freePort();
  generateRingKey(keyFile);
  writeFileSync(
    configFile,
    [
      '[cluster]',
      'etcd = false',
      '[services]',
      'load = ["elasticsearch"]',
      '[service.elasticsearch]',
      'cluster_name = "hasup-es-sec-cluster"',
      'security = true',
      `http_port = ${httpPort}`,
      `transport_port = ${transportPort}`,
      'heap = "320m"',
      'disk_threshold_enabled = false',
      '[shipping]',
      'journal = false',
      'flush_interval_ms = 500',
    ].join('\n'),
  );
  const founderAddr = `${LocalRing.addr(FOUNDER)}:${gossipPort}`;
  for (const i of INDEXES) {
    const prepare = i === FOUNDER ? ['cluster', 'create', '--name', 'es-sec-test'] : ['cluster', 'join', founderAddr, '--secrets', join(stateDir(FOUNDER), 'secrets.json')];
    const made = spawnSync(process.execPath, [HASUP_BIN, ...prepare, '--advertise', `${LocalRing.addr(i)}:${gossipPort}`, '--state-dir', stateDir(i), '--print-config'], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(made.status, 0, made.stderr);
    memberIds.set(i, readFileSync(join(stateDir(i), 'member-id'), 'utf8').trim());
  }
  secrets = loadSecretsFile(join(stateDir(FOUNDER), 'secrets.json'));
  assert.ok(secrets.tls && secrets.elasticsearch, 'cluster create writes a CA and the Elasticsearch passwords');
  ring = new LocalRing({ baseDir: base, gossipPort, httpPort: gossipPort + 1, keyFile, extraArgs: ['--config', configFile] });
});

after(async () => {
  await ring?.stopAll();
  for (const i of INDEXES) nodeJvms(i);
  for (const [pid, cmdline] of jvmsSeen) if (stillRunning(pid, cmdline)) process.kill(pid, 'SIGKILL');
  rmSync(base, { recursive: true, force: true });
});

test('three members with security on form one green cluster over TLS transport; /cluster says green, 3/3', async (t) => {
  const started = Date.now();
  for (const i of INDEXES) members.set(i, ring.spawn(i, { peers: i === FOUNDER ? [] : [FOUNDER] }));
  await ring.ready(INDEXES, 30_000);
  const want = INDEXES.map((i) => memberIds.get(i)!).sort();
  const formed = await eventually(
    async () => {
      INDEXES.forEach(nodeJvms);
      const facts = await Promise.all(INDEXES.map((i) => clusterFacts(i).catch(() => undefined)));
      const first = facts[0];
      return first && facts.every((f) => f && f.uuid === first.uuid && f.status === 'green' && JSON.stringify(f.nodes) === JSON.stringify(want)) ? first : undefined;
    },
    FORM_BUDGET_MS,
    'one green cluster of 3 nodes',
    1000,
  );
  t.diagnostic(`one cluster ${formed.uuid} of 3 nodes, security on, ${Date.now() - started} ms after start`);
  for (const i of INDEXES) {
    const yml = readFileSync(join(serviceDir(i), 'config', 'elasticsearch.yml'), 'utf8');
    assert.match(yml, /^xpack\.security\.transport\.ssl\.verification_mode: "full"$/m);
    const view = await eventually(async () => {
      const v = await members.get(i)!.api<ClusterView>('/cluster');
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
  const nodes = await es<Array<{ id: string; name: string }>>(FOUNDER, '/_cat/nodes?format=json&h=id,name&full_id=true');
  const goneNodeId = nodes.find((n) => n.name === goneId)?.id;
  assert.ok(goneNodeId);
  await members.get(gone)!.stop();
  type Coordination = { metadata: { cluster_coordination: { last_committed_config: string[]; voting_config_exclusions: Array<{ node_id: string }> } } };
  const coordination = async () => (await es<Coordination>(FOUNDER, '/_cluster/state/metadata?filter_path=metadata.cluster_coordination')).metadata.cluster_coordination;
  assert.ok((await coordination()).last_committed_config.includes(goneNodeId), 'still a voter before the depart');
  await eventually(async () => {
    const r = spawnSync(process.execPath, [HASUP_BIN, 'depart', goneId, '--state-dir', stateDir(FOUNDER)], { encoding: 'utf8', timeout: 60_000 });
    return r.status === 0 ? r : undefined;
  }, 30_000, 'hasup depart accepted', 500);
  await eventually(async () => {
    const c = await coordination();
    return !c.last_committed_config.includes(goneNodeId) && c.voting_config_exclusions.length === 0 ? c : undefined;
  }, 90_000, 'the departed node out of the voting configuration and the exclusions cleared', 1000);
  const events = [...members.values()].flatMap((m) => m.events);
  assert.ok(events.some((e) => e.event === 'es_voter_excluded' && e.peer === goneId));
});
