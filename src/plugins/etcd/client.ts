/**
 * hasup's one etcd client, over etcd's v3 JSON gateway (/v3/...): leases,
 * leader keys and cluster membership for the HA store (ha-store.ts), the
 * etcd formation (membership.ts) and the etcd driver's health check
 * (driver.ts). Range, put, delete, txn with compares on version/value/lease,
 * lease grant/keep-alive/revoke/time-to-live, member list/add/remove, a
 * prefix watch, and the calls about one member (health, status, leader
 * transfer). Keys and values are strings here and base64 on the wire; 64-bit
 * numbers (revisions, lease ids, member ids) arrive as decimal strings:
 * revisions become numbers (exact up to 2^53), ids stay strings. Why not the
 * etcd3 package: docs/architecture.md, "Talking to etcd".
 *
 * Several endpoints may be given (a function, so the list can follow the
 * cluster's membership). An etcd on this host comes first (no lossy network
 * between us), then the last endpoint that answered. Calls that may safely
 * reach etcd twice (reads, lease keep-alive, time-to-live, revoke, member
 * list) are hedged: see hedgedCall. Puts and deletes are not (a copy that
 * arrived late could undo a newer write): they try endpoints in turn.
 * Transactions and lease grants move on only when the request never left.
 * Membership changes take the first answer etcd gives, and move on only
 * when an endpoint gives none. Every call has a deadline. Every failure is
 * an EtcdError (EtcdUnavailable when no answer came). Error messages name
 * the endpoint without any
 * userinfo part and never carry request bodies (values may be private to
 * the cluster).
 */
