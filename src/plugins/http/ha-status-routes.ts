import type { FastifyPluginAsync } from 'fastify';
import type { ApiEvent } from './events.js';
import { HaStatusTracker, sameHaStatus, type HaStatus, type HaStatusSources } from './ha-status.js';

export interface HaStatusDeps {
  sources: HaStatusSources;
  /** Told every change of the status (the event stream: the console's indicator follows it). */
  publish?: (e: ApiEvent) => void;
  /** How often the rules run; default 1 s. */
  intervalMs?: number;
}

/**
 * `GET /ha-status`: OK or DEGRADED with every reason (ha-status.ts). The
 * rules run every second whether or not anyone asks, so each reason's
 * "since" is right to the second, and every change goes out on /events
 * as an `ha-status` event within a second.
 */
export const haStatusRoutes: FastifyPluginAsync<HaStatusDeps> = async (app, deps) => {
  const tracker = new HaStatusTracker(deps.sources);
  let last: HaStatus | undefined;
  const run = () => {
    const now = tracker.update();
    if (!sameHaStatus(last, now)) deps.publish?.({ type: 'ha-status', time: now.as_of, ...now });
    last = now;
  };
  const timer = setInterval(() => {
    try {
      run();
    } catch (err) {
      app.log.warn({ err }, 'HA status rules failed');
    }
  }, deps.intervalMs ?? 1000);
  timer.unref();
  app.addHook('onClose', async () => clearInterval(timer));

  app.get(
    '/ha-status',
    { schema: { description: 'The cluster\'s HA status as this member sees it: OK, or DEGRADED with every reason (code, severity, member, since, text), critical first. The same computation gives the first line of `hasup status` and the console\'s indicator.' } },
    async () => tracker.current(),
  );
};
