import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { realClock } from '../ha/clock.js';
import { DEFAULT_HA_SETTINGS, ElectedLeadership, HaController, haSettingsFrom, watchdogTimeoutS, type HaOperations, type HaSettings } from '../ha/index.js';
import type { TlsClientOptions } from '../plugins/http-json.js';
import { EtcdSlotClaims } from '../plugins/backup/etcd-slot-claims.js';
import { PgBackRest } from '../plugins/backup/pgbackrest.js';
import type { SearchSnapshots } from '../plugins/backup/search-snapshots.js';
import { checkSpareSettings, SourceRepository, sourcePlaceFor } from '../plugins/backup/source-repo.js';
import type { DriverContext } from '../supervisor/driver.js';
import { EtcdSpareRecord, SpareKeeper } from './spare.js';
import { EtcdClient } from '../plugins/etcd/client.js';
import { EtcdClusterStore } from '../plugins/etcd/ha-store.js';
import { ensureServiceCgroup, removeServiceCgroup } from '../plugins/fence/cgroup.js';
import { ProcessFence } from '../plugins/fence/process-fence.js';
import { PostgresqlDriver } from '../plugins/postgresql/driver.js';
import { PostgresHaNode, type PgServiceHandle } from '../plugins/postgresql/ha-node.js';
import type { ServiceDriver } from '../supervisor/driver.js';
import type { Logger } from '../supervisor/log.js';

/**
 * Wires PostgreSQL leadership for a member of an HA cluster: the etcd
 * client and store, the PostgreSQL side (driver hooks + ReplicatedDatabase),
 * the HA loop and the Leadership the HTTP checks read. The daemon swaps it
 * in for StandaloneLeadership when etcd endpoints are known.
 */
export interface PostgresHaOptions {
  memberId: string;
  ip: string;
  /** Service group, as in postgresql.default. */
  group: string;
  /** Names the cluster in etcd keys: /hasup/<scope>/postgresql/<group>/. */
  scope: string;
  etcdEndpoints: () => string[];
  /** The supervisor's services (PostgreSQL is looked up by name when needed). */
  services: { get(name: string): PgServiceHandle | undefined };
  /**
   * Called when PostgreSQL's first start waits for the cluster to say how to
   * get its data (the supervisor has created every service by then): what
   * the cluster's etcd needs to start must not wait behind it.
   */
  onBootstrapWait?: () => void;
  /** TLS options of the etcd client (the member's CA, certificate and key; docs/tls.md), read on every call (cert rotate changes them); undefined when TLS is off. */
  etcdTls?: () => TlsClientOptions | undefined;
  /** The PostgreSQL service's directory (<state>/svc/postgresql): the fence reads data/postmaster.pid and writes its record here. */
  serviceRoot: string;
  /** Elasticsearch snapshots, for a warm spare's backup sets (daemon.ts; undefined where they are off). */
  searchSnapshots?: () => SearchSnapshots | undefined;
  log: Logger;
  serviceName?: string;
}

/** One SourceRepository per config in force (its prepare() is done once per object). */
const sources = new WeakMap<DriverContext, SourceRepository>();
function sourceFor(ctx: DriverContext, repo: string): SourceRepository {
  let s = sources.get(ctx);
  if (!s || s.place.repo !== repo) sources.set(ctx, (s = new SourceRepository(sourcePlaceFor(ctx, repo))));
  return s;
}

export class PostgresHa {
  readonly leadership: ElectedLeadership;
  readonly controller: HaController;
  readonly node: PostgresHaNode;
  readonly operations: HaOperations;
  readonly fence: ProcessFence;
  /** The cluster's etcd client; the backup schedules' slot record shares it (daemon.ts). */
  readonly etcd: EtcdClient;
  /** A warm spare's scheduled re-bases on the repository copy's newest backup (idle elsewhere). */
  readonly spare: SpareKeeper;
  private readonly stop = new AbortController();
  private readonly serviceName: string;
  private readonly cgroup: string | undefined;

