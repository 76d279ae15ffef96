import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WireCodec } from '../../src/gossip/codec.js';
import { resolveGossipConfig } from '../../src/gossip/config.js';
import { Keyring } from '../../src/gossip/keyring.js';
import type { MemberStateName } from '../../src/gossip/member-state.js';
import { SimRing, type SimMember } from '../../src/gossip/sim/sim-ring.js';

async function settledRing(n: number, seed: number, config = resolveGossipConfig('lan')): Promise<SimRing> {
  const ring = new SimRing({ seed, config });
  ring.add(n);
  ring.joinAll([0], 200);
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 30_000), 'ring did not converge');
  await ring.clock.advance(5000);
  return ring;
}

/** Counts transitions of members other than `except` into `state`, as seen by anyone. */
function countTransitions(ring: SimRing, state: MemberStateName, except: Set<string>): { count: number } {
  const counter = { count: 0 };
  ring.onMemberEvent((observer, m) => {
    if (m.state === state && !except.has(m.id) && observer.id !== m.id) counter.count++;
  });
  return counter;
}

test('a killed member is suspected, then seen dead by every other member, and nobody else dies', async () => {
  const ring = await settledRing(50, 2);
  const victim = ring.members[17]!;
  const falseDeaths = countTransitions(ring, 'dead', new Set([victim.id]));
  const killedAt = ring.clock.now();
  ring.kill(victim);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(victim.id, 'dead'), 30_000, 5), 'victim not seen dead by all');
  const took = ring.clock.now() - killedAt;
  // Probe round + suspicion (min 3*log10(50)*500 ms = 2.5 s once confirmed) + dissemination.
  assert.ok(took > 1000 && took < 8000, `detection took ${took} ms`);
  await ring.clock.advance(30_000);
  assert.equal(falseDeaths.count, 0);
  assert.ok(ring.allSee(victim.id, 'dead'));
  assert.equal(ring.running().every((m) => m.ml.count('alive') === 49), true);
});

test('a member restarted with the same id and a stale incarnation refutes its death and comes back', async () => {
  const ring = await settledRing(20, 3);
  const victim = ring.members[5]!;
  ring.kill(victim);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(victim.id, 'dead'), 30_000));
  const deadIncarnation = ring.members[0]!.ml.member(victim.id)!.incarnation;
  const reborn = ring.restart(victim);
  assert.equal(reborn.ml.self().incarnation, 0);
  await ring.settle(reborn.ml.join([ring.members[0]!.addr]));
  assert.ok(await ring.clock.runUntil(() => ring.converged(), 10_000), 'the restarted member is not alive everywhere');
  assert.ok(reborn.ml.self().incarnation > deadIncarnation, 'it moved past the incarnation it was declared dead at');
  for (const m of ring.running()) assert.equal(m.ml.member(victim.id)?.incarnation, reborn.ml.self().incarnation);
});

test('a member restarted before anyone noticed moves past its previous incarnation', async () => {
  const ring = await settledRing(10, 4);
  const m = ring.members[3]!;
  // Make its previous life reach incarnation 5 (five meta updates).
  for (let i = 0; i < 5; i++) m.ml.updateMeta(Uint8Array.from([i]));
  await ring.clock.advance(2000);
  assert.equal(ring.members[0]!.ml.member(m.id)?.incarnation, 5);
  const reborn = ring.restart(m);
  await ring.settle(reborn.ml.join([ring.members[0]!.addr]));
  await ring.clock.advance(2000);
  assert.ok(reborn.ml.self().incarnation > 5);
  for (const o of ring.running()) assert.equal(o.ml.member(m.id)?.state, 'alive');
});

test('a member that is briefly unreachable is suspected, refutes, and is never declared dead', async () => {
  const ring = await settledRing(30, 5);
  const flaky = ring.members[9]!;
  const deaths = countTransitions(ring, 'dead', new Set());
  ring.net.partition([[flaky.addr], ring.members.filter((m) => m !== flaky).map((m) => m.addr)]);
  const suspected = () => ring.running().some((m) => m.ml.member(flaky.id)?.state === 'suspect');
  assert.ok(await ring.clock.runUntil(suspected, 20_000, 5), 'nobody suspected the unreachable member');
  ring.net.heal();
  await ring.clock.advance(60_000);
  assert.equal(deaths.count, 0);
  assert.ok(flaky.ml.self().incarnation > 0, 'it refuted');
  assert.ok(flaky.ml.stats().refutations > 0);
  assert.ok(ring.converged());
});

