import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { BackupRefused, type RefusalReason } from '../backup/coordinator.js';
import type { SearchRestoreMode, SearchRestoreRequest } from '../backup/search-snapshots.js';
import type { SnapshotOperations } from '../backup/snapshot-jobs.js';
import { SnapshotError, type SnapshotErrorCode } from '../elasticsearch/snapshot-error.js';

/**
 * Elasticsearch snapshots through the API (docs/backup.md), behind the
 * token like every operation, on any member that runs Elasticsearch with
 * [snapshot] repo_path set:
 *
 *   GET  /snapshots               every snapshot in the repository
 *   POST /snapshot/restore        restore indices of one (refuse, replace or
 *                                 rename): checked first, then 202 with the
 *                                 job and what it will do
 *   GET  /snapshot/jobs/:id       the restore job: running (primary shards
 *                                 active), done (what was restored), failed
 *
 * A refusal is `{ error, code }`, the code being the SnapshotError's
 * (missing, not-in-snapshot, index-exists, ...) or `off` / `busy`; nothing
 * was changed by a refused request.
 */
export interface SnapshotRouteDeps {
  snapshots?: SnapshotOperations;
}

const restoreBody = {
  type: 'object',
  required: ['name', 'indices', 'mode'],
  additionalProperties: false,
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[a-z0-9][a-z0-9._-]*$', description: 'the snapshot, as GET /snapshots names it' },
    indices: { type: 'string', minLength: 1, maxLength: 4000, description: 'comma-separated index names or * patterns, or all (every index in the snapshot but the dot ones)' },
    mode: {
      type: 'string',
      enum: ['refuse', 'replace', 'rename'],
      description: 'refuse: nothing is done when an index to restore exists; replace: existing indices of those names are deleted first; rename: restored beside them as <prefix><name>',
    },
    rename_prefix: { type: 'string', minLength: 1, maxLength: 100, description: 'with mode rename: the prefix of the restored indices (default restored-)' },
  },
} as const;

const jobParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^snapshot-restore-[0-9a-f]{8}$', description: 'job id, as POST /snapshot/restore answered' } },
} as const;

const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

/** How each SnapshotError is answered: the request's fault (4xx) or Elasticsearch's state (503). */
const ERROR_STATUS: Record<SnapshotErrorCode, number> = {
  missing: 404,
  'not-in-snapshot': 422,
  'bad-request': 422,
  'index-exists': 409,
  'path-repo': 409,
  'repository-unreachable': 503,
  failed: 409,
  partial: 409,
  timeout: 503,
  elasticsearch: 503,
};

const REFUSAL_STATUS: Partial<Record<RefusalReason, number>> = { off: 409, busy: 409, closed: 503 };

const NO_SNAPSHOTS = { error: 'this member has no Elasticsearch snapshots', code: 'off' };

/** A refusal as an answer with its code; anything else is rethrown (the server's 500). */
function refuse(reply: FastifyReply, err: unknown) {
  if (err instanceof SnapshotError) return reply.code(ERROR_STATUS[err.code]).send({ error: err.message, code: err.code });
  if (err instanceof BackupRefused) return reply.code(REFUSAL_STATUS[err.reason] ?? 409).send({ error: err.message, code: err.reason });
  throw err;
}

/** The body's indices: `all`, or the names and patterns of a comma-separated list. */
export function indicesOf(text: string): SearchRestoreRequest['indices'] | { problem: string } {
  if (text.trim() === 'all') return 'all';
  const names = text.split(',').map((n) => n.trim());
  if (names.some((n) => n === '')) return { problem: `indices ${JSON.stringify(text.slice(0, 80))} has an empty name: give comma-separated names or patterns, or all` };
  return names;
}

export const snapshotRoutes: FastifyPluginAsync<SnapshotRouteDeps> = async (app, deps) => {
  const snapshots = deps.snapshots;

  app.get(
    '/snapshots',
    { schema: { querystring: noQuery, description: "Every snapshot in the Elasticsearch snapshot repository, oldest first: name, state, times, the pgBackRest backup it was taken for, indices, size, and what is wrong with one that is not whole. 409 when snapshots are off on this member." } },
    async (_req, reply) => {
      if (!snapshots) return reply.code(501).send(NO_SNAPSHOTS);
      try {
        return await snapshots.list();
      } catch (err) {
        return refuse(reply, err);
      }
    },
  );

  app.post<{ Body: { name: string; indices: string; mode: SearchRestoreMode; rename_prefix?: string } }>(
    '/snapshot/restore',
    {
      schema: {
        body: restoreBody,
        description:
          'Restore indices of a snapshot, from this member: checked first (a snapshot or index that is not there, an index in the way with mode refuse: 4xx with the reason and its code, nothing changed), then 202 with the job (poll GET /snapshot/jobs/:id) and the plan (sources, targets, indices deleted first). 409 when a snapshot restore runs here.',
      },
    },
    async (req, reply) => {
      if (!snapshots) return reply.code(501).send(NO_SNAPSHOTS);
      const { name, mode, rename_prefix: prefix } = req.body;
      if (prefix !== undefined && mode !== 'rename') return reply.code(400).send({ error: `rename_prefix goes with mode rename, not ${mode}`, code: 'bad-request' });
      const indices = indicesOf(req.body.indices);
      if (typeof indices === 'object' && 'problem' in indices) return reply.code(400).send({ error: indices.problem, code: 'bad-request' });
      try {
        const { job, plan } = await snapshots.startRestore(name, { indices, mode, ...(prefix !== undefined ? { renamePrefix: prefix } : {}) });
        return reply.code(202).send({ job, plan: { sources: plan.sources, targets: plan.targets, delete_first: plan.deleteFirst }, href: `/snapshot/jobs/${job.id}` });
      } catch (err) {
        return refuse(reply, err);
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    '/snapshot/jobs/:id',
    { schema: { params: jobParams, querystring: noQuery, description: 'A snapshot restore job of this member: running with its progress, done with what was restored, failed with the reason. Kept in memory (the last 20).' } },
    async (req, reply) => {
      if (!snapshots) return reply.code(501).send(NO_SNAPSHOTS);
      const job = snapshots.job(req.params.id);
      return job ? { job } : reply.code(404).send({ error: `no job ${req.params.id} on this member (jobs live on the member that runs them, in memory)` });
    },
  );
};