import { Agent, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { networkInterfaces } from 'node:os';
import { openRequest, readText, textRequest, type TlsClientOptions } from '../http-json.js';
import { explainTlsError } from '../tls-errors.js';

export interface EtcdClientOptions {
  /** Client URLs (http://IP:2379); read on every call. */
  endpoints: () => string[];
  /** Deadline of one call across all endpoints it tries, unless the call gives its own. */
  timeoutMs?: number;
  /** How long a hedged call waits for an answer before it also asks the next endpoint (default 100 ms). */
  hedgeDelayMs?: number;
  /**
   * true (the default): requests share keep-alive connections (a node:http
   * Agent, see keepAlivePool), so a call need not open one (a SYN to lose)
   * and a hedged attempt that lost the race keeps its connection; close()
   * lets go of them. false: every request, a watch too, on a connection of
   * its own, closed after the answer and at once on abort, so an occasional
   * or periodic call (the health check, the formation) leaves no socket.
   * No path uses fetch, whose undici costs some 18 MB of RSS
   * (docs/architecture.md, "Talking to etcd").
   */
  keepAlive?: boolean;
  /**
   * For https:// endpoints (docs/tls.md): the CA bundle etcd's certificate
   * must chain to (its address in the certificate), and the member's
   * certificate and key, which etcd's client-cert-auth asks for. Read on
   * every call, as the endpoints are.
   */
  tls?: () => TlsClientOptions | undefined;
}

export interface CallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface KeyValue {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Lease id (decimal string), '0' when the key has no lease. */
  lease: string;
}

export interface RangeResult {
  kvs: KeyValue[];
  /** Store revision the answer reflects. */
  revision: number;
}

export type Compare =
  | { key: string; target: 'version'; result: CompareResult; version: number }
  | { key: string; target: 'value'; result: CompareResult; value: string }
  | { key: string; target: 'lease'; result: CompareResult; lease: string }
  | { key: string; target: 'mod'; result: CompareResult; modRevision: number };
export type CompareResult = 'equal' | 'not_equal' | 'greater' | 'less';

export type TxnOp =
  | { put: { key: string; value: string; lease?: string } }
  | { delete: { key: string; prefix?: boolean } }
  | { range: { key: string; prefix?: boolean } };

export type TxnResponse = { put: { revision: number } } | { delete: { deleted: number } } | { range: RangeResult };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  responses: TxnResponse[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KeyValue;
}

/** A member of the etcd cluster, as member list/add/remove give it. */
export interface EtcdMember {
  /** Decimal uint64 (etcdctl and etcd's logs print it in hex: hexId). */
  id: string;
  /** Empty for a member that was added but has not started yet. */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** One member's view of the cluster (maintenance/status). Ids are decimal uint64, '' when absent. */
export interface EtcdStatus {
  memberId: string;
  /** The member it takes for raft's leader; '' when it knows none. */
  leader: string;
  clusterId: string;
  version: string | undefined;
  /** NaN when etcd did not say. */
  dbSizeBytes: number;
  raftTerm: number;
  raftIndex: number;
  raftAppliedIndex: number;
  /** Alarms and errors the member reports (e.g. "NOSPACE"). */
  errors: string[];
}

/**
 * A failed etcd call: etcd answered with an error (`code` is its gRPC status
 * code: 5 not found, 9 peer URL exists, 14 unavailable, ...), or, as
 * EtcdUnavailable, nobody answered. `reason` is the message without the
 * call and endpoint it names.
 */
export class EtcdError extends Error {
  readonly reason: string;

  constructor(
    message: string,
    readonly code: number | undefined,
    readonly endpoint: string,
    reason?: string,
  ) {
    super(message);
    this.reason = reason ?? message;
  }
}

/** No endpoint answered in time, or none was reachable: etcd said nothing, so `code` is undefined. */
export class EtcdUnavailable extends EtcdError {
  constructor(message: string, endpoint = '', reason?: string) {
    super(message, undefined, endpoint, reason);
  }
}

const DEFAULT_TIMEOUT_MS = 2000;
/** gRPC UNAVAILABLE: e.g. "etcdserver: no leader"; another member may do better. */
const GRPC_UNAVAILABLE = 14;
/** Errors that mean the request never reached the server, so even a write may go elsewhere. */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND']);
const MAX_WATCH_BUFFER = 4 * 1024 * 1024;
/**
 * A hedged call sends to the next endpoint when no answer came within this
 * long: far above a round trip on a LAN, well below TCP's 200 ms minimum
 * retransmission timeout, which one lost segment costs.
 */
const HEDGE_DELAY_MS = 100;
/** A local etcd that failed is not put first again for this long. */
const LOCAL_DEMOTION_MS = 5000;
/** How long the host's own addresses are trusted before they are read again. */
const LOCAL_ADDRESSES_TTL_MS = 10_000;
/** An idle keep-alive connection is closed after this long: fetch's (undici's) default keepAliveTimeout, which the client had before. */
const IDLE_CONNECTION_MS = 4000;
/** TCP keep-alive probes on a pooled connection start after this much silence (undici's keepAliveInitialDelay, as before). */
const TCP_KEEPALIVE_DELAY_MS = 60_000;

/**
 * The keep-alive connections of the clients made with keepAlive true: one
 * node:http Agent, shared by those clients as fetch's global pool was, so a
 * connection that a hedged attempt kept alive serves the next call of any
 * of them. Each such client holds it from its first request to close(); the
 * last close destroys it with its sockets (and the next request makes a new
 * one). An idle socket is unref'd: it never keeps the process alive.
 */
const keepAlivePool: { agent: Agent | undefined; tlsAgent: { agent: HttpsAgent; tls: TlsClientOptions } | undefined; holders: number } = { agent: undefined, tlsAgent: undefined, holders: 0 };

function holdKeepAliveAgent(): void {
  keepAlivePool.holders++;
}

/**
 * The pool's agent for `url`: node:http's, or for https:// a node:https
 * Agent carrying the TLS options (a TLS session is resumed on a new
 * connection to the same endpoint). Every client in the process presents
 * the same member certificate; when the files change, the old TLS pool is
 * dropped and a new one made.
 */
function pooledAgent(url: string, tls: TlsClientOptions | undefined): Agent {
  const options = { keepAlive: true, keepAliveMsecs: TCP_KEEPALIVE_DELAY_MS, timeout: IDLE_CONNECTION_MS };
  if (!url.startsWith('https:')) return (keepAlivePool.agent ??= new Agent(options));
  const current = keepAlivePool.tlsAgent;
  if (current && sameTls(current.tls, tls)) return current.agent;
  current?.agent.destroy();
  const agent = new HttpsAgent({ ...options, ...(tls ?? {}) });
  keepAlivePool.tlsAgent = { agent, tls: tls ?? { ca: '' } };
  return agent;
}

function sameTls(a: TlsClientOptions, b: TlsClientOptions | undefined): boolean {
  return a.ca === (b?.ca ?? '') && a.cert === b?.cert && a.key === b?.key;
}

function releaseKeepAliveAgent(): void {
  keepAlivePool.holders = Math.max(0, keepAlivePool.holders - 1);
  if (keepAlivePool.holders > 0) return;
  keepAlivePool.agent?.destroy();
  keepAlivePool.agent = undefined;
  keepAlivePool.tlsAgent?.agent.destroy();
  keepAlivePool.tlsAgent = undefined;
}

/** How a call may use several endpoints. */
type CallMode =
  /** Duplicates are harmless: several endpoints may be asked at once. */
  | 'hedged'
  /** One endpoint after another, moving on after a timeout or an "unavailable" answer. */
  | 'failover'
  /** Moves on only when the request provably never left. */
  | 'once'
  /**
   * One endpoint after another, each given the call's whole timeout; any
   * answer, an error too, is final: moves on only when an endpoint gives
   * none. For membership changes, which etcd decides once for the cluster.
   */
  | 'each';

/** What one attempt at one endpoint came to. */
type AttemptOutcome =
  | { kind: 'answer'; json: Record<string, unknown> }
  /** etcd answered with an error that another member would answer alike. */
  | { kind: 'etcd-error'; error: EtcdError }
  /** etcd answered "unavailable" (e.g. no leader): another member may do better. */
  | { kind: 'unavailable'; reason: string; error: EtcdError }
  /** No answer; `sent`: the request may have reached etcd. */
  | { kind: 'failed'; reason: string; sent: boolean };

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

/** The first key after every key starting with `prefix` (etcd's range_end for a prefix). */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, 'utf8');
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i]! < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i]! += 1;
      return end.toString('base64');
    }
  }
  return Buffer.from([0]).toString('base64'); // every key
}

