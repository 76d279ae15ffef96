import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { EsAccess } from '../../elasticsearch/access.js';
import { esError, firstAnswer } from '../../elasticsearch/es-http.js';
import type { Stream } from '../../shipper/indices.js';
import { CHARTS, chartQuery, LOG_LEVELS, logQuery, marksQuery, parseChart, parseLogs, parseMarks, QUERY_TIMEOUT_MS, RANGES_MS, searchPath, timeRange, type ChartName, type LogSearch, type TimeRange } from './es-queries.js';

export interface EsRouteDeps {
  /** Elasticsearch nodes to ask, in order (this member's first): the shipper's list. */
  urls: () => string[];
  /** The CA and user (hasup's reader) when Elasticsearch security is on (elasticsearch/access.ts); absent: plain HTTP. */
  access?: () => EsAccess;
  now?: () => number;
}

const member = { type: 'string', pattern: '^[0-9a-f]{16}$', description: 'member id; all members when absent' } as const;
const range = { type: 'string', enum: Object.keys(RANGES_MS), description: 'the time range ending now (default 1h)' } as const;

/** Query strings arrive as text (the schema checker does not coerce). */
const epochMs = { type: 'string', pattern: '^[0-9]{1,15}$', description: 'ms since the epoch' } as const;
type LogsQuery = { text?: string; member?: string; service?: string; level?: LogSearch['level']; range?: string; from?: string; to?: string; after?: string; size?: string };
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

const chartQueryString = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name: { type: 'string', enum: Object.keys(CHARTS) }, range, member },
} as const;

const marksQueryString = { type: 'object', additionalProperties: false, properties: { range, member } } as const;

const logsQueryString = {
  type: 'object',
  additionalProperties: false,
  properties: {
    text: { type: 'string', maxLength: 500, description: 'words the message must contain (Elasticsearch simple query syntax)' },
    member,
    service: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'service.name: postgresql, etcd, elasticsearch, hasup, ...' },
    level: { type: 'string', enum: LOG_LEVELS, description: 'this level and every more severe one' },
    range,
    from: { ...epochMs, description: 'ms since the epoch (with to: an explicit range of at most 7 days)' },
    to: epochMs,
    after: { ...epochMs, description: 'only events after this time (ms since the epoch): the live tail' },
    size: { type: 'string', pattern: '^([1-9][0-9]?|[1-4][0-9][0-9]|500)$', description: 'lines, newest first: 1 to 500 (default 100)' },
  },
} as const;

/**
 * The console's charts and log search, read from the indices the shipper
 * writes (docs/shipping.md) on whichever Elasticsearch node answers first.
 * Elasticsearch down or unavailable answers 503, a query it refuses 502, each with a
 * sentence the console shows in that panel alone.
 */
export const esRoutes: FastifyPluginAsync<EsRouteDeps> = async (app, deps) => {
  const now = deps.now ?? Date.now;

  async function search(stream: Stream, r: TimeRange, body: object, reply: FastifyReply): Promise<unknown> {
    let answer;
    try {
      answer = await firstAnswer(deps.urls(), 'POST', searchPath(stream, r), QUERY_TIMEOUT_MS + 2000, body, deps.access?.());
    } catch (err) {
      reply.code(503).send({ error: `Elasticsearch cannot be reached: ${(err as Error).message}` });
      return undefined;
    }
    if (answer.status >= 500) {
      reply.code(503).send({ error: `Elasticsearch is unavailable (${esError(answer)})` });
      return undefined;
    }
    if (answer.status !== 200) {
      reply.code(502).send({ error: `Elasticsearch refused the query (${esError(answer)})` });
      return undefined;
    }
    return answer.json;
  }

  const rangeOf = (q: { range?: string; from?: string; to?: string }, reply: FastifyReply): TimeRange | undefined => {
    try {
      return timeRange({ range: q.range, from: num(q.from), to: num(q.to) }, now());
    } catch (err) {
      reply.code(400).send({ error: (err as Error).message });
      return undefined;
    }
  };

  app.get<{ Querystring: { name: ChartName; range?: string; member?: string } }>(
    '/ui/charts',
    { schema: { querystring: chartQueryString, description: 'One chart of the shipped metrics: a date histogram per member (at most 240 buckets) over the range.' } },
    async (req, reply) => {
      const r = rangeOf(req.query, reply);
      if (!r) return reply;
      const answer = await search('metrics', r, chartQuery(req.query.name, r, req.query.member ?? null), reply);
      if (answer === undefined) return reply;
      return parseChart(req.query.name, r, answer);
    },
  );

  app.get<{ Querystring: { range?: string; member?: string } }>(
    '/ui/marks',
    { schema: { querystring: marksQueryString, description: 'Failovers, switchovers, fencing and services failing in the range, from the supervisors\' shipped logs: the marks on the charts\' time axis.' } },
    async (req, reply) => {
      const r = rangeOf(req.query, reply);
      if (!r) return reply;
      const answer = await search('logs', r, marksQuery(r, req.query.member ?? null), reply);
      if (answer === undefined) return reply;
      return { marks: parseMarks(answer) };
    },
  );

  app.get<{ Querystring: LogsQuery }>(
    '/ui/logs',
    { schema: { querystring: logsQueryString, description: 'Search the shipped logs: text, member, service, level, range; newest first, at most 500 lines.' } },
    async (req, reply) => {
      const r = rangeOf(req.query, reply);
      if (!r) return reply;
      const { text, member, service, level } = req.query;
      const answer = await search('logs', r, logQuery({ text, member, service, level, after: num(req.query.after), size: num(req.query.size) }, r), reply);
      if (answer === undefined) return reply;
      return parseLogs(answer);
    },
  );
};
