import { jsonRequest, type JsonAnswer } from '../http-json.js';
import { esRequestExtras, type EsAccess } from './access.js';

/** An answer of Elasticsearch's HTTP API (one connection per request, see http-json.ts). */
export type EsAnswer = JsonAnswer;

/** The reason in an Elasticsearch error answer, or the status. */
export function esError(answer: EsAnswer): string {
  const err = (answer.json as { error?: { type?: string; reason?: string } | string } | undefined)?.error;
  if (typeof err === 'string') return `${answer.status}: ${err}`;
  if (err && typeof err === 'object') return `${answer.status}: ${[err.type, err.reason].filter(Boolean).join(': ')}`;
  return `HTTP ${answer.status}`;
}

/**
 * Sends the request to the first node that answers, in the order given: a
 * refused or timed-out connection, or a 5xx (a node without a master, one
 * still starting), moves on to the next. Any other answer, even an error,
 * is returned: the cluster was reached and said no. When every node fails,
 * the last 5xx answer is returned, or an error naming each failure.
 * A `body` is sent as JSON; `access` (access.ts) gives the CA and user when
 * security is on.
 */
export async function firstAnswer(urls: string[], method: 'GET' | 'POST' | 'DELETE', path: string, timeoutMs: number, body?: unknown, access?: EsAccess): Promise<EsAnswer & { base: string }> {
  if (urls.length === 0) throw new Error('no Elasticsearch node to ask (none runs here and none is in the census)');
  const extras = esRequestExtras(access);
  const failures: string[] = [];
  let unavailable: (EsAnswer & { base: string }) | undefined;
  for (const base of urls) {
    try {
      const answer = { ...(await jsonRequest(method, `${base}${path}`, AbortSignal.timeout(timeoutMs), body, extras)), base };
      if (answer.status < 500) return answer;
      unavailable = answer;
    } catch (err) {
      failures.push(`${base}: ${(err as Error).message}`);
    }
  }
  if (unavailable) return unavailable;
  throw new Error(`no Elasticsearch node answered (${failures.join('; ')})`);
}
