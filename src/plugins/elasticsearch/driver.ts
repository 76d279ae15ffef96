import { existsSync } from 'node:fs';
import { chown, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { DriverContext, HealthResult, ServiceDriver, ServicePaths } from '../../supervisor/driver.js';
import { httpJson } from '../etcd/http-json.js';
import { assertReachable, ensureOwnedDir, isFile } from '../service-dirs.js';
import { interpretClusterHealth, type ClusterHealthAnswer } from './cluster-health.js';
import { launcherScript, launchProblem, resolveLaunch, type LaunchEnvironment } from './launch.js';
import { bindHost, elasticsearchSettings, type ElasticsearchNode } from './settings.js';

export type { ElasticsearchNode };

export interface ElasticsearchDriverOptions {
  /**
   * The cluster's master-eligible nodes, this member included: they become
   * discovery.seed_hosts and, until the cluster has formed,
   * cluster.initial_master_nodes. Default: this member alone. The
   * Elasticsearch cluster work fills it from the gossip census.
   */
  clusterNodes?: (ctx: DriverContext) => ElasticsearchNode[];
  /** Where the vendored distribution and `java` are looked up (tests). */
  launchEnvironment?: LaunchEnvironment;
}

/** Files the distribution brings that Elasticsearch needs in its config dir and hasup does not template. */
const COPIED_CONFIG_FILES = ['log4j2.properties'];
/** Where Debian and RPM packages keep the config a distribution comes with (ES_HOME has no config/ there). */
const PACKAGED_CONFIG_DIR = '/etc/elasticsearch';
/** Written once this node has been part of a cluster with an elected master; kept with the data. */
const FORMED_MARKER = 'hasup-cluster-formed';

/** ES_TMPDIR: Elasticsearch's temp files stay under the service dir instead of /tmp. */
export function tmpDir(paths: ServicePaths): string {
  return join(paths.root, 'tmp');
}

/** The base URL of this member's Elasticsearch HTTP API. */
export function elasticsearchUrl(ctx: Pick<DriverContext, 'cfg' | 'ip'>): string {
  const host = bindHost(ctx.cfg, ctx.ip);
  return `http://${host.includes(':') ? `[${host}]` : host}:${String(ctx.cfg.http_port)}`;
}

/**
 * Elasticsearch 8 on one member: resolves which distribution and Java run
 * it, prepares the service dirs for the service user, writes the values of
 * elasticsearch.yml, and reads cluster health. Every setting needs a
 * restart (the plan lists them all as restart keys).
 */
export class ElasticsearchDriver implements ServiceDriver {
  private formedSeen = false;

  constructor(private readonly opts: ElasticsearchDriverOptions = {}) {}

  templateValues(ctx: DriverContext): Record<string, unknown> {
    const launch = resolveLaunch(ctx.cfg, this.opts.launchEnvironment);
    return {
      es_home: launch.home,
      es_java_home: launch.javaHome ?? '',
      tmp_dir: tmpDir(ctx.paths),
      ...elasticsearchSettings({
        cfg: ctx.cfg,
        memberId: ctx.memberId,
        ip: ctx.ip,
        dataDir: ctx.paths.data,
        logsDir: ctx.paths.logs,
        nodes: this.clusterNodes(ctx),
        formed: existsSync(join(ctx.paths.data, FORMED_MARKER)),
      }),
    };
  }

  async prepare(ctx: DriverContext): Promise<void> {
    const { paths, user } = ctx;
    const launch = resolveLaunch(ctx.cfg, this.opts.launchEnvironment);
    const problem = launchProblem(launch);
    if (problem) throw new Error(problem);
    await ensureOwnedDir(paths.data, 0o700, user);
    await ensureOwnedDir(paths.run, 0o700, user);
    await ensureOwnedDir(paths.logs, 0o750, user);
    // Elasticsearch creates elasticsearch.keystore in its config dir on first start.
    await ensureOwnedDir(paths.config, 0o750, user);
    await ensureOwnedDir(tmpDir(paths), 0o700, user);
    await assertReachable(paths.data, user);
    await assertReachable(paths.config, user);
    await assertReachable(launcherScript(launch.home), user);
    for (const name of COPIED_CONFIG_FILES) await copyDistributionFile(launch.home, name, paths.config, user);
  }

  async health(ctx: DriverContext, signal: AbortSignal): Promise<HealthResult> {
    const base = elasticsearchUrl(ctx);
    let answer: { status: number; json: unknown };
    try {
      answer = await httpJson(`${base}/_cluster/health`, signal);
    } catch (err) {
      return { status: 'critical', message: signal.aborted ? `Elasticsearch at ${base} did not answer in time` : `Elasticsearch at ${base}: ${(err as Error).message}` };
    }
    const result = interpretClusterHealth(answer.status, answer.json as ClusterHealthAnswer, String(ctx.cfg.cluster_name), base);
    if (result.details) await this.rememberFormed(ctx);
    return result;
  }

  private clusterNodes(ctx: DriverContext): ElasticsearchNode[] {
    if (this.opts.clusterNodes) return this.opts.clusterNodes(ctx);
    return [{ name: ctx.memberId, host: bindHost(ctx.cfg, ctx.ip), transportPort: Number(ctx.cfg.transport_port) }];
  }

  /** Health with details means a master is elected: the cluster exists, and this node is in it. */
  private async rememberFormed(ctx: DriverContext): Promise<void> {
    if (this.formedSeen) return;
    const marker = join(ctx.paths.data, FORMED_MARKER);
    try {
      if (!existsSync(marker)) {
        await writeFile(marker, `${new Date().toISOString()}\n`, { mode: 0o600 });
        if (ctx.user) await chown(marker, ctx.user.uid, ctx.user.gid);
      }
      this.formedSeen = true;
    } catch (err) {
      ctx.log.warn({ event: 'es_formed_marker', err: (err as Error).message }, `cannot write ${marker}; cluster.initial_master_nodes stays in elasticsearch.yml`);
    }
  }
}

/**
 * Copies a config file of the distribution into the service's config dir
 * (replacing it atomically when the distribution's copy changed, e.g. after
 * an upgrade), owned by the service user.
 */
async function copyDistributionFile(home: string, name: string, configDir: string, user: DriverContext['user']): Promise<void> {
  const candidates = [join(home, 'config', name), join(PACKAGED_CONFIG_DIR, name)];
  let source: string | undefined;
  for (const candidate of candidates) {
    if (await isFile(candidate)) {
      source = candidate;
      break;
    }
  }
  if (!source) throw new Error(`Elasticsearch needs ${name} and the distribution has none (looked at ${candidates.join(', ')})`);
  const content = await readFile(source);
  const target = join(configDir, name);
  const current = await readFile(target).catch(() => undefined);
  if (current?.equals(content)) return;
  const tmp = `${target}.tmp`;
  await writeFile(tmp, content, { mode: 0o640 });
  if (user) await chown(tmp, user.uid, user.gid);
  await rename(tmp, target);
}
