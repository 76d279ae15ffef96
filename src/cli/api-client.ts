import { join } from 'node:path';
import { readApiEndpoint } from '../node/api-endpoint.js';
import { loadSecretsFile } from '../supervisor/secrets.js';

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

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(120_000),
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
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${(data as { error?: string; message?: string }).error ?? (data as { message?: string }).message ?? ''}`.trim());
    return data as T;
  }
}
