import type { Logger } from './log.js';
import type { MemberTlsFiles } from './pki/member-files.js';
import type { Plan } from './plan.js';
import type { ServiceUser } from './process-runner.js';

export type { ServiceUser };
import type { ClusterSecrets } from './secrets.js';
import type { TomlTable } from './toml-schema.js';

/**
 * What the supervisor needs from the one module that knows a service
 * (src/plugins/<service>/driver.ts). The supervisor knows plans and
 * processes; only a driver knows SQL, etcd's API or Elasticsearch's.
 */
export type Health = 'ok' | 'warning' | 'critical' | 'unknown';

export interface HealthResult {
  status: Health;
  message?: string;
  /** Small service-specific facts shown in status and the API (never secrets). */
  details?: Record<string, unknown>;
}

export interface ServicePaths {
  /** <state>/svc/<name> */
  root: string;
  data: string;
  config: string;
  /** Sockets and pid files. */
  run: string;
  logs: string;
}

export interface DriverContext {
  plan: Plan;
  paths: ServicePaths;
  /** The merged config in force. */
  cfg: TomlTable;
  memberId: string;
  /** The member's advertised IP. */
  ip: string;
  /** Set when the supervisor runs as root and the child runs as this user. */
  user?: ServiceUser;
  secrets: ClusterSecrets;
  /**
   * The service's own copy of the member's TLS files (SVC_ROOT/tls, owned by
   * its user; pki/service-copy.ts); absent when TLS is off (docs/tls.md).
   * Templates see the same paths as {{svc.tls.ca}}, {{svc.tls.cert}}, {{svc.tls.key}}.
   */
  tls?: MemberTlsFiles;
  log: Logger;
}

export interface ServiceDriver {
  /** Extra values templates see under {{svc.*}}, besides the paths. */
  templateValues?(ctx: DriverContext): Record<string, unknown>;
  /**
   * Runs before every start: creates the data directory on first start
   * (initdb, ...), fixes ownership. Must be idempotent and must never
   * destroy existing data.
   */
  prepare(ctx: DriverContext): Promise<void>;
  /**
   * Checks candidate rendered files with the service's own parser before
   * they replace the files in force. Returns a reason to refuse, or undefined.
   */
  validate?(ctx: DriverContext, files: Map<string, string>): Promise<string | undefined>;
  /**
   * A cgroup (v2) directory the child should run in, made ready by the
   * driver, or undefined. The runner moves each new child into it.
   */
  cgroup?(ctx: DriverContext): string | undefined;
  /** After a reload: did the service accept the config? A reason if not. */
  verifyReload?(ctx: DriverContext): Promise<string | undefined>;
  /**
   * The member's certificate was issued anew and the service's copy
   * (ctx.tls) updated: make the running service use it without a restart
   * (docs/tls.md). Absent: the service reads its certificate at every
   * handshake (etcd), or uses none.
   */
  reloadTls?(ctx: DriverContext, signal: AbortSignal): Promise<void>;
  /**
   * `hasup upgrade SERVICE --to TO` on this member: which config values run
   * the service from TO (a version or a path, the driver says which it
   * takes), after checking it is installed here, runs, and can run this
   * member's data (PostgreSQL: the same major version). Throws
   * UpgradeRefused with the reason. Absent: the service cannot be upgraded
   * this way.
   */
  upgradeTarget?(ctx: DriverContext, to: string, signal: AbortSignal): Promise<UpgradeTarget>;
  /** One health check; must finish or give up when `signal` aborts. */
  health(ctx: DriverContext, signal: AbortSignal): Promise<HealthResult>;
}

/** What an upgrade changes: config values over every other layer, and the version they run. */
export interface UpgradeTarget {
  /** E.g. { bin_dir: "/usr/lib/postgresql/15/bin" }. */
  cfg: TomlTable;
  /** What the new program says of itself (its --version). */
  version: string;
}

export class UpgradeRefused extends Error {}
