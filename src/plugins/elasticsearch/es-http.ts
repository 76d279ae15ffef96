import { request } from 'node:http';

/**
 * One request to Elasticsearch's HTTP API on a connection of its own (no
 * pool: a periodic task leaves no socket behind, and an abort ends it
 * wherever it is). The answer's body is parsed as JSON when there is one;
 * some cluster APIs answer 200 with an empty body.
 */
const MAX_BODY_BYTES = 1024 * 1024;

export interface EsAnswer {
  status: number;
  json: unknown;
}

export function esRequest(method: 'GET' | 'POST' | 'DELETE', url: string, signal: AbortSignal): Promise<EsAnswer> {
  signal.throwIfAborted();
  return new Promise((resolve, reject) => {
    const req = request(url, { method, agent: false, signal, headers: { connection: 'close', accept: 'application/json' } });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) req.destroy(new Error(`answer from ${url} is larger than ${MAX_BODY_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.once('error', reject);
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if (text.trim() === '') return resolve({ status: res.statusCode ?? 0, json: undefined });
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
        } catch {
          reject(new Error(`${method} ${url} answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.end();
  });
}

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
 */
export async function firstAnswer(urls: string[], method: 'GET' | 'POST' | 'DELETE', path: string, timeoutMs: number): Promise<EsAnswer & { base: string }> {
  if (urls.length === 0) throw new Error('no Elasticsearch node to ask (none runs here and none is in the census)');
  const failures: string[] = [];
  let unavailable: (EsAnswer & { base: string }) | undefined;
  for (const base of urls) {
    try {
      const answer = { ...(await esRequest(method, `${base}${path}`, AbortSignal.timeout(timeoutMs))), base };
      if (answer.status < 500) return answer;
      unavailable = answer;
    } catch (err) {
      failures.push(`${base}: ${(err as Error).message}`);
    }
  }
  if (unavailable) return unavailable;
  throw new Error(`no Elasticsearch node answered (${failures.join('; ')})`);
}
