import { existsSync } from 'node:fs';
import { chown, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { formatHostPort } from '../../gossip/index.js';
import type { DriverContext, HealthResult, ServiceDriver, ServicePaths, UpgradeTarget } from '../../supervisor/driver.js';
import { elasticsearchUpgradeTarget } from '../upgrade-targets.js';
import { installServiceTls } from '../../supervisor/pki/service-copy.js';
import { httpJson } from '../http-json.js';
import { assertReachable, ensureOwnedDir, isFile, prepareServiceDirs } from '../service-dirs.js';
import { esAccess, esRequestExtras, esScheme, securityOn, type EsAccess, type EsUser } from './access.js';
import { initialMasterNodes, type ClusterRole } from './bootstrap.js';
import { interpretClusterHealth, type ClusterHealthAnswer } from './cluster-health.js';
import { launcherScript, launchProblem, resolveLaunch, type LaunchEnvironment } from './launch.js';
import { seedHostsContent, writeSeedHostsFile } from './seed-hosts.js';
import { bindHost, elasticsearchSettings, ES_TLS_DIR, transportAddress, type ElasticsearchNode } from './settings.js';
import { esPasswordSource, writeSecurityFiles } from './users.js';

export type { ElasticsearchNode };

/** A member of a hasup cluster (cluster.json): seed hosts from the census, bootstrapping by role (bootstrap.ts). */
export interface ElasticsearchClusterOptions {
  role: Exclude<ClusterRole, 'standalone'>;
  /** Every node of the census, this one (given) included: unicast_hosts.txt. */
  seedNodes: (self: ElasticsearchNode) => ElasticsearchNode[];
}

export interface ElasticsearchDriverOptions {
  /**
   * A member on its own: the cluster's master-eligible nodes, this member
   * included, written into elasticsearch.yml as discovery.seed_hosts and,
   * until the cluster has formed, cluster.initial_master_nodes. Default:
   * this member alone. Ignored when `cluster` is set.
   */
  clusterNodes?: (ctx: DriverContext) => ElasticsearchNode[];
  /** A member of a hasup cluster: the census decides the seeds, the role whether to bootstrap. */
  cluster?: ElasticsearchClusterOptions;
  /** Where the vendored distribution and `java` are looked up (tests). */
  launchEnvironment?: LaunchEnvironment;
}

/** Files the distribution brings that Elasticsearch needs in its config dir and hasup does not template. */
const COPIED_CONFIG_FILES = ['log4j2.properties'];
/** Where Debian and RPM packages keep the config a distribution comes with (ES_HOME has no config/ there). */
const PACKAGED_CONFIG_DIR = '/etc/elasticsearch';
/** Written once this node has been part of a cluster with an elected master; kept with the data. */
const FORMED_MARKER = 'hasup-cluster-formed';
/**
 * The same, on a founder, in the service dir outside the data: a founder
 * whose data was wiped must not bootstrap again (bootstrap.ts).
 */
export const BOOTSTRAPPED_MARKER = 'hasup-cluster-bootstrapped';

/** ES_TMPDIR: Elasticsearch's temp files stay under the service dir instead of /tmp. */
export function tmpDir(paths: ServicePaths): string {
  return join(paths.root, 'tmp');
}

/** The base URL of this member's Elasticsearch HTTP API (https when security is on; `tls`: the member's TLS is on). */
export function elasticsearchUrl(ctx: Pick<DriverContext, 'cfg' | 'ip' | 'tls'>): string {
  const host = bindHost(ctx.cfg, ctx.ip);
  return `${esScheme(ctx.cfg, ctx.tls !== undefined)}://${formatHostPort(host, String(ctx.cfg.http_port))}`;
}

/** How this member's clients reach its Elasticsearch as `user`, from the service's context (access.ts). */
export function driverAccess(ctx: Pick<DriverContext, 'cfg' | 'secrets' | 'tls'>, user: EsUser): EsAccess {
  return esAccess({ cfg: ctx.cfg, secrets: ctx.secrets, caFile: ctx.tls?.ca }, user);
}

/**
 * Elasticsearch 8 on one member: resolves which distribution and Java run
 * it, prepares the service dirs for the service user, writes the values of
 * elasticsearch.yml, and reads cluster health. Every setting needs a
 * restart (the plan lists them all as restart keys).
 */
export class ElasticsearchDriver implements ServiceDriver {
  private formedSeen = false;
  /** The context of the last prepare or health check: where the seed file goes, and the config in force. */
  private lastCtx?: DriverContext;
  /** Seed file writes one after another: they share the file beside it. */
  private seedWrites: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: ElasticsearchDriverOptions = {}) {}

  /** hasup upgrade elasticsearch --to /path/to/elasticsearch-home (the same major, not older). */
  async upgradeTarget(ctx: DriverContext, to: string): Promise<UpgradeTarget> {
    return elasticsearchUpgradeTarget(resolveLaunch(ctx.cfg, this.opts.launchEnvironment).home, to);
  }

  templateValues(ctx: DriverContext): Record<string, unknown> {
    const launch = resolveLaunch(ctx.cfg, this.opts.launchEnvironment);
    const formed = existsSync(join(ctx.paths.data, FORMED_MARKER));
    const cluster = this.opts.cluster;
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
        tls: ctx.tls !== undefined,
        discovery: cluster
          ? { kind: 'census', initialMasterNodes: initialMasterNodes({ role: cluster.role, selfName: ctx.memberId, formed, bootstrapped: existsSync(join(ctx.paths.root, BOOTSTRAPPED_MARKER)) }) }
          : { kind: 'static', nodes: this.clusterNodes(ctx), formed },
      }),
    };
  }

  /**
   * Rewrites unicast_hosts.txt from the census when it changed (the
   * Elasticsearch cluster work calls this as members come and go). Returns
   * the seed addresses when the file was written, undefined when it was
   * already right or the service has not been prepared yet.
   */
  async refreshSeedHosts(): Promise<string[] | undefined> {
    const ctx = this.lastCtx;
    const cluster = this.opts.cluster;
    if (!ctx || !cluster) return undefined;
    const write = this.seedWrites.then(async () => {
      const nodes = cluster.seedNodes(selfNode(ctx));
      return (await writeSeedHostsFile(ctx.paths.config, seedHostsContent(nodes), ctx.user)) ? nodes.map(transportAddress) : undefined;
    });
    this.seedWrites = write.catch(() => undefined);
    return write;
  }

  /** This member's Elasticsearch HTTP API, once the service has been prepared. */
  localUrl(): string | undefined {
    return this.lastCtx && elasticsearchUrl(this.lastCtx);
  }

  /** How to reach it as `user` (the CA and user when security is on), once the service has been prepared. */
  access(user: EsUser): EsAccess | undefined {
    return this.lastCtx && driverAccess(this.lastCtx, user);
  }

  async prepare(ctx: DriverContext): Promise<void> {
    const { paths, user } = ctx;
    const launch = resolveLaunch(ctx.cfg, this.opts.launchEnvironment);
    const problem = launchProblem(launch);
    if (problem) throw new Error(problem);
    // Elasticsearch creates elasticsearch.keystore in its config dir on first start.
    await prepareServiceDirs(paths, user);
    await ensureOwnedDir(tmpDir(paths), 0o700, user);
    await assertReachable(paths.config, user);
    await assertReachable(launcherScript(launch.home), user);
    for (const name of COPIED_CONFIG_FILES) await copyDistributionFile(launch.home, name, paths.config, user);
    if (securityOn(ctx.cfg, ctx.tls !== undefined)) await this.prepareSecurity(ctx);
    this.lastCtx = ctx;
    // Before the start: the node's first discovery round already has the census's seeds.
    await this.refreshSeedHosts();
  }

  /**
   * The member's certificate was issued anew: the copy under config/tls is
   * brought up to date, and Elasticsearch takes it up by itself (it watches
   * its SSL files and reloads them, within 5 s by default), no restart.
   */
  async reloadTls(ctx: DriverContext): Promise<void> {
    if (securityOn(ctx.cfg, ctx.tls !== undefined) && ctx.tls) installServiceTls(ctx.tls, ctx.paths.config, ctx.user);
  }

  async health(ctx: DriverContext, signal: AbortSignal): Promise<HealthResult> {
    this.lastCtx = ctx;
    const base = elasticsearchUrl(ctx);
    let answer: { status: number; json: unknown };
    try {
      answer = await httpJson(`${base}/_cluster/health`, signal, undefined, esRequestExtras(driverAccess(ctx, 'admin')));
    } catch (err) {
      return { status: 'critical', message: signal.aborted ? `Elasticsearch at ${base} did not answer in time` : `Elasticsearch at ${base}: ${(err as Error).message}` };
    }
    const result = interpretClusterHealth(answer.status, answer.json as ClusterHealthAnswer, String(ctx.cfg.cluster_name), base);
    if (result.details) await this.rememberFormed(ctx);
    else if (this.opts.cluster?.role === 'joiner' && result.message?.endsWith('has no elected master yet')) {
      // Say why a joiner can wait for ever: it never forms a cluster itself.
      return { ...result, message: `${result.message} (this member joins the cluster the founder's node forms; is it running and in the census?)` };
    }
    return result;
  }

  /**
   * Security on: the member's TLS files copied under the config dir (where
   * Elasticsearch reads SSL files from) and hasup's users written into its
   * file realm. Passwords never reach a log; only where they come from.
   */
  private async prepareSecurity(ctx: DriverContext): Promise<void> {
    if (!ctx.tls) throw new Error('elasticsearch: security = true needs TLS, and TLS is off on this member (no cluster CA, or [tls] enabled = false; see docs/tls.md)');
    installServiceTls(ctx.tls, ctx.paths.config, ctx.user);
    const changed = await writeSecurityFiles(ctx.paths.config, ctx.secrets, ctx.user);
    if (changed.length > 0) {
      const source = esPasswordSource(ctx.secrets);
      ctx.log.info(
        { event: 'es_security_files', files: changed, passwords: source },
        `Elasticsearch security: ${changed.join(', ')} written in ${ctx.paths.config} (TLS files in ${ES_TLS_DIR}/; passwords ${source === 'stored' ? 'from the secrets file' : 'derived from the cluster secrets, which predate stored Elasticsearch passwords'})`,
      );
    }
  }

  private clusterNodes(ctx: DriverContext): ElasticsearchNode[] {
    if (this.opts.clusterNodes) return this.opts.clusterNodes(ctx);
    return [selfNode(ctx)];
  }

  /** Health with details means a master is elected: the cluster exists, and this node is in it. */
  private async rememberFormed(ctx: DriverContext): Promise<void> {
    if (this.formedSeen) return;
    const markers = [join(ctx.paths.data, FORMED_MARKER)];
    if (this.opts.cluster?.role === 'founder') markers.push(join(ctx.paths.root, BOOTSTRAPPED_MARKER));
    try {
      for (const marker of markers) {
        if (existsSync(marker)) continue;
        await writeFile(marker, `${new Date().toISOString()}\n`, { mode: 0o600 });
        if (ctx.user) await chown(marker, ctx.user.uid, ctx.user.gid);
      }
      this.formedSeen = true;
    } catch (err) {
      ctx.log.warn({ event: 'es_formed_marker', err: (err as Error).message }, `cannot write ${markers.join(' and ')}; cluster.initial_master_nodes stays in elasticsearch.yml`);
    }
  }
}

/** This member's node as the others reach it. */
function selfNode(ctx: Pick<DriverContext, 'cfg' | 'ip' | 'memberId'>): ElasticsearchNode {
  return { name: ctx.memberId, host: bindHost(ctx.cfg, ctx.ip), transportPort: Number(ctx.cfg.transport_port) };
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
