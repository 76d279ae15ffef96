import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Backoff, FlapDetector, MIN_DELAY_MS, backoffDelay, cappedDelay, type BackoffOptions } from '../../src/supervisor/backoff.js';

const noJitter: BackoffOptions = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0 };

test('delays grow by the factor and stop at maxMs', () => {
  const delays = [0, 1, 2, 3, 4, 5, 6].map((attempt) => backoffDelay(attempt, noJitter));
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000, 1000]);
});

test('a huge attempt count is capped quickly, never Infinity', () => {
  const started = performance.now();
  assert.equal(backoffDelay(Number.MAX_SAFE_INTEGER, noJitter), 1000);
  assert.equal(backoffDelay(1e9, { initialMs: 100, maxMs: 5000, factor: 1, jitter: 0 }), 100);
  assert.ok(performance.now() - started < 50);
});

test('jitter only shortens a delay, by at most the jitter fraction', () => {
  const opts: BackoffOptions = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.25 };
  assert.equal(backoffDelay(2, opts, () => 0), 400);
  assert.equal(backoffDelay(2, opts, () => 0.999999), 300);
  const seen = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const d = backoffDelay(2, opts);
    assert.ok(d >= 300 && d <= 400, `delay ${d} outside [300, 400]`);
    seen.add(d);
  }
  // Real spread, not a constant: restarts of many nodes must not line up.
  assert.ok(seen.size > 50, `only ${seen.size} distinct delays`);
});

test('every delay lies in [max(MIN, base·(1−jitter)), maxMs] for any sane options', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 10, max: 10_000 }),
      fc.integer({ min: 0, max: 100_000 }),
      fc.double({ min: 1, max: 10, noNaN: true }),
      fc.double({ min: 0, max: 1, noNaN: true }),
      fc.integer({ min: 0, max: 1000 }),
      fc.double({ min: 0, max: 0.9999, noNaN: true }),
      (initialMs, extra, factor, jitter, attempt, r) => {
        const opts = { initialMs, maxMs: initialMs + extra, factor, jitter };
        const d = backoffDelay(attempt, opts, () => r);
        return d >= MIN_DELAY_MS && d <= opts.maxMs && d >= Math.floor(initialMs * (1 - jitter)) - 1;
      },
    ),
  );
});

test('nonsense options still give a bounded, non-zero delay', () => {
  const weird: BackoffOptions = { initialMs: -5, maxMs: Number.NaN, factor: 0.1, jitter: 7 };
  for (let attempt = 0; attempt < 10; attempt++) {
    const d = backoffDelay(attempt, weird, () => 0.999);
    assert.ok(d >= MIN_DELAY_MS && Number.isFinite(d), `delay ${d}`);
  }
  assert.ok(backoffDelay(3, { initialMs: 0, maxMs: 0, factor: 2, jitter: 1 }, () => 0.99) >= MIN_DELAY_MS);
});

test('cappedDelay waits the capped pace with jitter', () => {
  const opts: BackoffOptions = { initialMs: 100, maxMs: 800, factor: 3, jitter: 0.5 };
  assert.equal(cappedDelay(opts, () => 0), 800);
  assert.equal(cappedDelay(opts, () => 0.5), 600);
});

test('Backoff counts attempts and resets after a stable run only', () => {
  const backoff = new Backoff({ ...noJitter, stableMs: 5000 });
  assert.deepEqual([backoff.next(), backoff.next(), backoff.next()], [100, 200, 400]);
  assert.equal(backoff.attempt, 3);
  backoff.recordUptime(4999);
  assert.equal(backoff.next(), 800, 'a short run keeps growing the delay');
  backoff.recordUptime(5000);
  assert.equal(backoff.attempt, 0);
  assert.equal(backoff.next(), 100, 'after a stable run the next crash starts over');
  assert.equal(backoff.capped(), 1000);
  assert.equal(backoff.attempt, 1, 'capped() does not advance');
  backoff.reset();
  assert.equal(backoff.next(), 100);
});

test('Backoff defaults stableMs to 10 s', () => {
  assert.equal(new Backoff(noJitter).stableMs, 10_000);
});

test('FlapDetector trips on more than maxRestarts within the window, and forgets old ones', () => {
  const flaps = new FlapDetector({ windowMs: 1000, maxRestarts: 3 });
  assert.equal(flaps.record(0), false);
  assert.equal(flaps.record(100), false);
  assert.equal(flaps.record(200), false);
  assert.equal(flaps.record(300), true, 'fourth restart within 1 s');
  assert.equal(flaps.count(300), 4);
  // At t=1250 the restarts at 0 and 100 and 200 have left the window.
  assert.equal(flaps.record(1250), false);
  assert.equal(flaps.count(1250), 2);
  flaps.clear();
  assert.equal(flaps.count(1250), 0);
});
