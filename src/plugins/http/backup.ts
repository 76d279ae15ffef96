import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { formatHostPort } from '../../gossip/index.js';
import { BackupRefused, type BackupOperations, type RefusalReason, type StandbyRequest } from '../backup/coordinator.js';
import type { BackupType } from '../backup/info.js';

/**
 * Backups through the API (docs/backup.md), behind the token like every
 * operation:
 *
 *   POST /backup {type}      a backup job on the leader: 202 with the job;
 *                            409 naming the job that runs; 421 from a
 *                            follower, with the leader's id and API address
 *   POST /backup/standby     asked of a follower by the leader: a backup
 *                            taken there as a standby (backup-standby);
 *                            202 with the job; 409 when it cannot now
 *   GET  /backup/jobs/:id    a job: running (progress), done (the backup or
 *                            the verdict), failed (why)
 *   GET  /backups            the repository's backups, archive and
 *                            recoverability window (any member)
 *   POST /backup/verify      verify the repository from this member: the
 *                            verdict when it comes within wait_s, else 202
 *                            with the job to poll
 *
 * A member whose config has no repository answers 409 saying so.
 */
export interface BackupRouteDeps {
  backup?: BackupOperations;
  /** Where another member's API is reached (its gossip address, the API port of its service rumors). */
  locate: (member: string) => { addr: string; port: number } | undefined;
}

const backupBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: ['full', 'diff', 'incr'], description: 'full (the default), diff (changes since the last full backup) or incr (changes since the last backup of any type)' },
    repo: { type: 'integer', enum: [1, 2], description: 'the repository the backup goes into: 1 (the default, repo_path) or 2 (repo2_path, refused with 422 when it is not set)' },
  },
} as const;

const repoProp = { type: 'integer', enum: [1, 2] } as const;

const path = { type: 'string', minLength: 1, maxLength: 1024, pattern: '^/[^\\u0000\\n\\r]*$' } as const;
const port = { type: 'integer', minimum: 1, maximum: 65535 } as const;

const standbyBody = {
  type: 'object',
  required: ['type', 'primary'],
  additionalProperties: false,
  properties: {
    type: { type: 'string', enum: ['full', 'diff', 'incr'] },
    timeline: { type: ['integer', 'null'], minimum: 1, description: "the leader's timeline; a follower on another refuses" },
    repo: { ...repoProp, description: 'the repository the backup goes into (1 when absent)' },
    primary: {
      type: 'object',
      required: ['member', 'host', 'server_port', 'pg_path', 'pg_port', 'socket_path', 'config', 'include_path'],
      additionalProperties: false,
      description: "the leader asking: its member id, its advertised address and pgBackRest server port, its data directory, PostgreSQL port and socket directory, its pgbackrest.conf and include directory",
      properties: {
        member: { type: 'string', pattern: '^[0-9a-f]{16}$' },
        host: { type: 'string', minLength: 2, maxLength: 45 },
        server_port: port,
        pg_path: path,
        pg_port: port,
        socket_path: path,
        config: path,
        include_path: path,
      },
    },
  },
} as const;

/** Under 300 s: fetch (undici) gives up waiting for an answer's headers after 300 s. */
const MAX_WAIT_S = 280;

const verifyBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    wait_s: { type: 'integer', minimum: 0, maximum: MAX_WAIT_S, description: `how long to wait for the verdict before answering 202 with the job (default 240, at most ${MAX_WAIT_S})` },
    timeout_s: { type: 'integer', minimum: 10, maximum: 86_400, description: 'give verify up after this long (default 6 hours, each repository)' },
    repo: { ...repoProp, description: 'verify this repository only (default: every configured one, one after the other)' },
  },
} as const;

const jobParams = {
  type: 'object',
  required: ['id'],
  additionalProperties: false,
  properties: { id: { type: 'string', pattern: '^(backup|verify)-[0-9a-f]{8}$', description: 'job id, as POST /backup or POST /backup/verify answered' } },
} as const;

/** No query parameters: a stray one is refused by name rather than ignored. */
const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;

const STATUS: Record<RefusalReason, number> = {
  off: 409,
  'no-postgresql': 409,
  busy: 409,
  'not-leader': 421,
  'no-leader': 503,
  'not-writable': 503,
  closed: 503,
  unavailable: 503,
  'not-standby': 409,
  invalid: 422,
};

const NO_BACKUPS = { error: 'this member has no backup coordinator' };

