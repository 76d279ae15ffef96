import { createHash } from 'node:crypto';
import { Socket } from 'node:net';
import pg from 'pg';
import type { DriverContext } from '../../supervisor/driver.js';
import { readTlsFile } from '../../supervisor/pki/inspect.js';

/**
 * One short-lived connection per call, torn down on every path: a health
 * check that connects, asks and disconnects cannot leak a backend, and an
 * abort (the check's timeout) destroys the socket at once, whether it is
 * still connecting, authenticating or waiting for a query.
 */
export interface PgTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /**
   * PEM CA bundle (docs/tls.md): the session uses TLS, and the server's
   * certificate must chain to it and name `host` (libpq's verify-full).
   * Absent: no TLS, for a member whose TLS is off.
   */
  ca?: string;
  /** With `ca`: the chain is checked, not the name (libpq's verify-ca): a standby cluster's upstream, the other cluster's load balancer. */
  skipHostCheck?: boolean;
  /** TLS without verifying the server (libpq's require): a standby cluster's upstream whose CA this cluster was not given. */
  tlsUnverified?: boolean;
}

/** Grace for a polite Terminate before the socket is simply destroyed. */
const END_GRACE_MS = 500;

/**
 * Where the local server can be reached over TCP. An empty
 * listen_addresses means the member's advertised address (what the
 * template renders); wildcards mean loopback does. pg_hba lets a member
 * reach itself on any of its own addresses (samehost).
 */
export function localHost(cfg: DriverContext['cfg'], ip: string): string {
  const listen = typeof cfg.listen_addresses === 'string' ? cfg.listen_addresses : '';
  const first = listen.split(',').map((s) => s.trim()).find((s) => s !== '');
  if (first === undefined) return ip;
  if (first === '*' || first === '0.0.0.0') return '127.0.0.1';
  if (first === '::') return '::1';
  return first;
}

export function superuserTarget(ctx: Pick<DriverContext, 'cfg' | 'ip' | 'secrets' | 'tls'>): PgTarget {
  return {
    host: localHost(ctx.cfg, ctx.ip),
    port: Number(ctx.cfg.port),
    user: String(ctx.cfg.superuser),
    password: ctx.secrets.postgresql.superuser_password,
    database: 'postgres',
    // Under TLS pg_hba takes sessions over TCP with TLS only (but from 127.0.0.1 and ::1), and hasup's own verify the server too.
    ...(ctx.tls ? { ca: readTlsFile(ctx.tls.ca, 'CA bundle') } : {}),
  };
}

export class PgUnavailable extends Error {}

function clientConfig(target: PgTarget): pg.ClientConfig {
  // pg checks the certificate's names against `host` (an IP SAN for an address), as libpq's verify-full does.
  const ssl = target.tlsUnverified
    ? { rejectUnauthorized: false }
    : target.ca
      ? { ca: target.ca, rejectUnauthorized: true, ...(target.skipHostCheck ? { checkServerIdentity: () => undefined } : {}) }
      : false;
  return { host: target.host, port: target.port, user: target.user, password: target.password, database: target.database, ssl, application_name: 'hasup' };
}

/** Connects, runs `fn`, disconnects; rejects with a PgUnavailable that names the server, never the password. */
export async function withClient<T>(target: PgTarget, signal: AbortSignal, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const where = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  if (signal.aborted) throw new PgUnavailable(`PostgreSQL at ${where}: check aborted before it started`);
  const socket = new Socket();
  const client = new pg.Client({ ...clientConfig(target), stream: () => socket });
  // A dying connection also emits 'error' on the client; the pending call already rejects with it.
  client.on('error', () => undefined);
  const onAbort = () => socket.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await client.connect();
    return await fn(client);
  } catch (err) {
    if (signal.aborted) throw new PgUnavailable(`PostgreSQL at ${where} did not answer in time`);
    throw new PgUnavailable(`PostgreSQL at ${where}: ${(err as Error).message}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
    if (!socket.destroyed) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.end().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, END_GRACE_MS)))]);
      clearTimeout(timer);
    }
    socket.destroy();
  }
}

/**
 * A kept-open connection for the queries that run every few seconds (the
 * health check, the HA loop's status, the metric collector). A connection
 * per query costs a backend fork and a SCRAM exchange (PBKDF2 with 4096
 * rounds) each time, most of an idle supervisor's CPU. Each caller keeps a
 * session of its own, so one caller's timeout never fails another's query.
 *
 * Any failure or abort closes the connection (a query that timed out may
 * still be running on a wedged socket); the next call opens a fresh one. A
 * different target (port, user or password changed) also opens a fresh one.
 * Nothing that leaves session state behind (SET, an open transaction) belongs
 * here: it would carry over to the next call.
 */
export class PgSession {
  private client: pg.Client | undefined;
  private socket: Socket | undefined;
  private key = '';

  async run<T>(target: PgTarget, signal: AbortSignal, fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const where = `${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
    if (signal.aborted) throw new PgUnavailable(`PostgreSQL at ${where}: check aborted before it started`);
    const key = `${target.host}|${target.port}|${target.user}|${target.database}|${createHash('sha256').update(target.password).update(target.ca ?? '').digest('hex')}|${target.tlsUnverified === true}|${target.skipHostCheck === true}`;
    if (key !== this.key) this.close();
    let client = this.client;
    const onAbort = () => this.drop(client);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (!client) {
        const socket = new Socket();
        const fresh = new pg.Client({ ...clientConfig(target), stream: () => socket });
        fresh.on('error', () => this.drop(fresh));
        fresh.on('end', () => this.drop(fresh));
        client = fresh;
        this.client = fresh;
        this.socket = socket;
        this.key = key;
        await fresh.connect();
      }
      return await fn(client);
    } catch (err) {
      this.drop(client);
      if (signal.aborted) throw new PgUnavailable(`PostgreSQL at ${where} did not answer in time`);
      throw new PgUnavailable(`PostgreSQL at ${where}: ${(err as Error).message}`);
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Closes the connection if it is still `client` (a later call may have opened a new one). */
  private drop(client: pg.Client | undefined): void {
    if (client !== undefined && client === this.client) this.close();
  }

  /** Drops the connection at once (no Terminate message: the server sees the socket close). */
  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
    this.client = undefined;
    this.key = '';
  }
}
