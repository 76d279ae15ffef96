import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BroadcastQueue, retransmitLimit, type BroadcastEnd } from '../../src/gossip/broadcast-queue.js';
import { Packet } from '../../src/gossip/codec.js';
import type { MemberRecord, MemberStateName } from '../../src/gossip/member-state.js';
import { memberRumorEntry, memberRumorSize, memberRumorToWire, rumorSize } from '../../src/gossip/wire-member.js';

test('the retransmit budget is retransmitMult * ceil(log10(n + 1))', () => {
  assert.equal(retransmitLimit(4, 1), 4);
  assert.equal(retransmitLimit(4, 9), 4);
  assert.equal(retransmitLimit(4, 10), 8);
  assert.equal(retransmitLimit(4, 20), 8);
  assert.equal(retransmitLimit(4, 99), 8);
  assert.equal(retransmitLimit(4, 100), 12);
  assert.equal(retransmitLimit(4, 1000), 16);
  assert.equal(retransmitLimit(3, 200), 9);
});

test('each rumor is sent exactly its budget of times, then leaves the queue', () => {
  const q = new BroadcastQueue<string>(2);
  const ends: BroadcastEnd[] = [];
  q.enqueue('a', 'A', 10, (e) => ends.push(e));
  let sent = 0;
  for (let i = 0; i < 10; i++) sent += q.take(1000, 20).length; // limit 2 * ceil(log10 21) = 4
  assert.equal(sent, 4);
  assert.equal(q.size, 0);
  assert.deepEqual(ends, ['sent']);
});

test('rumors sent fewest times go first, the newest first among equals', () => {
  const q = new BroadcastQueue<string>(4);
  q.enqueue('old', 'old', 20);
  assert.deepEqual(q.take(20, 20), ['old']);
  q.enqueue('x', 'x', 20);
  q.enqueue('y', 'y', 20);
  // x and y have never been sent; y is newer.
  assert.deepEqual(q.take(20, 20), ['y']);
  assert.deepEqual(q.take(20, 20), ['x']);
  // Now all three were sent once; the most recently sent comes first among them.
  assert.deepEqual(q.take(60, 20), ['x', 'y', 'old']);
});

test('a newer rumor for the same key replaces the queued one, which is never sent again', () => {
  const q = new BroadcastQueue<string>(4);
  const ends: string[] = [];
  q.enqueue('m:a', 'suspect@1', 10, (e) => ends.push(`old:${e}`));
  q.take(100, 20);
  q.enqueue('m:a', 'alive@2', 10, (e) => ends.push(`new:${e}`));
  assert.deepEqual(ends, ['old:invalidated']);
  assert.equal(q.size, 1);
  assert.equal(q.transmitsOf('m:a'), 0, 'the replacement starts with a full budget');
  const seen = new Set<string>();
  for (let i = 0; i < 20; i++) for (const v of q.take(100, 20)) seen.add(v);
  assert.deepEqual([...seen], ['alive@2']);
});

test('packing respects the byte budget and skips rumors that do not fit for smaller ones', () => {
  const q = new BroadcastQueue<string>(4);
  q.enqueue('small1', 's1', 20);
  q.enqueue('big', 'big', 900);
  q.enqueue('small2', 's2', 30);
  const first = q.take(100, 20);
  assert.deepEqual(first, ['s2', 's1'], 'the big one is newer but does not fit');
  assert.deepEqual(q.take(1000, 20), ['big', 's2', 's1']);
  assert.deepEqual(q.take(10, 20), [], 'below the smallest useful size nothing is taken');
});

test('clear ends every queued rumor', () => {
  const q = new BroadcastQueue<string>(4);
  const ends: string[] = [];
  q.enqueue('a', 'a', 10, (e) => ends.push(e));
  q.enqueue('b', 'b', 10, (e) => ends.push(e));
  q.clear();
  assert.equal(q.isEmpty, true);
  assert.deepEqual(ends, ['cleared', 'cleared']);
});

function record(state: MemberStateName, incarnation: number, meta: number[] = []): MemberRecord {
  return { id: 'a1b2c3d4e5f6a7b8', addr: '10.0.200.17', port: 7946, incarnation, state, meta: Uint8Array.from(meta), since: 0 };
}

test('computed piggyback sizes are exactly what protobuf encodes', () => {
  const cases: Array<[MemberRecord, string]> = [
    [record('alive', 0), ''],
    [record('alive', 300, [1, 2, 3]), ''],
    [record('suspect', 2 ** 40, [9]), 'f00dfeedf00dfeed'],
    [record('dead', 1), 'x'],
    [record('departed', 127), ''],
    [{ ...record('left', 128), id: 'é-member', addr: '::1' }, ''],
  ];
  for (const [r, from] of cases) {
    const entry = memberRumorEntry(r, from);
    const actual = Packet.encode({ members: [memberRumorToWire(entry)] }).finish().length;
    assert.equal(memberRumorSize(entry), actual, `${r.state}@${r.incarnation}`);
  }
  const rumors = [
    { kind: 'service', key: 'n1/postgresql.default', version: 0, payload: new Uint8Array(0), originId: '' },
    { kind: 'service-config', key: 'postgresql.default', version: 2 ** 35, payload: new Uint8Array(200).fill(7), originId: 'abc' },
  ];
  for (const r of rumors) assert.equal(rumorSize(r), Packet.encode({ rumors: [r] }).finish().length);
});
