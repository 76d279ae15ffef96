/**
 * The Elasticsearch plan and driver without a node: a driver context as the
 * supervisor would give it (member 0e12a4b5c6d7e8f9 on 10.0.0.7, a test
 * config layer over the plan's defaults) and elasticsearch.yml rendered
 * from it. For the tests of what the driver renders and refuses.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { ElasticsearchDriver } from '../../src/plugins/elasticsearch/driver.js';
import { mergeLayers, renderTemplates } from '../../src/supervisor/config-layers.js';
import type { DriverContext, ServicePaths } from '../../src/supervisor/driver.js';
import { shippedPlansDir } from '../../src/supervisor/install-paths.js';
import { findPlan } from '../../src/supervisor/plan.js';
import { generateSecrets, type ClusterSecrets } from '../../src/supervisor/secrets.js';
import type { TomlTable } from '../../src/supervisor/toml-schema.js';

export const esPlan = findPlan('elasticsearch', [shippedPlansDir()]);

export interface EsContextOptions {
  /** The service dir (default /state/svc/elasticsearch, which need not exist). */
  root?: string;
  /** The member's TLS files as their copy under root/tls. */
  tls?: boolean;
  /** Default: fresh ones. */
  secrets?: ClusterSecrets;
}

/** A driver context for the Elasticsearch plan with `layer` as the test's config layer. */
export function esDriverContext(layer: TomlTable, opts: EsContextOptions = {}): DriverContext {
  const root = opts.root ?? '/state/svc/elasticsearch';
  const paths: ServicePaths = { root, data: join(root, 'data'), config: join(root, 'config'), run: join(root, 'run'), logs: join(root, 'logs') };
  return {
    plan: esPlan,
    paths,
    cfg: mergeLayers(esPlan.defaults, [{ name: 'test', data: layer }]),
    memberId: '0e12a4b5c6d7e8f9',
    ip: '10.0.0.7',
    secrets: opts.secrets ?? generateSecrets(),
    ...(opts.tls ? { tls: { ca: join(root, 'tls', 'ca.pem'), cert: join(root, 'tls', 'member.pem'), key: join(root, 'tls', 'member.key') } } : {}),
    log: pino({ level: 'silent' }),
  };
}

/** elasticsearch.yml as `driver` renders it for `ctx`; nothing is written. */
export function renderEsYml(ctx: DriverContext, driver: ElasticsearchDriver = new ElasticsearchDriver()): string {
  const svc = { data_dir: ctx.paths.data, config_dir: ctx.paths.config, logs_dir: ctx.paths.logs, run_dir: ctx.paths.run, ...driver.templateValues(ctx) };
  return renderTemplates(esPlan, { cfg: ctx.cfg, svc, sys: { ip: ctx.ip, member_id: ctx.memberId } }).get('elasticsearch.yml')!;
}