test('a graceful leave is seen as LEFT by everyone and never turns into a death', async () => {
  const ring = await settledRing(20, 6);
  const leaver = ring.members[11]!;
  const deaths = countTransitions(ring, 'dead', new Set());
  await ring.settle(ring.leave(leaver));
  assert.ok(await ring.clock.runUntil(() => ring.allSee(leaver.id, 'left'), 5000, 1));
  await ring.clock.advance(30_000);
  assert.ok(ring.allSee(leaver.id, 'left'));
  assert.equal(deaths.count, 0);
  assert.equal(ring.members[0]!.ml.stats().members.alive, 19);
});

test('leave returns promptly when the member is alone', async () => {
  const ring = new SimRing({ seed: 7 });
  const [alone] = ring.add(1);
  await ring.settle(ring.leave(alone!), 1);
  assert.equal(alone!.ml.self().state, 'left');
});

test('depart: only dead or left members, gossiped to all, and the id can never come back', async () => {
  const ring = await settledRing(12, 8);
  const operator = ring.members[0]!;
  const victim = ring.members[4]!;
  assert.throws(() => operator.ml.depart(victim.id), /is alive/);
  assert.throws(() => operator.ml.depart(operator.id), /cannot depart itself/);
  assert.throws(() => operator.ml.depart('nobody'), /unknown member/);
  ring.kill(victim);
  assert.ok(await ring.clock.runUntil(() => operator.ml.member(victim.id)?.state === 'dead', 30_000));
  operator.ml.depart(victim.id);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(victim.id, 'departed'), 5000), 'departure not gossiped to all');
  // The same id restarted (an operator mistake): it hears it was departed and stays out.
  const ghost = ring.restart(victim);
  await ring.settle(ghost.ml.join([operator.addr]));
  await ring.clock.advance(20_000);
  assert.ok(ring.allSee(victim.id, 'departed'));
  assert.equal(ghost.ml.self().state, 'departed');
  for (const m of ring.running()) if (m !== ghost) assert.equal(m.ml.count('alive'), 11);
});

test('a departed id that comes back through a member that never knew it is still shut out', async () => {
  const ring = await settledRing(8, 12);
  const ghostly = ring.members[5]!;
  ring.kill(ghostly);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(ghostly.id, 'dead'), 30_000));
  ring.members[0]!.ml.depart(ghostly.id);
  await ring.clock.advance(10_000);
  // A newcomer joins after the departure: full state does not hand it old tombstones.
  const [newcomer] = ring.add(1);
  await ring.settle(newcomer!.ml.join([ring.members[1]!.addr]));
  assert.equal(newcomer!.ml.member(ghostly.id), undefined);
  // The departed member's process is started again and joins through the newcomer only.
  const ghost = ring.restart(ghostly);
  await ring.settle(ghost.ml.join([newcomer!.addr]));
  await ring.clock.advance(30_000);
  assert.equal(ghost.ml.self().state, 'departed', 'the ghost must learn it was departed');
  for (const m of ring.running()) if (m !== ghost) assert.equal(m.ml.member(ghostly.id)?.state, 'departed', `member ${m.index}`);
});

test('dead members are forgotten after the reclaim time, departed ones are kept longer', async () => {
  const config = resolveGossipConfig('lan', { deadReclaimMs: 20_000, departedReclaimMs: 120_000 });
  const ring = await settledRing(8, 9, config);
  const [dead, departed] = [ring.members[2]!, ring.members[3]!];
  ring.kill(dead);
  ring.kill(departed);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(dead.id, 'dead') && ring.allSee(departed.id, 'dead'), 30_000));
  ring.members[0]!.ml.depart(departed.id);
  await ring.clock.advance(30_000);
  for (const m of ring.running()) {
    assert.equal(m.ml.member(dead.id), undefined, 'dead member still in a table after the reclaim time');
    assert.equal(m.ml.member(departed.id)?.state, 'departed');
  }
  await ring.clock.advance(120_000);
  for (const m of ring.running()) assert.equal(m.ml.member(departed.id), undefined);
});

