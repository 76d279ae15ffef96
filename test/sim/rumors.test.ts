import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimRing } from '../../src/gossip/sim/sim-ring.js';

async function settledRing(n: number, seed: number): Promise<SimRing> {
  const ring = new SimRing({ seed });
  ring.add(n);
  ring.joinAll([0], 0);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 30_000));
  await ring.clock.advance(3000);
  return ring;
}

const payload = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array | undefined) => new TextDecoder().decode(bytes);

test('a rumor published by one member reaches every member, and each emits it once', async () => {
  const ring = await settledRing(40, 30);
  const heard = new Map<string, number>();
  for (const m of ring.members) m.ml.on('rumor', (r) => r.kind === 'service' && heard.set(m.id, (heard.get(m.id) ?? 0) + 1));
  const origin = ring.members[13]!;
  assert.equal(origin.ml.publish({ kind: 'service', key: `${origin.id}/postgresql.default`, version: 1, payload: payload('{"health":"ok"}') }), true);
  assert.ok(await ring.clock.runUntil(() => ring.members.every((m) => m.ml.rumors('service').length === 1), 5000, 5));
  for (const m of ring.members) {
    const [r] = m.ml.rumors('service');
    assert.equal(r?.originId, origin.id);
    assert.equal(text(r?.payload), '{"health":"ok"}');
    assert.equal(heard.get(m.id), 1);
  }
});

test('concurrent versions of a slot: the highest wins everywhere, ties by payload bytes', async () => {
  const ring = await settledRing(30, 31);
  const [a, b, c] = [ring.members[1]!, ring.members[2]!, ring.members[3]!];
  a.ml.publish({ kind: 'service-config', key: 'postgresql.default', version: 7, payload: payload('max_connections=100') });
  b.ml.publish({ kind: 'service-config', key: 'postgresql.default', version: 9, payload: payload('max_connections=300') });
  c.ml.publish({ kind: 'service-config', key: 'postgresql.default', version: 8, payload: payload('max_connections=200') });
  a.ml.publish({ kind: 'election', key: 'postgresql.default', version: 4, payload: payload('leader=aaa') });
  c.ml.publish({ kind: 'election', key: 'postgresql.default', version: 4, payload: payload('leader=ccc') });
  await ring.clock.advance(5000);
  for (const m of ring.members) {
    assert.equal(text(m.ml.rumors('service-config')[0]?.payload), 'max_connections=300');
    assert.equal(m.ml.rumors('service-config')[0]?.version, 9);
    assert.equal(text(m.ml.rumors('election')[0]?.payload), 'leader=ccc');
  }
  assert.equal(a.ml.publish({ kind: 'service-config', key: 'postgresql.default', version: 8, payload: payload('x') }), false, 'older than stored');
  assert.equal(a.ml.publish({ kind: 'election', key: 'postgresql.default', version: 4, payload: payload('leader=bbb') }), false, 'loses the tie');
  assert.throws(() => a.ml.publish({ kind: '', key: 'k', version: 1, payload: payload('') }), /kind/);
});

test('a rumor too large for a datagram still reaches everyone (over streams)', async () => {
  const ring = await settledRing(25, 32);
  const big = new Uint8Array(6000).map((_, i) => i % 251);
  ring.members[5]!.ml.publish({ kind: 'service-config', key: 'elasticsearch.default', version: 1, payload: big });
  assert.ok(await ring.clock.runUntil(() => ring.members.every((m) => m.ml.rumors('service-config').length === 1), 10_000, 10));
  for (const m of ring.members) assert.ok(Buffer.from(m.ml.rumors('service-config')[0]!.payload).equals(big));
  assert.ok(ring.maxPacketBytes() <= 1400);
});

test('a member that joins later gets the stored rumors in its join push-pull', async () => {
  const ring = await settledRing(10, 33);
  ring.members[2]!.ml.publish({ kind: 'departure', key: 'some-old-member', version: 1, payload: payload('') });
  await ring.clock.advance(5000);
  const [late] = ring.add(1);
  await ring.settle(late!.ml.join([ring.members[0]!.addr]));
  assert.equal(late!.ml.rumors('departure').length, 1);
});

test('meta updates reach everyone with a new incarnation', async () => {
  const ring = await settledRing(20, 34);
  const m = ring.members[4]!;
  m.ml.updateMeta(payload('role=replica'));
  await ring.clock.advance(2000);
  for (const o of ring.members) {
    const v = o.ml.member(m.id)!;
    assert.equal(text(v.meta), 'role=replica');
    assert.equal(v.incarnation, 1);
  }
});

test('members with the largest meta: every datagram stays within the limit, also under loss', async () => {
  const ring = await settledRing(30, 35);
  for (const m of ring.members) m.ml.updateMeta(new Uint8Array(512).fill(m.index));
  assert.throws(() => ring.members[0]!.ml.updateMeta(new Uint8Array(513)), /at most 512/);
  ring.net.setLoss(0.1);
  await ring.clock.advance(60_000);
  ring.net.setLoss(0);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 30_000, 10));
  for (const m of ring.members) {
    assert.equal(m.ml.member(ring.members[7]!.id)?.meta[0], 7);
    assert.equal(m.ml.stats().handlerErrors, 0);
  }
  assert.ok(ring.maxPacketBytes() <= 1400, `sent a ${ring.maxPacketBytes()}-byte datagram`);
});
