/**
 * The member API in this process, as createApiServer builds it, over a
 * three-member cluster that a test (or the console's browser test and
 * benchmark) can change: members die and return, the leader moves, the
 * cluster pauses. Beside it, a fake Elasticsearch on loopback answering the
 * console's searches the way 8.x does: metric aggregations with data for
 * each member, failover marks, log lines to search, and on demand a refusal
 * or no answer at all.
 */
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { MemberView } from '../../src/gossip/memberlist.js';
import type { StoredRumor } from '../../src/gossip/rumor-store.js';
import type { HaOperations, HaView } from '../../src/ha/index.js';
import type { EtcdMembershipStatus } from '../../src/plugins/etcd/membership.js';
import { createApiServer } from '../../src/plugins/http/api.js';
import type { EsAccess } from '../../src/plugins/elasticsearch/access.js';
import type { LogLine } from '../../src/plugins/http/console/es-queries.js';
import type { SessionLimits } from '../../src/plugins/http/sessions.js';
import type { Leadership, LeadershipState } from '../../src/supervisor/leadership.js';
import type { ServiceStatus } from '../../src/supervisor/service.js';
import { member as memberView, roleRumorOf, rumor } from './census-fixtures.js';

export const OPERATOR_TOKEN = 'operator-token-for-console-tests';
export const VIEWER_TOKEN = 'viewer-token-for-console-tests';
export const MEMBERS = ['a1a1a1a1a1a1a1a1', 'b2b2b2b2b2b2b2b2', 'c3c3c3c3c3c3c3c3'] as const;
const ADDRS = ['10.0.0.11', '10.0.0.12', '10.0.0.13'];
const SELF = MEMBERS[0];

const quiet = pino({ level: 'silent' }, new Writable({ write: (_c, _e, done) => done() }));

/** The cluster as the ring and the election tell it to the API of member a1a1…. */
export class FakeCluster extends EventEmitter {
  readonly states = new Map<string, MemberView['state']>(MEMBERS.map((id) => [id, 'alive']));
  leader: string = SELF;
  paused = false;
  readonly restarts: string[] = [];
  private readonly since = Date.now() - 3_600_000;

  // --- the ring (Memberlist's read side) ---
  self() {
    return { id: SELF, addr: ADDRS[0]!, port: 9638 };
  }
  members(): MemberView[] {
    return MEMBERS.map((id, i) => ({ ...memberView(id, ADDRS[i]!, this.states.get(id)!), clockOffsetMs: 3, rttMs: 0.4 }));
  }
  rumors(kind?: string): StoredRumor[] {
    const all = MEMBERS.filter((id) => id !== SELF).flatMap((id) => [
      rumor(id, 'postgresql', { state: 'running', pid: 4100, health: 'ok', since: this.since, config_version: 0, version: '15', hasup_version: '0.1.0' }),
      rumor(id, 'etcd', { state: 'running', pid: 4200, health: 'ok', since: this.since, config_version: 0, version: '3.4', hasup_version: '0.1.0' }),
      rumor(id, 'elasticsearch', { state: 'running', pid: 4300, health: 'ok', since: this.since, config_version: 0, version: '8', hasup_version: '0.1.0' }),
      id === this.leader ? roleRumorOf(id, { role: 'leader', timeline: 4 }) : roleRumorOf(id, { role: 'replica', replication_state: 'streaming', lag_bytes: 4096, timeline: 4 }),
    ]);
    return kind ? all.filter((r) => r.kind === kind) : all;
  }
  stats() {
    return {};
  }
  member(id: string) {
    return this.members().find((m) => m.id === id);
  }