test('acks carry the sender clock: members estimate each other\'s clock offset', async () => {
  const ring = new SimRing({ seed: 10 });
  const members: SimMember[] = ring.add(3);
  // Re-create two members on clocks that are 2 s ahead and 700 ms behind.
  const ahead = ring.restartWithWallOffset(members[1]!, 2000);
  const behind = ring.restartWithWallOffset(members[2]!, -700);
  ring.joinAll([0], 0);
  await ring.clock.advance(30_000);
  const viewer = ring.members[0]!.ml;
  const offAhead = viewer.member(ahead.id)!.clockOffsetMs!;
  const offBehind = viewer.member(behind.id)!.clockOffsetMs!;
  assert.ok(Math.abs(offAhead - 2000) < 10, `estimated ${offAhead}`);
  assert.ok(Math.abs(offBehind + 700) < 10, `estimated ${offBehind}`);
  assert.ok(Math.abs(ahead.ml.member(behind.id)!.clockOffsetMs! + 2700) < 10);
  assert.ok(viewer.member(ahead.id)!.rttMs! > 0);
});

test('garbage, forged and truncated packets are counted and change nothing', async () => {
  const ring = await settledRing(5, 11);
  const target = ring.members[0]!;
  const before = target.ml.members().map((m) => `${m.id}:${m.state}:${m.incarnation}`);
  const attacker = ring.net.transport({ addr: '10.66.0.1', port: 7946 });
  const foreignCodec = new WireCodec(new Keyring(Keyring.generateKey())); // another ring's key
  const forged = foreignCodec.encode({ members: [{ member: { id: ring.members[1]!.id, addr: '10.0.0.1', port: 7946, incarnation: 50, state: 2 } }] });
  attacker.sendPacket(target.addr, new Uint8Array(0));
  attacker.sendPacket(target.addr, Uint8Array.from([1, 2, 3]));
  attacker.sendPacket(target.addr, new Uint8Array(1500));
  attacker.sendPacket(target.addr, forged);
  attacker.sendPacket(target.addr, Uint8Array.from([9, ...forged.subarray(1)]));
  let answered = false;
  const request = attacker.request(target.addr, forged, 1000).then(
    () => (answered = true),
    () => {},
  );
  await ring.clock.advance(2000);
  await request;
  assert.equal(answered, false, 'a forged push-pull must not be answered');
  const dropped = target.ml.stats().dropped;
  assert.equal(dropped.truncated, 2);
  assert.equal(dropped.oversized, 1);
  assert.equal(dropped.auth_failed, 2);
  assert.equal(dropped.bad_version, 1);
  assert.equal(target.ml.stats().handlerErrors, 0);
  assert.deepEqual(
    target.ml.members().map((m) => `${m.id}:${m.state}:${m.incarnation}`),
    before,
  );
});

test('a stale accusation is answered with the refutation, and a departed member\'s tombstone is handed back', async () => {
  const ring = await settledRing(5, 13);
  const [a, b, c] = [ring.members[0]!, ring.members[1]!, ring.members[2]!];
  b.ml.updateMeta(Uint8Array.from([1])); // b is now at incarnation 1
  ring.kill(c);
  assert.ok(await ring.clock.runUntil(() => ring.allSee(c.id, 'dead') && ring.allSee(b.id, 'alive') && a.ml.member(b.id)?.incarnation === 1, 30_000));
  a.ml.depart(c.id);
  await ring.clock.advance(2000);

  const codec = ring.codec();
  const probe = ring.net.transport({ addr: '10.77.0.1', port: 7946 });
  const heard: Array<{ id: string; state: number; incarnation: number }> = [];
  probe.onPacket((data) => {
    const d = codec.decode(data, 1400);
    if (d.ok) for (const r of d.packet.members) heard.push({ id: r.member!.id!, state: r.member!.state ?? 0, incarnation: Number(r.member!.incarnation ?? 0) });
  });
  const stale = codec.encode({
    members: [
      { member: { id: b.id, addr: b.addr.addr, port: b.addr.port, incarnation: 0, state: 1 }, fromId: 'someone' },
      { member: { id: c.id, addr: c.addr.addr, port: c.addr.port, incarnation: 9, state: 0 } },
    ],
  });
  probe.sendPacket(a.addr, stale);
  await ring.clock.advance(100);
  assert.deepEqual(
    heard.filter((h) => h.id === b.id || h.id === c.id),
    [
      { id: b.id, state: 0, incarnation: 1 },
      { id: c.id, state: 4, incarnation: 0 },
    ],
  );
  assert.equal(a.ml.member(b.id)?.state, 'alive', 'the stale suspicion changed nothing');
  assert.equal(a.ml.member(c.id)?.state, 'departed');
});
