/**
 * The etcd v3 JSON-gateway client and the election's store against one real
 * etcd on loopback: keys, transactions, leases (expiry included), the watch
 * stream, failover from a dead or hung endpoint, and error messages that
 * carry no credentials.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EtcdClient, EtcdError, EtcdUnavailable, prefixEnd } from '../../src/plugins/etcd/client.js';
import { EtcdClusterStore } from '../../src/plugins/etcd/ha-store.js';
import type { MemberReport } from '../../src/ha/store.js';
import { EtcdServer } from '../support/etcd-server.js';
import { freePort } from '../support/service-harness.js';

const skip = existsSync('/usr/bin/etcd') ? false : 'etcd is not installed';

function report(member: string, extra: Partial<MemberReport> = {}): MemberReport {
  return {
    member,
    host: '127.0.0.1',
    port: 5432,
    role: 'replica',
    healthy: true,
    timeline: 1,
    wal_position: 100,
    replay_position: 100,
    lag_bytes: 0,
    replication_state: 'streaming',
    upstream: null,
    eligible: true,
    nofailover: false,
    leader_seen: null,
    lease: '0',
    updated: Date.now(),
    ...extra,
  };
}

describe('etcd client and election store on a real etcd', { skip }, () => {
  let etcd: EtcdServer;
  let dir: string;
  let client: EtcdClient;
  /** A TCP port that accepts connections and never answers. */
  let hung: Server;
  const hungSockets: Socket[] = [];
  let hungUrl: string;
  let deadUrl: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hasup-etcd-client-'));
    etcd = await EtcdServer.start({ host: '127.0.0.1', clientPort: await freePort(), peerPort: await freePort(), dataDir: join(dir, 'etcd') });
    client = new EtcdClient({ endpoints: () => [etcd.url], timeoutMs: 2000 });
    hung = createServer((socket) => hungSockets.push(socket));
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    hungUrl = `http://127.0.0.1:${(hung.address() as { port: number }).port}`;
    deadUrl = `http://127.0.0.1:${await freePort()}`;
  });

  after(async () => {
    client?.close();
    for (const s of hungSockets) s.destroy();
    hung?.close();
    await etcd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test('prefixEnd is the first key after the prefix', () => {
    assert.equal(Buffer.from(prefixEnd('/a/'), 'base64').toString(), '/a0');
    assert.deepEqual([...Buffer.from(prefixEnd('é'), 'base64')], [0xc3, 0xaa], 'bytewise on the UTF-8 encoding');
  });

  test('put, get, range over a prefix, delete', async () => {
    await client.put('/t/a', 'one');
    await client.put('/t/b', 'twö');
    await client.put('/u/c', 'other');
    assert.equal((await client.get('/t/b'))?.value, 'twö');
    const r = await client.range('/t/', { prefix: true });
    assert.deepEqual(r.kvs.map((kv) => [kv.key, kv.value]), [['/t/a', 'one'], ['/t/b', 'twö']]);
    assert.ok(r.revision >= 3);
    assert.equal((await client.delete('/t/', { prefix: true })).deleted, 2);
    assert.equal(await client.get('/t/a'), undefined);
  });

  test('txn: create-if-absent wins once; compares on value and lease', async () => {
    const create = () => client.txn({ compare: [{ key: '/x/leader', target: 'version', result: 'equal', version: 0 }], success: [{ put: { key: '/x/leader', value: 'm1' } }], failure: [{ range: { key: '/x/leader' } }] });
    assert.equal((await create()).succeeded, true);
    const second = await create();
    assert.equal(second.succeeded, false);
    const seen = second.responses[0];
    assert.ok(seen && 'range' in seen && seen.range.kvs[0]?.value === 'm1', 'the failure branch reads the holder');
    const lease = await client.leaseGrant(10);
    const onLease = await client.txn({ compare: [{ key: '/x/leader', target: 'value', result: 'equal', value: 'm1' }], success: [{ put: { key: '/x/leader', value: 'm1', lease: lease.id } }] });
    assert.equal(onLease.succeeded, true);
    const wrongLease = await client.txn({ compare: [{ key: '/x/leader', target: 'lease', result: 'equal', lease: '12345' }], success: [{ delete: { key: '/x/leader' } }] });
    assert.equal(wrongLease.succeeded, false);
    const rightLease = await client.txn({ compare: [{ key: '/x/leader', target: 'lease', result: 'equal', lease: lease.id }], success: [{ delete: { key: '/x/leader' } }] });
    assert.equal(rightLease.succeeded, true);
    await client.leaseRevoke(lease.id);
  });

  test('leases: keep-alive renews, an unrenewed lease expires with its keys, revoke of a gone lease is fine', async () => {
    const lease = await client.leaseGrant(2);
    assert.equal(lease.ttl, 2);
    await client.put('/l/k', 'v', { lease: lease.id });
    assert.equal(await client.leaseKeepAliveOnce(lease.id), 2);
    const ttl = await client.leaseTimeToLive(lease.id);
    assert.ok(ttl > 0 && ttl <= 2);
    const started = Date.now();
    while ((await client.get('/l/k')) && Date.now() - started < 5000) await new Promise((r) => setTimeout(r, 50));
    const took = Date.now() - started;
    assert.equal(await client.get('/l/k'), undefined, 'the key went with the lease');
    assert.ok(took >= 1500 && took < 3500, `expired about 2 s after the last renewal (${took} ms)`);
    assert.equal(await client.leaseKeepAliveOnce(lease.id), 0, 'an expired lease cannot be renewed');
    await client.leaseRevoke(lease.id);
  });

  test('watch streams puts and deletes under a prefix until aborted', async () => {
    const seen: string[] = [];
    const stop = new AbortController();
    const done = client.watch('/w/', { prefix: true, signal: stop.signal }, (events) => seen.push(...events.map((e) => `${e.type} ${e.kv.key}`)));
    await new Promise((r) => setTimeout(r, 200));
    await client.put('/w/a', '1');
    await client.delete('/w/a');
    await client.put('/elsewhere', '1');
    const deadline = Date.now() + 3000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    stop.abort();
    await done;
    assert.deepEqual(seen, ['put /w/a', 'delete /w/a']);
  });

  test('several endpoints: a dead and a hung one are skipped within the deadline; the one that answered is tried first next time', async () => {
    const multi = new EtcdClient({ endpoints: () => [deadUrl, hungUrl, etcd.url], timeoutMs: 2000 });
    const started = Date.now();
    await multi.put('/m/k', 'v');
    assert.ok(Date.now() - started < 2000, `answered within the deadline (${Date.now() - started} ms)`);
    const again = Date.now();
    assert.equal((await multi.get('/m/k'))?.value, 'v');
    assert.ok(Date.now() - again < 200, 'the live endpoint is tried first now');
    multi.close();
  });

  test('no endpoint answers: EtcdUnavailable within the deadline, naming endpoints without credentials', async () => {
    const withUser = hungUrl.replace('http://', 'http://root:s3cret@');
    const none = new EtcdClient({ endpoints: () => [deadUrl, withUser], timeoutMs: 600 });
    const started = Date.now();
    await assert.rejects(none.get('/k'), (err: Error) => {
      assert.ok(err instanceof EtcdUnavailable);
      assert.doesNotMatch(err.message, /s3cret|root/);
      assert.match(err.message, /127\.0\.0\.1/);
      return true;
    });
    const took = Date.now() - started;
    assert.ok(took >= 500 && took < 1500, `waited for the hung endpoint until the deadline, no longer (${took} ms)`);
    none.close();
  });

  test('etcd errors come back as EtcdError with etcd\'s reason', async () => {
    await assert.rejects(client.put('/e', 'v', { lease: '999999' }), (err: Error) => err instanceof EtcdError && /lease not found/.test(err.message));
  });

  test('election store: one leader at a time, its turn fails once the key is gone, hand-over moves the key to the target lease', async () => {
    const store = new EtcdClusterStore(client, '/hasup/test/postgresql/default');
    const l1 = await store.grantLease(10);
    const l2 = await store.grantLease(10);
    assert.equal(await store.claimInitialize('m1'), true);
    assert.equal(await store.claimInitialize('m2'), false);
    assert.equal(await store.acquireLeader('m1', l1), true);
    assert.equal(await store.acquireLeader('m2', l2), false);
    await store.publishReport(report('m2', { lease: l2 }), l2);
    const turn = await store.leaderTurn('m1', l1, report('m1', { role: 'leader' }), { member: 'm1', wal_position: 500, timeline: 2, updated: 0 });
    assert.equal(turn.stillLeader, true);
    assert.equal(turn.snapshot.leader?.member, 'm1');
    assert.equal(turn.snapshot.optime?.wal_position, 500);
    assert.deepEqual([...turn.snapshot.members.keys()].sort(), ['m1', 'm2']);
    assert.equal(turn.snapshot.initialize?.member, 'm1');
    assert.equal(await store.setSync('m2', ['m1']), false, 'only the leader records the sync set');
    assert.equal(await store.setSync('m1', ['m2']), true);
    assert.equal(await store.requestSwitchover({ from: 'm1', to: 'm2', id: 'a', requested: Date.now() }), true);
    assert.equal(await store.requestSwitchover({ from: 'm1', to: null, id: 'b', requested: Date.now() }), false, 'one switchover at a time');
    assert.equal(await store.handOver('m1', l2, 'm2', l2), false, 'only from the holder\'s own lease');
    assert.equal(await store.handOver('m1', l1, 'm2', l2), true);
    const after = await store.snapshot();
    assert.deepEqual(after.leader && { member: after.leader.member, lease: after.leader.lease }, { member: 'm2', lease: l2 });
    assert.equal(after.switchover, null, 'the request is cleared with the hand-over');
    assert.deepEqual(after.sync, { leader: 'm1', members: ['m2'] });
    assert.equal((await store.leaderTurn('m1', l1, report('m1'), { member: 'm1', wal_position: 1, timeline: 2, updated: 0 })).stillLeader, false);
    await store.setPaused(true, 'm1');
    assert.equal((await store.snapshot()).paused, true);
    await store.setPaused(false, 'm1');
    await store.revokeLease(l2);
    const vacant = await store.snapshot();
    assert.equal(vacant.leader, null, 'revoking the holder\'s lease frees the key');
    assert.equal(vacant.members.has('m2'), false);
    assert.equal(await store.renewLease(l2), false);
    await store.revokeLease(l1);
  });
});
