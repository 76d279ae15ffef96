import { EventEmitter } from 'node:events';
import { chownSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { changedKeys, mergeLayers, needsRestart, renderTemplates, type ConfigLayer } from './config-layers.js';
import { UpgradeRefused, type DriverContext, type Health, type HealthResult, type ServiceDriver, type ServicePaths, type UpgradeTarget } from './driver.js';
import type { LogSink } from './log-sink.js';
import type { Logger } from './log.js';
import type { Plan } from './plan.js';
import { ProcessRunner, type RunnerState, type ServiceUser } from './process-runner.js';
import type { MemberTlsFiles } from './pki/member-files.js';
import { installServiceTls, serviceTlsFiles } from './pki/service-copy.js';
import type { ClusterSecrets } from './secrets.js';
import type { TomlTable } from './toml-schema.js';
import { compileTemplate } from './templates.js';

/** A config document applied through the ring (`hasup config apply`). */
export interface GossipedConfig {
  version: number;
  data: TomlTable;
}

export interface ServiceStatus {
  name: string;
  group: string;
  state: RunnerState['state'];
  pid?: number;
  /** ms since the epoch of the last process state change. */
  since: number;
  restarts: number;
  lastError?: string;
  health: Health;
  healthMessage?: string;
  healthSince: number;
  details?: Record<string, unknown>;
  /** Version of the gossiped config in force, 0 when none. */
  configVersion: number;
  /** The process is one a previous hasup started and this one adopted (a restart of hasup alone); absent once this hasup restarted it. */
  adopted?: boolean;
  /** The plan's version of the service (plan.toml `version`, e.g. "15"), or the one `hasup upgrade` switched this member to. */
  version?: string;
}

export interface ServiceDeps {
  plan: Plan;
  group: string;
  driver: ServiceDriver;
  /** The node's own layer from hasup.toml ([service.NAME]). */
  userLayer: TomlTable;
  serviceRoot: string;
  memberId: string;
  ip: string;
  /** The leader VIP's address, when one is configured (sys.vip in templates). */
  vip?: string;
  user?: ServiceUser;
  secrets: ClusterSecrets;
  /** The member's TLS files, copied into the service's own directory for its user; absent when TLS is off. */
  tls?: MemberTlsFiles;
  logSink: LogSink;
  log: Logger;
  /** The gossiped config in force when the supervisor last ran. */
  initialConfig?: GossipedConfig;
  /** This member's upgrade in force when the supervisor last ran (hasup upgrade). */
  initialUpgrade?: UpgradeTarget;
}

export class ConfigRefused extends Error {}

const STARTUP_PROBE_MS = 200;
/** How long a service may take to take up a new certificate. */
const TLS_RELOAD_TIMEOUT_MS = 10_000;
/** How long a driver may take to check an upgrade's program (it runs its --version). */
const UPGRADE_CHECK_TIMEOUT_MS = 30_000;

/**
 * One supervised service: renders its config from the layers, prepares and
 * runs its process through a ProcessRunner, checks its health on the plan's
 * interval, and applies config changes by reload or restart as the plan
 * declares, keeping the previous config when a new one is refused.
 */
export class Service extends EventEmitter<{ status: [ServiceStatus] }> {
  readonly name: string;
  readonly paths: ServicePaths;
  private readonly runner: ProcessRunner;
  private cfg: TomlTable;
  private gossiped: GossipedConfig | undefined;
  /** What `hasup upgrade` set on this member: config values over every other layer (the program to run), and its version. */
  private upgrade: UpgradeTarget | undefined;
  private health: HealthResult = { status: 'unknown' };
  private healthSince = Date.now();
  private healthTimer?: NodeJS.Timeout;
  private running = false;
  /** Until the first OK after a (re)start, health is checked every STARTUP_PROBE_MS. */
  private startupProbing = true;
  private probedPid?: number;
  private readonly log: Logger;
  /** Serialises config applications and starts. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly deps: ServiceDeps) {
    super();
    this.name = deps.plan.manifest.name;
    this.log = deps.log.child({ service: this.name });
    const root = deps.serviceRoot;
    this.paths = { root, data: join(root, 'data'), config: join(root, 'config'), run: join(root, 'run'), logs: join(root, 'logs') };
    this.gossiped = deps.initialConfig;
    this.upgrade = deps.initialUpgrade;
    this.cfg = this.merge(this.gossiped);
    const manifest = deps.plan.manifest;
    this.runner = new ProcessRunner({
      name: this.name,
      command: '',
      args: [],
      env: {},
      cwd: this.paths.root,
      user: deps.user?.name,
      stopSignal: manifest.run.stop_signal,
      stopTimeoutMs: manifest.run.stop_timeout_ms,
      backoff: { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2 },
      flapping: { windowMs: 60_000, maxRestarts: 5 },
      pidFile: join(this.paths.run, 'hasup-child.pid'),
      cgroup: () => deps.driver.cgroup?.(this.context(this.cfg)),
      logSink: deps.logSink,
    });
    this.runner.on('state', (r) => {
      // A fresh child: probe quickly until it answers, so a restart is seen
      // healthy within moments rather than a whole health interval later.
      if (r.state === 'running' && r.pid !== this.probedPid) {
        this.probedPid = r.pid;
        this.startupProbing = true;
        this.scheduleHealth(0);
      }
      // No process, no health: say so at once rather than at the next check.
      if (this.running && r.state !== 'running' && r.state !== 'starting') {
        this.setHealth({ status: 'critical', message: r.lastError ? `${r.state}: ${r.lastError}` : `process is ${r.state}` });
      }
      this.emit('status', this.status());
    });
  }

  get group(): string {
    return this.deps.group;
  }

  status(): ServiceStatus {
    const r = this.runner.state();
    return {
      name: this.name,
      group: this.deps.group,
      state: r.state,
      pid: r.pid,
      since: r.since,
      restarts: r.restarts,
      lastError: r.lastError,
      health: this.health.status,
      healthMessage: this.health.message,
      healthSince: this.healthSince,
      details: this.health.details,
      configVersion: this.gossiped?.version ?? 0,
      ...(r.adopted ? { adopted: true } : {}),
      version: this.upgrade?.version ?? this.deps.plan.manifest.version,
    };
  }

  /** The merged config in force. */
  config(): TomlTable {
    return this.cfg;
  }

  /** What the service's driver is given, with the config in force: for plugins that run the service's tools beside it (backups). */
  driverContext(): DriverContext {
    return this.context(this.cfg);
  }

  /** Prepares, renders and starts the service; adopts a child a previous supervisor left running. */
  start(): Promise<void> {
    return this.serialised(async () => {
      this.ensureDirs();
      this.installTls();
      const ctx = this.context(this.cfg);
      await this.deps.driver.prepare(ctx);
      this.writeFiles(this.render(this.cfg));
      this.configureRunner();
      this.running = true;
      await this.runner.start();
      this.scheduleHealth(0);
    });
  }

  stop(): Promise<void> {
    return this.serialised(async () => {
      this.running = false;
      clearTimeout(this.healthTimer);
      await this.runner.stop();
      this.setHealth({ status: 'unknown', message: 'stopped' });
    });
  }

  restart(): Promise<void> {
    return this.serialised(async () => {
      this.installTls();
      this.configureRunner();
      await this.runner.restart();
    });
  }

  /**
   * The member's certificate changed (cert rotate, docs/tls.md): the copy is
   * brought up to date and a running service told to use it, without a
   * restart (the driver's reloadTls).
   */
  refreshTls(): Promise<void> {
    return this.serialised(async () => {
      this.installTls();
      if (this.running) await this.deps.driver.reloadTls?.(this.context(this.cfg), AbortSignal.timeout(TLS_RELOAD_TIMEOUT_MS));
    });
  }

  /** Leave the child running for the next supervisor to adopt (supervisor restart). */
  release(): void {
    this.running = false;
    clearTimeout(this.healthTimer);
    this.runner.release();
  }

  /** What `hasup upgrade --to TO` would run here, checked by the driver; changes nothing. */
  upgradeTarget(to: string): Promise<UpgradeTarget> {
    const resolve = this.deps.driver.upgradeTarget;
    if (!resolve) return Promise.reject(new UpgradeRefused(`hasup cannot upgrade ${this.name} (its driver names no program to switch)`));
    return resolve.call(this.deps.driver, this.context(this.cfg), to, AbortSignal.timeout(UPGRADE_CHECK_TIMEOUT_MS));
  }

  /**
   * Runs the service with `layer` over every other config layer (an upgrade
   * to another program), or with none (back to the configured one):
   * merged, rendered and validated like a config document, then the service
   * restarts. A layer that does not merge, render or validate is refused
   * and nothing changes.
   */
  setUpgrade(upgrade: UpgradeTarget | undefined): Promise<'restarted' | 'unchanged'> {
    return this.serialised(async () => {
      const cfg = this.mergeOrRefuse(this.gossiped, upgrade?.cfg);
      const files = this.renderOrRefuse(cfg);
      const problem = await this.deps.driver.validate?.(this.context(cfg), files);
      if (problem) throw new ConfigRefused(problem);
      const changed = changedKeys(this.cfg, cfg);
      this.cfg = cfg;
      this.upgrade = upgrade;
      if (changed.length === 0) return 'unchanged';
      this.writeFiles(files);
      if (!this.running) return 'unchanged';
      this.log.info({ event: 'upgrade', changed, to: upgrade?.version ?? null }, upgrade ? `upgrade to ${upgrade.version}: restarting` : 'upgrade undone: restarting with the configured program');
      this.configureRunner();
      await this.runner.restart();
      return 'restarted';
    });
  }

  /**
   * Checks a gossiped config document without applying it: merge, render
   * and the service's own validation. Throws ConfigRefused with the reason.
   */
  async check(candidate: GossipedConfig): Promise<void> {
    const cfg = this.mergeOrRefuse(candidate);
    const files = this.renderOrRefuse(cfg);
    const problem = await this.deps.driver.validate?.(this.context(cfg), files);
    if (problem) throw new ConfigRefused(problem);
  }

  /**
   * Applies a gossiped config document (the highest version wins). A document
   * that does not merge, render or validate is refused and the config in
   * force stays; a reload the service rejects is rolled back.
   */
  applyGossiped(candidate: GossipedConfig): Promise<'reloaded' | 'restarted' | 'unchanged'> {
    return this.serialised(async () => {
      if (this.gossiped && candidate.version <= this.gossiped.version) {
        throw new ConfigRefused(`version ${candidate.version} is not newer than the version in force (${this.gossiped.version})`);
      }
      const cfg = this.mergeOrRefuse(candidate);
      const files = this.renderOrRefuse(cfg);
      const problem = await this.deps.driver.validate?.(this.context(cfg), files);
      if (problem) throw new ConfigRefused(problem);
      const changed = changedKeys(this.cfg, cfg);
      const previousFiles = this.readCurrentFiles();
      const previous = { cfg: this.cfg, gossiped: this.gossiped };
      this.cfg = cfg;
      this.gossiped = candidate;
      if (changed.length === 0) return 'unchanged';
      this.writeFiles(files);
      if (!this.running) return 'unchanged';
      if (needsRestart(changed, this.deps.plan.manifest.config.restart_keys)) {
        this.log.info({ event: 'config', version: candidate.version, changed }, 'config changed; restarting');
        this.configureRunner();
        await this.runner.restart();
        return 'restarted';
      }
      this.runner.signal(this.deps.plan.manifest.config.reload_signal);
      const rejected = await this.deps.driver.verifyReload?.(this.context(cfg));
      if (rejected) {
        this.log.warn({ event: 'config_rejected', version: candidate.version, reason: rejected }, 'service rejected the new config; restoring the previous one');
        this.writeFiles(previousFiles);
        this.cfg = previous.cfg;
        this.gossiped = previous.gossiped;
        this.runner.signal(this.deps.plan.manifest.config.reload_signal);
        throw new ConfigRefused(rejected);
      }
      this.log.info({ event: 'config', version: candidate.version, changed }, 'config changed; reloaded');
      return 'reloaded';
    });
  }

  // ---- internals --------------------------------------------------------------

  private serialised<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  private merge(gossiped: GossipedConfig | undefined, upgrade = this.upgrade?.cfg): TomlTable {
    const layers: ConfigLayer[] = [{ name: `[service.${this.name}] in hasup.toml`, data: this.deps.userLayer }];
    if (gossiped) layers.push({ name: `config version ${gossiped.version}`, data: gossiped.data });
    if (upgrade) layers.push({ name: 'this member\'s upgrade (hasup upgrade)', data: upgrade });
    return mergeLayers(this.deps.plan.defaults, layers);
  }

  private mergeOrRefuse(candidate: GossipedConfig | undefined, upgrade = this.upgrade?.cfg): TomlTable {
    try {
      return this.merge(candidate, upgrade);
    } catch (err) {
      throw new ConfigRefused((err as Error).message);
    }
  }

  private renderOrRefuse(cfg: TomlTable): Map<string, string> {
    try {
      return this.render(cfg);
    } catch (err) {
      throw new ConfigRefused((err as Error).message);
    }
  }

  private context(cfg: TomlTable): DriverContext {
    const tls = this.deps.tls && serviceTlsFiles(this.paths.root);
    return { plan: this.deps.plan, paths: this.paths, cfg, memberId: this.deps.memberId, ip: this.deps.ip, user: this.deps.user, secrets: this.deps.secrets, ...(tls ? { tls } : {}), log: this.log };
  }

  private templateContext(cfg: TomlTable) {
    const ctx = this.context(cfg);
    const svc = {
      name: this.name,
      group: this.deps.group,
      data_dir: this.paths.data,
      config_dir: this.paths.config,
      run_dir: this.paths.run,
      logs_dir: this.paths.logs,
      ...(ctx.tls ? { tls: ctx.tls } : {}),
      ...this.deps.driver.templateValues?.(ctx),
    };
    return { cfg, svc, sys: { ip: this.deps.ip, member_id: this.deps.memberId, ...(this.deps.vip ? { vip: this.deps.vip } : {}) } };
  }

  private render(cfg: TomlTable): Map<string, string> {
    return renderTemplates(this.deps.plan, this.templateContext(cfg));
  }

  private configureRunner(): void {
    const ctx = this.templateContext(this.cfg);
    const run = this.deps.plan.manifest.run;
    const fill = (text: string) => compileTemplate(text)(ctx);
    const env: Record<string, string | undefined> = { PATH: process.env.PATH, LANG: 'C.UTF-8' };
    for (const [name, value] of Object.entries(run.env)) env[name] = fill(value);
    this.runner.setCommand({ command: fill(run.command), args: run.args.map(fill), env, logFile: run.log_file ? fill(run.log_file) : undefined });
  }

  /** The service's copy of the member's TLS files, brought up to date before every (re)start. */
  private installTls(): void {
    if (this.deps.tls) installServiceTls(this.deps.tls, this.paths.root, this.deps.user);
  }

  private ensureDirs(): void {
    for (const dir of [this.paths.root, this.paths.config, this.paths.run, this.paths.logs]) {
      mkdirSync(dir, { recursive: true, mode: 0o750 });
      if (this.deps.user) chownSync(dir, this.deps.user.uid, this.deps.user.gid);
    }
  }

  private readCurrentFiles(): Map<string, string> {
    const out = new Map<string, string>();
    for (const name of this.deps.plan.templates.keys()) {
      const file = join(this.paths.config, name);
      if (existsSync(file)) out.set(name, readFileSync(file, 'utf8'));
    }
    return out;
  }

  /** Atomic per file: write beside, then rename, so the service never reads half a file. */
  private writeFiles(files: Map<string, string>): void {
    for (const [name, content] of files) {
      const file = join(this.paths.config, name);
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, content, { mode: 0o640 });
      if (this.deps.user) chownSync(tmp, this.deps.user.uid, this.deps.user.gid);
      renameSync(tmp, file);
    }
  }

  private scheduleHealth(delayMs: number): void {
    clearTimeout(this.healthTimer);
    if (!this.running) return;
    this.healthTimer = setTimeout(() => void this.checkHealth(), delayMs);
    this.healthTimer.unref();
  }

  private async checkHealth(): Promise<void> {
    const { interval_ms, timeout_ms } = this.deps.plan.manifest.health;
    const r = this.runner.state();
    let result: HealthResult;
    if (r.state !== 'running') {
      result = { status: 'critical', message: r.lastError ? `${r.state}: ${r.lastError}` : `process is ${r.state}` };
    } else {
      try {
        result = await this.deps.driver.health(this.context(this.cfg), AbortSignal.timeout(timeout_ms));
      } catch (err) {
        result = { status: 'critical', message: (err as Error).message };
      }
      // The process changed while we asked (crashed, restarted): the answer is stale.
      const now = this.runner.state();
      if (now.state !== 'running' || now.pid !== r.pid) {
        this.scheduleHealth(0);
        return;
      }
    }
    if (this.running) this.setHealth(result);
    if (result.status === 'ok' || result.status === 'warning') this.startupProbing = false;
    this.scheduleHealth(this.startupProbing ? Math.min(STARTUP_PROBE_MS, interval_ms) : interval_ms);
  }

  private setHealth(result: HealthResult): void {
    const changed = result.status !== this.health.status;
    if (changed) this.healthSince = Date.now();
    this.health = result;
    if (changed) {
      const level = result.status === 'critical' ? 'warn' : 'info';
      this.log[level]({ event: 'health', health: result.status, reason: result.message }, `${this.name} is ${result.status}`);
      this.emit('status', this.status());
    }
  }
}