export const backupRoutes: FastifyPluginAsync<BackupRouteDeps> = async (app, deps) => {
  const backup = deps.backup;

  /** A refusal as an answer; anything else is rethrown (the server's 500). */
  const refuse = (req: FastifyRequest, reply: FastifyReply, err: unknown) => {
    if (!(err instanceof BackupRefused)) throw err;
    const body: Record<string, unknown> = { error: err.message };
    if (err.job) body.job = err.job;
    if (err.reason === 'not-leader' && err.leader) {
      const at = deps.locate(err.leader);
      body.leader = { member: err.leader, api: at ? `${req.protocol}://${formatHostPort(at.addr, at.port)}` : null };
    }
    return reply.code(STATUS[err.reason]).send(body);
  };

  app.post<{ Body: { type?: BackupType; repo?: 1 | 2 } | null }>(
    '/backup',
    {
      schema: {
        body: backupBody,
        description:
          'Start a backup (pgBackRest) on this member, which must be the PostgreSQL leader: 202 with the job (poll GET /backup/jobs/:id). 409 when a backup job runs (named) or backups are off; 421 on a follower, with the leader\'s member id and API address; 503 with no writable leader.',
      },
    },
    async (req, reply) => {
      if (!backup) return reply.code(501).send(NO_BACKUPS);
      try {
        const job = backup.startBackup(req.body?.type ?? 'full', req.body?.repo ? { repo: req.body.repo } : {});
        return reply.code(202).send({ job, href: `/backup/jobs/${job.id}` });
      } catch (err) {
        return refuse(req, reply, err);
      }
    },
  );

  app.post<{ Body: StandbyRequest }>(
    '/backup/standby',
    {
      schema: {
        body: standbyBody,
        description:
          "Asked of a follower by the PostgreSQL leader (hasup does it; not for operators): take a backup here as a standby of that leader (pgBackRest's backup-standby, the leader reached through its pgBackRest TLS server). 202 with the job; 409 when this member is not a streaming follower of that leader, a backup runs here, or backups from a follower are off here; 422 when the leader's address is not the one the gossip knows.",
      },
    },
    async (req, reply) => {
      if (!backup?.startStandbyBackup) return reply.code(501).send(NO_BACKUPS);
      try {
        const job = backup.startStandbyBackup(req.body);
        return reply.code(202).send({ job, href: `/backup/jobs/${job.id}` });
      } catch (err) {
        return refuse(req, reply, err);
      }
    },
  );

  app.get<{ Params: { id: string } }>(
    '/backup/jobs/:id',
    { schema: { params: jobParams, querystring: noQuery, description: 'A backup or verify job of this member: running with its progress, done with the backup made or the verdict, failed with the reason. Jobs are kept in memory (the last 20).' } },
    async (req, reply) => {
      if (!backup) return reply.code(501).send(NO_BACKUPS);
      const job = backup.job(req.params.id);
      return job ? { job } : reply.code(404).send({ error: `no job ${req.params.id} on this member (jobs live on the member that runs them, in memory)` });
    },
  );

  app.get(
    '/backups',
    { schema: { querystring: noQuery, description: "The repository's backups (label, type, times, sizes, WAL range), its archive's oldest and newest WAL segment, and the recoverability window, read by pgbackrest info from this member." } },
    async (req, reply) => {
      if (!backup) return reply.code(501).send(NO_BACKUPS);
      try {
        return await backup.list();
      } catch (err) {
        if (err instanceof BackupRefused) return refuse(req, reply, err);
        return reply.code(503).send({ error: `cannot read the backup repository: ${(err as Error).message}` });
      }
    },
  );

  app.post<{ Body: { wait_s?: number; timeout_s?: number; repo?: 1 | 2 } | null }>(
    '/backup/verify',
    {
      schema: {
        body: verifyBody,
        description:
          "Verify the repository from this member: pgBackRest's verify (every backup file and archived segment against its checksum) and hasup's checks (WAL gaps, unusable backups, each backup's WAL, the system identifier, the leader's archiving). 200 with the job and its verdict when it ends within wait_s, else 202 with the job to poll; 409 when a verify runs here.",
      },
    },
    async (req, reply) => {
      if (!backup) return reply.code(501).send(NO_BACKUPS);
      let started;
      try {
        started = backup.startVerify({ ...(req.body?.timeout_s ? { timeoutMs: req.body.timeout_s * 1000 } : {}), ...(req.body?.repo ? { repo: req.body.repo } : {}) });
      } catch (err) {
        return refuse(req, reply, err);
      }
      const job = (await backup.waitJob(started.id, (req.body?.wait_s ?? 240) * 1000)) ?? started;
      return reply.code(job.state === 'running' ? 202 : 200).send({ job, href: `/backup/jobs/${job.id}` });
    },
  );
};
