import type { FastifyPluginAsync } from 'fastify';
import { RestoreRefused, type HaOperations } from '../../ha/index.js';
import { BackupRefused, type BackupOperations } from '../backup/coordinator.js';
import { checkTargetInWindow, parseRestoreTarget, restoreWindow, RestoreTargetRefused, type RestoreTargetInput } from '../backup/restore-target.js';

/**
 * A cluster restore from the backup repository (docs/backup.md), behind the
 * token like every operation:
 *
 *   POST /restore {latest | time | lsn}   checks the target against the
 *                                         repository's recoverability window,
 *                                         then starts the restore with this
 *                                         member as the restorer: 202
 *   GET  /restore                         the last restore: its state and
 *                                         what it is doing
 *
 * Everything that can be checked is checked before any member stops: a
 * target outside the window is 422 naming the window, a restore already
 * running 409.
 */
export interface RestoreRouteDeps {
  ha?: HaOperations;
  backup?: BackupOperations;
}

const restoreBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    latest: { type: 'boolean', description: 'replay every archived WAL segment (the newest state the repository holds)' },
    time: { type: 'string', maxLength: 64, description: 'a moment with its zone, e.g. 2026-12-07T03:00:00Z: replay up to it' },
    lsn: { type: 'string', maxLength: 32, description: 'a WAL position, e.g. 0/3000060: replay up to it' },
  },
} as const;

export const restoreRoutes: FastifyPluginAsync<RestoreRouteDeps> = async (app, deps) => {
  const { ha, backup } = deps;
  app.post<{ Body: RestoreTargetInput }>(
    '/restore',
    {
      schema: {
        body: restoreBody,
        description:
          "Restore the whole cluster from the backup repository to the end of the archive, a time or a WAL position, with this member as the restorer: every member stops PostgreSQL, this one restores and leads on a new timeline, the others follow it (rewound or copied afresh). 202 with the request (poll GET /restore); 422 when the target is outside the recoverability window (named); 409 when a restore runs or the repository has nothing to restore.",
      },
    },
    async (req, reply) => {
      if (!ha) return reply.code(501).send({ error: 'this member runs no HA election: a restore needs the cluster' });
      if (!backup) return reply.code(501).send({ error: 'this member has no backup coordinator' });
      try {
        const target = parseRestoreTarget(req.body);
        const listing = await backup.list();
        checkTargetInWindow(target, restoreWindow(listing), listing, Date.now());
        const restore = await ha.restore(target);
        return reply.code(202).send({ restore, href: '/restore' });
      } catch (err) {
        if (err instanceof RestoreTargetRefused) return reply.code(422).send({ error: err.message });
        if (err instanceof RestoreRefused || err instanceof BackupRefused) return reply.code(409).send({ error: err.message });
        return reply.code(503).send({ error: `cannot start the restore: ${(err as Error).message}` });
      }
    },
  );
  app.get('/restore', { schema: { description: 'The last cluster restore as this member last read it: target, restorer, state (stopping, restoring, done, failed) and what it is doing or why it failed; null when there was none.' } }, async (_req, reply) => {
    if (!ha) return reply.code(501).send({ error: 'this member runs no HA election' });
    return { restore: ha.view().restore };
  });
};
