import { httpJson } from '../http-json.js';

/**
 * etcd's cluster membership calls on the v3 JSON gateway
 * (/v3/cluster/member/list|add|remove), asked of the first of several client
 * URLs that answers. Member ids are uint64 and stay decimal strings (as the
 * gateway gives them) so no precision is lost.
 */
export interface EtcdMemberInfo {
  /** Decimal uint64. */
  id: string;
  /** Empty for a member that was added but has not started yet. */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
}

/** etcd answered, and said no (as opposed to: nobody answered). */
export class EtcdRefused extends Error {
  constructor(
    message: string,
    /** gRPC status code from the gateway (e.g. 2 not enough started members, 9 peer URL exists, 14 unhealthy). */
    readonly code: number | undefined,
  ) {
    super(message);
  }
}

export const MEMBER_CALL_TIMEOUT_MS = 5000;

interface RawMember {
  ID?: string;
  name?: string;
  peerURLs?: string[];
  clientURLs?: string[];
}

function member(raw: RawMember): EtcdMemberInfo {
  return { id: String(raw.ID ?? ''), name: raw.name ?? '', peerUrls: raw.peerURLs ?? [], clientUrls: raw.clientURLs ?? [] };
}

/**
 * POSTs `body` to `path` on each URL in turn until one answers. An answer
 * with an error is final (etcd decided); only unreachable or timed-out URLs
 * move on to the next one.
 */
async function call(urls: string[], path: string, body: unknown, timeoutMs: number): Promise<unknown> {
  if (urls.length === 0) throw new Error('no etcd client URL to ask');
  const failures: string[] = [];
  for (const url of urls) {
    let answer: { status: number; json: unknown };
    const signal = AbortSignal.timeout(timeoutMs);
    try {
      answer = await httpJson(`${url}${path}`, signal, body);
    } catch (err) {
      failures.push(`${url}: ${signal.aborted ? `no answer within ${timeoutMs} ms` : (err as Error).message}`);
      continue;
    }
    if (answer.status === 200) return answer.json;
    const e = answer.json as { error?: string; message?: string; code?: number };
    throw new EtcdRefused(`etcd at ${url}: ${e.message ?? e.error ?? `HTTP ${answer.status}`}`, e.code);
  }
  throw new Error(`no etcd member answered (${failures.join('; ')})`);
}

/** The members as the answering etcd knows them (served locally: works without quorum). */
export async function listMembers(urls: string[], timeoutMs = MEMBER_CALL_TIMEOUT_MS): Promise<EtcdMemberInfo[]> {
  const json = (await call(urls, '/v3/cluster/member/list', {}, timeoutMs)) as { members?: RawMember[] };
  return (json.members ?? []).map(member);
}

/** Adds a voting member; returns it and the member list right after the change. */
export async function addMember(urls: string[], peerUrl: string, timeoutMs = MEMBER_CALL_TIMEOUT_MS): Promise<{ added: EtcdMemberInfo; members: EtcdMemberInfo[] }> {
  const json = (await call(urls, '/v3/cluster/member/add', { peerURLs: [peerUrl] }, timeoutMs)) as { member?: RawMember; members?: RawMember[] };
  if (!json.member?.ID) throw new Error('etcd answered member/add without the new member');
  return { added: member(json.member), members: (json.members ?? []).map(member) };
}

export async function removeMember(urls: string[], id: string, timeoutMs = MEMBER_CALL_TIMEOUT_MS): Promise<EtcdMemberInfo[]> {
  const json = (await call(urls, '/v3/cluster/member/remove', { ID: id }, timeoutMs)) as { members?: RawMember[] };
  return (json.members ?? []).map(member);
}

/** etcd prints member ids in hex (etcdctl, logs); the gateway gives decimal. */
export function hexMemberId(decimal: string): string {
  return /^\d+$/.test(decimal) ? BigInt(decimal).toString(16) : decimal;
}
