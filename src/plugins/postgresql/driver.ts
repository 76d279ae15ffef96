import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { DriverContext, HealthResult, ServiceDriver, UpgradeTarget } from '../../supervisor/driver.js';
import { postgresqlUpgradeTarget } from '../upgrade-targets.js';
import { assertReachable, ensureOwnedDir } from '../service-dirs.js';
import { checkPostgresqlConf } from './conf-check.js';
import { PgSession, superuserTarget, withClient } from './connect.js';
import { checkHba } from './hba-check.js';
import { initDataDir, isInitialized } from './initdb.js';
import { syncReplicationRole } from './replication-role.js';
import { checkHaSettings, haSettingsFrom } from '../../ha/index.js';
import { pgbackrestTemplateValues, preparePgBackRestFiles } from '../backup/files.js';
import { backupEnabled, backupSettingsFrom, checkBackupSettings } from '../backup/settings.js';
import { checkSpareSettings } from '../backup/source-repo.js';

/**
 * What a member of an HA cluster adds to the driver (src/plugins/postgresql/ha-node.ts):
 * how the data directory is made (initdb or a copy of the leader) and that
 * every start is a standby start.
 */
export interface PostgresqlHaHooks {
  prepareData(ctx: DriverContext): Promise<void>;
  /** The latest context (config changes), seen on every health check. */
  noteContext(ctx: DriverContext): void;
}

/** Share of max_connections in use above which health is a warning. */
const CONNECTIONS_WARN_RATIO = 0.9;
/** verifyReload asks the server; give it at least this long. */
const VERIFY_TIMEOUT_MS = 5000;

interface HealthRow {
  in_recovery: boolean;
  server_version: string;
  connections: number;
  max_connections: number;
  started: string;
}

/**
 * PostgreSQL on one member. The replication role is kept in step with the
 * cluster secret by the first successful health check of every postmaster
 * (and again when the role name or secret changes): health is the first
 * moment the server is known to accept connections, and a check that
 * fails to sync is retried on the next one. A server in recovery gets the
 * role from its primary, so nothing is written there.
 */
export class PostgresqlDriver implements ServiceDriver {
  /** Postmaster start time + role + secret digest of the last successful sync. */
  private roleSynced: string | undefined;
  private readonly healthSession = new PgSession();

  /** Without `ha` a member is standalone: an empty data directory gets initdb and the server starts as it was. */
  constructor(
    private readonly ha?: PostgresqlHaHooks,
    /** The cgroup the postmaster runs in, so the fence can kill every backend at once. */
    private readonly cgroupDir?: string,
  ) {}

  cgroup(): string | undefined {
    return this.cgroupDir;
  }

  /** {{svc.pgbackrest.*}}: where pgBackRest's config, spool, locks and logs are on this member. */
  templateValues(ctx: DriverContext): Record<string, unknown> {
    return { pgbackrest: pgbackrestTemplateValues(ctx) };
  }

  async prepare(ctx: DriverContext): Promise<void> {
    const { paths, user } = ctx;
    // PostgreSQL refuses a data dir readable by others; the socket and temp files live in run.
    await ensureOwnedDir(paths.data, 0o700, user);
    await ensureOwnedDir(paths.run, 0o700, user);
    await ensureOwnedDir(paths.logs, 0o750, user);
    await ensureOwnedDir(paths.config, 0o750, user);
    await assertReachable(paths.data, user);
    await assertReachable(paths.config, user);
    if (this.ha) await this.ha.prepareData(ctx);
    else if (!(await isInitialized(paths.data))) await initDataDir(ctx);
    // Before the server starts: its archive_command and restore_command need them.
    if (backupEnabled(backupSettingsFrom(ctx.cfg))) await preparePgBackRestFiles(ctx);
  }

  /** hasup upgrade postgresql --to 15 | 15.18 | /path/to/bin (another build of the same major: a restart takes it). */
  upgradeTarget(ctx: DriverContext, to: string, signal: AbortSignal): Promise<UpgradeTarget> {
    return postgresqlUpgradeTarget(ctx, to, signal);
  }

  async validate(ctx: DriverContext, files: Map<string, string>): Promise<string | undefined> {
    const ha = checkHaSettings(haSettingsFrom(ctx.cfg));
    if (ha) return ha;
    const backup = checkBackupSettings(backupSettingsFrom(ctx.cfg), ctx.secrets);
    if (backup) return backup;
    const spare = checkSpareSettings(ctx.cfg);
    if (spare) return spare;
    const hba = files.get('pg_hba.conf');
    if (hba !== undefined) {
      const problems = checkHba(hba);
      if (problems.length > 0) return `pg_hba.conf: ${problems.join('; ')}`;
    }
    const conf = files.get('postgresql.conf');
    return conf === undefined ? undefined : checkPostgresqlConf(ctx, conf);
  }