  // --- this member's supervisor ---
  list(): ServiceStatus[] {
    const svc = (name: string, version: string, pid: number, details?: Record<string, unknown>): ServiceStatus => ({ name, group: 'default', state: 'running', pid, since: this.since, restarts: 0, health: 'ok', healthSince: this.since, configVersion: 0, version, ...(details ? { details } : {}) });
    const live = MEMBERS.filter((id) => this.states.get(id) === 'alive').length;
    return [svc('elasticsearch', '8', 3300, { status: live === 3 ? 'green' : 'yellow', number_of_nodes: live }), svc('etcd', '3.4', 3200), svc('postgresql', '15', 3100)];
  }
  get(name: string) {
    const s = this.list().find((x) => x.name === name);
    return s && { ...s, status: () => s, config: () => ({}) };
  }
  async restartService(name: string): Promise<ServiceStatus> {
    this.restarts.push(name);
    return this.list().find((x) => x.name === name)!;
  }

  // --- what tests do ---
  setState(id: string, state: MemberView['state']): void {
    const prev = this.states.get(id);
    this.states.set(id, state);
    this.emit('member', this.members().find((m) => m.id === id), prev);
  }

  leadership(): Leadership {
    return {
      state: (): LeadershipState =>
        this.leader === SELF
          ? { serviceGroup: 'postgresql.default', role: 'leader', holdsLease: true, leaseInDoubt: false, writable: true, replication: null, timeline: 4, leader: SELF, since: this.since, reason: 'fixture' }
          : { serviceGroup: 'postgresql.default', role: 'replica', holdsLease: false, leaseInDoubt: false, writable: false, replication: { state: 'streaming', lagBytes: 0 }, timeline: 4, leader: this.leader, since: this.since, reason: 'fixture' },
      onChange: () => () => {},
      close: () => {},
    };
  }

  etcd(): EtcdMembershipStatus {
    return {
      forming: true,
      founder: true,
      role: 'voter',
      voters_wanted: 3,
      attempts: 0,
      last_error: null,
      voters: MEMBERS.map((id, i) => ({ member: id, member_state: this.states.get(id)!, client_url: `http://${ADDRS[i]}:2379`, peer_url: null, healthy: this.states.get(id) === 'alive' })),
    };
  }

  ha(): HaOperations {
    const view = (): HaView =>
      ({ member_id: SELF, service_group: 'postgresql.default', phase: 'leader', leader: this.leader, paused: this.paused, timeline: 4, synchronous_mode: false, sync_members: [], switchover: null, restore: null, standby_of: null, settings: { ttl: 10, loop_wait: 1, retry_timeout: 10, maximum_lag_on_failover: 1_048_576 }, members: [], rogue_primaries: [], as_of: Date.now() }) as HaView;
    return {
      switchover: async (to) => {
        const from = this.leader;
        this.leader = to ?? MEMBERS.find((m) => m !== from)!;
        for (const id of [from, this.leader]) this.emit('rumor', roleRumorOf(id, { role: id === this.leader ? 'leader' : 'replica' }));
        return { from, to: this.leader, tookMs: 1234 };
      },
      setPaused: async (p) => {
        this.paused = p;
      },
      restore: async () => {
        throw new Error('not in this fixture');
      },
      view,
      fence: () => ({ pid: null, armed: false, frozen: false, restarts: 0, rss_kb: null, watchdog: null, last_fence: null }),
    };
  }
}

export interface ConsoleServer {
  app: FastifyInstance;
  url: string;
  cluster: FakeCluster;
  close(): Promise<void>;
}

/**
 * The API of member a1a1… on 127.0.0.1 (random port), its Elasticsearch the given fake or a real one at esUrl (neither: nothing answers);
 * `esAccess`: the CA and reader user for a real one with its security on (plugins/elasticsearch/access.ts).
 */
