/**
 * The cluster lifecycle on real namespaces: `hasup cluster create` on one
 * node and parallel `hasup cluster join`s form a 3-voter etcd from the
 * gossip census; a 4th member is an etcd client; a dead voter is departed
 * (out of etcd, quorum kept), the client takes its seat, and a 5th member
 * joins as a client. Each node
 * runs `hasup run --config` with the hasup.toml its create/join wrote, as a
 * systemd unit would. No PostgreSQL or Elasticsearch: etcd only.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { httpJson, type TlsClientOptions } from '../../src/plugins/http-json.js';
import { listMembers, type EtcdMemberInfo } from '../../src/plugins/etcd/members-api.js';
import { memberClientTls } from '../support/tls-request.js';
import type { EtcdMembershipStatus } from '../../src/plugins/etcd/membership.js';
import type { MemberProc } from '../support/member-procs.js';
import { hasupIn, runIn } from '../support/ha-cluster.js';
import { NetnsCluster, netnsUnavailableReason, type ClusterNode } from '../support/netns-cluster.js';

const ETCD = '/usr/bin/etcd';
const skip = netnsUnavailableReason() ?? (existsSync(ETCD) ? false : `etcd is not installed at ${ETCD}`);

async function eventually<T>(check: () => Promise<T | undefined | false>, timeoutMs: number, what: string): Promise<{ value: T; ms: number }> {
  const start = Date.now();
  let last = '';
  while (Date.now() - start < timeoutMs) {
    try {
      const value = await check();
      if (value) return { value, ms: Date.now() - start };
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
}

/** Process names (from /proc) of everything running in a node. */
function processNames(node: ClusterNode): string[] {
  return node
    .pids()
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
      } catch {
        return '';
      }
    })
    .filter((n) => n !== '')
    .sort();
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** etcd serves TLS and asks for a member certificate (docs/tls.md): the test presents node 1's, set once node 1 is created. */
let clientTls: TlsClientOptions | undefined;

async function etcdPut(url: string, key: string, value: string): Promise<void> {
  const answer = await httpJson(`${url}/v3/kv/put`, AbortSignal.timeout(5000), { key: b64(key), value: b64(value) }, { tls: clientTls });
  if (answer.status !== 200) throw new Error(`put through ${url}: ${JSON.stringify(answer.json)}`);
}

async function etcdHealthy(url: string): Promise<boolean> {
  const answer = await httpJson(`${url}/health`, AbortSignal.timeout(3000), undefined, { tls: clientTls });
  return (answer.json as { health?: string }).health === 'true';
}

