/**
 * The shipper's way into Elasticsearch: the @elastic/elasticsearch 8 client,
 * gzip on, one client per node URL, and failover in the order given.
 *
 * The URL list is a function, read before every request, so the census can
 * change it at any time. The first URL is preferred (the local node: no
 * network hop, and its failure is already the supervisor's business); a
 * node that did not answer is passed over for `downForMs`, then tried
 * again, so shipping returns to the local node once it is back.
 *
 * Bulk requests go as hasup's shipper user, index administration as its
 * admin user, each with the CA and password `access` gives (the one place,
 * ../elasticsearch/access.ts): with security on the server's certificate is
 * verified against the cluster CA. Without `access`, plain HTTP.
 */
import { Client } from '@elastic/elasticsearch';
import { accessKey, esClientOptions, type EsAccess, type EsUser } from '../elasticsearch/access.js';
import { requestVerdict } from './bulk.js';

export interface ElasticsearchOutputOptions {
  urls: () => string[];
  /** How to reach Elasticsearch as each user (read before every request: a new CA or password is taken up). */
  access?: (user: EsUser) => EsAccess;
  /** Default 60 s: a big bulk into a busy node can take long; a dead one fails at connect. */
  requestTimeoutMs?: number;
  /** How long a node that did not answer is passed over. Default 30 s. */
  downForMs?: number;
  /** gzip request bodies. Default true. */
  compression?: boolean;
}

/** Only the fields of a bulk answer the shipper reads; the rest is filtered out by Elasticsearch. */
const BULK_FILTER = 'errors,took,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by.type,items.*.error.caused_by.reason';
/** See bulk(). */
const BULK_WAIT = '10s';

export class ElasticsearchOutput {
  /** By user and URL: the client and the access it was made with. */
  private readonly clients = new Map<string, { client: Client; key: string; url: string }>();
  private readonly downUntil = new Map<string, number>();
  private lastUrl: string | undefined;

  constructor(private readonly opts: ElasticsearchOutputOptions) {}

  /** The node the next request goes to. */
  current(): string | undefined {
    const urls = this.opts.urls();
    const now = Date.now();
    const up = urls.find((u) => (this.downUntil.get(u) ?? 0) <= now);
    if (up) return up;
    // All passed over: the one that failed longest ago.
    return [...urls].sort((a, b) => (this.downUntil.get(a) ?? 0) - (this.downUntil.get(b) ?? 0))[0];
  }

  /** The node the last request went to. */
  lastTarget(): string | undefined {
    return this.lastUrl;
  }

  /** POST /_bulk with a ready NDJSON body; resolves with the (filtered) answer, throws as the client does. */
  async bulk(ndjson: string | Buffer): Promise<unknown> {
    // timeout: how long Elasticsearch holds the request waiting for a master, a mapping update or
    // an index creation (1 min by default). A node stopping without a master (the last one of its
    // cluster) waits for its requests in flight before it exits; a shorter wait here bounds that,
    // and the events stay spooled for the next try.
    return this.request((client) => client.bulk({ body: ndjson, filter_path: BULK_FILTER, timeout: BULK_WAIT } as unknown as Parameters<Client['bulk']>[0]), 'shipper');
  }

  /**
   * Runs `fn` against the preferred node as `user` (index administration:
   * admin); a node that gave no answer is marked down and the error rethrown
   * (the caller retries, then on the next).
   */
  async request<T>(fn: (client: Client) => Promise<T>, user: EsUser = 'admin'): Promise<T> {
    const url = this.current();
    if (!url) throw new Error('no Elasticsearch node to ship to');
    this.lastUrl = url;
    try {
      const result = await fn(this.client(url, user));
      this.downUntil.delete(url);
      return result;
    } catch (err) {
      if (requestVerdict(err) === 'failover' && this.opts.urls().length > 1) this.downUntil.set(url, Date.now() + (this.opts.downForMs ?? 30_000));
      throw err;
    }
  }

  async close(): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.allSettled(clients.map((c) => c.client.close()));
  }

  private client(url: string, user: EsUser): Client {
    const access = this.opts.access?.(user) ?? { scheme: 'http' };
    if (access.scheme === 'https' && !url.startsWith('https:')) {
      // Never credentials in clear text: an http:// URL (a stale [shipping] list) is refused, not used.
      throw new Error(`${url}: Elasticsearch security is on, so its URLs must be https://`);
    }
    const id = `${user} ${url}`;
    const key = accessKey(access);
    let entry = this.clients.get(id);
    if (!entry || entry.key !== key) {
      if (entry) void entry.client.close();
      entry = {
        client: new Client({
          node: url,
          compression: this.opts.compression ?? true,
          // The shipper retries itself, with backoff and per document; the client must not resend behind its back.
          maxRetries: 0,
          requestTimeout: this.opts.requestTimeoutMs ?? 60_000,
          ...esClientOptions(access),
        }),
        key,
        url,
      };
      this.clients.set(id, entry);
      // Forget clients of nodes no longer listed (the census changed).
      const listed = new Set(this.opts.urls());
      for (const [i, e] of this.clients) {
        if (!listed.has(e.url) && e.url !== url) {
          this.clients.delete(i);
          void e.client.close();
        }
      }
    }
    return entry.client;
  }
}

/** A one-line reason for an error of the client, for logs: the deepest cause Elasticsearch gave. */
export function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string; meta?: { statusCode?: number; body?: unknown } };
  const status = e.meta?.statusCode;
  type Cause = { type?: string; reason?: string; caused_by?: Cause };
  let cause = (e.meta?.body as { error?: Cause } | undefined)?.error;
  while (cause?.caused_by) cause = cause.caused_by;
  const detail = cause ? [cause.type, cause.reason].filter(Boolean).join(': ') : e.message?.split('\n')[0];
  return [e.name, status ? `HTTP ${status}` : undefined, detail?.slice(0, 300)].filter(Boolean).join(': ');
}