export async function startConsoleServer(opts: { es?: FakeConsoleEs; esUrl?: string; esAccess?: () => EsAccess; sessions?: SessionLimits; viewerToken?: string | null; host?: string } = {}): Promise<ConsoleServer> {
  const cluster = new FakeCluster();
  const app = await createApiServer({
    log: quiet,
    memberId: SELF,
    ring: cluster as never,
    supervisor: cluster as never,
    leadership: cluster.leadership(),
    configs: { publish: () => true },
    token: OPERATOR_TOKEN,
    viewerToken: opts.viewerToken === null ? undefined : (opts.viewerToken ?? VIEWER_TOKEN),
    ha: cluster.ha(),
    etcd: () => cluster.etcd(),
    spool: () => ({ backlog: 0, dropped: 0 }),
    elasticsearchUrls: () => [opts.esUrl ?? opts.es?.url ?? 'http://127.0.0.1:9'],
    ...(opts.esAccess ? { elasticsearchAccess: opts.esAccess } : {}),
    sessions: opts.sessions,
  });
  // GET /etcd is registered by the daemon beside the API (plugins/http/members.ts); here the fixture's.
  app.get('/etcd', async () => cluster.etcd());
  const url = await app.listen({ host: opts.host ?? '127.0.0.1', port: 0 });
  return { app, url, cluster, close: () => app.close() };
}

// ---- a fake Elasticsearch for the console's searches ----------------------------------

/** A shipped log line as the console's log search returns it. */
type LogDoc = LogLine;

export class FakeConsoleEs {
  url = '';
  /** ok, or: reject (400 parsing_exception), unavailable (503, every node), or close (no answer). */
  mode: 'ok' | 'reject' | 'unavailable' = 'ok';
  readonly searches: { path: string; body: Record<string, unknown> }[] = [];
  readonly logs: LogDoc[] = [];
  /** Failovers to report as marks: time and member. */
  readonly failovers: { time: number; member: string }[] = [];
  private server?: Server;

  constructor(now = Date.now()) {
    const services = ['postgresql', 'etcd', 'elasticsearch', 'hasup'];
    const levels = ['info', 'info', 'info', 'warning', 'error'];
    for (let i = 0; i < 120; i++) {
      const member = MEMBERS[i % 3]!;
      const service = services[i % 4]!;
      this.logs.push({ id: `doc-${i}`, time: now - (120 - i) * 30_000, member, service, level: levels[i % 5]!, message: `${service} line ${i} on ${member.slice(0, 4)}: checkpoint complete` });
    }
    this.failovers.push({ time: now - 25 * 60_000, member: MEMBERS[1] });
  }

