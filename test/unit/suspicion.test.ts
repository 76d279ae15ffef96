import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Awareness } from '../../src/gossip/awareness.js';
import { Suspicion, expectedConfirmations, suspicionTimeoutMs, suspicionTimeouts } from '../../src/gossip/suspicion.js';
import { VirtualClock } from '../../src/gossip/sim/virtual-clock.js';

const settings = { suspicionMult: 3, suspicionMaxTimeoutMult: 5, probeIntervalMs: 500 };

test('the minimum suspicion timeout grows with log10 of the ring size, never below suspicionMult intervals', () => {
  assert.deepEqual(suspicionTimeouts(settings, 1), { minMs: 1500, maxMs: 7500 });
  assert.deepEqual(suspicionTimeouts(settings, 10), { minMs: 1500, maxMs: 7500 });
  assert.equal(suspicionTimeouts(settings, 20).minMs, Math.floor(3 * ((1 + Math.log10(20)) / 2) * 500));
  assert.deepEqual(suspicionTimeouts(settings, 100), { minMs: 2250, maxMs: 11250 });
  assert.deepEqual(suspicionTimeouts(settings, 1000), { minMs: 3000, maxMs: 15000 });
});

test('confirmations expected are suspicionMult - 2, or none in a ring too small to give them', () => {
  assert.equal(expectedConfirmations(3, 20), 1);
  assert.equal(expectedConfirmations(6, 20), 4);
  assert.equal(expectedConfirmations(6, 5), 0);
  assert.equal(expectedConfirmations(3, 3), 1);
  assert.equal(expectedConfirmations(3, 2), 0);
  assert.equal(expectedConfirmations(2, 100), 0);
});

test('the timeout starts at max and falls logarithmically to min as confirmations arrive', () => {
  const t = { minMs: 2000, maxMs: 10_000 };
  assert.equal(suspicionTimeoutMs(0, 4, t), 10_000);
  assert.equal(suspicionTimeoutMs(4, 4, t), 2000);
  assert.equal(suspicionTimeoutMs(9, 4, t), 2000, 'extra confirmations change nothing');
  const steps = [0, 1, 2, 3, 4].map((c) => suspicionTimeoutMs(c, 4, t));
  for (let i = 1; i < steps.length; i++) assert.ok(steps[i]! < steps[i - 1]!, `strictly decreasing: ${steps}`);
  // log(c+1)/log(k+1): one of four confirmations already removes log(2)/log(5) = 43% of the span.
  assert.equal(steps[1], Math.floor(10_000 - (Math.log(2) / Math.log(5)) * 8000));
  // Each further confirmation removes less than the one before (logarithmic).
  assert.ok(steps[0]! - steps[1]! > steps[1]! - steps[2]!);
  assert.equal(suspicionTimeoutMs(0, 0, t), 2000, 'with nothing to wait for, min');
});

test('a suspicion fires at max without confirmations and reports it was not confirmed', async () => {
  const clock = new VirtualClock();
  const fired: Array<[number, boolean]> = [];
  new Suspicion(clock, 'a', 1, { minMs: 1000, maxMs: 5000 }, (confirmed) => fired.push([clock.now(), confirmed]));
  await clock.advance(4999);
  assert.deepEqual(fired, []);
  await clock.advance(1);
  assert.deepEqual(fired, [[5000, false]]);
});

test('only independent confirmations count, and they shorten the running timer', async () => {
  const clock = new VirtualClock();
  const fired: Array<[number, boolean]> = [];
  const s = new Suspicion(clock, 'a', 2, { minMs: 1000, maxMs: 9000 }, (confirmed) => fired.push([clock.now(), confirmed]));
  await clock.advance(500);
  assert.equal(s.confirm('a'), false, 'the accuser does not confirm itself');
  assert.equal(s.confirm('b'), true);
  assert.equal(s.confirm('b'), false, 'the same member twice is one confirmation');
  assert.equal(s.confirmationCount, 1);
  const afterOne = suspicionTimeoutMs(1, 2, { minMs: 1000, maxMs: 9000 });
  assert.equal(s.timeoutMs, afterOne);
  await clock.advance(1000);
  assert.equal(s.confirm('c'), true);
  assert.equal(s.confirm('d'), false, 'no more than expected');
  await clock.advance(0);
  // Two confirmations: min (1000 ms) is already behind us at 1500 ms, so it fires at once.
  assert.deepEqual(fired, [[1500, true]]);
});

test('a cancelled suspicion never fires', async () => {
  const clock = new VirtualClock();
  let fired = false;
  const s = new Suspicion(clock, 'a', 0, { minMs: 100, maxMs: 100 }, () => (fired = true));
  s.cancel();
  await clock.advance(1000);
  assert.equal(fired, false);
});

test('local health: failures raise the multiplier up to its cap, successes bring it back to 0', () => {
  const a = new Awareness(8);
  assert.equal(a.scale(500), 500);
  a.applyDelta(3);
  assert.equal(a.scale(500), 2000);
  a.applyDelta(100);
  assert.equal(a.score, 7);
  assert.equal(a.scale(200), 1600);
  a.applyDelta(-100);
  assert.equal(a.score, 0);
  assert.throws(() => new Awareness(0));
});
