import { request as httpRequest, type Agent, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';

/**
 * One JSON request to a service's HTTP API (etcd, Elasticsearch) on a
 * connection of its own (no keep-alive pool): a health check or periodic
 * task leaves no socket behind, and an abort destroys the request wherever
 * it is. (openRequest, below, can use a keep-alive pool instead.)
 */
const MAX_BODY_BYTES = 1024 * 1024;

/**
 * What an https: URL is verified against and presents (docs/tls.md): the
 * CA bundle the server's certificate must chain to (its address must be in
 * the certificate), and the member's own certificate and key where the
 * server asks for one (etcd's client-cert-auth). PEM text.
 */
export interface TlsClientOptions {
  ca: string;
  cert?: string;
  key?: string;
}

/** node:http or node:https by the URL's scheme; an https: URL without TLS options uses the system's CAs. */
function request(url: string, options: RequestOptions, tls?: TlsClientOptions): ClientRequest {
  if (!url.startsWith('https:')) return httpRequest(url, options);
  return httpsRequest(url, { ...options, ...(tls ?? {}) });
}

export interface RequestExtras {
  tls?: TlsClientOptions;
  headers?: Record<string, string>;
  /** Answers larger than this are refused (default 1 MB). */
  maxBytes?: number;
}

export interface JsonAnswer {
  status: number;
  /** The parsed body; undefined when the body was empty (some cluster APIs answer 200 with nothing). */
  json: unknown;
}

/** One request, its answer as text (up to 1 MB); rejects when no whole answer came. */
export function textRequest(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, signal: AbortSignal, body?: unknown, extras: RequestExtras = {}): Promise<{ status: number; text: string }> {
  signal.throwIfAborted();
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const maxBytes = extras.maxBytes ?? MAX_BODY_BYTES;
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent: false,
        signal,
        headers: { connection: 'close', accept: 'application/json', ...extras.headers, ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
      },
      extras.tls,
    );
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) req.destroy(new Error(`answer from ${url} is larger than ${maxBytes} bytes`));
        else chunks.push(chunk);
      });
      res.once('error', reject);
      res.once('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.end(payload);
  });
}

export async function jsonRequest(method: 'GET' | 'POST' | 'DELETE', url: string, signal: AbortSignal, body?: unknown, extras: RequestExtras = {}): Promise<JsonAnswer> {
  const { status, text } = await textRequest(method, url, signal, body, extras);
  if (text.trim() === '') return { status, json: undefined };
  try {
    return { status, json: JSON.parse(text) };
  } catch {
    throw new Error(`${method} ${url} answered ${status} with non-JSON: ${text.slice(0, 200)}`);
  }
}

/** GET, or POST when there is a body; an empty answer is an error (etcd always answers with JSON). */
export async function httpJson(url: string, signal: AbortSignal, body?: unknown, extras: RequestExtras = {}): Promise<JsonAnswer> {
  const method = body === undefined ? 'GET' : 'POST';
  const answer = await jsonRequest(method, url, signal, body, extras);
  if (answer.json === undefined) throw new Error(`${method} ${url} answered ${answer.status} with an empty body`);
  return answer;
}

/**
 * One request on `agent`'s keep-alive pool (or, with `false`, on a
 * connection of its own), resolved as soon as the answer's head came, its
 * body left to the caller (readText, or read as it streams in). Aborts
 * behave as fetch's: before the head the promise rejects with the signal's
 * reason; after it the response is destroyed with that reason (so the body
 * errors with it), and the connection with it. Once the body has ended,
 * the signal no longer touches the request: its connection is back in the
 * pool. Never sends a request whose signal has already aborted. For an
 * https: URL the agent must be a node:https Agent (its own TLS options
 * apply); `tls` serves a connection of its own (agent false).
 */
export function openRequest(method: 'GET' | 'POST', url: string, signal: AbortSignal, agent: Agent | false, body?: unknown, tls?: TlsClientOptions): Promise<IncomingMessage> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method,
        agent,
        headers: { accept: 'application/json', ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}) },
      },
      tls,
    );
    let res: IncomingMessage | undefined;
    const release = () => signal.removeEventListener('abort', onAbort);
    function onAbort(): void {
      release();
      if (res) {
        res.destroy(signal.reason as Error);
      } else {
        reject(signal.reason as Error);
        req.destroy();
      }
    }
    signal.addEventListener('abort', onAbort, { once: true });
    // Stays attached: a request destroyed after an abort still emits an error, which must not go uncaught.
    req.on('error', (err) => {
      release();
      reject(err);
    });
    req.once('response', (r) => {
      res = r;
      // The reader sees errors through its own listeners; this one only keeps an unread error from being thrown.
      r.on('error', () => undefined);
      r.once('end', release);
      r.once('close', release);
      resolve(r);
    });
    req.end(payload);
  });
}

/** A response's whole body as UTF-8 text; rejects when it breaks off or is destroyed. */
export async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
