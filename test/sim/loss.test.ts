import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SimRing } from '../../src/gossip/sim/sim-ring.js';

async function lossyRing(n: number, seed: number): Promise<{ ring: SimRing; deaths: string[]; suspicions: { count: number } }> {
  const ring = new SimRing({ seed });
  ring.add(n);
  ring.joinAll([0], 1000);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 60_000, 100), 'initial convergence');
  await ring.clock.advance(20_000);
  const deaths: string[] = [];
  const suspicions = { count: 0 };
  ring.onMemberEvent((observer, m) => {
    if (m.state === 'dead') deaths.push(`${observer.id} saw ${m.id} dead at ${ring.clock.now()}`);
    if (m.state === 'suspect') suspicions.count++;
  });
  return { ring, deaths, suspicions };
}

test('10% packet loss for 3 virtual minutes on 200 members: suspicions are refuted, nobody is declared dead', { timeout: 600_000 }, async () => {
  const { ring, deaths, suspicions } = await lossyRing(200, 10);
  ring.net.setLoss(0.1);
  await ring.clock.advance(180_000);
  assert.ok(suspicions.count > 0, 'the loss must actually cause suspicions for this test to mean anything');
  assert.deepEqual(deaths, []);
  ring.net.setLoss(0);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 30_000, 100), 'every suspicion is cleared once the loss stops');
});

test('a member killed during 5% loss is still found dead by all, with no false deaths', { timeout: 600_000 }, async () => {
  const { ring, deaths } = await lossyRing(100, 11);
  ring.net.setLoss(0.05);
  await ring.clock.advance(30_000);
  const victim = ring.members[42]!;
  ring.kill(victim);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(victim.id, 'dead'), 30_000, 10), 'victim not seen dead by all');
  await ring.clock.advance(60_000);
  assert.deepEqual(
    deaths.filter((d) => !d.includes(`saw ${victim.id}`)),
    [],
  );
});
