import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { ServiceDriver, UpgradeTarget } from './driver.js';
import type { LogSink } from './log-sink.js';
import type { Logger } from './log.js';
import { findPlan } from './plan.js';
import { resolveServiceUser } from './process-runner.js';
import type { MemberTlsFiles } from './pki/member-files.js';
import type { ClusterSecrets } from './secrets.js';
import { Service, type GossipedConfig, type ServiceStatus } from './service.js';
import type { StateDir } from './state-dir.js';
import type { TomlTable } from './toml-schema.js';
import { mergeInto } from './config-layers.js';

export interface SupervisorDeps {
  stateDir: StateDir;
  memberId: string;
  ip: string;
  /** The leader VIP's address when [cluster] vip is set: templates see it as sys.vip. */
  vip?: string;
  /** True when the supervisor runs as root: children then run as their plan's service user. */
  dropPrivileges: boolean;
  secrets: ClusterSecrets;
  /** The member's TLS files (docs/tls.md); each service gets a copy of its own. Absent when TLS is off. */
  tls?: MemberTlsFiles;
  planPath: string[];
  group: string;
  /** [service.NAME] tables from hasup.toml. */
  userLayers: Record<string, TomlTable>;
  logSink: LogSink;
  log: Logger;
  driverFor(name: string): ServiceDriver;
}

/** An upgrade in force on this member (`hasup upgrade`), with the one it replaced, to go back to. */
interface UpgradeRecord {
  /** As the operator gave it (a version or a path). */
  to: string;
  target: UpgradeTarget;
  previous: { to: string; target: UpgradeTarget } | null;
}

/** What the supervisor remembers across restarts: which services, whether they should run, their config and upgrades. */
interface Persisted {
  services: Array<{ name: string; wanted: 'up' | 'down' }>;
  configs: Record<string, GossipedConfig>;
  upgrades: Record<string, UpgradeRecord>;
}

/**
 * The set of services this member runs. `load`/`unload` change the set,
 * `start`/`stop` whether a loaded one runs; both are remembered in the state
 * directory so a restarted supervisor brings back what the operator chose.
 */
export class Supervisor extends EventEmitter<{ status: [ServiceStatus] }> {
  private readonly services = new Map<string, Service>();
  private persisted: Persisted;
  private readonly applying = new Map<string, Promise<string>>();
  private readonly file: string;

  constructor(private readonly deps: SupervisorDeps) {
    super();
    this.file = deps.stateDir.path('services.json');
    this.persisted = this.read();
  }

