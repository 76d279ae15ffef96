import type { DriverContext, HealthResult, ServiceDriver } from '../supervisor/driver.js';
import { ElasticsearchDriver } from '../plugins/elasticsearch/driver.js';
import { EtcdDriver } from '../plugins/etcd/driver.js';
import { PostgresqlDriver } from '../plugins/postgresql/driver.js';
import { prepareServiceDirs } from '../plugins/service-dirs.js';

/**
 * The service drivers a plan can name in its manifest (`driver = "..."`).
 * Each call returns a fresh driver: a driver may remember things about the
 * one service it looks after (e.g. PostgreSQL's last replication-role sync).
 */
export interface DriverOptions {
  /** For the generic driver: whether the service's process is up (the supervisor's runner knows). */
  processRunning?: () => boolean;
}

/**
 * A service hasup knows nothing about: its health is whether its process
 * runs. The supervisor asks for health only while the runner has the
 * process up, so without a processRunning callback being asked means "ok".
 */
export class GenericDriver implements ServiceDriver {
  constructor(private readonly processRunning?: () => boolean) {}

  async prepare(ctx: DriverContext): Promise<void> {
    await prepareServiceDirs(ctx.paths, ctx.user);
  }

  async health(): Promise<HealthResult> {
    return (this.processRunning?.() ?? true) ? { status: 'ok', message: 'process running' } : { status: 'critical', message: 'process not running' };
  }
}

const FACTORIES: Record<string, (opts: DriverOptions) => ServiceDriver> = {
  postgresql: () => new PostgresqlDriver(),
  etcd: () => new EtcdDriver(),
  elasticsearch: () => new ElasticsearchDriver(),
  generic: (opts) => new GenericDriver(opts.processRunning),
};

export const DRIVER_NAMES: readonly string[] = Object.keys(FACTORIES);

export function driverFor(name: string, opts: DriverOptions = {}): ServiceDriver {
  const factory = Object.hasOwn(FACTORIES, name) ? FACTORIES[name] : undefined;
  if (!factory) throw new Error(`no service driver named "${name}" (known: ${DRIVER_NAMES.join(', ')})`);
  return factory(opts);
}
