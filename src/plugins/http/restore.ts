import type { FastifyPluginAsync } from 'fastify';
import { RestoreRefused, type HaOperations } from '../../ha/index.js';
import { BackupRefused, type BackupOperations } from '../backup/coordinator.js';
import { checkSetInRepository, checkTargetInWindow, parseRestoreTarget, restoreWindow, RestoreTargetRefused, withRestoreRepo, type RestoreTargetInput } from '../backup/restore-target.js';
import type { SetSnapshotChoice, SnapshotOperations } from '../backup/snapshot-jobs.js';
import { SnapshotError } from '../elasticsearch/snapshot-error.js';

/**
 * A cluster restore from the backup repository (docs/backup.md), behind the
 * token like every operation:
 *
 *   POST /restore {latest | time | lsn | set}  checks the target against
 *                                         the repository (the recoverability
 *                                         window; a set's backup in it), then
 *                                         starts the restore with this member
 *                                         as the restorer: 202
 *   GET  /restore                         the last restore: its state and
 *                                         what it is doing, and the snapshot
 *                                         side of a backup set's restore
 *
 * Everything that can be checked is checked before any member stops: a
 * target outside the window is 422 naming the window, a backup not in the
 * repository 422 naming those that are, a restore already running 409. A
 * backup set with an Elasticsearch snapshot restores the snapshot's
 * indices (mode replace) once PostgreSQL is back, from this member.
 */
export interface RestoreRouteDeps {
  ha?: HaOperations;
  backup?: BackupOperations;
  /** Elasticsearch snapshots (a backup set's other side); absent where the daemon has none. */
  snapshots?: SnapshotOperations;
}

const restoreBody = {
  type: 'object',
  additionalProperties: false,
  properties: {
    latest: { type: 'boolean', description: 'replay every archived WAL segment (the newest state the repository holds)' },
    time: { type: 'string', maxLength: 64, description: 'a moment with its zone, e.g. 2026-12-07T03:00:00Z: replay up to it' },
    lsn: { type: 'string', maxLength: 32, description: 'a WAL position, e.g. 0/3000060: replay up to it' },
    repo: { type: 'integer', enum: [1, 2], description: 'the repository to restore from; with two repositories, when absent: the first that holds a backup for the target and to which archiving does not fail (a target only a failing repository can serve is refused naming it)' },
    set: { type: 'string', maxLength: 64, description: "a backup's label, e.g. 20261207-003702F: PostgreSQL restored to the end of that backup and, when its set has an Elasticsearch snapshot, the snapshot's indices restored (mode replace: existing indices of those names are deleted first) once PostgreSQL is back" },
  },
} as const;

export const restoreRoutes: FastifyPluginAsync<RestoreRouteDeps> = async (app, deps) => {
  const { ha, backup, snapshots } = deps;
  app.post<{ Body: RestoreTargetInput }>(
    '/restore',
    {
      schema: {
        body: restoreBody,
        description:
          "Restore the whole cluster from the backup repository to the end of the archive, a time, a WAL position or the end of a backup (set), with this member as the restorer: every member stops PostgreSQL, this one restores and leads on a new timeline, the others follow it (rewound or copied afresh); a backup set's Elasticsearch snapshot is restored after (mode replace). 202 with the request, the snapshot restore's job (or null, with a note saying why) (poll GET /restore); 422 when the target is outside the recoverability window (named) or the backup is not in the repository (those that are named); 409 when a restore runs or the repository has nothing to restore; 503 when the set's snapshots cannot be read.",
      },
    },
    async (req, reply) => {
      if (!ha) return reply.code(501).send({ error: 'this member runs no HA election: a restore needs the cluster' });
      if (!backup) return reply.code(501).send({ error: 'this member has no backup coordinator' });
      try {
        const asked = parseRestoreTarget(req.body);
        const listing = await backup.list();
        const target = withRestoreRepo(asked, req.body.repo, listing);
        let search: SetSnapshotChoice | null = null;
        if (target.kind === 'set') {
          checkSetInRepository(target.label, listing);
          search = snapshots ? await snapshots.chooseForSet(target.label, listing) : { restore: null, note: 'this member has no Elasticsearch snapshots: PostgreSQL alone is restored' };
        } else checkTargetInWindow(target, restoreWindow(listing, target.repo), listing, Date.now());
        const restore = await ha.restore(target);
        const snapshotRestore = search?.restore && snapshots ? snapshots.restoreAfter(restore, search.restore) : null;
        return reply.code(202).send({ restore, href: '/restore', ...(search ? { snapshot_restore: snapshotRestore, snapshot_note: search.note } : {}) });
      } catch (err) {
        if (err instanceof RestoreTargetRefused) return reply.code(422).send({ error: err.message });
        if (err instanceof BackupRefused && err.reason === 'unavailable') return reply.code(503).send({ error: err.message });
        if (err instanceof RestoreRefused || err instanceof BackupRefused) return reply.code(409).send({ error: err.message });
        if (err instanceof SnapshotError) return reply.code(503).send({ error: `cannot check the backup set's Elasticsearch snapshot (${err.code}): ${err.message}; nothing was stopped`, code: err.code });
        return reply.code(503).send({ error: `cannot start the restore: ${(err as Error).message}` });
      }
    },
  );
  app.get(
    '/restore',
    {
      schema: {
        description:
          "The last cluster restore as this member last read it: target, restorer, state (stopping, restoring, done, failed) and what it is doing or why it failed; null when there was none. With a backup set's restore run from this member, snapshot_restore: the Elasticsearch side's job (waiting for PostgreSQL, restoring, done, failed).",
      },
    },
    async (_req, reply) => {
      if (!ha) return reply.code(501).send({ error: 'this member runs no HA election' });
      const restore = ha.view().restore;
      const snapshotRestore = restore && restore.target.kind === 'set' ? (snapshots?.forClusterRestore(restore.id) ?? null) : undefined;
      return { restore, ...(snapshotRestore !== undefined ? { snapshot_restore: snapshotRestore } : {}) };
    },
  );
};