describe('cluster lifecycle: etcd formed from the gossip census', { skip }, () => {
  let cluster: NetnsCluster;
  const ids = new Map<number, string>();
  const member = (i: number): MemberProc => cluster.node(i).member!;
  const clientUrl = (i: number) => `https://${cluster.node(i).address}:2379`;
  const configOf = (i: number) => join(cluster.node(i).stateDir, 'hasup.toml');
  const etcdStatus = (i: number) => member(i).api<EtcdMembershipStatus>('/etcd');

  /** Runs `hasup cluster join` on node i through node `via`, then `hasup run --config` there. */
  async function joinNode(i: number, via: number): Promise<void> {
    const node = cluster.node(i);
    const secrets = join(cluster.node(1).stateDir, 'secrets.json');
    const joined = await hasupIn(node, ['cluster', 'join', cluster.node(via).address, '--secrets', secrets, '--advertise', node.address, '--state-dir', node.stateDir, '--config', configOf(i)]);
    assert.equal(joined.code, 0, joined.stderr);
    assert.match(joined.stdout, new RegExp(`through ${cluster.node(via).address.replace(/\./g, '\\.')}:9638`));
    ids.set(i, readFileSync(join(node.stateDir, 'member-id'), 'utf8').trim());
    node.spawnHasup(['run', '--config', configOf(i)]);
  }

  /** etcd's member list once it has exactly the given hasup members, all started. */
  async function etcdMembersAre(via: number[], nodes: number[], timeoutMs: number): Promise<{ value: EtcdMemberInfo[]; ms: number }> {
    const want = nodes.map((i) => ids.get(i)!).sort();
    return eventually(
      async () => {
        const members = await listMembers(via.map(clientUrl), 5000, clientTls);
        const names = members.map((m) => m.name).sort();
        return JSON.stringify(names) === JSON.stringify(want) ? members : undefined;
      },
      timeoutMs,
      `etcd members to be nodes ${nodes.join(', ')}`,
    );
  }

  before(async () => {
    cluster = await NetnsCluster.create({ nodes: 5 });
  });

  after(async () => {
    await cluster?.destroy();
  });

  test('create on node 1 and two joins started in parallel: a healthy 3-voter etcd, every member sees the others', async () => {
    const first = cluster.node(1);
    const created = await hasupIn(first, ['cluster', 'create', '--advertise', first.address, '--state-dir', first.stateDir, '--config', configOf(1), '--name', 'lifecycle']);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /cluster lifecycle \(id [0-9a-f]{16}\) created/);
    const secrets = JSON.parse(readFileSync(join(first.stateDir, 'secrets.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(Buffer.from(String(secrets.ring_key), 'base64').length, 32, 'the secrets file holds the ring key');
    ids.set(1, readFileSync(join(first.stateDir, 'member-id'), 'utf8').trim());
    clientTls = memberClientTls(first.stateDir);
    assert.ok(clientTls, 'cluster create issued node 1 its certificate');

    // All three start at once: the joiners retry the ring and etcd until node 1 is there and etcd lets them in.
    const start = Date.now();
    first.spawnHasup(['run', '--config', configOf(1)]);
    await Promise.all([joinNode(2, 1), joinNode(3, 1)]);
    const { value: members } = await etcdMembersAre([1, 2, 3], [1, 2, 3], 90_000);
    console.log(`# 3-voter etcd formed ${Date.now() - start} ms after the three members started`);
    assert.equal(members.length, 3);
    for (const i of [1, 2, 3]) {
      assert.deepEqual(members.find((m) => m.name === ids.get(i))!.peerUrls, [`https://${cluster.node(i).address}:2380`]);
      await eventually(async () => etcdHealthy(clientUrl(i)), 20_000, `etcd on node ${i} healthy`);
      await eventually(async () => (await etcdStatus(i)).role === 'voter', 10_000, `node ${i} to call itself a voter`);
      assert.deepEqual(processNames(cluster.node(i)), ['etcd', 'node'], `node ${i} runs hasup and its etcd`);
      await eventually(
        async () => {
          const view = await member(i).butterfly();
          return [1, 2, 3].every((j) => j === i || view.members.some((m) => m.id === ids.get(j) && m.state === 'alive'));
        },
        15_000,
        `node ${i} to see the other two alive`,
      );
    }
    await etcdPut(clientUrl(2), 'lifecycle/formed', 'yes');
    // The census that the election will use lists all three voters.
    const voters = (await etcdStatus(1)).voters;
    assert.deepEqual(voters.map((v) => v.client_url).sort(), [1, 2, 3].map(clientUrl).sort());
  });

  test('a 4th member is an etcd client: it runs no etcd and reads and writes through the voters', async () => {
    await joinNode(4, 3);
    const { ms } = await eventually(async () => (await etcdStatus(4)).role === 'client', 60_000, 'node 4 to become an etcd client');
    console.log(`# node 4 decided it is a client ${ms} ms after starting`);
    assert.deepEqual(processNames(cluster.node(4)), ['node'], 'node 4 runs no etcd');
    assert.ok(!existsSync(join(cluster.node(4).stateDir, 'svc', 'etcd', 'data')), 'and has no etcd data');
    const urls = (await etcdStatus(4)).voters.map((v) => v.client_url);
    assert.deepEqual([...urls].sort(), [1, 2, 3].map(clientUrl).sort(), 'node 4 finds the three voters in its census');
    const env = { ETCDCTL_API: '3' };
    // etcd asks every client for a certificate from the cluster CA: node 4 presents its member certificate.
    const tlsDir = join(cluster.node(4).stateDir, 'tls');
    const etcdctl = ['--endpoints', urls.join(','), '--cacert', join(tlsDir, 'ca.pem'), '--cert', join(tlsDir, 'member.pem'), '--key', join(tlsDir, 'member.key')];
    const put = await runIn(cluster.node(4), 'etcdctl', [...etcdctl, 'put', 'lifecycle/client', 'from-node-4'], env);
    assert.equal(put.code, 0, put.stderr);
    const got = await runIn(cluster.node(4), 'etcdctl', [...etcdctl, 'get', '--print-value-only', 'lifecycle/formed'], env);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stdout.trim(), 'yes', 'node 4 reads what was written through node 2');
    assert.equal((await listMembers([clientUrl(1)], 5000, clientTls)).length, 3, 'etcd still has 3 members');
  });

  test('depart refuses a live member; a killed voter departed is out of etcd, quorum holds, the client takes its seat, a 5th member is a client', async () => {
    const refused = await hasupIn(cluster.node(1), ['depart', ids.get(3)!, '--state-dir', cluster.node(1).stateDir]);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /409 .*is alive; only a dead or left member can be departed/);

    const cut = Date.now();
    await cluster.killNode(2);
    await eventually(async () => (await member(1).butterfly()).members.find((m) => m.id === ids.get(2))?.state === 'dead', 30_000, 'node 1 to see node 2 dead');
    console.log(`# killed voter seen dead after ${Date.now() - cut} ms`);
    // By address, as an operator who knows the box but not its id would.
    const departed = await hasupIn(cluster.node(3), ['depart', cluster.node(2).address, '--state-dir', cluster.node(3).stateDir]);
    assert.equal(departed.code, 0, departed.stderr);
    assert.match(departed.stdout, new RegExp(`member ${ids.get(2)} departed; removed from etcd's voting members`));
    assert.match(departed.stdout, new RegExp(`etcd client ${ids.get(4)} takes the seat`));

    await etcdPut(clientUrl(1), 'lifecycle/after-depart', 'quorum');
    await eventually(async () => (await member(1).butterfly()).members.find((m) => m.id === ids.get(2))?.state === 'departed', 10_000, 'node 2 departed in the ring');
    assert.ok(!(await etcdStatus(3)).voters.some((v) => v.member === ids.get(2)), 'the departed voter is out of the census\'s voters');

    // The client (node 4) takes the free seat by itself: member add, then its own etcd.
    const start = Date.now();
    await etcdMembersAre([1, 3], [1, 3, 4], 60_000);
    console.log(`# client promoted to voter ${Date.now() - start} ms after the depart`);
    await eventually(async () => etcdHealthy(clientUrl(4)), 20_000, 'etcd on node 4 healthy');
    await eventually(async () => (await etcdStatus(4)).role === 'voter', 10_000, 'node 4 to call itself a voter');
    assert.deepEqual(processNames(cluster.node(4)), ['etcd', 'node']);
    const got = await httpJson(`${clientUrl(4)}/v3/kv/range`, AbortSignal.timeout(5000), { key: b64('lifecycle/after-depart') }, { tls: clientTls });
    const kvs = (got.json as { kvs?: Array<{ value: string }> }).kvs ?? [];
    assert.equal(Buffer.from(kvs[0]?.value ?? '', 'base64').toString(), 'quorum', 'the promoted voter has the data written while the seat was free');

    // etcd is full again: the next member to join is a client.
    await joinNode(5, 1);
    await eventually(async () => (await etcdStatus(5)).role === 'client', 60_000, 'node 5 to become an etcd client');
    assert.deepEqual(processNames(cluster.node(5)), ['node'], 'node 5 runs no etcd');
    assert.deepEqual((await listMembers([clientUrl(1)], 5000, clientTls)).map((m) => m.name).sort(), [1, 3, 4].map((i) => ids.get(i)).sort());
  });
});
