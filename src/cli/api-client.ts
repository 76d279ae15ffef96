import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readApiEndpoint } from '../node/api-endpoint.js';
import { textRequest } from '../plugins/http-json.js';
import { memberTlsFiles } from '../supervisor/pki/member-files.js';
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

/** Answers as large as a log search or a ring with many rumors. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;

/**
 * How CLI commands reach the local daemon: through the endpoint file `hasup
 * run` writes, with the bearer token from the secrets file. Over HTTPS the
 * daemon's certificate is verified against the CA bundle the daemon
 * recorded (its member CA, docs/tls.md), or STATE_DIR/tls/ca.pem; a
 * certificate that does not verify is an error, never a retry in clear text.
 */
export class ApiClient {
  private constructor(
    readonly url: string,
    private readonly token: string,
    /** PEM CA bundle the server's certificate must chain to; undefined: the system's CAs. */
    private readonly ca: string | undefined,
  ) {}

  static fromStateDir(stateDir: string, overrides: { url?: string; secrets?: string; ca?: string } = {}): ApiClient {
    const recorded = readApiEndpoint(stateDir);
    const url = overrides.url ?? recorded.url;
    const secrets = overrides.secrets ?? recorded.secrets ?? join(stateDir, 'secrets.json');
    if (!url) throw new Error(`no hasup daemon has run with state directory ${stateDir} (no api.json); pass --state-dir or --api URL`);
    const caFile = overrides.ca ?? recorded.ca ?? memberTlsFiles(stateDir).ca;
    const ca = url.startsWith('https:') && existsSync(caFile) ? readFileSync(caFile, 'utf8') : undefined;
    return new ApiClient(url.replace(/\/$/, ''), loadSecretsFile(secrets).api_token, ca);
  }

  /** The same client for another member of the cluster (every member takes the cluster's token, and its certificate the cluster's CA). */
  at(url: string): ApiClient {
    return new ApiClient(url.replace(/\/$/, ''), this.token, this.ca);
  }

  async request<T>(method: 'GET' | 'POST', path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    let res: { status: number; text: string };
    try {
      res = await textRequest(method, `${this.url}${path}`, AbortSignal.timeout(opts.timeoutMs ?? 120_000), body, {
        headers: { authorization: `Bearer ${this.token}` },
        ...(this.ca ? { tls: { ca: this.ca } } : {}),
        maxBytes: MAX_ANSWER_BYTES,
      });
    } catch (err) {
      throw new Error(unreachable(this.url, err as NodeJS.ErrnoException));
    }
    const text = res.text;
    const ok = res.status >= 200 && res.status < 300;
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      data = { error: text };
    }
    if (!ok) {
      const d = (typeof data === 'object' && data !== null ? data : { error: String(data) }) as Record<string, unknown>;
      const why = typeof d.error === 'string' ? d.error : typeof d.message === 'string' ? d.message : '';
      throw new ApiError(`${method} ${path}: ${res.status} ${why}`.trim(), res.status, d);
    }
    return data as T;
  }
}

/** TLS errors say what failed to verify; anything else says the daemon may not run. */
export function unreachable(url: string, err: NodeJS.ErrnoException): string {
  const code = err.code ?? err.name;
  if (code === 'TimeoutError' || code === 'ABORT_ERR') return `the hasup daemon at ${url} did not answer in time`;
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    // A certificate of the right CA out of its dates: renewing it is the fix, not the CA bundle.
    const what = code === 'CERT_HAS_EXPIRED' ? 'that has expired' : 'that is not valid yet (check the clocks)';
    return `the hasup daemon at ${url} presented a certificate ${what} (${code}: ${err.message}); restarting that member's hasup issues it a new one from the cluster CA, an operator's own certificate ([tls] cert_file, [http] tls_cert) must be replaced (docs/tls.md)`;
  }
  if (/CERT|SIGNATURE|SELF_SIGNED|ISSUER|ALTNAME|UNABLE_TO_VERIFY/.test(code ?? '')) {
    return `the hasup daemon at ${url} presented a certificate this client does not trust (${code}: ${err.message}); it is checked against the member's CA bundle (STATE_DIR/tls/ca.pem, docs/tls.md)`;
  }
  return `cannot reach the hasup daemon at ${url} (${code ?? err.message}); is \`hasup run\` running?`;
}
