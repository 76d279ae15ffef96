/**
 * The multi-host harness itself: three network namespaces each running a real
 * `hasup run` (gossip only), reached from the host over the bridge, under the
 * faults the HA scenarios use (cable pulled, node powered off, packet loss),
 * and torn down without a trace.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { generateRingKey, HASUP_BIN, type LogEvent, type MemberProc } from '../support/member-procs.js';
import { generateSecrets, writeSecretsFile } from '../../src/supervisor/secrets.js';
import { NetnsCluster, netnsUnavailableReason } from '../support/netns-cluster.js';
import { runCommandSync } from '../support/netns/commands.js';
import { listLinks, listNamespaces, MARKER_DIR, processStartTime, sweepOrphans, writeMarker } from '../support/netns/ownership.js';

const noNetns = netnsUnavailableReason();

const haproxyMissing = spawnSync('haproxy', ['-v'], { stdio: 'ignore' }).status === 0 ? null : 'haproxy is not installed';

function runHasupOnHost(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HASUP_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** HAProxy's stats page as CSV: one record per proxy/server, keyed by the header's column names. */
async function haproxyStats(url: string): Promise<Array<Record<string, string>>> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(2000) })).text();
  const [header, ...lines] = text.trim().split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  return lines.map((line) => Object.fromEntries(line.split(',').map((v, k) => [columns[k] ?? String(k), v])));
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < timeoutMs) {
    if (await check().catch(() => false)) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function stateOf(viewer: MemberProc, peerId: string): Promise<string | undefined> {
  return (await viewer.butterfly()).members.find((m) => m.id === peerId)?.state;
}

const deathOf = (peerId: string, after: number) => (e: LogEvent) => e.event === 'member' && e.peer === peerId && e.state === 'dead' && e.time >= after;

describe('namespace cluster: three real members on their own network stacks', { skip: noNetns ?? false }, () => {
  let cluster: NetnsCluster;
  const ids = new Map<number, string>();
  const member = (i: number) => cluster.node(i).member!;

  before(async () => {
    cluster = await NetnsCluster.create({ nodes: 3 });
    const ringKey = join(cluster.baseDir, 'ring.key');
    generateRingKey(ringKey);
    // One secrets file for the whole cluster, as `cluster create` / `cluster join --secrets` give them.
    const secrets = join(cluster.baseDir, 'secrets.json');
    writeSecretsFile(secrets, generateSecrets());
    cluster.node(1).startMember({ ringKey, secrets });
    await member(1).waitForEvent((e) => e.event === 'http', 15_000, 'HTTP listening');
    for (const i of [2, 3]) cluster.node(i).startMember({ ringKey, secrets, peers: [1] });
    await Promise.all([2, 3].map((i) => member(i).waitForEvent((e) => e.event === 'joined', 15_000, 'joined')));
    for (const i of [1, 2, 3]) ids.set(i, (await member(i).butterfly()).self.id);
  });

  after(async () => {
    await cluster?.destroy();
  });

  test('each member runs in its own namespace, and the host reaches every /butterfly over the bridge', async () => {
    const ownNet = readlinkSync('/proc/self/ns/net');
    const nets = [1, 2, 3].map((i) => readlinkSync(`/proc/${member(i).pid}/ns/net`));
    assert.equal(new Set([ownNet, ...nets]).size, 4, 'three distinct namespaces, none of them the host one');
    for (const i of [1, 2, 3]) {
      assert.deepEqual(cluster.node(i).pids(), [member(i).pid], `node ${i} runs exactly its member`);
      await eventually(async () => (await member(i).butterfly()).members.filter((m) => m.state === 'alive').length === 3, 15_000, `node ${i} to see 3 alive`);
      const view = await member(i).butterfly();
      assert.equal(view.self.address, `${cluster.node(i).address}:9638`);
    }
  });

  test('HAProxy in the host namespace, configured by gen-frontend-config from node 1, checks every node over the bridge', { skip: haproxyMissing ?? false }, async () => {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const front = cluster.hostAddress;
    const gen = await runHasupOnHost(['gen-frontend-config', '--haproxy', '--state-dir', cluster.node(1).stateDir, '--listen', `${front}:${port}`, '--replica-listen', `${front}:${port + 1}`, '--stats', `${front}:${port + 2}`]);
    assert.equal(gen.code, 0, gen.stderr);
    const servers = gen.stdout.split('\n').filter((l) => l.trim().startsWith('server ')).map((l) => l.trim().split(' ').slice(2).join(' '));
    const expected = [1, 2, 3].map((i) => `${cluster.node(i).address}:5432 check port 9631`);
    assert.deepEqual(servers, [...expected, ...expected], 'every node, in the primary and the replica backend');
    const file = join(cluster.baseDir, 'haproxy.cfg');
    writeFileSync(file, gen.stdout);
    const haproxy = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    haproxy.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    try {
      // No PostgreSQL runs, so each member answers 503 on /primary: L7STS 503 means HAProxy reached its API and got that answer.
      // Servers are named by member id (the ring's view from node 1).
      let seen = '';
      const took = await eventually(
        async () => {
          const rows = await haproxyStats(`http://${front}:${port + 2}/;csv`);
          const primary = rows.filter((r) => r.pxname === 'postgresql_primary' && r.svname !== 'BACKEND' && r.svname !== 'FRONTEND');
          seen = JSON.stringify(primary.map((r) => [r.svname, r.status, r.check_status, r.check_code]));
          const named = primary.map((r) => r.svname).sort().join() === [...ids.values()].sort().join();
          return named && primary.every((r) => r.status === 'DOWN' && r.check_status === 'L7STS' && r.check_code === '503');
        },
        15_000,
        'HAProxy to mark every node down on a 503 from /primary',
      ).catch((err: Error) => assert.fail(`${err.message}; stats: ${seen}; haproxy: ${log}`));
      console.log(`# HAProxy reached all three /primary checks over the bridge within ${took} ms`);
    } finally {
      haproxy.kill('SIGKILL');
    }
  });

  /** Every viewer sees every other listed node alive. */
  async function ringWhole(nodes: number[], timeoutMs: number): Promise<number> {
    return eventually(
      async () => {
        for (const viewer of nodes) {
          for (const peer of nodes) {
            if (peer !== viewer && (await stateOf(member(viewer), ids.get(peer)!)) !== 'alive') return false;
          }
        }
        return true;
      },
      timeoutMs,
      `nodes ${nodes.join(', ')} all alive to each other`,
    );
  }

  /** Resolves when every viewer has logged each of `peers` as dead since `since`; returns the slowest delay. */
  async function seenDead(viewers: number[], peers: number[], since: number): Promise<number> {
    const events = await Promise.all(
      viewers.flatMap((v) => peers.map((p) => member(v).waitForEvent(deathOf(ids.get(p)!, since), 45_000, `node ${p} dead on node ${v}`))),
    );
    return Math.max(...events.map((e) => e.time)) - since;
  }

  test('isolate(3): both sides declare each other dead; heal(3): the ring heals', async () => {
    const cut = Date.now();
    await cluster.isolate(3);
    console.log(`# isolate -> node 3 dead on 1 and 2: ${await seenDead([1, 2], [3], cut)} ms`);
    console.log(`# isolate -> 1 and 2 dead on node 3: ${await seenDead([3], [1, 2], cut)} ms`);
    assert.ok((await cluster.droppedPackets(3)) > 0, 'the isolation dropped packets');
    await assert.rejects(member(3).butterfly(), 'the host cannot reach an isolated node either');
    await cluster.heal(3);
    console.log(`# heal -> all alive everywhere: ${await ringWhole([1, 2, 3], 45_000)} ms`);
  });

  test('partition([1], [2, 3]): each side declares the other dead while the host still reaches both; clearing heals', async () => {
    const cut = Date.now();
    await cluster.partition([1], [2, 3]);
    console.log(`# partition -> each side dead to the other: ${await seenDead([2, 3], [1], cut)} / ${await seenDead([1], [2, 3], cut)} ms`);
    for (const i of [1, 2, 3]) assert.equal((await member(i).butterfly()).self.state, 'alive', `the host reaches node ${i} across the partition`);
    assert.equal(await stateOf(member(2), ids.get(3)!), 'alive', 'the majority side keeps its own members alive');
    await cluster.clearFaults();
    console.log(`# partition cleared -> all alive everywhere: ${await ringWhole([1, 2, 3], 45_000)} ms`);
  });

  test('20% packet loss on node 3 for 20 s: no member is declared dead', async () => {
    const start = Date.now();
    await cluster.loss(3, 20);
    await new Promise((r) => setTimeout(r, 20_000));
    const dropped = await cluster.droppedPackets(3);
    await cluster.clearFaults();
    assert.ok(dropped > 0, 'the loss rule dropped packets');
    console.log(`# 20 s at 20% loss: ${dropped} packets dropped on node 3`);
    for (const i of [1, 2, 3]) {
      const deaths = member(i).events.filter((e) => e.event === 'member' && e.state === 'dead' && e.time >= start);
      assert.deepEqual(deaths, [], `node ${i} declared no one dead`);
    }
    await ringWhole([1, 2, 3], 15_000);
  });

  test('killNode(2): every process in it dies and the others see it dead', async () => {
    const victim = member(2);
    const cut = Date.now();
    await cluster.killNode(2);
    assert.deepEqual(cluster.node(2).pids(), [], 'nothing runs in node 2');
    assert.equal(victim.child.signalCode, 'SIGKILL');
    const seen = await Promise.all([1, 3].map((i) => member(i).waitForEvent(deathOf(ids.get(2)!, cut), 30_000, 'node 2 dead')));
    console.log(`# killNode -> dead on both others: ${Math.max(...seen.map((e) => e.time)) - cut} ms`);
  });

  test('destroy() removes every namespace, veth and bridge of the run, and its state', async () => {
    const names = [cluster.bridgeName, ...cluster.nodes.flatMap((n) => [n.namespace, n.vethName])];
    assert.equal(cluster.leftovers().length, names.length, 'all resources exist before');
    const members = [1, 3].map(member);
    await cluster.destroy();
    assert.deepEqual(cluster.leftovers(), []);
    const present = new Set([...listNamespaces(), ...listLinks()]);
    for (const name of names) assert.ok(!present.has(name), `${name} is gone`);
    assert.ok(!existsSync(cluster.baseDir), 'state dirs removed');
    assert.ok(!existsSync(join(MARKER_DIR, `${cluster.prefix}${cluster.runId}.json`)), 'marker removed');
    for (const m of members) assert.equal(m.child.signalCode, 'SIGKILL');
    await cluster.destroy(); // idempotent
  });
});

test('stale resources of a dead run are swept; a live run is left alone', { skip: noNetns ?? false }, () => {
  const prefix = 'hst-';
  // Fresh ids per run, so a parallel run of this test never shares names (it may sweep our orphans first: that is fine).
  const [dead, live, unmarked] = ['d', 'l', 'u'].map((c) => `${c}${randomBytes(3).toString('hex')}`) as [string, string, string];
  const exited = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadDir = mkdtempSync(join(tmpdir(), 'hasup-cluster-'));
  const foreignDir = mkdtempSync(join(tmpdir(), 'not-hasup-'));
  writeMarker({ pid: Number(exited.stdout), startTime: '1', prefix, runId: dead, subnet: '10.231.250', ownedDir: deadDir });
  writeMarker({ pid: Number(exited.stdout), startTime: '1', prefix, runId: `${dead}x`, subnet: '10.231.249', ownedDir: foreignDir });
  writeMarker({ pid: process.pid, startTime: processStartTime(process.pid)!, prefix, runId: live, subnet: '10.231.251' });
  runCommandSync('ip', ['netns', 'add', `${prefix}${dead}-n1`]);
  runCommandSync('ip', ['link', 'add', `${prefix}${dead}-br`, 'type', 'bridge']);
  runCommandSync('ip', ['netns', 'add', `${prefix}${unmarked}-n1`]);
  runCommandSync('ip', ['netns', 'add', `${prefix}${live}-n1`]);
  try {
    sweepOrphans(prefix);
    const present = new Set([...listNamespaces(), ...listLinks()]);
    for (const name of [`${prefix}${dead}-n1`, `${prefix}${dead}-br`, `${prefix}${unmarked}-n1`]) assert.ok(!present.has(name), `${name} swept`);
    assert.ok(present.has(`${prefix}${live}-n1`), 'the live run keeps its namespace');
    assert.ok(!existsSync(join(MARKER_DIR, `${prefix}${dead}.json`)), 'the dead marker is removed');
    assert.ok(!existsSync(deadDir), 'the dead run\'s own state dir is removed');
    assert.ok(existsSync(foreignDir), 'a directory the harness did not make is never removed, whatever a marker says');
    assert.ok(existsSync(join(MARKER_DIR, `${prefix}${live}.json`)), 'the live marker stays');
  } finally {
    rmSync(join(MARKER_DIR, `${prefix}${live}.json`), { force: true });
    rmSync(foreignDir, { recursive: true, force: true });
    sweepOrphans(prefix);
  }
  assert.ok(!listNamespaces().includes(`${prefix}${live}-n1`), 'once its marker is gone, the run is an orphan too');
});

test('loopback fallback: members on 127.231.X.N form a ring; network faults say they need root', async () => {
  const cluster = await NetnsCluster.create({ nodes: 2, mode: 'loopback' });
  try {
    const ringKey = join(cluster.baseDir, 'ring.key');
    generateRingKey(ringKey);
    const first = cluster.node(1).startMember({ ringKey });
    await first.waitForEvent((e) => e.event === 'http', 15_000, 'HTTP listening');
    const second = cluster.node(2).startMember({ ringKey, peers: [1] });
    await eventually(async () => (await second.butterfly()).members.filter((m) => m.state === 'alive').length === 2, 15_000, 'two alive');
    assert.match(cluster.node(2).address, /^127\.231\.\d+\.12$/);
    await assert.rejects(cluster.isolate(1), /needs root/);
    await assert.rejects(cluster.loss(1, 10), /needs root/);
    await cluster.killNode(2);
    assert.equal(second.child.signalCode, 'SIGKILL');
  } finally {
    await cluster.destroy();
  }
  assert.ok(!existsSync(cluster.baseDir));
});
