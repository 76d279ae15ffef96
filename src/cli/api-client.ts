import { join } from 'node:path';
import { readApiEndpoint } from '../node/api-endpoint.js';
import { loadSecretsFile } from '../supervisor/secrets.js';

/** A non-2xx answer: its status and body (the API's errors are `{ error, ... }`). */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
  }
}

export interface RequestOptions {
  /** Give up after this long (default 120 s). */
  timeoutMs?: number;
}

/** How CLI commands reach the local daemon: through the endpoint file `hasup run` writes, with the bearer token from the secrets file. */
export class ApiClient {
  private constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  static fromStateDir(stateDir: string, overrides: { url?: string; secrets?: string } = {}): ApiClient {
    const recorded = readApiEndpoint(stateDir);
    const url = overrides.url ?? recorded.url;
    const secrets = overrides.secrets ?? recorded.secrets ?? join(stateDir, 'secrets.json');
    if (!url) throw new Error(`no hasup daemon has run with state directory ${stateDir} (no api.json); pass --state-dir or --api URL`);
    return new ApiClient(url.replace(/\/$/, ''), loadSecretsFile(secrets).api_token);
  }

  /** The same client for another member of the cluster (every member takes the cluster's token). */
  at(url: string): ApiClient {
    return new ApiClient(url.replace(/\/$/, ''), this.token);
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 120_000),
      });
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
      throw new Error(`cannot reach the hasup daemon at ${this.url} (${cause}); is \`hasup run\` running?`);
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
    if (!res.ok) {
      const d = (typeof data === 'object' && data !== null ? data : { error: String(data) }) as Record<string, unknown>;
      const why = typeof d.error === 'string' ? d.error : typeof d.message === 'string' ? d.message : '';
      throw new ApiError(`${method} ${path}: ${res.status} ${why}`.trim(), res.status, d);
    }
    return data as T;
  }
}
