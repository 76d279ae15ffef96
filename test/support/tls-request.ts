/**
 * HTTP(S) requests from tests to a member's API or etcd under TLS
 * (docs/tls.md): fetch cannot be given a CA in Node 20 without undici's
 * Agent, so tests go through the same node:http/https helper as hasup
 * (src/plugins/http-json.ts), with the cluster CA and, for etcd, a
 * member's certificate.
 */
import { readMemberTls, memberTlsFiles } from '../../src/supervisor/pki/member-files.js';
import { textRequest, type TlsClientOptions } from '../../src/plugins/http-json.js';

export interface Answer {
  status: number;
  text: string;
  json<T = unknown>(): T;
}

export async function tlsRequest(url: string, init: { method?: 'GET' | 'POST' | 'DELETE'; body?: unknown; token?: string; tls?: TlsClientOptions; timeoutMs?: number } = {}): Promise<Answer> {
  const { status, text } = await textRequest(init.method ?? (init.body === undefined ? 'GET' : 'POST'), url, AbortSignal.timeout(init.timeoutMs ?? 20_000), init.body, {
    ...(init.tls && url.startsWith('https:') ? { tls: init.tls } : {}),
    ...(init.token ? { headers: { authorization: `Bearer ${init.token}` } } : {}),
    maxBytes: 64 * 1024 * 1024,
  });
  return { status, text, json: <T>() => JSON.parse(text) as T };
}

/** A member's CA bundle, certificate and key (STATE_DIR/tls): what an etcd client must present; undefined when the member has none. */
export function memberClientTls(stateDir: string): TlsClientOptions | undefined {
  try {
    return readMemberTls(memberTlsFiles(stateDir));
  } catch {
    return undefined;
  }
}