  addLog(doc: Omit<LogDoc, 'id'>): void {
    this.logs.push({ id: `doc-${this.logs.length}`, ...doc });
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  close(): Promise<void> {
    this.server?.closeAllConnections();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown>) : {};
    const path = req.url ?? '';
    this.searches.push({ path, body });
    const send = (status: number, data: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(data));
    };
    if (this.mode === 'unavailable') return send(503, { error: { type: 'cluster_block_exception', reason: 'blocked by: [SERVICE_UNAVAILABLE/1/state not recovered / initialized];' }, status: 503 });
    if (this.mode === 'reject') return send(400, { error: { type: 'parsing_exception', reason: 'unknown query [simple_query_strin]' }, status: 400 });
    if (req.method !== 'POST' || !/^\/hasup-(logs|metrics)-[\d.]+(,hasup-(logs|metrics)-[\d.]+)*\/_search\?/.test(path)) return send(404, { error: { type: 'not_found', reason: `no handler for ${req.method} ${path}` } });
    if (body.aggs) return send(200, this.aggregate(body));
    const text = JSON.stringify(body.query);
    if (text.includes('labels.event')) return send(200, this.marks(body));
    return send(200, this.search(body));
  }

  private filters(body: Record<string, unknown>): { from: number; to: number; member?: string; service?: string; levels?: string[]; text?: string } {
    const bool = (body.query as { bool: { filter: Record<string, unknown>[]; must?: Record<string, unknown>[] } }).bool;
    const out: ReturnType<FakeConsoleEs['filters']> = { from: 0, to: Infinity };
    for (const f of bool.filter) {
      const range = (f.range as { '@timestamp'?: { gte: number; lte: number } } | undefined)?.['@timestamp'];
      if (range) Object.assign(out, { from: range.gte, to: range.lte });
      const term = f.term as Record<string, string> | undefined;
      if (term?.['hasup.member.id']) out.member = term['hasup.member.id'];
      if (term?.['service.name']) out.service = term['service.name'];
      const terms = f.terms as Record<string, string[]> | undefined;
      if (terms?.['log.level']) out.levels = terms['log.level'];
    }
    const q = (bool.must?.[0]?.simple_query_string as { query?: string } | undefined)?.query;
    if (q) out.text = q;
    return out;
  }

  private search(body: Record<string, unknown>) {
    const f = this.filters(body);
    const words = (f.text ?? '').toLowerCase().split(/\s+/).filter(Boolean);
    const hits = this.logs
      .filter((l) => l.time >= f.from && l.time <= f.to && (!f.member || l.member === f.member) && (!f.service || l.service === f.service) && (!f.levels || f.levels.includes(l.level)) && words.every((w) => l.message.toLowerCase().split(/[^a-z0-9]+/).includes(w)))
      .sort((a, b) => b.time - a.time);
    const size = Number(body.size ?? 10);
    return {
      took: 3,
      timed_out: false,
      hits: {
        total: { value: hits.length, relation: 'eq' },
        hits: hits.slice(0, size).map((l) => ({ _id: l.id, _index: 'hasup-logs', _source: { '@timestamp': new Date(l.time).toISOString(), message: l.message, log: { level: l.level }, service: { name: l.service }, hasup: { member: { id: l.member } } } })),
      },
    };
  }

  private marks(body: Record<string, unknown>) {
    const f = this.filters(body);
    const hits = this.failovers.filter((m) => m.time >= f.from && m.time <= f.to && (!f.member || m.member === f.member));
    return {
      timed_out: false,
      hits: { hits: hits.map((m, i) => ({ _id: `mark-${i}`, _source: { '@timestamp': new Date(m.time).toISOString(), message: 'promoted to primary (timeline 4)', labels: { event: 'ha_promoted' }, hasup: { member: { id: m.member } } } })) },
    };
  }

  private aggregate(body: Record<string, unknown>) {
    const f = this.filters(body);
    const hist = ((body.aggs as Record<string, { aggs: Record<string, { date_histogram: { fixed_interval: string; extended_bounds: { min: number; max: number } }; aggs: Record<string, Record<string, { field: string }>> }> }>).members!.aggs).t!;
    const step = Number(hist.date_histogram.fixed_interval.replace('s', '')) * 1000;
    const members = f.member ? [f.member] : [...MEMBERS];
    const start = Math.floor(hist.date_histogram.extended_bounds.min / step) * step;
    return {
      timed_out: false,
      hits: { total: { value: 0, relation: 'eq' }, hits: [] },
      aggregations: {
        members: {
          buckets: members.map((m, mi) => {
            const buckets = [];
            for (let t = start; t <= hist.date_histogram.extended_bounds.max; t += step) {
              const b: Record<string, unknown> = { key: t, doc_count: 6 };
              for (const [name, agg] of Object.entries(hist.aggs)) {
                const field = Object.values(agg)[0]!.field;
                b[name] = { value: name === 'rounds' ? 6 : fakeValue(field, t, mi) };
              }
              buckets.push(b);
            }
            return { key: m, doc_count: buckets.length * 6, t: { buckets } };
          }),
        },
      },
    };
  }
}

/** Plausible figures for a field at a time: shares between 0 and 1, counters that grow, gauges that wave. */
function fakeValue(field: string, t: number, member: number): number {
  const wave = (Math.sin(t / 600_000 + member) + 1) / 2;
  if (field.endsWith('.pct')) return 0.15 + 0.5 * wave * (0.6 + member * 0.15);
  if (field.includes('transactions')) return Math.floor(t / 1000) * (3 + member);
  if (field.includes('bytes_per_sec')) return 20_000 + 80_000 * wave;
  if (field.includes('replay_gap')) return member === 0 ? 0 : Math.round(4096 * wave);
  if (field.includes('connections')) return 8 + Math.round(6 * wave) + member;
  return Math.round(50 * wave * 10) / 10;
}
