import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EtcdMember } from '../../src/plugins/etcd/client.js';
import { EtcdDriver } from '../../src/plugins/etcd/driver.js';
import { etcdClientUrls, etcdVoters } from '../../src/plugins/etcd/endpoints.js';
import { DECISION_FILE, readDecision, writeDecision } from '../../src/plugins/etcd/formation-file.js';
import { checkVoterCount, decideJoin, initialMembers, JOIN_BACKOFF, joinRetryDelay } from '../../src/plugins/etcd/membership.js';
import type { DriverContext } from '../../src/supervisor/driver.js';
import { member, rumor } from '../support/census-fixtures.js';

const started = (id: string, name: string, port: number): EtcdMember => ({ id, name, peerUrls: [`http://10.0.0.${port}:2380`], clientUrls: [`http://10.0.0.${port}:2379`], isLearner: false });
const unstarted = (id: string, port: number): EtcdMember => ({ id, name: '', peerUrls: [`http://10.0.0.${port}:2380`], clientUrls: [], isLearner: false });
const SELF = 'http://10.0.0.14:2380';

test('decideJoin: add while the cluster is short of voters, client once it has them', () => {
  assert.deepEqual(decideJoin([started('1', 'a', 11)], SELF, 3), { kind: 'add' });
  assert.deepEqual(decideJoin([started('1', 'a', 11), started('2', 'b', 12)], SELF, 3), { kind: 'add' });
  assert.deepEqual(decideJoin([started('1', 'a', 11), started('2', 'b', 12), unstarted('3', 13)], SELF, 3), { kind: 'client' }, 'an added but unstarted member counts: it holds the seat');
  assert.deepEqual(decideJoin([started('1', 'a', 11), started('2', 'b', 12), started('3', 'c', 13)], SELF, 5), { kind: 'add' });
});

test('decideJoin: a member already in the list starts; one that overshot the count withdraws', () => {
  const mine = unstarted('9', 14);
  const two = [started('1', 'a', 11), mine];
  assert.deepEqual(decideJoin(two, SELF, 3), { kind: 'start', members: two });
  const four = [started('1', 'a', 11), started('2', 'b', 12), started('3', 'c', 13), mine];
  assert.deepEqual(decideJoin(four, SELF, 3), { kind: 'withdraw', id: '9' });
  // A started member (it has run before) is never withdrawn, whatever the count.
  const startedSelf = { ...mine, name: 'me' };
  assert.equal(decideJoin([...four.slice(0, 3), startedSelf], SELF, 3).kind, 'start');
});

/**
 * An in-memory etcd with its strict reconfiguration check: an add is refused
 * unless the started voting members reach the quorum of the grown cluster
 * (a one-member cluster may always add one). Joiners act in random
 * interleavings with the formation's own decision rule, and a joiner's list
 * read and its add are separate steps (others may act in between, as over a
 * network). Whatever the order, every joiner ends decided and the cluster
 * has exactly the wanted voters.
 */
