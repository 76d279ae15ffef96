import { formatHostPort } from '../../gossip/index.js';
import { jsonRequest, type TlsClientOptions } from '../http-json.js';
import { PeerRefused, type JobView, type PeerBackups, type StandbyRequest } from './coordinator.js';

/**
 * The leader asking a follower for a backup over the members' HTTP API
 * (POST /backup/standby, GET /backup/jobs/:id), with the cluster's API
 * token, verifying the follower's certificate against the member's CA
 * bundle when the API is HTTPS. An answer of any status, a refused
 * connection or a certificate the leader refuses mean the follower started
 * nothing (PeerRefused: another may be asked); a request whose answer was
 * lost (a timeout, a reset) may have started one, and is said so.
 */
export interface HttpPeerBackupsOptions {
  /** Where a member's API is (its gossip address and the API port of its service rumors). */
  locate: (member: string) => { addr: string; port: number } | undefined;
  token: string;
  /** https with this CA bundle (PEM); undefined: http. */
  tls?: TlsClientOptions;
  /** Time limit of one request. */
  timeoutMs?: number;
}

/** Errors that come before the request could reach the follower's handler. */
const NOT_SENT = /^(ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL|ENOTFOUND|ERR_TLS_.*|.*CERT.*|UNABLE_TO_.*|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN)$/;

export class HttpPeerBackups implements PeerBackups {
  constructor(private readonly opts: HttpPeerBackupsOptions) {}

  async startStandby(member: string, req: StandbyRequest, signal: AbortSignal): Promise<JobView> {
    const url = this.url(member, '/backup/standby');
    if (!url) throw new PeerRefused('its API address is not known (no service rumor with its API port)');
    let answer;
    try {
      answer = await jsonRequest('POST', url, this.limit(signal), req, this.extras());
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (NOT_SENT.test(code)) throw new PeerRefused(`its API at ${url} cannot be reached (${(err as Error).message})`);
      throw err;
    }
    const body = (answer.json ?? {}) as { job?: JobView; error?: string };
    if (answer.status === 202 && body.job) return body.job;
    throw new PeerRefused(`${answer.status}: ${typeof body.error === 'string' ? body.error : 'no reason given'}`);
  }

  async job(member: string, id: string, signal: AbortSignal): Promise<JobView | undefined> {
    const url = this.url(member, `/backup/jobs/${encodeURIComponent(id)}`);
    if (!url) throw new Error(`the API address of member ${member} is not known now`);
    const answer = await jsonRequest('GET', url, this.limit(signal), undefined, this.extras());
    if (answer.status === 404) return undefined;
    const body = (answer.json ?? {}) as { job?: JobView; error?: string };
    if (answer.status === 200 && body.job) return body.job;
    throw new Error(`GET ${url} answered ${answer.status}: ${typeof body.error === 'string' ? body.error : 'no reason given'}`);
  }

  private url(member: string, path: string): string | undefined {
    const at = this.opts.locate(member);
    return at ? `${this.opts.tls ? 'https' : 'http'}://${formatHostPort(at.addr, at.port)}${path}` : undefined;
  }

  private limit(signal: AbortSignal): AbortSignal {
    return AbortSignal.any([signal, AbortSignal.timeout(this.opts.timeoutMs ?? 15_000)]);
  }

  private extras() {
    return { headers: { authorization: `Bearer ${this.opts.token}` }, ...(this.opts.tls ? { tls: this.opts.tls } : {}) };
  }
}
