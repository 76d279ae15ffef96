import { request } from 'node:http';

/**
 * One JSON request to etcd's HTTP endpoints on a connection of its own
 * (no keep-alive pool): a health check leaves no socket behind, and an
 * abort destroys the request wherever it is.
 */
const MAX_BODY_BYTES = 1024 * 1024;

export async function httpJson(url: string, signal: AbortSignal, body?: unknown): Promise<{ status: number; json: unknown }> {
  signal.throwIfAborted();
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: payload ? 'POST' : 'GET',
      agent: false,
      signal,
      headers: { connection: 'close', accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
    });
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
        try {
          resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) });
        } catch {
          reject(new Error(`${url} answered ${res.statusCode} with non-JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    req.end(payload);
  });
}