/** An endpoint as it may appear in messages: no user:password@. */
export function displayEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid endpoint)';
  }
}

interface RawKv {
  key?: string;
  value?: string;
  create_revision?: string;
  mod_revision?: string;
  version?: string;
  lease?: string;
}

function kvOf(raw: RawKv): KeyValue {
  return {
    key: unb64(raw.key),
    value: unb64(raw.value),
    createRevision: Number(raw.create_revision ?? 0),
    modRevision: Number(raw.mod_revision ?? 0),
    version: Number(raw.version ?? 0),
    lease: raw.lease ?? '0',
  };
}

interface RawMember {
  ID?: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
  isLearner?: boolean;
}

function memberOf(m: RawMember): EtcdMember {
  return { id: String(m.ID ?? ''), name: m.name ?? '', peerUrls: m.peerURLs ?? [], clientUrls: m.clientURLs ?? [], isLearner: m.isLearner === true };
}

interface RawStatus {
  header?: { member_id?: string; cluster_id?: string };
  version?: string;
  dbSize?: string;
  leader?: string;
  raftIndex?: string;
  raftTerm?: string;
  raftAppliedIndex?: string;
  errors?: unknown[];
}

function rangeOf(raw: { kvs?: RawKv[]; header?: { revision?: string } }): RangeResult {
  return { kvs: (raw.kvs ?? []).map(kvOf), revision: Number(raw.header?.revision ?? 0) };
}

function rangeRequest(key: string, prefix?: boolean): Record<string, string> {
  return prefix ? { key: b64(key), range_end: prefixEnd(key) } : { key: b64(key) };
}

function compareOf(c: Compare): Record<string, string> {
  const base = { key: b64(c.key), result: c.result.toUpperCase() };
  switch (c.target) {
    case 'version':
      return { ...base, target: 'VERSION', version: String(c.version) };
    case 'value':
      return { ...base, target: 'VALUE', value: b64(c.value) };
    case 'lease':
      return { ...base, target: 'LEASE', lease: c.lease };
    case 'mod':
      return { ...base, target: 'MOD', mod_revision: String(c.modRevision) };
  }
}

function opOf(op: TxnOp): Record<string, unknown> {
  if ('put' in op) return { request_put: { key: b64(op.put.key), value: b64(op.put.value), ...(op.put.lease && op.put.lease !== '0' ? { lease: op.put.lease } : {}) } };
  if ('delete' in op) return { request_delete_range: rangeRequest(op.delete.key, op.delete.prefix) };
  return { request_range: rangeRequest(op.range.key, op.range.prefix) };
}

interface RawTxnResponse {
  response_put?: { header?: { revision?: string } };
  response_delete_range?: { deleted?: string };
  response_range?: { kvs?: RawKv[]; header?: { revision?: string } };
}

function txnResponseOf(raw: RawTxnResponse, revision: number): TxnResponse {
  if (raw.response_put) return { put: { revision: Number(raw.response_put.header?.revision ?? revision) } };
  if (raw.response_delete_range) return { delete: { deleted: Number(raw.response_delete_range.deleted ?? 0) } };
  const range = rangeOf(raw.response_range ?? {});
  return { range: { kvs: range.kvs, revision: range.revision || revision } };
}

export class EtcdClient {
  private readonly timeoutMs: number;
  /** The endpoint that answered last: tried first next time (after a local etcd). */
  private preferred: string | undefined;
  /** When each local etcd last failed a call; it goes first again LOCAL_DEMOTION_MS later. */
  private readonly localFailedAt = new Map<string, number>();
  private localAddresses: { readAt: number; addresses: Set<string> } | undefined;
  /** This client holds the keep-alive pool (keepAlive true, from its first request to close()). */
  private holding = false;

