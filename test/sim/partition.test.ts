import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveGossipConfig } from '../../src/gossip/config.js';
import { SimRing } from '../../src/gossip/sim/sim-ring.js';

test('a 50/50 partition: each side declares the other dead, then the healed ring reconverges to all alive', async () => {
  const n = 60;
  const ring = new SimRing({ seed: 50 });
  ring.add(n);
  ring.joinAll([0], 500);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 30_000), 'initial convergence');
  await ring.clock.advance(5000);

  const left = ring.members.slice(0, n / 2);
  const right = ring.members.slice(n / 2);
  ring.net.partition([left.map((m) => m.addr), right.map((m) => m.addr)]);
  const split = () =>
    ring.members.every((m) => m.ml.count('alive') === n / 2 && m.ml.count('dead') === n / 2 && m.ml.count('suspect') === 0);
  assert.ok(await ring.clock.runUntil(split, 60_000, 50), 'each side must see exactly the other side dead');
  for (const a of left) for (const b of right) assert.equal(a.ml.member(b.id)?.state, 'dead');

  // Stay split long enough that the rumors about the split are no longer being gossiped.
  await ring.clock.advance(60_000);
  ring.net.heal();
  const healedAt = ring.clock.now();
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 120_000, 50), 'the healed ring did not reconverge');
  const took = ring.clock.now() - healedAt;
  // Reconnect attempts run every 10 s per member with probability dead/alive (1 here).
  assert.ok(took < 15_000, `healing took ${took} ms`);
  await ring.clock.advance(30_000);
  assert.ok(ring.converged(), 'the ring must stay converged after healing');
});

test('a member isolated until declared dead comes back after the network heals', async () => {
  const ring = new SimRing({ seed: 51 });
  ring.add(15);
  ring.joinAll([0], 0);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 30_000));
  const lonely = ring.members[7]!;
  ring.net.partition([[lonely.addr], ring.members.filter((m) => m !== lonely).map((m) => m.addr)]);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(lonely.id, 'dead'), 60_000, 50), 'the others must declare it dead');
  // Alone, it blames itself (Lifeguard: no acks and no nacks), so it probes ever more slowly; in time it
  // still declares everyone else dead.
  assert.ok(await ring.clock.runUntil(() => lonely.ml.count('dead') === 14, 600_000, 100), 'the lonely member must declare the others dead');
  assert.equal(lonely.ml.stats().awareness, resolveGossipConfig('lan').awarenessMaxMultiplier - 1);
  await ring.clock.advance(60_000);
  ring.net.heal();
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 60_000, 50), 'the lonely member did not come back');
  assert.ok(lonely.ml.self().incarnation > 0, 'it refuted its death');
});