  /** Loads the remembered set, or `initial` on a member's first start; onCreated runs once every service exists, before any starts. */
  async start(initial: string[], onCreated?: () => void): Promise<void> {
    const firstStart = !existsSync(this.file);
    const entries = firstStart ? initial.map((name) => ({ name, wanted: 'up' as const })) : this.persisted.services;
    // Every plan is found and loaded before anything starts, so a missing
    // plan stops the supervisor with nothing half-started.
    const created = [];
    for (const entry of entries) created.push({ entry, service: await this.create(entry.name) });
    if (firstStart) {
      this.persisted.services = entries;
      this.write();
    }
    onCreated?.();
    // All at once: a service's start may wait on another's (a new member's PostgreSQL waits
    // for etcd to say where its data comes from), so none may queue behind another.
    const starts = await Promise.allSettled(created.filter(({ entry }) => entry.wanted === 'up').map(({ service }) => service.start()));
    const failed = starts.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  list(): ServiceStatus[] {
    return [...this.services.values()].map((s) => s.status());
  }

  get(name: string): Service | undefined {
    return this.services.get(name);
  }

  async load(name: string): Promise<ServiceStatus> {
    if (this.services.has(name)) throw new Error(`service ${name} is already loaded`);
    const service = await this.create(name);
    this.persisted.services.push({ name, wanted: 'up' });
    this.write();
    await service.start();
    return service.status();
  }

  async unload(name: string): Promise<void> {
    const service = this.require(name);
    await service.stop();
    this.services.delete(name);
    this.persisted.services = this.persisted.services.filter((s) => s.name !== name);
    this.write();
  }

  async startService(name: string): Promise<ServiceStatus> {
    const service = this.require(name);
    this.setWanted(name, 'up');
    await service.start();
    return service.status();
  }

  async stopService(name: string): Promise<ServiceStatus> {
    const service = this.require(name);
    this.setWanted(name, 'down');
    await service.stop();
    return service.status();
  }

  async restartService(name: string): Promise<ServiceStatus> {
    const service = this.require(name);
    await service.restart();
    return service.status();
  }

  /** What `hasup upgrade NAME --to TO` would run on this member, checked; changes nothing. */
  checkUpgrade(name: string, to: string): Promise<UpgradeTarget> {
    return this.require(name).upgradeTarget(to);
  }

  /**
   * Switches NAME on this member to the program TO names and restarts it
   * (hasup upgrade); remembered across supervisor restarts, with the
   * upgrade it replaces for revertUpgrade. Refused (UpgradeRefused,
   * ConfigRefused) with nothing changed when TO is not installed, does not
   * run, or cannot run this member's data.
   */
  async upgradeService(name: string, to: string): Promise<ServiceStatus> {
    const service = this.require(name);
    const target = await service.upgradeTarget(to);
    const sg = `${name}.${this.deps.group}`;
    const current = this.persisted.upgrades[sg];
    await service.setUpgrade(target);
    this.persisted.upgrades[sg] = { to, target, previous: current ? { to: current.to, target: current.target } : null };
    this.write();
    return service.status();
  }

  /** Back to what ran before the last upgradeService (the configured program when it was the first); restarts. */
  async revertUpgrade(name: string): Promise<ServiceStatus> {
    const service = this.require(name);
    const sg = `${name}.${this.deps.group}`;
    const record = this.persisted.upgrades[sg];
    if (!record) throw new Error(`no upgrade of ${sg} on this member to undo`);
    await service.setUpgrade(record.previous?.target);
    if (record.previous) this.persisted.upgrades[sg] = { ...record.previous, previous: null };
    else delete this.persisted.upgrades[sg];
    this.write();
    return service.status();
  }

  /** Validates a config document for SVC.GROUP without applying it (before gossiping it). */
  async checkConfig(serviceGroup: string, candidate: GossipedConfig): Promise<void> {
    const service = this.byServiceGroup(serviceGroup);
    const inForce = this.persisted.configs[serviceGroup]?.version ?? 0;
    if (candidate.version <= inForce) throw new Error(`version ${candidate.version} of ${serviceGroup} is not newer than the version in force (${inForce})`);
    if (service) await service.check(candidate);
  }

  /** The gossiped config document in force for SVC.GROUP (also one this member does not run), or undefined when none was applied. */
  configInForce(serviceGroup: string): GossipedConfig | undefined {
    const c = this.persisted.configs[serviceGroup];
    return c ? structuredClone(c) : undefined;
  }

  /**
   * Applies a gossiped config document. Remembered even for a service this
   * member does not run (yet), so loading it later applies the newest one.
   */
  applyConfig(serviceGroup: string, candidate: GossipedConfig): Promise<string> {
    // The same document arrives twice on the member where it was applied:
    // from the API and back from the ring. Both callers share one application.
    const key = `${serviceGroup}@${candidate.version}`;
    const inFlight = this.applying.get(key);
    if (inFlight) return inFlight;
    const applying = this.applyConfigNow(serviceGroup, candidate).finally(() => this.applying.delete(key));
    this.applying.set(key, applying);
    return applying;
  }

  private async applyConfigNow(serviceGroup: string, candidate: GossipedConfig): Promise<string> {
    const inForce = this.persisted.configs[serviceGroup]?.version ?? 0;
    if (candidate.version <= inForce) return 'unchanged';
    const service = this.byServiceGroup(serviceGroup);
    const outcome = service ? await service.applyGossiped(candidate) : 'remembered';
    this.persisted.configs[serviceGroup] = candidate;
    this.write();
    return outcome;
  }

  /** Every service takes up the member's new certificate, one after the other (Service.refreshTls). */
  async refreshTls(): Promise<void> {
    for (const s of this.services.values()) await s.refreshTls();
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.services.values()].map((s) => s.stop()));
  }

  /** Leaves every child running for the next supervisor to adopt. */
  releaseAll(): void {
    for (const s of this.services.values()) s.release();
  }

  private byServiceGroup(serviceGroup: string): Service | undefined {
    const [name, group] = serviceGroup.split('.');
    const service = this.services.get(name ?? '');
    return service && service.group === group ? service : undefined;
  }

  private async create(name: string): Promise<Service> {
    const plan = findPlan(name, this.deps.planPath);
    const user = this.deps.dropPrivileges ? await resolveServiceUser(plan.manifest.run.user) : undefined;
    const service = new Service({
      plan,
      group: this.deps.group,
      driver: this.deps.driverFor(plan.manifest.driver),
      userLayer: this.deps.userLayers[name] ?? {},
      serviceRoot: this.deps.stateDir.path('svc', name),
      memberId: this.deps.memberId,
      ip: this.deps.ip,
      ...(this.deps.vip ? { vip: this.deps.vip } : {}),
      user,
      secrets: this.deps.secrets,
      tls: this.deps.tls,
      logSink: this.deps.logSink,
      log: this.deps.log,
      initialConfig: this.persisted.configs[`${name}.${this.deps.group}`],
      initialUpgrade: this.persisted.upgrades[`${name}.${this.deps.group}`]?.target,
    });
    service.on('status', (s) => this.emit('status', s));
    this.services.set(name, service);
    return service;
  }

  private require(name: string): Service {
    const service = this.services.get(name);
    if (!service) throw new Error(`service ${name} is not loaded (loaded: ${[...this.services.keys()].join(', ') || 'none'})`);
    return service;
  }

  private setWanted(name: string, wanted: 'up' | 'down'): void {
    for (const s of this.persisted.services) if (s.name === name) s.wanted = wanted;
    this.write();
  }

  private read(): Persisted {
    return readPersisted(this.file);
  }

  private write(): void {
    mkdirSync(this.deps.stateDir.root, { recursive: true });
    writePersisted(this.file, this.persisted);
  }
}

function readPersisted(file: string): Persisted {
  if (!existsSync(file)) return { services: [], configs: {}, upgrades: {} };
  const data = JSON.parse(readFileSync(file, 'utf8')) as Partial<Persisted>;
  return { services: data.services ?? [], configs: data.configs ?? {}, upgrades: data.upgrades ?? {} };
}

function writePersisted(file: string, persisted: Persisted): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(persisted, null, 2)}\n`, { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Changes the config document in force for SVC.GROUP on a member whose
 * supervisor is not running (`hasup cluster demote --offline`): `patch`
 * over the document, one version up. The next start applies it before any
 * service runs, and the ring carries it to the members with an older one.
 * Returns the new version.
 */
export function patchConfigOffline(stateDir: StateDir, serviceGroup: string, patch: TomlTable): number {
  const file = stateDir.path('services.json');
  if (!existsSync(file)) throw new Error(`${file} does not exist: no hasup has run with state directory ${stateDir.root}`);
  const persisted = readPersisted(file);
  const inForce = persisted.configs[serviceGroup];
  const version = (inForce?.version ?? 0) + 1;
  persisted.configs[serviceGroup] = { version, data: mergeInto(inForce?.data ?? {}, patch) };
  writePersisted(file, persisted);
  return version;
}

