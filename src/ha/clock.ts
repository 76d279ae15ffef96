/**
 * Time as the HA core sees it. The controller never calls Date.now(),
 * performance.now(), setTimeout or AbortSignal.timeout itself, so its unit
 * tests run failover, fencing and switchover in virtual time in
 * milliseconds of wall time.
 */
import type { Clock, Timer } from '../gossip/index.js';

// The gossip library's clock: the same VirtualClock drives both in tests.
export { realClock, type Clock, type Timer } from '../gossip/index.js';

/** Resolves after `ms` on `clock`, or at once when `signal` aborts. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      timer.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** An AbortSignal that aborts after `ms` on `clock` (AbortSignal.timeout on the injected clock), or with `parent`. */
export function timeoutSignal(clock: Clock, ms: number, parent?: AbortSignal): AbortSignal {
  const ac = new AbortController();
  const timer = clock.setTimeout(() => ac.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')), ms);
  const fromParent = () => ac.abort(parent?.reason);
  ac.signal.addEventListener(
    'abort',
    () => {
      timer.cancel();
      parent?.removeEventListener('abort', fromParent);
    },
    { once: true },
  );
  if (parent?.aborted) ac.abort(parent.reason);
  else parent?.addEventListener('abort', fromParent, { once: true });
  return ac.signal;
}

/** Calls `fn` every `ms` on `clock` until the returned stopper is called. */
export function every(clock: Clock, ms: number, fn: () => void): () => void {
  let timer: Timer;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    fn();
    timer = clock.setTimeout(tick, ms);
  };
  timer = clock.setTimeout(tick, ms);
  return () => {
    stopped = true;
    timer.cancel();
  };
}