test('parallel joiners against etcd\'s strict reconfig check: exactly `voters` voters, everyone else a client', () => {
  let withdrawals = 0;
  for (const voters of [3, 5]) {
    for (let seed = 1; seed <= 300; seed++) {
      let state = seed;
      const random = () => (state = (state * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
      const members: EtcdMember[] = [started('1', 'founder', 11)];
      let nextId = 100;
      const joiners = Array.from({ length: 6 }, (_, i) => ({ url: `http://10.0.0.${20 + i}:2380`, name: `j${i}`, role: undefined as 'voter' | 'client' | undefined, startsIn: -1, willAdd: false }));
      const canAdd = () => {
        const n = members.length + 1;
        const up = members.filter((m) => m.name !== '').length;
        return (up === 1 && n === 2) || up >= Math.floor(n / 2) + 1;
      };
      const snapshot = () => members.map((m) => ({ ...m, peerUrls: [...m.peerUrls] }));
      for (let step = 0; step < 20_000 && joiners.some((j) => j.role === undefined || j.startsIn >= 0); step++) {
        // Added members start a few steps after they decided (their etcd boots).
        for (const j of joiners) {
          if (j.startsIn > 0) j.startsIn--;
          else if (j.startsIn === 0) {
            const m = members.find((x) => x.peerUrls.includes(j.url));
            if (m) m.name = j.name;
            j.startsIn = -1;
          }
        }
        const j = joiners[Math.floor(random() * joiners.length)]!;
        if (j.role !== undefined) continue;
        let next;
        if (j.willAdd) {
          // The add this joiner decided on when it last read the list; etcd may refuse it.
          j.willAdd = false;
          if (!canAdd()) continue;
          members.push({ id: String(nextId++), name: '', peerUrls: [j.url], clientUrls: [], isLearner: false });
          next = decideJoin(snapshot(), j.url, voters);
        } else {
          next = decideJoin(snapshot(), j.url, voters);
        }
        if (next.kind === 'add') j.willAdd = true;
        else if (next.kind === 'start') {
          j.role = 'voter';
          j.startsIn = Math.floor(random() * 4);
        } else if (next.kind === 'client') j.role = 'client';
        else {
          const id = next.id;
          members.splice(members.findIndex((m) => m.id === id), 1);
          withdrawals++;
        }
      }
      const context = `voters ${voters}, seed ${seed}`;
      assert.ok(joiners.every((j) => j.role !== undefined), `every joiner decided (${context})`);
      assert.equal(members.length, voters, `etcd has exactly ${voters} members (${context})`);
      assert.equal(joiners.filter((j) => j.role === 'voter').length, voters - 1, `the founder and ${voters - 1} joiners vote (${context})`);
      for (const m of members.slice(1)) assert.ok(joiners.some((j) => j.role === 'voter' && m.peerUrls.includes(j.url)), `every etcd member is a voter that starts (${context})`);
    }
  }
  assert.ok(withdrawals > 0, 'some interleavings overshot and were repaired by a withdrawal');
});

test('initialMembers names this member and placeholders for other unstarted ones', () => {
  const list = [started('1', 'a1b2', 11), unstarted('255', 12), unstarted('7', 14)];
  assert.deepEqual(initialMembers(list, 'selfid', SELF), [
    { name: 'a1b2', peer_urls: ['http://10.0.0.11:2380'] },
    { name: 'unstarted-ff', peer_urls: ['http://10.0.0.12:2380'] },
    { name: 'selfid', peer_urls: [SELF] },
  ]);
});

test('join retry delays: start near 0.5 s, grow, stay at or under the 5 s cap, and spread parallel joiners apart', () => {
  // The jitter is subtracted: random 0 gives the full delay, random near 1 the shortest.
  const low = () => 0;
  const high = () => 0.999999;
  assert.ok(joinRetryDelay(0, high) <= JOIN_BACKOFF.initialMs && joinRetryDelay(0, high) >= JOIN_BACKOFF.initialMs * (1 - JOIN_BACKOFF.jitter) - 1);
  assert.ok(joinRetryDelay(3, low) > joinRetryDelay(1, low), 'grows with the attempt');
  for (let attempt = 0; attempt < 50; attempt++) {
    for (const r of [low, high, Math.random]) {
      const d = joinRetryDelay(attempt, r);
      assert.ok(d > 0 && d <= JOIN_BACKOFF.maxMs, `attempt ${attempt}: ${d} ms within (0, ${JOIN_BACKOFF.maxMs}]`);
    }
  }
  assert.ok(Math.abs(joinRetryDelay(20, high) - joinRetryDelay(20, low)) >= JOIN_BACKOFF.maxMs * JOIN_BACKOFF.jitter * 0.99, 'jitter spreads retries across half the delay');
});

test('voter counts: 3 or 5 only', () => {
  assert.equal(checkVoterCount(3), 3);
  assert.equal(checkVoterCount(5), 5);
  for (const n of [0, 1, 2, 4, 7, NaN]) assert.throws(() => checkVoterCount(n), /3 or 5/);
});

test('etcdClientUrls: voters from the census, healthy first, this member first among equals; left, departed and etcd-less members out', () => {
  const running = { state: 'running', health: 'ok', ports: { client_port: 2379, peer_port: 2380 } };
  const members = [
    member('aaaa', '10.0.0.11', 'alive'),
    member('bbbb', '10.0.0.12', 'alive'),
    member('cccc', '10.0.0.13', 'dead'),
    member('dddd', '10.0.0.14', 'alive'),
    member('eeee', '10.0.0.15', 'departed'),
    member('ffff', 'fd00::6', 'suspect'),
    member('gggg', '10.0.0.17', 'alive'),
    member('hhhh', '10.0.0.18', 'left'),
  ];
  const rumors = [
    rumor('aaaa', 'etcd', { ...running, health: 'critical' }),
    rumor('bbbb', 'etcd', running),
    rumor('cccc', 'etcd', running),
    rumor('dddd', 'etcd', { ...running, ports: { client_port: 12379 } }),
    rumor('eeee', 'etcd', running),
    rumor('ffff', 'etcd', running),
    rumor('gggg', 'postgresql', { state: 'running', health: 'ok', ports: { port: 5432 } }),
    rumor('hhhh', 'etcd', running),
    rumor('zzzz', 'etcd', running), // a member the ring no longer knows
  ];
  const ring = { members: () => members, rumors: (kind?: string) => rumors.filter((r) => kind === undefined || r.kind === kind), self: () => members[3]! };
  assert.deepEqual(etcdClientUrls(ring), ['http://10.0.0.14:12379', 'http://10.0.0.12:2379', 'http://10.0.0.11:2379', 'http://[fd00::6]:2379', 'http://10.0.0.13:2379']);
  const voters = etcdVoters(ring);
  assert.equal(voters[0]!.peerUrl, null, 'no peer port published: no peer URL');
  assert.deepEqual(voters.map((v) => v.healthy), [true, true, false, false, false]);
});

test('the etcd driver renders the formation\'s decision: founder new, joiner existing with the list, a restart existing', () => {
  const root = mkdtempSync(join(tmpdir(), 'hasup-etcd-decision-'));
  try {
    const ctx = { paths: { root, data: join(root, 'data') }, cfg: { listen_address: '', peer_port: 2380, client_port: 2379 }, ip: '10.0.0.14', memberId: 'selfid' } as unknown as DriverContext;
    const driver = new EtcdDriver();
    assert.equal(driver.templateValues(ctx).etcd_initial_cluster, 'selfid=http://10.0.0.14:2380', 'no decision: a one-member etcd of its own');
    writeDecision(root, { role: 'voter', state: 'existing', token: 'hasup-c1', members: initialMembers([started('1', 'aaaa', 11), unstarted('2', 14)], 'selfid', SELF), decided_at: 1 });
    assert.deepEqual(driver.templateValues(ctx), {
      etcd_initial_cluster: 'aaaa=http://10.0.0.11:2380,selfid=http://10.0.0.14:2380',
      etcd_initial_cluster_state: 'existing',
      etcd_cluster_token: 'hasup-c1',
    });
    assert.deepEqual(readDecision(root), { role: 'voter', state: 'existing', token: 'hasup-c1', members: [{ name: 'aaaa', peer_urls: ['http://10.0.0.11:2380'] }, { name: 'selfid', peer_urls: [SELF] }], decided_at: 1 });
    writeDecision(root, { role: 'voter', state: 'new', token: 'hasup-c1', members: [{ name: 'selfid', peer_urls: [SELF] }], decided_at: 1 });
    assert.equal(driver.templateValues(ctx).etcd_initial_cluster_state, 'new');
    mkdirSync(join(root, 'data', 'member'), { recursive: true });
    assert.equal(driver.templateValues(ctx).etcd_initial_cluster_state, 'existing', 'with data, etcd restarts from it');
    writeFileSync(join(root, DECISION_FILE), '{"role":"voter"}');
    assert.throws(() => readDecision(root), /does not describe an etcd role/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