  constructor(private readonly opts: EtcdClientOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Lets go of the keep-alive connections: when no other open client shares
   * them, every pooled socket is closed, with any request or watch still on
   * one. Safe to repeat; a client used again after close() holds the pool
   * again until it is closed again. A keepAlive false client holds nothing.
   */
  close(): void {
    if (!this.holding) return;
    this.holding = false;
    releaseKeepAliveAgent();
  }

  async range(key: string, opts: CallOptions & { prefix?: boolean } = {}): Promise<RangeResult> {
    return rangeOf((await this.call('/v3/kv/range', rangeRequest(key, opts.prefix), opts, 'hedged')) as Parameters<typeof rangeOf>[0]);
  }

  async get(key: string, opts: CallOptions = {}): Promise<KeyValue | undefined> {
    return (await this.range(key, opts)).kvs[0];
  }

  async put(key: string, value: string, opts: CallOptions & { lease?: string } = {}): Promise<{ revision: number }> {
    const body = { key: b64(key), value: b64(value), ...(opts.lease && opts.lease !== '0' ? { lease: opts.lease } : {}) };
    const answer = (await this.call('/v3/kv/put', body, opts, 'failover')) as { header?: { revision?: string } };
    return { revision: Number(answer.header?.revision ?? 0) };
  }

  async delete(key: string, opts: CallOptions & { prefix?: boolean } = {}): Promise<{ deleted: number; revision: number }> {
    const answer = (await this.call('/v3/kv/deleterange', rangeRequest(key, opts.prefix), opts, 'failover')) as { deleted?: string; header?: { revision?: string } };
    return { deleted: Number(answer.deleted ?? 0), revision: Number(answer.header?.revision ?? 0) };
  }

  /**
   * One atomic transaction. Not retried on another endpoint once it may
   * have been sent: a caller that sees EtcdUnavailable reads the outcome back.
   */
  async txn(t: { compare: Compare[]; success: TxnOp[]; failure?: TxnOp[] }, opts: CallOptions = {}): Promise<TxnResult> {
    const body = { compare: t.compare.map(compareOf), success: t.success.map(opOf), failure: (t.failure ?? []).map(opOf) };
    const answer = (await this.call('/v3/kv/txn', body, opts, 'once')) as { succeeded?: boolean; header?: { revision?: string }; responses?: RawTxnResponse[] };
    const revision = Number(answer.header?.revision ?? 0);
    return { succeeded: answer.succeeded === true, revision, responses: (answer.responses ?? []).map((r) => txnResponseOf(r, revision)) };
  }

  /** A new lease of `ttlSeconds` (etcd may raise it to its minimum); returns its id and granted TTL. */
  async leaseGrant(ttlSeconds: number, opts: CallOptions = {}): Promise<{ id: string; ttl: number }> {
    const answer = (await this.call('/v3/lease/grant', { TTL: String(ttlSeconds) }, opts, 'once')) as { ID?: string; TTL?: string; error?: string };
    if (!answer.ID) throw new EtcdError('etcd granted no lease', undefined, '');
    return { id: answer.ID, ttl: Number(answer.TTL ?? ttlSeconds) };
  }

  /** Renews a lease once; returns the TTL it now has, 0 when the lease no longer exists. */
  async leaseKeepAliveOnce(id: string, opts: CallOptions = {}): Promise<number> {
    const answer = (await this.call('/v3/lease/keepalive', { ID: id }, opts, 'hedged')) as { result?: { TTL?: string }; error?: { message?: string; grpc_code?: number; http_code?: number } };
    if (answer.error) throw new EtcdError(`etcd lease keep-alive: ${answer.error.message ?? 'error'}`, answer.error.grpc_code, '');
    return Number(answer.result?.TTL ?? 0);
  }

  /** Ends a lease (and deletes its keys). A lease already gone counts as revoked. */
  async leaseRevoke(id: string, opts: CallOptions = {}): Promise<void> {
    try {
      await this.call('/v3/lease/revoke', { ID: id }, opts, 'hedged');
    } catch (err) {
      if (err instanceof EtcdError && /lease not found/.test(err.message)) return;
      throw err;
    }
  }

  /** Remaining TTL of a lease in seconds; -1 when it does not exist. */
  async leaseTimeToLive(id: string, opts: CallOptions = {}): Promise<number> {
    const answer = (await this.call('/v3/lease/timetolive', { ID: id }, opts, 'hedged')) as { TTL?: string };
    return Number(answer.TTL ?? -1);
  }

  /** The members as the answering etcd knows them (served locally: works without quorum). */
  async memberList(opts: CallOptions = {}): Promise<EtcdMember[]> {
    const answer = (await this.call('/v3/cluster/member/list', {}, opts, 'hedged')) as { members?: RawMember[] };
    return (answer.members ?? []).map(memberOf);
  }

  /** Adds a voting member; returns it and the member list right after the change. */
  async memberAdd(peerUrl: string, opts: CallOptions = {}): Promise<{ added: EtcdMember; members: EtcdMember[] }> {
    const answer = (await this.call('/v3/cluster/member/add', { peerURLs: [peerUrl] }, opts, 'each')) as { member?: RawMember; members?: RawMember[] };
    if (!answer.member?.ID) throw new EtcdError('etcd answered member/add without the new member', undefined, '');
    return { added: memberOf(answer.member), members: (answer.members ?? []).map(memberOf) };
  }

  /** Removes a member; returns the member list right after the change. */
  async memberRemove(id: string, opts: CallOptions = {}): Promise<EtcdMember[]> {
    const answer = (await this.call('/v3/cluster/member/remove', { ID: id }, opts, 'each')) as { members?: RawMember[] };
    return (answer.members ?? []).map(memberOf);
  }

  /** Sets a member's peer URLs (etcd's member update); returns the member list right after the change. */
  async memberUpdate(id: string, peerUrls: string[], opts: CallOptions = {}): Promise<EtcdMember[]> {
    const answer = (await this.call('/v3/cluster/member/update', { ID: id, peerURLs: peerUrls }, opts, 'each')) as { members?: RawMember[] };
    return (answer.members ?? []).map(memberOf);
  }

  /** The member at `endpoint` (no failover): its ids, raft position and alarms. */
  async statusAt(endpoint: string, opts: CallOptions = {}): Promise<EtcdStatus> {
    const answer = (await this.callAt(endpoint, '/v3/maintenance/status', {}, opts)) as RawStatus;
    return {
      memberId: answer.header?.member_id ?? '',
      leader: answer.leader ?? '',
      clusterId: answer.header?.cluster_id ?? '',
      version: answer.version,
      dbSizeBytes: Number(answer.dbSize ?? NaN),
      raftTerm: Number(answer.raftTerm ?? NaN),
      raftIndex: Number(answer.raftIndex ?? NaN),
      raftAppliedIndex: Number(answer.raftAppliedIndex ?? NaN),
      errors: Array.isArray(answer.errors) ? answer.errors.map(String) : [],
    };
  }

  /**
   * GET /health of the member at `endpoint` (no failover): whether it says it
   * is healthy and, when not, why. etcd answers 503 with the same JSON when
   * unhealthy, so the HTTP status does not matter here.
   */
  async healthAt(endpoint: string, opts: CallOptions = {}): Promise<{ healthy: boolean; reason: string | undefined }> {
    const { json } = await this.requestAt(endpoint, '/health', undefined, opts);
    return { healthy: json.health === 'true', reason: typeof json.reason === 'string' && json.reason !== '' ? json.reason : undefined };
  }

  /** Asks etcd's leader (at `endpoint`) to hand its leadership to member `targetId`. */
  async moveLeader(endpoint: string, targetId: string, opts: CallOptions = {}): Promise<void> {
    await this.callAt(endpoint, '/v3/maintenance/transfer-leadership', { targetID: targetId }, opts);
  }

  /**
   * Watches `key` (or every key under it with `prefix`) from `startRevision`
   * (default: now) and calls `onEvents` for each batch. Resolves when the
   * stream ends (the endpoint went away, `signal` aborted); the caller
   * decides whether to watch again. Rejects only when no endpoint accepts.
   */
  async watch(key: string, opts: { prefix?: boolean; startRevision?: number; signal: AbortSignal; connectTimeoutMs?: number }, onEvents: (events: WatchEvent[], revision: number) => void): Promise<void> {
    const create = { ...rangeRequest(key, opts.prefix), ...(opts.startRevision ? { start_revision: String(opts.startRevision) } : {}) };
    const res = await this.open('/v3/watch', { create_request: create }, opts.signal, opts.connectTimeoutMs ?? this.timeoutMs);
    let buffer = '';
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res) {
        buffer += decoder.decode(chunk as Buffer, { stream: true });
        if (buffer.length > MAX_WATCH_BUFFER) return;
        // The gateway writes one JSON object per message, each ending in a newline.
        for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
          const line = buffer.slice(0, nl).trim();
          buffer = buffer.slice(nl + 1);
          if (line === '') continue;
          let message: { result?: { header?: { revision?: string }; events?: Array<{ type?: string; kv?: RawKv }>; canceled?: boolean } };
          try {
            message = JSON.parse(line) as typeof message;
          } catch {
            return;
          }
          const result = message.result;
          if (!result || result.canceled) return;
          const events = (result.events ?? []).map((e) => ({ type: e.type === 'DELETE' ? ('delete' as const) : ('put' as const), kv: kvOf(e.kv ?? {}) }));
          if (events.length > 0) onEvents(events, Number(result.header?.revision ?? 0));
        }
      }
      // The stream ended.
    } catch {
      // Aborted or the connection broke: the stream is over either way.
    } finally {
      // A stream left unread (bad line, cancelled, too long) goes with its connection; an ended one is untouched.
      res.destroy();
    }
  }

  // ---- transport -----------------------------------------------------------

  private endpointsInOrder(): string[] {
    // User info is never sent (etcd's gateway does not take it) nor shown.
    const list = [...new Set(this.opts.endpoints().map(normalizeEndpoint).filter((e): e is string => e !== undefined))];
    if (list.length === 0) throw new EtcdUnavailable('no etcd endpoints are known');
    const now = Date.now();
    return orderEndpoints(list, this.preferred, (e) => this.isLocal(e) && !(now - (this.localFailedAt.get(e) ?? -Infinity) < LOCAL_DEMOTION_MS));
  }

  private isLocal(endpoint: string): boolean {
    const host = endpointHost(endpoint);
    return host !== undefined && isLocalHost(host, () => this.hostAddresses());
  }

  private hostAddresses(): Set<string> {
    const now = Date.now();
    if (!this.localAddresses || now - this.localAddresses.readAt > LOCAL_ADDRESSES_TTL_MS) {
      const addresses = new Set<string>();
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) addresses.add(a.address);
      this.localAddresses = { readAt: now, addresses };
    }
    return this.localAddresses.addresses;
  }

  private noteFailure(endpoint: string): void {
    if (this.isLocal(endpoint)) this.localFailedAt.set(endpoint, Date.now());
  }

  private async call(path: string, body: unknown, opts: CallOptions, mode: CallMode): Promise<unknown> {
    return await (mode === 'hedged' ? this.hedgedCall(path, body, opts) : this.sequentialCall(path, body, opts, mode));
  }

  /**
   * Asks the first endpoint; whenever HEDGE_DELAY_MS pass without an answer,
   * also asks the next one, and a failed attempt (refused, "unavailable")
   * moves on at once. The first answer wins. Under packet loss this keeps
   * a call inside its deadline: one lost segment costs a request at least
   * TCP's 200 ms retransmission timeout and a lost SYN a whole second,
   * while the other endpoints' paths are very likely clear. Attempts that
   * lost the race are not aborted but run out (until the call's deadline
   * at most): aborting a request destroys its keep-alive connection, and the
   * next call to that endpoint would need a new one, with a SYN to lose.
   */
  private hedgedCall(path: string, body: unknown, opts: CallOptions): Promise<unknown> {
    const endpoints = this.endpointsInOrder();
    const budgetMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = AbortSignal.timeout(budgetMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, deadline]) : deadline;
    // Every endpoint gets asked before the deadline, however short the deadline.
    const hedgeMs = Math.min(this.opts.hedgeDelayMs ?? HEDGE_DELAY_MS, Math.floor(budgetMs / endpoints.length));
    return new Promise((resolve, reject) => {
      const failures: string[] = [];
      const pending = new Set<string>();
      let next = 0;
      let settled = false;
      let hedge: NodeJS.Timeout | undefined;
      const settle = (outcome: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(hedge);
        signal.removeEventListener('abort', onDeadline);
        outcome();
      };
      const unavailable = () => new EtcdUnavailable(`etcd ${path}: ${failures.join('; ')}`);
      function onDeadline(): void {
        if (opts.signal?.aborted) return settle(() => reject(new EtcdUnavailable(`etcd ${path}: cancelled`)));
        for (const endpoint of pending) failures.push(`${displayEndpoint(endpoint)}: no answer within ${budgetMs} ms`);
        settle(() => reject(unavailable()));
      }
      const launch = (): void => {
        clearTimeout(hedge);
        if (settled) return;
        if (next >= endpoints.length) {
          if (pending.size === 0) settle(() => reject(unavailable()));
          return;
        }
        const endpoint = endpoints[next++]!;
        pending.add(endpoint);
        void this.attempt(endpoint, path, body, signal).then((outcome) => {
          pending.delete(endpoint);
          if (settled) return; // lost the race, or the deadline passed: nobody waits for it
          if (outcome.kind === 'answer' || outcome.kind === 'etcd-error') {
            this.preferred = endpoint;
            settle(() => (outcome.kind === 'answer' ? resolve(outcome.json) : reject(outcome.error)));
            return;
          }
          this.noteFailure(endpoint);
          failures.push(`${displayEndpoint(endpoint)}: ${outcome.reason}`);
          launch();
        });
        if (next < endpoints.length) hedge = setTimeout(launch, hedgeMs);
      };
      if (signal.aborted) return onDeadline();
      signal.addEventListener('abort', onDeadline, { once: true });
      launch();
    });
  }

  /**
   * POSTs `body` to `path`, trying endpoints in turn until one answers
   * within the call's deadline. With `failover` a call also moves on after
   * a timeout or an "unavailable" answer; with `once` only when the request
   * provably never left (connection refused, no route); with `each` after
   * any attempt that got no answer, each attempt having the whole timeout.
   */
  private async sequentialCall(path: string, body: unknown, opts: CallOptions, mode: 'failover' | 'once' | 'each'): Promise<unknown> {
    const endpoints = this.endpointsInOrder();
    const budgetMs = opts.timeoutMs ?? this.timeoutMs;
    const deadline = Date.now() + budgetMs;
    const failures: string[] = [];
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[i]!;
      const left = deadline - Date.now();
      if (left <= 0 && mode !== 'each') break;
      // Leave time for the endpoints after this one: a hung member must not eat the whole deadline.
      const remaining = endpoints.length - i;
      const attemptMs = mode === 'each' ? budgetMs : remaining > 1 ? Math.max(Math.min(left, 150), Math.floor(left / 2)) : left;
      const timeout = AbortSignal.timeout(attemptMs);
      const outcome = await this.attempt(endpoint, path, body, opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout);
      if (opts.signal?.aborted) throw new EtcdUnavailable(`etcd ${path}: cancelled`);
      if (outcome.kind === 'answer') {
        this.preferred = endpoint;
        return outcome.json;
      }
      if (outcome.kind === 'etcd-error' || (outcome.kind === 'unavailable' && mode !== 'failover')) {
        this.preferred = endpoint;
        throw outcome.error;
      }
      this.noteFailure(endpoint);
      failures.push(`${displayEndpoint(endpoint)}: ${timeout.aborted ? `no answer within ${attemptMs} ms` : outcome.reason}`);
      if (mode === 'once' && outcome.kind === 'failed' && outcome.sent) break;
    }
    throw new EtcdUnavailable(`etcd ${path}: ${failures.length > 0 ? failures.join('; ') : 'deadline passed before any endpoint was tried'}`);
  }

  /** An error code in words; when etcd refused this member's certificate, also whether it is out of its dates. */
  private explain(code: string): string {
    let cert: string | undefined;
    try {
      cert = this.opts.tls?.()?.cert;
    } catch {
      cert = undefined;
    }
    return explainTlsError(code, cert, new Date());
  }

  /** One POST to one endpoint, its answer read to the end and sorted; never rejects. */
  private async attempt(endpoint: string, path: string, body: unknown, signal: AbortSignal): Promise<AttemptOutcome> {
    let res: { status: number; ok: boolean; text: () => Promise<string> };
    try {
      res = await this.send(`${endpoint}${path}`, body, signal);
    } catch (err) {
      const code = errorCode(err);
      return { kind: 'failed', reason: signal.aborted ? 'no answer in time' : this.explain(code), sent: !NOT_SENT.has(code) };
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      return { kind: 'failed', reason: `answer cut off (${errorCode(err)})`, sent: true };
    }
    let json: { error?: unknown; message?: string; code?: number } & Record<string, unknown>;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      return { kind: 'failed', reason: `HTTP ${res.status}, not JSON`, sent: true };
    }
    // Streaming calls (lease keep-alive) report errors in an `error` object of an HTTP 200 answer.
    const streamed = typeof json.error === 'object' && json.error !== null ? (json.error as { grpc_code?: number; message?: string }) : undefined;
    if (streamed?.grpc_code === GRPC_UNAVAILABLE) {
      const message = streamed.message ?? 'unavailable';
      return { kind: 'unavailable', reason: message, error: new EtcdError(`etcd ${path} at ${displayEndpoint(endpoint)}: ${message}`, GRPC_UNAVAILABLE, displayEndpoint(endpoint), message) };
    }
    if (res.ok && (json.error === undefined || typeof json.error === 'object')) return { kind: 'answer', json };
    const message = typeof json.message === 'string' ? json.message : typeof json.error === 'string' ? json.error : `HTTP ${res.status}`;
    const error = new EtcdError(`etcd ${path} at ${displayEndpoint(endpoint)}: ${message}`, json.code, displayEndpoint(endpoint), message);
    return json.code === GRPC_UNAVAILABLE ? { kind: 'unavailable', reason: message, error } : { kind: 'etcd-error', error };
  }

  /** One POST to one endpoint, for calls that are about that member. */
  private async callAt(endpoint: string, path: string, body: unknown, opts: CallOptions): Promise<unknown> {
    const { status, json, where } = await this.requestAt(endpoint, path, body, opts);
    if (status < 200 || status > 299) {
      const reason = typeof json.message === 'string' ? json.message : `HTTP ${status}`;
      throw new EtcdError(`etcd ${path} at ${where}: ${reason}`, typeof json.code === 'number' ? json.code : undefined, where, reason);
    }
    return json;
  }

  /** One request to one endpoint (GET without a body, else POST), its JSON answer whatever the HTTP status. */
  private async requestAt(endpoint: string, path: string, body: unknown, opts: CallOptions): Promise<{ status: number; json: Record<string, unknown>; where: string }> {
    const url = normalizeEndpoint(endpoint);
    if (!url) throw new EtcdUnavailable('invalid etcd endpoint');
    const where = displayEndpoint(url);
    const timeout = AbortSignal.timeout(opts.timeoutMs ?? this.timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    let res: { status: number };
    let text: string;
    try {
      const answer = await this.send(`${url}${path}`, body, signal);
      res = answer;
      text = await answer.text();
    } catch (err) {
      const reason = timeout.aborted ? 'no answer in time' : this.explain(errorCode(err));
      throw new EtcdUnavailable(`etcd ${path} at ${where}: ${reason}`, where, reason);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (typeof json !== 'object' || json === null) {
      const reason = `HTTP ${res.status}, not JSON`;
      throw new EtcdError(`etcd ${path} at ${where}: ${reason}`, undefined, where, reason);
    }
    return { status: res.status, json: json as Record<string, unknown>, where };
  }

  /**
   * One HTTP exchange (GET without a body, else a JSON POST): over the
   * keep-alive pool, or with keepAlive false on a connection of its own.
   * Rejects when no answer came; `text` rejects when the answer broke off.
   * As with fetch before: the body is read whether or not anyone still
   * waits for it, so a request that ran out keeps its connection, and only
   * `signal` (the call's deadline, the caller's abort) cuts a request off.
   */
  private async send(url: string, body: unknown, signal: AbortSignal): Promise<{ status: number; ok: boolean; text: () => Promise<string> }> {
    if (this.opts.keepAlive === false) {
      const answer = await textRequest(body === undefined ? 'GET' : 'POST', url, signal, body, { tls: this.opts.tls?.() });
      return { status: answer.status, ok: answer.status >= 200 && answer.status <= 299, text: () => Promise.resolve(answer.text) };
    }
    const res = await openRequest(body === undefined ? 'GET' : 'POST', url, signal, this.keepAliveAgent(url), body);
    const text = readText(res);
    text.catch(() => undefined); // read to the end even when nobody asks for it; its caller sees the error
    const status = res.statusCode ?? 0;
    return { status, ok: status >= 200 && status <= 299, text: () => text };
  }

  private keepAliveAgent(url: string): Agent {
    if (!this.holding) {
      this.holding = true;
      holdKeepAliveAgent();
    }
    return pooledAgent(url, this.opts.tls?.());
  }

  /** Opens a streaming request on the first endpoint that accepts it. */
  private async open(path: string, body: unknown, signal: AbortSignal, connectTimeoutMs: number): Promise<IncomingMessage> {
    const failures: string[] = [];
    for (const endpoint of this.endpointsInOrder()) {
      if (signal.aborted) break;
      const connect = new AbortController();
      const timer = setTimeout(() => connect.abort(), connectTimeoutMs);
      const onAbort = () => connect.abort();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const url = `${endpoint}${path}`;
        const res = await openRequest('POST', url, connect.signal, this.opts.keepAlive === false ? false : this.keepAliveAgent(url), body, this.opts.tls?.());
        clearTimeout(timer);
        const status = res.statusCode ?? 0;
        if (status >= 200 && status <= 299) {
          this.preferred = endpoint;
          // From here the caller's signal alone ends the stream.
          return res;
        }
        signal.removeEventListener('abort', onAbort);
        res.destroy();
        failures.push(`${displayEndpoint(endpoint)}: HTTP ${status}`);
      } catch (err) {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        failures.push(`${displayEndpoint(endpoint)}: ${connect.signal.aborted && !signal.aborted ? 'no answer in time' : this.explain(errorCode(err))}`);
      }
    }
    throw new EtcdUnavailable(`etcd ${path}: ${failures.join('; ') || 'cancelled'}`);
  }
}