  constructor(opts: PostgresHaOptions) {
    this.serviceName = opts.serviceName ?? 'postgresql';
    const serviceGroup = `${this.serviceName}.${opts.group}`;
    const settings = (): HaSettings => {
      const cfg = opts.services.get(this.serviceName)?.config();
      return cfg ? haSettingsFrom(cfg) : DEFAULT_HA_SETTINGS;
    };
    const client = new EtcdClient({ endpoints: opts.etcdEndpoints, timeoutMs: 2000, tls: () => opts.etcdTls?.() });
    this.etcd = client;
    const store = new EtcdClusterStore(client, `/hasup/${opts.scope}/${this.serviceName}/${opts.group}/`);
    this.leadership = new ElectedLeadership(serviceGroup, () => {
      const s = settings();
      return s.loopWaitMs + s.retryTimeoutMs / 2;
    });
    const log = opts.log.child({ component: 'ha' });
    // The node asks the controller how to bootstrap; the controller drives the node.
    const late: { controller?: HaController } = {};
    this.node = new PostgresHaNode({
      memberId: opts.memberId,
      ip: opts.ip,
      service: () => opts.services.get(this.serviceName),
      bootstrap: (signal) => {
        opts.onBootstrapWait?.();
        return late.controller!.bootstrap(signal);
      },
      bootstrapFailed: () => late.controller!.bootstrapFailed(),
      restoreData: (ctx, target, o) => PgBackRest.forService(ctx).restore(target, o),
      spare: { check: checkSpareSettings, source: sourceFor },
      stopSignal: this.stop.signal,
      log,
    });
    this.cgroup = ensureServiceCgroup(opts.memberId, this.serviceName);
    this.fence = new ProcessFence({
      pidFile: join(opts.serviceRoot, 'data', 'postmaster.pid'),
      cgroup: this.cgroup,
      recordFile: join(opts.serviceRoot, 'fence-record.json'),
      watchdog: () => {
        const s = settings();
        if (s.watchdog === 'off' || (s.watchdog === 'automatic' && !existsSync(s.watchdogDevice))) return undefined;
        return { device: s.watchdogDevice, timeoutS: watchdogTimeoutS(s) };
      },
      log: log.child({ component: 'fence' }),
    });
    const leadBlocker = () => {
      const s = settings();
      return s.watchdog === 'required' && !existsSync(s.watchdogDevice) ? `the required kernel watchdog ${s.watchdogDevice} is missing` : undefined;
    };
    this.spare = new SpareKeeper({
      memberId: opts.memberId,
      settings: () => {
        const s = settings();
        return { repo: s.standbyOfRepo, schedule: s.restoreSchedule };
      },
      leading: () => this.leadership.state().holdsLease && settings().standbyOfRepo !== null,
      source: () => this.node.currentSpareSource(),
      db: this.node,
      search: () => opts.searchSnapshots?.(),
      claims: new EtcdSlotClaims(client, `/hasup/${opts.scope}/spare/${this.serviceName}.${opts.group}/slots/`),
      record: new EtcdSpareRecord(client, `/hasup/${opts.scope}/spare/${this.serviceName}.${opts.group}/state`),
      clock: realClock,
      log,
    });
    const controller = new HaController({ memberId: opts.memberId, serviceGroup, store, db: this.node, settings, leadership: this.leadership, fence: this.fence, leadBlocker, log });
    late.controller = controller;
    this.controller = controller;
    this.operations = {
      switchover: (to) => controller.switchover(to),
      setPaused: (paused) => controller.setPaused(paused),
      restore: (target) => controller.restore(target),
      view: () => {
        const v = controller.view();
        const spare = this.spare.view();
        return spare ? { ...v, spare } : v;
      },
      fence: () => this.fence.status(),
    };
  }

  /** The driver for a plan's `driver` name when it is PostgreSQL's; undefined for any other. */
  driverFor(name: string): ServiceDriver | undefined {
    return name === 'postgresql' ? new PostgresqlDriver(this.node, this.cgroup) : undefined;
  }

  start(): void {
    this.fence.start();
    this.controller.start();
    this.spare.start();
  }

  /** After the services stopped: the fence exits (and would stop a primary left running). */
  async closeFence(): Promise<void> {
    await this.fence.close();
    if (this.cgroup) removeServiceCgroup(this.cgroup);
  }

  /** `leaving`: the member shuts down, so a leader hands its key back at once. */
  async close(opts: { leaving: boolean }): Promise<void> {
    this.stop.abort();
    await this.spare.close();
    await this.controller.close(opts);
    this.leadership.close();
    this.etcd.close();
  }
}
