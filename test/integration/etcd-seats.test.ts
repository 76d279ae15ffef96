/**
 * Shrinking and refilling etcd's voter set against real etcd 3.4 processes:
 * a three-voter cluster on loopback, and a fourth member that is an etcd
 * client. hasup's EtcdMembership runs on that member as in the daemon; its
 * ring is an in-memory census (the voters' service rumors) and its
 * supervisor starts a real etcd from the decision the membership writes
 * (membership.json), as the etcd driver renders it.
 *
 * Checks: a removal that would leave no healthy quorum is refused and
 * leaves etcd as it was; the removal of a dead voter goes through; the
 * client then takes the free seat by itself (member add, etcd started as a
 * member of the running cluster) while writes keep going through; `cluster
 * set etcd_voters` is kept in etcd.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import { EtcdClient } from '../../src/plugins/etcd/client.js';
import { readDecision, writeDecision } from '../../src/plugins/etcd/formation-file.js';
import { DepartRefused, EtcdMembership } from '../../src/plugins/etcd/membership.js';
import { decodeEtcdRoleRumor, RUMOR_ETCD_ROLE, votersKey } from '../../src/plugins/etcd/seats.js';
import { writeClusterState } from '../../src/supervisor/cluster-state.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import { createLogger } from '../../src/supervisor/log.js';
import type { ClusterSecrets } from '../../src/supervisor/secrets.js';
import { StateDir } from '../../src/supervisor/state-dir.js';
import { member, rumor } from '../support/census-fixtures.js';
import { freePort, waitFor } from '../support/service-harness.js';

const ETCD = '/usr/bin/etcd';
const skip = existsSync(ETCD) ? false : `etcd is not installed at ${ETCD} (npm run bootstrap)`;
const HOST = '127.0.0.1';
const CLUSTER_ID = '5eed5eed5eed5eed';
const TOKEN = `hasup-${CLUSTER_ID}`;
const [A, B, C, D] = ['aaaaaaaaaaaaaaa1', 'bbbbbbbbbbbbbbb2', 'ccccccccccccccc3', 'ddddddddddddddd4'];

interface Node {
  id: string;
  client: number;
  peer: number;
  proc?: ChildProcess;
  output: string[];
}

function startEtcd(root: string, n: Node, initialCluster: string, state: 'new' | 'existing'): void {
  const client = `http://${HOST}:${n.client}`;
  const peer = `http://${HOST}:${n.peer}`;
  const proc = spawn(
    ETCD,
    [
      '--name', n.id,
      '--data-dir', join(root, n.id),
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', initialCluster,
      '--initial-cluster-state', state,
      '--initial-cluster-token', TOKEN,
      '--strict-reconfig-check',
      '--heartbeat-interval', '100',
      '--election-timeout', '1000',
      '--log-level', 'warn',
      '--logger', 'zap',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const keep = (d: Buffer) => {
    n.output.push(...d.toString('utf8').split('\n').filter(Boolean));
    if (n.output.length > 100) n.output.splice(0, n.output.length - 100);
  };
  proc.stdout!.on('data', keep);
  proc.stderr!.on('data', keep);
  n.proc = proc;
}

async function killEtcd(n: Node): Promise<void> {
  const p = n.proc;
  if (!p || p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise((r) => p.once('exit', r));
  process.kill(p.pid!, 'SIGKILL');
  await exited;
}

const etcdAt = (...nodes: Node[]) => new EtcdClient({ endpoints: () => nodes.map((n) => `http://${HOST}:${n.client}`), timeoutMs: 3000, keepAlive: false });

async function healthy(n: Node): Promise<boolean> {
  try {
    return (await etcdAt(n).healthAt(`http://${HOST}:${n.client}`, { signal: AbortSignal.timeout(1500) })).healthy;
  } catch {
    return false;
  }
}

describe('etcd voter seats against real etcd', { skip }, () => {
  let root: string;
  const nodes: Node[] = [];
  const [a, b, c, d] = [A, B, C, D].map((id) => ({ id, client: 0, peer: 0, output: [] as string[] })) as [Node, Node, Node, Node];
  // The census D sees: members and rumors, changed by the test as the ring would.
  const states = new Map<string, MemberView['state']>();
  let rumors: StoredRumor[] = [];
  const etcdRumor = (n: Node, health = 'ok') => rumor(n.id, 'etcd', { state: 'running', health, ports: { client_port: n.client, peer_port: n.peer } });
  const setRumor = (r: StoredRumor) => {
    rumors = [...rumors.filter((x) => !(x.kind === r.kind && x.key === r.key)), r];
  };
  const ring = {
    self: () => member(D, HOST, 'alive'),
    members: () => [...states].map(([id, state]) => member(id, HOST, state)),
    member: (id: string) => (states.has(id) ? member(id, HOST, states.get(id)!) : undefined),
    rumors: (kind?: string) => rumors.filter((r) => kind === undefined || r.kind === kind),
    publish(r: { kind: string; key: string; version: number; payload: Uint8Array }) {
      setRumor({ ...r, originId: D });
      return true;
    },
  };
  let loaded = false;
  let membership: EtcdMembership;
  let state: StateDir;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'hasup-etcd-seats-'));
    for (const n of [a, b, c, d]) {
      n.client = await freePort();
      n.peer = await freePort();
      nodes.push(n);
    }
    const initial = [a, b, c].map((n) => `${n.id}=http://${HOST}:${n.peer}`).join(',');
    for (const n of [a, b, c]) startEtcd(root, n, initial, 'new');
    await waitFor('the three voters to be healthy', 20_000, async () => (await Promise.all([a, b, c].map(healthy))).every(Boolean) || undefined, 200);
    for (const n of [a, b, c, d]) states.set(n.id, 'alive');
    for (const n of [a, b, c]) setRumor(etcdRumor(n));

    state = new StateDir(join(root, 'member-d'));
    state.ensure();
    writeClusterState(state.root, { cluster_id: CLUSTER_ID, cluster_name: 'seats', founder: false, created_at: Date.now() });
    // D joined when the cluster had its voters: it is a client.
    writeDecision(state.path('svc', 'etcd'), { role: 'client', decided_at: Date.now() });
    const secrets = { cluster_id: CLUSTER_ID, cluster_name: 'seats', api_token: 'x', postgresql: { superuser_password: 'x', replication_password: 'x' } } as ClusterSecrets;
    membership = new EtcdMembership({
      ring,
      supervisor: {
        get: () => (loaded ? ({} as never) : undefined),
        // The supervisor's part: etcd started from the decision the membership wrote, as the driver renders it.
        load: async () => {
          const decision = readDecision(state.path('svc', 'etcd'));
          assert.equal(decision?.role, 'voter');
          if (decision?.role !== 'voter') throw new Error('not a voter');
          loaded = true;
          startEtcd(root, d, decision.members.map((m) => `${m.name}=${m.peer_urls[0]}`).join(','), decision.state);
          return {} as never;
        },
      },
      stateDir: state,
      memberId: D,
      ip: HOST,
      secrets,
      secretsFile: join(root, 'secrets.json'),
      enabled: true,
      voters: 3,
      planPath: [shippedPlansDir()],
      userLayer: { client_port: d.client, peer_port: d.peer, listen_address: HOST },
      log: createLogger({ level: 'silent' }),
    });
    membership.start();
  });

  after(async () => {
    membership?.stop();
    for (const n of nodes) await killEtcd(n);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  test('the client says so in the ring and waits while etcd has its three voters', async () => {
    await waitFor('D to look for a seat', 20_000, async () => (membership.status().seat?.includes('etcd has 3 voters, 3 wanted') ? true : undefined), 200);
    const role = ring.rumors(RUMOR_ETCD_ROLE).find((r) => r.key === D);
    assert.equal(decodeEtcdRoleRumor(role!.payload)?.role, 'client');
    assert.equal(membership.status().role, 'client');
    assert.deepEqual(membership.status().clients, [D]);
    assert.equal((await etcdAt(a).memberList()).length, 3);
    assert.equal(loaded, false);
  });

  test('a removal that would leave no healthy quorum is refused; etcd keeps its members', async () => {
    await killEtcd(c);
    states.set(C, 'dead');
    // A and B elect a leader among themselves if C led (a depart during that election is a 503 to retry).
    await waitFor('A and B to take writes without C', 20_000, async () => (await etcdAt(a, b).put('/seats/without-c', 'yes'), true), 200);
    // B looks unhealthy to the census: A alone is not a quorum of the two voters left.
    setRumor({ ...etcdRumor(b, 'critical'), version: 2 });
    await assert.rejects(membership.removeVoter(C), (err: unknown) => err instanceof DepartRefused && /etcd would be left with 2 voters, 1 of them healthy; a quorum of 2 needs 2/.test(err.message));
    assert.equal((await etcdAt(a, b).memberList()).length, 3);
    setRumor({ ...etcdRumor(b), version: 3 });
  });

  test('the dead voter is removed, and the client takes its seat by itself while writes go on', async () => {
    const writes = { ok: 0, failed: [] as string[] };
    let writing = true;
    const writer = (async () => {
      const kv = etcdAt(a, b);
      for (let i = 0; writing; i++) {
        try {
          await kv.put(`/seats/w${i}`, String(i), { signal: AbortSignal.timeout(3000) });
          writes.ok++;
        } catch (err) {
          writes.failed.push((err as Error).message);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const removed = await membership.removeVoter(C);
    assert.equal(removed.was_voter, true);
    assert.equal(removed.voters_left, 2);
    assert.equal(removed.promotes, D, 'the one client is in line for the seat');
    states.set(C, 'departed');
    rumors = rumors.filter((r) => !r.key.startsWith(C));

    await waitFor('D to be an etcd voter with a healthy etcd', 45_000, async () => (membership.status().role === 'voter' && (await healthy(d)) ? true : undefined), 250);
    setRumor(etcdRumor(d));
    const members = await etcdAt(a, b).memberList();
    assert.deepEqual(members.map((m) => m.name).sort(), [A, B, D], `members: ${JSON.stringify(members)}; D's etcd: ${d.output.slice(-5).join(' | ')}`);
    assert.ok(members.every((m) => !m.isLearner));
    assert.equal(decodeEtcdRoleRumor(ring.rumors(RUMOR_ETCD_ROLE).find((r) => r.key === D)!.payload)?.role, 'voter');
    assert.equal(readDecision(state.path('svc', 'etcd'))?.role, 'voter', 'remembered: a restarted member stays a voter');
    // D's etcd serves the data written before and during its promotion.
    writing = false;
    await writer;
    assert.deepEqual(writes.failed, [], 'every write during the removal and the promotion went through');
    assert.ok(writes.ok > 10, `${writes.ok} writes`);
    const last = await etcdAt(d).get(`/seats/w${writes.ok - 1}`);
    assert.equal(last?.value, String(writes.ok - 1));
  });

  test('cluster set etcd_voters 5 is kept in etcd and read back as the cluster\'s count; a bad count is refused', async () => {
    const set = await membership.setVoters(5);
    assert.equal(set.previous, 3);
    assert.equal(set.members, 3);
    assert.match(set.note, /the next 2 member\(s\) to join become voters/);
    assert.equal((await etcdAt(a).get(votersKey(CLUSTER_ID)))?.value, '5');
    assert.equal(membership.status().voters_wanted, 5);
    assert.equal(membership.status().voters_wanted_source, 'cluster');
    await assert.rejects(membership.setVoters(4), /etcd voters must be 3 or 5, got 4/);
    assert.equal((await etcdAt(a).get(votersKey(CLUSTER_ID)))?.value, '5');
  });
});