/**
 * The order to try endpoints in: the ones `local` picks (an etcd on this
 * host, reached without crossing the network) first, then from `preferred`
 * (the one that answered last) round the list; stable otherwise.
 */
export function orderEndpoints(list: string[], preferred: string | undefined, local: (endpoint: string) => boolean): string[] {
  const at = preferred ? list.indexOf(preferred) : -1;
  const rotated = at > 0 ? [...list.slice(at), ...list.slice(0, at)] : list;
  const first = rotated.filter(local);
  return first.length === 0 ? rotated : [...first, ...rotated.filter((e) => !first.includes(e))];
}

/** A loopback name or address, or one of `hostAddresses` (read only when needed). */
export function isLocalHost(host: string, hostAddresses: () => Set<string>): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.') || hostAddresses().has(host);
}

/** The host of a client or peer URL, an IPv6 address without its brackets; undefined for a malformed URL. */
export function endpointHost(url: string): string | undefined {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return undefined;
  }
}

/** etcd prints member and cluster ids in hex (etcdctl, logs); the gateway gives decimal. Undefined for anything but a decimal id. */
export function hexId(decimal: string | undefined): string | undefined {
  return decimal !== undefined && /^\d+$/.test(decimal) ? BigInt(decimal).toString(16) : undefined;
}

function normalizeEndpoint(url: string): string | undefined {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return undefined;
  }
}

/** The system error code of a failed request (fetch puts it in `cause`, node:http on the error itself). */
function errorCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const own = (err as { code?: unknown }).code;
  return cause?.code ?? (typeof own === 'string' ? own : undefined) ?? cause?.message ?? (err as Error).name ?? 'error';
}
