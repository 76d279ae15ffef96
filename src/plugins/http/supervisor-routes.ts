import type { FastifyPluginAsync } from 'fastify';

/**
 * hasup's own process on this member: `GET /supervisor` (its pid, when it
 * started, the version it runs and the one installed on disk now) and
 * `POST /supervisor/restart`, the step of `hasup upgrade hasup`: this
 * hasup leaves its services running and exits, for the process manager
 * (systemd's Restart=always with KillMode=process, docs/maintenance.md) to
 * start the installed hasup, which adopts them. Refused (409) when nothing
 * would start it again, or while this member leads PostgreSQL (its fence
 * would stop the primary with it: switch over first).
 */
export interface SupervisorRouteDeps {
  pid: number;
  /** ms since the epoch. */
  startedAt: number;
  runningVersion: string;
  /** Read from the installation on disk at each call (an upgrade installs a new one under the running hasup). */
  installedVersion: () => string;
  /** Why this hasup may not restart now, or undefined. */
  restartRefusal: () => string | undefined;
  /** Leaves the services running and ends this process (called once the answer is sent). */
  restart: () => void;
}

export const supervisorRoutes: FastifyPluginAsync<SupervisorRouteDeps> = async (app, deps) => {
  const view = () => ({ pid: deps.pid, started_at: deps.startedAt, version: deps.runningVersion, installed_version: deps.installedVersion(), restart_refused: deps.restartRefusal() ?? null });
  app.get('/supervisor', { schema: { description: "This member's hasup process: pid, start time (ms), the version it runs and the one installed on disk, and why it may not restart now (null: it may)." } }, async () => view());
  let restarting = false;
  app.post(
    '/supervisor/restart',
    { schema: { description: 'hasup leaves its services running and exits, for its process manager to start the installed hasup, which adopts them (hasup upgrade hasup). 202 with the time asked (ms, this member\'s clock); 409 when refused.' } },
    async (_req, reply) => {
      const refused = restarting ? 'a restart is already under way' : deps.restartRefusal();
      if (refused) return reply.code(409).send({ error: `hasup on this member will not restart: ${refused}` });
      restarting = true;
      reply.raw.once('finish', () => setImmediate(deps.restart));
      return reply.code(202).send({ pid: deps.pid, requested_at: Date.now() });
    },
  );
};
