/**
 * One real PostgreSQL 15 through the service harness, for the PostgreSQL and
 * pgBackRest integration tests: whether it (and pgBackRest) is installed, a
 * small server whose data is disposable, started as the supervisor would
 * start it, stopped at the end, and SQL run against it over TCP.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { driverFor } from '../../src/node/drivers.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';
import { createHarness, installConfig, killGroup, render, startService, waitHealthy, type Harness, type RunningService } from './service-harness.js';

export const PG_BIN_DIR = '/usr/lib/postgresql/15/bin';
export const PGBACKREST_BIN = '/usr/bin/pgbackrest';

/** Why these tests cannot run here (what describe's skip takes), or false. */
export function postgresqlMissing(opts: { pgbackrest?: boolean } = {}): string | false {
  if (!existsSync(join(PG_BIN_DIR, 'postgres'))) return `PostgreSQL 15 is not installed in ${PG_BIN_DIR} (npm run bootstrap)`;
  if (opts.pgbackrest && !existsSync(PGBACKREST_BIN)) return `pgBackRest is not installed at ${PGBACKREST_BIN} (npm run bootstrap)`;
  return false;
}

/**
 * A harness for PostgreSQL on `port`: no TCP listener unless `overrides`
 * names one, 16MB of shared buffers, 20 connections, and no fsync (the
 * data is disposable; this keeps the machine's disk out of the timings).
 */
export function postgresqlHarness(port: number, overrides: TomlTable = {}): Harness {
  return createHarness('postgresql', driverFor('postgresql'), { port, listen_addresses: '', shared_buffers: '16MB', max_connections: 20, extra: { fsync: 'off' }, ...overrides });
}

/** initdb (the driver's prepare), the rendered config installed, the server started and healthy; killed again if it does not get healthy. */
export async function startPostgresql(h: Harness, healthyWithinMs?: number): Promise<RunningService> {
  await h.driver.prepare(h.ctx);
  installConfig(h, render(h));
  const server = startService(h);
  try {
    await waitHealthy(h, healthyWithinMs);
  } catch (err) {
    await killServer(server);
    throw err;
  }
  return server;
}

/** SIGKILL to the server's process group, and its exit awaited (a test's end: nothing in it is kept). */
export async function killServer(server: RunningService | undefined): Promise<void> {
  if (!server) return;
  killGroup(server.pid, 'SIGKILL');
  await server.exited;
}

/** The rows of `sql` with `params`, run over TCP by the superuser, or by whoever `login` names with the password it gives. */
export async function query<T extends pg.QueryResultRow>(h: Harness, sql: string, params: unknown[] = [], login: { user?: string; password?: string } = {}): Promise<T[]> {
  const client = new pg.Client({
    host: '127.0.0.1',
    port: Number(h.ctx.cfg.port),
    user: login.user ?? String(h.ctx.cfg.superuser),
    password: login.password ?? h.ctx.secrets.postgresql.superuser_password,
    database: 'postgres',
    connectionTimeoutMillis: 5000,
  });
  await client.connect();
  try {
    return (await client.query<T>(sql, params)).rows;
  } finally {
    await client.end();
  }
}