  /**
   * pg_file_settings and pg_hba_file_rules parse the files on disk as the
   * server would, so their errors are the ones that made the reload skip
   * settings (or keep the old hba rules). For a postgresql.conf error the
   * server's own message is added, since the view only says "setting
   * could not be applied".
   */
  async verifyReload(ctx: DriverContext): Promise<string | undefined> {
    const signal = AbortSignal.timeout(Math.max(VERIFY_TIMEOUT_MS, ctx.plan.manifest.health.timeout_ms));
    let found;
    try {
      found = await this.readConfigErrors(ctx, signal);
    } catch (err) {
      // Unverifiable is treated as rejected: the supervisor then puts the previous files back.
      return `cannot verify the reload: ${(err as Error).message}`;
    }
    if (found.pending.length > 0) {
      ctx.log.warn({ event: 'pending_restart', settings: found.pending }, `PostgreSQL needs a restart to apply ${found.pending.join(', ')}`);
    }
    const reasons: string[] = [];
    for (const row of found.conf) {
      const where = row.sourcefile ? `${row.sourcefile}${row.sourceline ? `:${row.sourceline}` : ''}` : 'postgresql.conf';
      reasons.push(`${where}: ${row.name ? `${row.name}: ` : ''}${row.error}`);
    }
    if (found.conf.length > 0 && found.configFile) {
      const detail = await checkPostgresqlConf(ctx, await readFile(found.configFile, 'utf8'), found.configFile).catch(() => undefined);
      if (detail) reasons.push(detail);
    }
    for (const row of found.hba) reasons.push(`pg_hba.conf${row.line_number ? `:${row.line_number}` : ''}: ${row.error}`);
    return reasons.length > 0 ? reasons.join('; ') : undefined;
  }

  /** The server's view of its config files on disk, plus what waits for a restart. */
  private readConfigErrors(ctx: DriverContext, signal: AbortSignal) {
    return withClient(superuserTarget(ctx), signal, async (client) => {
      const conf = await client.query<{ sourcefile: string | null; sourceline: number | null; name: string | null; error: string }>(
        'SELECT sourcefile, sourceline, name, error FROM pg_file_settings WHERE error IS NOT NULL ORDER BY seqno',
      );
      const hba = await client.query<{ line_number: number | null; error: string }>(
        'SELECT line_number, error FROM pg_hba_file_rules WHERE error IS NOT NULL ORDER BY line_number',
      );
      const pending = await client.query<{ name: string }>('SELECT name FROM pg_settings WHERE pending_restart ORDER BY name');
      const configFile = (await client.query<{ config_file: string }>('SHOW config_file')).rows[0]?.config_file;
      return { conf: conf.rows, hba: hba.rows, pending: pending.rows.map((r) => r.name), configFile };
    });
  }

  /** PostgreSQL rereads its certificate and key on a configuration reload (SIGHUP, here through SQL). */
  async reloadTls(ctx: DriverContext, signal: AbortSignal): Promise<void> {
    await withClient(superuserTarget(ctx), signal, async (client) => {
      await client.query('SELECT pg_reload_conf()');
    });
  }

  async health(ctx: DriverContext, signal: AbortSignal): Promise<HealthResult> {
    this.ha?.noteContext(ctx);
    try {
      return await this.healthSession.run(superuserTarget(ctx), signal, async (client) => {
        const row = (
          await client.query<HealthRow>(
            `SELECT pg_is_in_recovery() AS in_recovery,
                    current_setting('server_version') AS server_version,
                    (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int AS connections,
                    current_setting('max_connections')::int AS max_connections,
                    pg_postmaster_start_time()::text AS started`,
          )
        ).rows[0]!;
        const details = {
          in_recovery: row.in_recovery,
          server_version: row.server_version,
          connections: row.connections,
          max_connections: row.max_connections,
        };
        let warning: string | undefined;
        if (!row.in_recovery) warning = await this.keepReplicationRole(ctx, client, row.started);
        if (row.connections >= CONNECTIONS_WARN_RATIO * row.max_connections) {
          warning = [warning, `${row.connections} of ${row.max_connections} connections in use`].filter(Boolean).join('; ');
        }
        return warning ? { status: 'warning', message: warning, details } : { status: 'ok', details };
      });
    } catch (err) {
      return { status: 'critical', message: (err as Error).message };
    }
  }

  /** Syncs the replication role once per postmaster/role/secret; a failure is a warning, retried next check. */
  private async keepReplicationRole(ctx: DriverContext, client: Parameters<typeof syncReplicationRole>[0], started: string): Promise<string | undefined> {
    const role = String(ctx.cfg.replication_user ?? 'replicator');
    const password = ctx.secrets.postgresql.replication_password;
    const key = `${started}|${role}|${createHash('sha256').update(password).digest('hex')}`;
    if (this.roleSynced === key) return undefined;
    try {
      const outcome = await syncReplicationRole(client, role, password);
      if (outcome !== 'unchanged') ctx.log.info({ event: 'replication_role', role, outcome }, `replication role ${role} ${outcome}`);
      this.roleSynced = key;
      return undefined;
    } catch (err) {
      return `replication role ${role}: ${(err as Error).message}`;
    }
  }
}
