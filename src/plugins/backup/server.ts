import type { DriverContext } from '../../supervisor/driver.js';
import type { Logger } from '../../supervisor/log.js';
import type { LogSink } from '../../supervisor/log-sink.js';
import { ProcessRunner, type RunnerState } from '../../supervisor/process-runner.js';
import { passfilePath } from '../postgresql/standby-config.js';
import { TOOL_ENV } from '../service-dirs.js';
import { pgbackrestPaths, preparePgBackRestFiles, serverProblem } from './files.js';
import { ensurePgBackRestTls, type PgBackRestTlsFiles } from './server-tls.js';
import { backupSettingsFrom, checkBackupSettings } from './settings.js';

/**
 * This member's pgBackRest TLS server (`pgbackrest server`), kept running
 * by hasup while backups are on and backup_standby is not "off", so that
 * whichever member leads can be reached by a follower's backup
 * (backup-standby: docs/backup.md, "Backups from a follower"). It listens
 * on the member's advertised address and backup.server_port, with the
 * [global:server] section the plan renders into pgbackrest.conf, and admits
 * clients presenting a certificate from the cluster CA with CN
 * hasup-pgbackrest (server-tls.ts). It runs as the service user in its own
 * process group, its warnings and errors go to the member's service log,
 * and it is restarted with backoff when it exits (ProcessRunner, as every
 * child); it is stopped when backups are turned off, and restarted when
 * what it was started with changes (port, address, certificate).
 */
export type ServerState = 'off' | 'starting' | 'running' | 'failing';

export interface ServerStatus {
  state: ServerState;
  /** Why it is off or failing. */
  reason: string | null;
  /** The address and port it listens on, while wanted. */
  address: string | null;
  port: number | null;
  /** The server's pid while it runs. */
  pid: number | null;
  /** This member's pgBackRest certificate (its client side too), while the server is wanted. */
  tls: PgBackRestTlsFiles | null;
}

/** What the coordinator asks of the server (PgBackRestServer; a fake in tests). */
export interface ServerControl {
  /** Brings the server in line with the config in force (undefined: PostgreSQL is not loaded here). */
  sync(ctx: DriverContext | undefined): Promise<void>;
  status(): ServerStatus;
  close(): Promise<void>;
}

export interface PgBackRestServerOptions {
  log: Logger;
  /** Where its stdout and stderr lines go (the member's service log). */
  logSink: LogSink;
  now?: () => Date;
}

const OFF: ServerStatus = { state: 'off', reason: 'not started', address: null, port: null, pid: null, tls: null };

export class PgBackRestServer implements ServerControl {
  private runner: ProcessRunner | undefined;
  private key: string | undefined;
  private current: ServerStatus = OFF;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private readonly log: Logger;

  constructor(private readonly opts: PgBackRestServerOptions) {
    this.log = opts.log.child({ component: 'pgbackrest-server' });
  }

  status(): ServerStatus {
    if (!this.runner || this.current.state === 'off') return this.current;
    const r = this.runner.state();
    const state: ServerState = r.state === 'running' ? 'running' : r.state === 'starting' ? 'starting' : 'failing';
    return { ...this.current, state, pid: r.pid ?? null, reason: state === 'failing' ? (r.lastError ?? `pgbackrest server ${r.state}`) : null };
  }

  sync(ctx: DriverContext | undefined): Promise<void> {
    // One change at a time: a start must not race the stop before it.
    const next = this.queue.then(() => this.apply(ctx)).catch((err: unknown) => {
      const reason = `cannot start pgBackRest's server: ${(err as Error).message}`;
      this.log.warn({ event: 'pgbackrest_server', state: 'failing', reason }, reason);
      this.current = { ...OFF, state: 'failing', reason };
    });
    this.queue = next;
    return next;
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.queue;
    await this.stop('this member is shutting down');
  }

  private async apply(ctx: DriverContext | undefined): Promise<void> {
    if (this.closed) return;
    const problem = !ctx ? 'PostgreSQL is not loaded on this member' : (serverProblem(ctx) ?? checkBackupSettings(backupSettingsFrom(ctx.cfg), ctx.secrets));
    if (problem || !ctx) return this.stop(problem ?? 'off');
    await preparePgBackRestFiles(ctx);
    const tls = await ensurePgBackRestTls(ctx, this.opts.now?.());
    if (!tls.ok) return this.stop(tls.reason);
    if (tls.issued) this.log.info({ event: 'pgbackrest_cert', cert: tls.files.cert, reason: tls.issued }, `issued pgBackRest's certificate from the cluster CA (${tls.files.cert}): ${tls.issued}`);
    const settings = backupSettingsFrom(ctx.cfg);
    const p = pgbackrestPaths(ctx.paths);
    const args = [`--config=${p.conf}`, `--config-include-path=${p.includeDir}`, '--log-level-console=off', '--log-level-stderr=warn', 'server'];
    const key = JSON.stringify([settings.pgbackrestBin, args, ctx.ip, settings.serverPort, tls.fingerprint, ctx.user?.name ?? null]);
    this.current = { state: 'starting', reason: null, address: ctx.ip, port: settings.serverPort, pid: null, tls: tls.files };
    if (this.runner && key === this.key) return;
    if (this.runner) {
      this.log.info({ event: 'pgbackrest_server', state: 'restarting' }, `restarting pgBackRest's server: what it was started with changed`);
      await this.runner.stop();
      this.runner.removeAllListeners();
    }
    this.key = key;
    const runner = new ProcessRunner({
      name: 'pgbackrest-server',
      command: settings.pgbackrestBin,
      args,
      // The remotes it runs for a follower's backup connect to this member's PostgreSQL as the superuser, password from the passfile.
      env: { ...TOOL_ENV, PGPASSFILE: passfilePath(ctx), PGCONNECT_TIMEOUT: '10' },
      cwd: p.dir,
      ...(ctx.user ? { user: ctx.user.name } : {}),
      stopSignal: 'SIGTERM',
      stopTimeoutMs: 5000,
      backoff: { initialMs: 1000, maxMs: 60_000, factor: 2, jitter: 0.2 },
      flapping: { windowMs: 120_000, maxRestarts: 5 },
      pidFile: p.serverPid,
      logSink: this.opts.logSink,
    });
    this.runner = runner;
    let last: RunnerState['state'] | undefined;
    runner.on('state', (r) => {
      if (r.state === last) return;
      last = r.state;
      const fields = { event: 'pgbackrest_server', state: r.state, pid: r.pid ?? null, address: ctx.ip, port: settings.serverPort };
      if (r.state === 'running') this.log.info(fields, `pgBackRest's server runs (pid ${r.pid ?? '?'}) on ${ctx.ip}:${settings.serverPort}`);
      else if (r.state === 'backoff' || r.state === 'flapping') this.log.warn({ ...fields, reason: r.lastError ?? null }, `pgBackRest's server exited (${r.lastError ?? 'no reason given'}); restarting it`);
    });
    // A server a crashed hasup left behind is stopped (its pid file names it), never adopted: its options may be old.
    await runner.start({ adopt: false });
  }

  private async stop(reason: string): Promise<void> {
    const runner = this.runner;
    this.runner = undefined;
    this.key = undefined;
    this.current = { ...OFF, reason };
    if (!runner) return;
    this.log.info({ event: 'pgbackrest_server', state: 'stopped', reason }, `stopping pgBackRest's server: ${reason}`);
    await runner.stop();
    runner.removeAllListeners();
  }
}
