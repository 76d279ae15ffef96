/**
 * Grow and shrink under write load (issue #16): one node → three → five →
 * three, writes going through HAProxy the whole time.
 *
 * - One node (`cluster create`, nobody joined yet): a PostgreSQL leader and
 *   a one-voter etcd; writes through HAProxy are acknowledged (synchronous
 *   mode "auto" stays asynchronous with no follower, so nothing waits for one).
 * - Nodes 2 and 3 start (`cluster join` prepared them): etcd grows to three
 *   voters, both clone PostgreSQL followers that stream from the leader.
 * - `hasup cluster set etcd_voters 5`, then nodes 4 and 5 start: etcd grows
 *   to five voters, four followers stream.
 * - Two followers are stopped (as `systemctl stop hasup` stops one) and
 *   departed with `hasup depart ADDRESS`, one at a time: etcd goes to four,
 *   then three voters, healthy at each step (every voter answers and all
 *   agree on one raft leader); `cluster set etcd_voters 3` after.
 * - No acknowledged write is lost, never two nodes take writes, and
 *   Elasticsearch (node 1 only: this machine cannot bind its transport to a
 *   namespace address, docs/elasticsearch.md) is green with the shipping
 *   indices at 0 replicas, auto-expanded to its one node.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { EtcdClient, type EtcdMember } from '../../src/plugins/etcd/client.js';
import type { EtcdMembershipStatus } from '../../src/plugins/etcd/membership.js';
import { installRoot } from '../../src/supervisor/install-paths.js';
import { destroyAfterSuite, ETCD_CLIENT_PORT, eventually, HaCluster } from '../support/ha-cluster.js';
import { hasupCli } from '../support/hasup-cli.js';
import { netnsUnavailableReason } from '../support/netns-cluster.js';
import { memberClientTls } from '../support/tls-request.js';
import { WriteChecker } from '../support/write-checker.js';

const skip =
  netnsUnavailableReason() ??
  (existsSync('/usr/bin/etcd') ? null : 'etcd is not installed') ??
  (existsSync('/usr/lib/postgresql/15/bin/postgres') ? null : 'PostgreSQL 15 is not installed') ??
  (existsSync(`${installRoot()}/vendor/elasticsearch/home`) ? null : 'Elasticsearch is not fetched (npm run bootstrap)') ??
  (spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('grow and shrink: one node → three → five → three under writes through HAProxy', { skip: skip ?? false }, () => {
  let ha: HaCluster;
  let w: WriteChecker;
  const ids = new Map<number, string>();
  /** The nodes running now. */
  let running: number[] = [];
  const t0 = Date.now();
  const mark = (what: string) => console.log(`# ${((Date.now() - t0) / 1000).toFixed(1)} s: ${what}`);
  destroyAfterSuite('grow-shrink', () => [[ha, 'grow']]);

  const cli = (i: number, args: string[]) => hasupCli(ha, i, args, { timeoutMs: 60_000 });

  /** etcd's member list through the running voters, presenting node 1's member certificate. */
  function etcdMembers(): Promise<EtcdMember[]> {
    const tls = memberClientTls(ha.cluster.node(1).stateDir);
    const urls = running.map((i) => `${ha.apiScheme}://${ha.address(i)}:${ETCD_CLIENT_PORT}`);
    return new EtcdClient({ endpoints: () => urls, timeoutMs: 3000, keepAlive: false, tls: () => tls }).memberList();
  }

  /** etcd has exactly the voters on `nodes`, all started, each answering, all agreeing on one raft leader. */
  async function etcdIs(nodes: number[], timeoutMs: number): Promise<void> {
    const want = nodes.map((i) => ids.get(i)!).sort();
    await eventually(
      async () => {
        const names = (await etcdMembers()).map((m) => m.name).sort();
        if (JSON.stringify(names) !== JSON.stringify(want)) throw new Error(`etcd members ${names.join(', ') || '(none)'}`);
        const status = await Promise.all(nodes.map((i) => ha.etcdStatus(i, 2000)));
        const leaders = new Set(status.map((s) => s.leaderId));
        return (leaders.size === 1 && !leaders.has('') && !leaders.has('0')) || undefined;
      },
      timeoutMs,
      `etcd voters exactly on nodes ${nodes.join(', ')}, healthy, one raft leader`,
      250,
    );
    for (const i of nodes) assert.equal((await ha.member(i).api<EtcdMembershipStatus>('/etcd')).role, 'voter', `node ${i} calls itself a voter`);
    mark(`etcd: ${nodes.length} voters (nodes ${nodes.join(', ')})`);
  }

  /** One writable leader among the running nodes, every other running node streaming from it. */
  async function pgWhole(timeoutMs: number): Promise<number> {
    const { value } = await eventually(
      async () => {
        const p = (await ha.primaries()).filter((i) => running.includes(i));
        if (p.length !== 1) return undefined;
        const leader = p[0]!;
        const rows = await ha.sql<{ n: number }>(leader, "SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'");
        if (rows[0]!.n !== running.length - 1) return undefined;
        const others = running.filter((i) => i !== leader);
        return (await Promise.all(others.map((i) => ha.check(i, '/replica')))).every((c) => c === 200) ? leader : undefined;
      },
      timeoutMs,
      `one leader among nodes ${running.join(', ')} and ${running.length - 1} followers streaming`,
      250,
    );
    mark(`PostgreSQL: leader node ${value}, ${running.length - 1} followers streaming`);
    return value;
  }

  async function startNodes(nodes: number[]): Promise<void> {
    for (const i of nodes) ha.startNode(i);
    running = [...running, ...nodes].sort();
    for (const i of nodes) {
      await ha.member(i).waitForEvent((e) => e.event === 'http', 30_000, 'HTTP listening');
      ids.set(i, await ha.memberId(i));
    }
  }

  /** As systemd stops the unit: SIGTERM, hasup stops its services and leaves the ring; whatever is left after 60 s is killed. */
  async function stopNode(i: number): Promise<void> {
    const m = ha.member(i);
    m.child.kill('SIGTERM');
    await Promise.race([m.exited, sleep(60_000)]);
    await ha.killNode(i);
    running = running.filter((x) => x !== i);
  }

  async function depart(i: number, via: number): Promise<string> {
    await eventually(
      async () => {
        const state = (await ha.member(via).butterfly()).members.find((m) => m.id === ids.get(i))?.state;
        return state === 'left' || state === 'dead' || undefined;
      },
      30_000,
      `node ${via} to see node ${i} left or dead`,
      200,
    );
    // A 503 (etcd electing a leader after the stopped voter left) says to retry; a 409 is a refusal and fails the test.
    const { value: r } = await eventually(
      async () => {
        const answer = await cli(via, ['depart', ha.address(i)]);
        if (answer.code !== 0 && / 503 /.test(answer.stderr)) throw new Error(answer.stderr.trim());
        return answer;
      },
      30_000,
      `hasup depart of node ${i}`,
      1000,
    );
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
    mark(`departed node ${i}: ${r.stdout.trim()}`);
    return r.stdout;
  }

  before(async () => {
    ha = await HaCluster.create({ nodes: 5, elasticsearch: {} });
  });

  test('one node: a PostgreSQL leader, one etcd voter, writes through HAProxy acknowledged', async () => {
    await startNodes([1]);
    await ha.startHaproxy();
    const leader = await pgWhole(90_000);
    assert.equal(leader, 1);
    await etcdIs([1], 30_000);
    w = new WriteChecker({ user: 'hasup', password: ha.secrets.postgresql.superuser_password, intervalMs: 25, timeoutMs: 2000 });
    await w.setup(ha.haproxyTarget);
    w.start([{ ...ha.haproxyTarget, connections: 2 }]);
    await eventually(async () => w.acks.length >= 20 || undefined, 10_000, 'writes acknowledged on the one node');
    const view = await ha.view(1);
    mark(`one node takes writes (${w.acks.length} acknowledged; synchronous_mode ${String((view as unknown as { synchronous_mode?: unknown }).synchronous_mode)})`);
  });

  test('joins 2 and 3: three etcd voters, two PostgreSQL followers streaming', async () => {
    await startNodes([2, 3]);
    await etcdIs([1, 2, 3], 90_000);
    await pgWhole(120_000);
  });

  test('cluster set etcd_voters 5, joins 4 and 5: five etcd voters, four followers', async () => {
    const set = await cli(1, ['cluster', 'set', 'etcd_voters', '5']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /etcd_voters = 5 \(was 3\); the next 2 member\(s\) to join become voters/);
    const bad = await cli(1, ['cluster', 'set', 'etcd_voters', '4']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /etcd voters must be 3 or 5, got 4/);
    const status = await ha.member(1).api<EtcdMembershipStatus>('/etcd');
    assert.equal(status.voters_wanted, 5);
    assert.equal(status.voters_wanted_source, 'cluster');
    await startNodes([4, 5]);
    await etcdIs([1, 2, 3, 4, 5], 120_000);
    await pgWhole(120_000);
  });

  test('two followers stopped and departed one at a time: etcd at four, then three healthy voters; writes go on', async () => {
    const leader = await pgWhole(30_000);
    const [second, first] = [2, 3, 4, 5].filter((i) => i !== leader).slice(-2) as [number, number];
    const via = leader;
    await stopNode(first);
    const out1 = await depart(first, via);
    assert.match(out1, /removed from etcd's voting members \(etcd member [0-9a-f]+, 4 voters left\)/);
    await etcdIs(running, 60_000);
    await stopNode(second);
    const out2 = await depart(second, via);
    assert.match(out2, /removed from etcd's voting members \(etcd member [0-9a-f]+, 3 voters left\)/);
    await etcdIs(running, 60_000);
    assert.equal(running.length, 3);
    // Back at three members the operator sets the count back, so a member joining later is a client.
    const set = await cli(via, ['cluster', 'set', 'etcd_voters', '3']);
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /etcd_voters = 3 \(was 5\); etcd has its 3 voters/);
    await pgWhole(60_000);
    // A departed member is gone for good from every running member's ring.
    for (const i of running) {
      await eventually(
        async () => {
          const members = (await ha.member(i).butterfly()).members;
          return [first, second].every((gone) => members.find((m) => m.id === ids.get(gone))?.state === 'departed') || undefined;
        },
        10_000,
        `node ${i} to see nodes ${first} and ${second} departed`,
      );
    }
  });

  test('no acknowledged write lost, never two writable nodes; Elasticsearch green, shipping indices auto-expanded to its one node', async () => {
    await sleep(1000);
    await w.stop();
    const leader = await pgWhole(30_000);
    assert.deepEqual(w.overlaps(), [], 'never two nodes taking writes');
    const missing = await w.missing(ha.nodeTarget(leader));
    assert.deepEqual(missing, [], 'no acknowledged write lost');
    const failures = [...w.failures.values()].reduce((a, b) => a + b, 0);
    mark(`${w.acks.length} writes acknowledged, ${failures} failed attempts, longest pause through HAProxy ${w.longestGap('haproxy', t0)} ms`);

    const es = <T>(path: string): Promise<T> => ha.es<T>('GET', path);
    await eventually(async () => (await es<{ status: string }>('/_cluster/health')).status === 'green' || undefined, 60_000, 'Elasticsearch green');
    const settings = await eventually(
      async () => {
        const s = await es<Record<string, { settings: { index: { number_of_replicas?: string; auto_expand_replicas?: string } } }>>('/hasup-*/_settings');
        return Object.keys(s).length > 0 ? s : undefined;
      },
      60_000,
      'shipping indices in Elasticsearch',
    );
    for (const [index, s] of Object.entries(settings.value)) {
      assert.equal(s.settings.index.auto_expand_replicas, '0-1', `${index} follows the node count`);
      assert.equal(s.settings.index.number_of_replicas, '0', `${index} has no replica on a one-node Elasticsearch`);
    }
    mark(`Elasticsearch green, ${Object.keys(settings.value).length} shipping indices at 0 replicas (auto_expand_replicas 0-1)`);
  });
});
