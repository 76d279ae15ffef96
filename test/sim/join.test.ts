import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_DATAGRAM_BYTES } from '../../src/gossip/transport.js';
import { SimRing } from '../../src/gossip/sim/sim-ring.js';

// The heaviest simulation: 300 real Memberlists (real encryption) in one process. 1000 members
// take a minute here (the cost grows with the square of the ring): bench:gossip runs that scale.
const RING = 300;
test(`${RING} members joining through one seed all converge to ${RING} alive`, { timeout: 600_000 }, async () => {
  const ring = new SimRing({ seed: 1000 });
  ring.add(RING);
  ring.joinAll([0], 1000);
  const converged = await ring.clock.runUntil(() => ring.converged(), 60_000, 100);
  assert.ok(converged, `not converged after 60 s of virtual time: ${ring.running().filter((m) => m.ml.count('alive') !== RING).length} members short`);
  for (const m of ring.members) {
    assert.equal(m.ml.count('alive'), RING);
    assert.equal(m.ml.stats().handlerErrors, 0);
  }
  assert.ok(ring.maxPacketBytes() <= MAX_DATAGRAM_BYTES, `a datagram of ${ring.maxPacketBytes()} bytes was sent`);
  assert.ok(ring.maxPacketBytes() > MAX_DATAGRAM_BYTES - 200, 'join gossip fills datagrams');
});

test('members that join a quiet ring one by one are known to everyone within a second each', async () => {
  const ring = new SimRing({ seed: 21 });
  ring.add(20);
  ring.joinAll([0], 0, ring.members.slice(0, 19));
  assert.ok(await ring.clock.runUntil(() => ring.running().slice(0, 19).every((m) => m.ml.count('alive') === 19), 10_000));
  await ring.clock.advance(5000);
  // The last member joins a settled ring: everyone must learn about it quickly.
  const last = ring.members[19]!;
  const start = ring.clock.now();
  assert.equal(await ring.settle(last.ml.join([ring.members[3]!.addr])), 1);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 10_000, 1));
  const took = ring.clock.now() - start;
  assert.ok(took < 500, `took ${took} ms`);
  assert.equal(last.ml.count('alive'), 20, 'the newcomer learned the whole ring from one push-pull');
});

test('join answers how many peers answered and tolerates unreachable ones', async () => {
  const ring = new SimRing({ seed: 22 });
  const [a, b, c] = ring.add(3);
  const answered = await Promise.all([
    b!.ml.join([a!.addr, { addr: '10.9.9.9', port: 7946 }]),
    c!.ml.join([{ addr: '10.9.9.8', port: 7946 }]),
    ring.clock.advance(10_000),
  ]);
  assert.deepEqual(answered.slice(0, 2), [1, 0]);
  assert.equal(c!.ml.count('alive'), 1, 'a member whose peers are all unreachable is alone');
});
