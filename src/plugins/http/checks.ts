import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Leadership, LeadershipState, ReplicationState } from '../../supervisor/leadership.js';
import type { ServiceStatus } from '../../supervisor/service.js';
import type { Heartbeat } from './liveness.js';

/**
 * Load-balancer checks under Patroni's names, so HAProxy configurations
 * written for Patroni work unchanged: 200 when the condition holds, 503
 * otherwise, to GET, HEAD and OPTIONS, with a small JSON body on GET. They
 * read memory only (the leadership state and the supervisor's last health
 * results); nothing here waits on a child.
 */
export interface CheckDeps {
  memberId: string;
  leadership: Leadership;
  services: { list(): ServiceStatus[] };
  heartbeat: Heartbeat;
  /** /liveness fails when the event loop has not turned for this long. */
  livenessMaxAgeMs?: number;
}

/** `16MB`, `512kB`, `1048576`: PostgreSQL's memory units (1024-based), as Patroni reads ?lag=. */
export const LAG_PATTERN = '^[0-9]{1,15}\\s*([kKMGT]?[bB])?$';
const UNIT: Record<string, number> = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3, tb: 1024 ** 4 };

export function parseLag(text: string): number {
  const m = /^([0-9]+)\s*([a-zA-Z]*)$/.exec(text.trim());
  const factor = UNIT[(m?.[2] || 'b').toLowerCase()];
  if (!m || factor === undefined) throw new Error(`lag "${text}" is not a size (bytes, or a number with kB, MB, GB or TB)`);
  return Number(m[1]) * factor;
}

interface ReplicaQuery {
  lag?: string;
  replication_state?: ReplicationState;
}

const noQuery = { type: 'object', additionalProperties: false, properties: {} } as const;
const replicaQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    lag: { type: 'string', pattern: LAG_PATTERN, description: 'largest acceptable replication lag: bytes, or with a unit (16MB)' },
    replication_state: { type: 'string', enum: ['streaming', 'in archive recovery'], description: 'the replica must be in this state' },
  },
} as const;

const checkAnswer = {
  type: 'object',
  properties: {
    check: { type: 'string' },
    ok: { type: 'boolean' },
    member: { type: 'string' },
    role: { type: 'string' },
    writable: { type: 'boolean' },
    lease_in_doubt: { type: 'boolean' },
    lag_bytes: { type: ['integer', 'null'] },
    replication_state: { type: ['string', 'null'] },
    reason: { type: 'string' },
  },
} as const;

interface Verdict {
  ok: boolean;
  reason: string;
}

function isWriteLeader(s: LeadershipState): Verdict {
  if (s.leaseInDoubt) return { ok: false, reason: 'this member doubts its leader lease' };
  if (s.role !== 'leader' || !s.holdsLease) return { ok: false, reason: `not the leader: ${s.reason}` };
  if (!s.writable) return { ok: false, reason: 'leader, but PostgreSQL is not writable' };
  return { ok: true, reason: 'writable leader' };
}

function isGoodReplica(s: LeadershipState, q: ReplicaQuery): Verdict {
  if (s.role !== 'replica' || !s.replication) return { ok: false, reason: `not a replica: ${s.reason}` };
  if (q.replication_state && s.replication.state !== q.replication_state) {
    return { ok: false, reason: `replication state is ${s.replication.state}, not ${q.replication_state}` };
  }
  if (q.lag !== undefined) {
    const bound = parseLag(q.lag);
    if (s.replication.lagBytes === null) return { ok: false, reason: 'replication lag unknown' };
    if (s.replication.lagBytes > bound) return { ok: false, reason: `lag ${s.replication.lagBytes} bytes exceeds ${bound}` };
  }
  return { ok: true, reason: `replica (${s.replication.state})` };
}

function servicesHealthy(services: ServiceStatus[]): Verdict {
  const bad = services.filter((s) => s.state !== 'running' || (s.health !== 'ok' && s.health !== 'warning'));
  if (bad.length === 0) return { ok: true, reason: `${services.length} service(s) healthy` };
  return { ok: false, reason: bad.map((s) => `${s.name} ${s.state !== 'running' ? s.state : s.health}`).join(', ') };
}

export const checkRoutes: FastifyPluginAsync<CheckDeps> = async (app, deps) => {
  const maxAge = deps.livenessMaxAgeMs ?? 5000;
  deps.heartbeat.start();
  app.addHook('onClose', async () => deps.heartbeat.stop());

  const checks: Record<string, { query: object; description: string; judge: (s: LeadershipState, q: ReplicaQuery) => Verdict }> = {
    '/primary': { query: noQuery, description: 'this member holds the leader lease and PostgreSQL is writable', judge: isWriteLeader },
    '/read-write': { query: noQuery, description: 'same as /primary', judge: isWriteLeader },
    '/leader': { query: noQuery, description: 'same as /primary (Patroni name)', judge: isWriteLeader },
    '/replica': { query: replicaQuery, description: 'a replica, optionally streaming and within ?lag=', judge: isGoodReplica },
    '/read-only': {
      query: replicaQuery,
      description: 'readable: the writable leader, or a replica within ?lag=',
      judge: (s, q) => (s.role === 'leader' ? isWriteLeader(s) : isGoodReplica(s, q)),
    },
    '/health': { query: noQuery, description: 'every service of this member runs and is healthy (OK or WARNING)', judge: () => servicesHealthy(deps.services.list()) },
    '/liveness': {
      query: noQuery,
      description: 'the supervisor event loop is not stuck',
      judge: () => {
        const age = Math.round(deps.heartbeat.ageMs());
        return age <= maxAge ? { ok: true, reason: `event loop turned ${age} ms ago` } : { ok: false, reason: `event loop stalled: last turn ${age} ms ago` };
      },
    },
    '/readiness': {
      query: noQuery,
      description: 'ready for traffic: the writable leader or a replica; on a member without PostgreSQL, its services are healthy',
      judge: (s) => {
        if (!s.serviceGroup) return servicesHealthy(deps.services.list());
        return s.role === 'leader' ? isWriteLeader(s) : isGoodReplica(s, {});
      },
    },
  };

  for (const [url, check] of Object.entries(checks)) {
    const name = url.slice(1);
    app.route<{ Querystring: ReplicaQuery }>({
      method: ['GET', 'HEAD', 'OPTIONS'],
      url,
      exposeHeadRoute: false,
      config: { access: 'check' },
      schema: {
        description: `Load-balancer check: ${check.description}. 200 or 503.`,
        querystring: check.query,
        security: [],
        response: { 200: checkAnswer, 503: checkAnswer },
      },
      handler: (req: FastifyRequest<{ Querystring: ReplicaQuery }>, reply: FastifyReply) => {
        const s = deps.leadership.state();
        const verdict = check.judge(s, req.query);
        reply.code(verdict.ok ? 200 : 503);
        if (req.method !== 'GET') return reply.send();
        return reply.send({
          check: name,
          ok: verdict.ok,
          member: deps.memberId,
          role: s.role,
          writable: s.writable,
          lease_in_doubt: s.leaseInDoubt,
          lag_bytes: s.replication?.lagBytes ?? null,
          replication_state: s.replication?.state ?? null,
          reason: verdict.reason,
        });
      },
    });
  }
};
