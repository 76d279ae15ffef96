import type { Server as TlsServer } from 'node:tls';
import type { FastifyInstance } from 'fastify';
import { WireCodec, resolveGossipConfig, type GossipProfile, loadKeyring, Memberlist, type MemberView, formatPeerAddress, type PeerAddress, createUdpTransport, type UdpTransport, realClock } from '../gossip/index.js';
import { writeApiEndpoint } from './api-endpoint.js';
import { BackupCoordinator } from '../plugins/backup/coordinator.js';
import { EtcdSlotClaims } from '../plugins/backup/etcd-slot-claims.js';
import { HttpPeerBackups } from '../plugins/backup/peer-client.js';
import { PgBackRestServer } from '../plugins/backup/server.js';
import { BackupScheduler } from '../plugins/backup/scheduler.js';
import { backupSettingsFrom } from '../plugins/backup/settings.js';
import { MemorySlotClaims, type SlotClaims } from '../plugins/backup/slot-claims.js';
import type { SearchSnapshots } from '../plugins/backup/search-snapshots.js';
import { SnapshotJobs } from '../plugins/backup/snapshot-jobs.js';
import { searchSnapshotsFrom } from './search-snapshots.js';
import { driverFor } from './drivers.js';
import { elasticsearchConfigHere, MemberEsAccess } from '../plugins/elasticsearch/access.js';
import { ElasticsearchMembership } from '../plugins/elasticsearch/membership.js';
import { etcdClientUrls } from '../plugins/etcd/endpoints.js';
import { etcdClientTls, etcdScheme } from '../plugins/etcd/tls.js';
import { EtcdMembership } from '../plugins/etcd/membership.js';
import { createApiServer } from '../plugins/http/api.js';
import { clusterBackupView } from '../plugins/http/cluster-view.js';
import { memberRoutes } from '../plugins/http/members.js';
import { listen, type HttpListen } from '../plugins/http/server.js';
import { TlsRenewRefused, tlsRoutes } from '../plugins/http/tls-routes.js';
import { supervisorRoutes } from '../plugins/http/supervisor-routes.js';
import { joinCandidates, peersToRemember, readKnownPeers, writeKnownPeers } from './known-peers.js';
import { rolloutRoutes } from '../plugins/http/rollout-routes.js';
import { rolloutRumorFor } from '../supervisor/rumors/rollout.js';
import { hasupVersion, installedHasupVersion } from '../supervisor/version.js';
import type { TlsClientOptions } from '../plugins/http-json.js';
import { HostMetrics } from '../plugins/metrics/host-metrics.js';
import { elasticsearchPeerUrls } from '../plugins/shipper/census.js';
import { EarlyLinesBuffer } from '../plugins/shipper/inputs.js';
import { DEFAULT_SHIPPING, Shipping, type ShippingSettings } from '../plugins/shipper/shipping.js';
import { IpAddresses, parseVip } from '../plugins/vip/addresses.js';
import { claimFromFacts, claimFromState, LeaderVip } from '../plugins/vip/leader-vip.js';
import { PostgresHa } from './postgres-ha.js';
import { StandaloneLeadership, gossipRoles, type Leadership } from '../supervisor/leadership.js';
import { shippedPlansDir } from '../supervisor/install-paths.js';
import { MultiSink, RotatingFileSink } from '../supervisor/log-sink.js';
import { findPlan, preloadPlans } from '../supervisor/plan.js';
import type { Logger, LogTap } from '../supervisor/log.js';
import { DEFAULT_TLS_SETTINGS, ensureMemberTls, type MemberTls, type TlsSettings } from '../supervisor/pki/provision.js';
import { tlsReport, type TlsReport } from '../supervisor/pki/report.js';
import { checkMemberTls, readMemberTls } from '../supervisor/pki/member-files.js';
import { applyCaChange, CaChangeRefused, parseCaChange, planCaChange, RESTART_FOR_NEW_BUNDLE, waitHealthySince, writeCaBundle, type CaChangeResult } from '../supervisor/pki/ca-change.js';
import { serviceTlsFiles } from '../supervisor/pki/service-copy.js';
import { tlsRumorFor, type TlsRumor } from '../supervisor/rumors/tls.js';
import { keyringFromSecrets, loadOrCreateSecrets, loadSecretsFile, writeSecretsFile, type ClusterSecrets } from '../supervisor/secrets.js';
import { backupRumorFor } from '../supervisor/rumors/backup.js';
import { nextRumorVersion } from '../supervisor/rumors/key.js';
import { serviceRumor, ServicePorts } from '../supervisor/rumors/service.js';
import { memberApiAddress } from '../supervisor/rumors/service-members.js';
import { vipRumorFor } from '../supervisor/rumors/vip.js';
import { decodeServiceConfigRumor, serviceConfigRumor } from '../supervisor/rumors/service-config.js';
import type { ServiceStatus } from '../supervisor/service.js';
import { StateDir } from '../supervisor/state-dir.js';
import { Supervisor } from '../supervisor/supervisor.js';
import { parseTomlFile, type TomlTable } from '../supervisor/toml-schema.js';

export interface DaemonOptions {
  stateDir: string;
  advertise: PeerAddress;
  /** Address to bind the gossip sockets to; defaults to the advertised one. */
  bind?: string;
  peers: PeerAddress[];
  /** Ring-key file; when unset the ring key comes from the cluster secrets file (`hasup cluster create`). */
  ringKeyFile?: string;
  /** Cluster secrets file; STATE_DIR/secrets.json (created on first start) when unset. */
  secretsFile?: string;
  profile: GossipProfile;
  gossipOverrides?: Record<string, unknown>;
  http: HttpListen | null;
  services: { load: string[]; planPath: string[]; group: string; userLayers: Record<string, TomlTable> };
  /** hasup.toml [cluster]: etcd formation for members prepared by `hasup cluster create/join`. */
  cluster?: {
    etcd: boolean;
    etcdVoters: number;
    /** An etcd the cluster uses instead of forming its own ([cluster] etcd_endpoints). */
    etcdEndpoints?: string[];
    /** The leader VIP ([cluster] vip, vip_interface; docs/vip.md). */
    vip?: { address: string; interface: string };
  };
  /** hasup.toml [shipping]: logs and metrics to Elasticsearch; `enabled` unset = on when this member runs Elasticsearch or lists nodes. */
  shipping?: { enabled?: boolean; settings: ShippingSettings };
  /** The supervisor's own log lines, for the shipper (createLogger's tap). */
  logTap?: LogTap;
  /** hasup.toml [tls]: the member's certificate from the cluster CA (the default), the operator's own, or off (docs/tls.md). */
  tls?: TlsSettings;
  /**
   * POST /supervisor/restart (hasup upgrade hasup): end this process with
   * the services left running, for the process manager to start hasup
   * again. Absent: nothing starts hasup again when it exits, and a restart
   * is refused.
   */
  exitForRestart?: () => void;
  log: Logger;
}

/** Operators are warned when a member's clock is this far from ours. */
export const CLOCK_DRIFT_WARN_MS = 1500;
const CLOCK_CHECK_INTERVAL_MS = 30_000;

/**
 * One running member: composes the gossip ring, the supervisor and the HTTP
 * API. Data flows one way: rumor in → census updated → supervisor reacts →
 * child reconfigured → health rumor out.
 */
export class Daemon {
  readonly memberId: string;
  private readonly state: StateDir;
  private transport?: UdpTransport;
  private ring?: Memberlist;
  private supervisor?: Supervisor;
  private http?: FastifyInstance;
  private leadership?: Leadership;
  /** PostgreSQL leadership through an etcd lease (members of a cluster). */
  private ha?: PostgresHa;
  private etcd?: EtcdMembership;
  /** The backup repository's stanza, archiving and backup jobs (docs/backup.md). */
  private backup?: BackupCoordinator;
  /** Scheduled backups, run once per slot by whichever member leads (docs/backup.md). */
  private backupSchedule?: BackupScheduler;
  /** Elasticsearch snapshots as the backup sets see them; a warm spare's re-base restores its set's snapshot through it. */
  private searchPort?: () => SearchSnapshots | undefined;
  /** Elasticsearch snapshot listing and restores, a backup set's included (docs/backup.md). */
  private snapshots?: SnapshotJobs;
  /** One Elasticsearch cluster from the census (members of a cluster; a member on its own has a cluster of one). */
  private esMembership?: ElasticsearchMembership;
  /** How this member's clients reach Elasticsearch: scheme, CA and users (plugins/elasticsearch/access.ts). */
  private esAccess?: MemberEsAccess;
  /** The leader VIP, when configured: on this member while it leads PostgreSQL (docs/vip.md). */
  private vip?: LeaderVip;
  private servicePorts?: ServicePorts;
  private apiPort?: number;
  private logSink?: RotatingFileSink;
  /** Every child's lines: the log file, and the shipper when shipping is on. */
  private readonly serviceLines = new MultiSink();
  private shipping?: Shipping;
  /** Children's lines from before shipping is decided, so their startup lines ship too. */
  private readonly earlyLines = new EarlyLinesBuffer();
  private readonly hostMetrics = new HostMetrics(() => this.shipping?.stats());
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;
  /** When this hasup process started (ms): GET /supervisor, and how hasup upgrade hasup sees a member back. */
  private readonly startedAt = Date.now();
  /** The last known-peers.json written (unchanged lists are not written again). */
  private knownPeersText: string | undefined;
  private rumorVersion = 0;
  /** This member's certificate and key (or why TLS is off), decided at start, issued anew by cert rotate. */
  private tls: MemberTls = { on: false, reason: 'the member has not started' };
  private tlsInputs?: { secrets: ClusterSecrets; secretsFile: string };
  /** What hasup's etcd clients present and trust (PEM), from the member's files. */
  private etcdTls: TlsClientOptions | undefined;
  private renewing = false;
  private tlsRumorVersion = 0;
  private readonly log: Logger;

  constructor(private readonly opts: DaemonOptions) {
    this.state = new StateDir(opts.stateDir);
    this.state.ensure();
    this.memberId = this.state.memberId();
    this.log = opts.log.child({ member: this.memberId });
  }

  get memberlist(): Memberlist {
    if (!this.ring) throw new Error('daemon not started');
    return this.ring;
  }

  async start(): Promise<void> {
    const { opts, log } = this;
    const config = resolveGossipConfig(opts.profile, opts.gossipOverrides ?? {});
    const secretsFile = opts.secretsFile ?? this.state.path('secrets.json');
    // Without a ring-key file the secrets file must already hold the ring key: never invent one here.
    const secrets = loadOrCreateSecrets(secretsFile, opts.secretsFile === undefined && opts.ringKeyFile !== undefined);
    const keyring = opts.ringKeyFile ? loadKeyring(opts.ringKeyFile) : keyringFromSecrets(secrets, secretsFile);
    // Before anything listens: bad TLS files stop the member here, never a clear-text fallback.
    this.tls = await this.startTls(secrets, secretsFile);
    const memberTlsFiles = this.tls.on ? this.tls.files : undefined;

    this.transport = await createUdpTransport({ bindAddr: opts.bind ?? opts.advertise.addr, port: opts.advertise.port, advertise: opts.advertise, log });
    const ring = new Memberlist({
      self: { id: this.memberId, addr: opts.advertise.addr, port: this.transport.local.port },
      config,
      transport: this.transport,
      codec: new WireCodec(keyring),
      log: log.child({ component: 'gossip' }),
    });
    this.ring = ring;
    ring.on('member', (m, prev) => this.onMemberChange(m, prev));
    ring.on('rumor', (r) => {
      const config = decodeServiceConfigRumor(r);
      if (config) void this.applyGossipedConfig(config.serviceGroup, config.version, config.toml);
    });
    ring.start();
    // The certificate's public facts, for /cluster and hasup cert status on every member.
    this.publishTlsRumor();
    log.info({ event: 'started', gossip: formatPeerAddress(this.transport.local), profile: opts.profile }, 'gossip ring started');

    this.logSink = new RotatingFileSink({ dir: this.state.path('logs'), fileName: 'services.log' });
    this.serviceLines.add(this.logSink);
    this.serviceLines.add(this.earlyLines);
    const esMembership = new ElasticsearchMembership({ ring, stateDir: this.state, log });
    this.esMembership = esMembership;
    const planPath = [...opts.services.planPath, shippedPlansDir()];
    // Every plan's templates compiled now, at start, rather than when a service first
    // starts: by then this member may lead, and its lease renewals cannot wait for a child process.
    preloadPlans(planPath);
    const supervisor = new Supervisor({
      stateDir: this.state,
      memberId: this.memberId,
      ip: opts.advertise.addr,
      ...(opts.cluster?.vip ? { vip: opts.cluster.vip.address.replace(/\/\d+$/, '') } : {}),
      dropPrivileges: process.getuid?.() === 0,
      secrets,
      tls: memberTlsFiles,
      planPath,
      group: opts.services.group,
      userLayers: opts.services.userLayers,
      logSink: this.serviceLines,
      log,
      // Created lazily, when a plan is loaded: by then the HA election (if any) exists.
      driverFor: (name) => this.ha?.driverFor(name) ?? esMembership.driverFor(name) ?? driverFor(name),
    });
    this.supervisor = supervisor;
    this.servicePorts = new ServicePorts(planPath);
    supervisor.on('status', (s) => this.publishServiceRumor(s));
    const etcd = new EtcdMembership({
      ring,
      supervisor,
      stateDir: this.state,
      memberId: this.memberId,
      ip: opts.advertise.addr,
      secrets,
      secretsFile,
      tls: memberTlsFiles,
      enabled: opts.cluster?.etcd ?? true,
      voters: opts.cluster?.etcdVoters ?? 3,
      planPath,
      userLayer: opts.services.userLayers.etcd ?? {},
      log,
    });
    this.etcd = etcd;

    // In a cluster (configured etcd, or the one the formation runs), PostgreSQL leadership
    // comes from an etcd lease; a member on its own is its own leader.
    const etcdEndpoints = opts.cluster?.etcdEndpoints ?? [];
    // A fresh member's PostgreSQL waits (inside supervisor.start) for etcd to say who creates the
    // database; under formation etcd comes from the formation, so it must not wait for that start.
    let formationStarted = false;
    const startFormation = () => {
      if (formationStarted) return;
      formationStarted = true;
      etcd.start();
    };
    const scope = secrets.cluster_id ?? secrets.cluster_name ?? 'hasup';
    if (etcdEndpoints.length > 0 || etcd.forming) {
      this.ha = new PostgresHa({
        memberId: this.memberId,
        ip: opts.advertise.addr,
        group: opts.services.group,
        scope,
        etcdEndpoints: () => (etcdEndpoints.length > 0 ? etcdEndpoints : etcdClientUrls(ring, etcdScheme(memberTlsFiles !== undefined))),
        etcdTls: () => this.etcdTls,
        services: supervisor,
        onBootstrapWait: startFormation,
        serviceRoot: this.state.path('svc', 'postgresql'),
        searchSnapshots: () => this.searchPort?.(),
        log,
      });
    }
    const leadership = this.ha?.leadership ?? new StandaloneLeadership(supervisor, this.memberId);
    this.leadership = leadership;
    gossipRoles(leadership, this.memberId, ring);
    this.vip = this.startVip(ring, leadership);
    // The slot record is the cluster's (etcd) where there is a cluster; a member on its own is its only leader.
    const slotClaims: SlotClaims = this.ha ? new EtcdSlotClaims(this.ha.etcd, `/hasup/${scope}/backup/${opts.services.group}/slots/`) : new MemorySlotClaims();
    // Elasticsearch snapshots from this member's Elasticsearch config: a backup set's other side.
    let esDefaults: TomlTable | undefined;
    try {
      esDefaults = findPlan('elasticsearch', planPath).defaults;
    } catch {
      // No Elasticsearch plan on this installation: its defaults (security off) stand.
    }
    const esAccess = new MemberEsAccess({
      config: () => elasticsearchConfigHere(supervisor.get('elasticsearch')?.config(), opts.services.userLayers.elasticsearch, esDefaults),
      secrets,
      caFile: () => (this.tls.on ? this.tls.files.ca : undefined),
    });
    this.esAccess = esAccess;
    const search: () => SearchSnapshots | undefined = searchSnapshotsFrom({ context: () => supervisor.get('elasticsearch')?.driverContext(), peers: () => elasticsearchPeerUrls(ring, esAccess.scheme()) });
    this.searchPort = search;
    this.backup = this.startBackups(ring, supervisor, leadership, slotClaims, search);
    this.snapshots = new SnapshotJobs({ memberId: this.memberId, search, clusterRestore: () => this.ha?.operations.view().restore ?? null, log: this.log });

    if (opts.http) {
      this.http = await createApiServer({
        log,
        memberId: this.memberId,
        ring,
        supervisor,
        leadership,
        token: secrets.api_token,
        viewerToken: secrets.viewer_token,
        secretsFile,
        elasticsearchUrls: () => this.shipping?.urls() ?? (this.ring ? elasticsearchPeerUrls(this.ring, esAccess.scheme()) : []),
        elasticsearchAccess: () => esAccess.as('reader'),
        metricsRegistries: [this.hostMetrics.registry],
        ha: this.ha?.operations,
        backup: this.backup,
        snapshots: this.snapshots,
        etcd: () => etcd.status(),
        spool: () => {
          const spool = this.shipping?.shipper.stats().spool;
          return spool && { backlog: spool.backlog, dropped: spool.droppedCapacity + spool.droppedPending };
        },
        // The operator's certificate for the API ([http] tls_cert) wins; else the member's.
        tls: opts.http.tls ?? (memberTlsFiles && { cert: memberTlsFiles.cert, key: memberTlsFiles.key }),
        open: opts.http.open,
        configs: { publish: (sg: string, version: number, toml: string) => ring.publish(serviceConfigRumor(sg, version, toml)) },
      });
      await this.http.register(memberRoutes, { ring, etcd });
      await this.http.register(tlsRoutes, { report: () => this.tlsReport(), renew: () => this.renewTls(), changeCa: (body) => this.changeCa(body) });
      let rolloutVersion = 0;
      await this.http.register(rolloutRoutes, {
        publish: (progress) => {
          rolloutVersion = nextRumorVersion(rolloutVersion);
          ring.publish(rolloutRumorFor(this.memberId, progress, rolloutVersion));
        },
      });
      const exitForRestart = this.opts.exitForRestart;
      await this.http.register(supervisorRoutes, {
        pid: process.pid,
        startedAt: this.startedAt,
        runningVersion: hasupVersion(),
        installedVersion: installedHasupVersion,
        restartRefusal: () =>
          !exitForRestart
            ? 'nothing starts hasup again when it exits: it runs under systemd (INVOCATION_ID) or with HASUP_RESTARTED_BY naming the process manager that restarts it'
            : leadership.state().holdsLease
              ? 'this member holds the PostgreSQL leader lease, and its fence stops the primary when hasup exits: switch over first'
              : undefined,
        restart: () => {
          log.info({ event: 'supervisor_restart' }, 'restarting hasup: leaving the services running for the next hasup to adopt');
          exitForRestart?.();
        },
      });
      const url = await listen(this.http, opts.http);
      this.apiPort = Number(new URL(url).port);
      // The CLI verifies the API's certificate against the member's CA bundle.
      writeApiEndpoint(this.state.root, { url, secrets: secretsFile, ...(memberTlsFiles && url.startsWith('https:') ? { ca: memberTlsFiles.ca } : {}) });
      log.info({ event: 'http', url }, 'HTTP API listening');
    }
    this.joinPeers(0);
    this.timers.push(setInterval(() => this.checkClocks(), CLOCK_CHECK_INTERVAL_MS).unref());
    this.ha?.start();
    this.backup?.start();
    this.backupSchedule?.start();
    esMembership.start();
    // Under formation etcd runs only where the formation decides (it loads it there).
    // Shipping starts once the services exist, not once they run: a service's start may wait long (a new member's
    // PostgreSQL until etcd says where its data comes from, which a member that cannot reach etcd never learns),
    // and its log lines meanwhile are the ones an operator needs.
    await supervisor.start(etcd.forming ? opts.services.load.filter((name) => name !== 'etcd') : opts.services.load, () => this.startShipping(supervisor, secrets, leadership));
    startFormation();
  }

  /**
   * This member's certificate, issued from the cluster CA when missing or
   * near its end, or anew when `renew` says why (docs/tls.md); logged, never
   * its key. The in-process etcd client takes it up at once.
   */
  private async startTls(secrets: ClusterSecrets, secretsFile: string, renew?: string): Promise<MemberTls> {
    this.tlsInputs = { secrets, secretsFile };
    const tls = await ensureMemberTls({
      stateRoot: this.state.root,
      memberId: this.memberId,
      addresses: [this.opts.advertise.addr],
      secrets,
      secretsFile,
      settings: this.opts.tls ?? DEFAULT_TLS_SETTINGS,
      ...(renew ? { renew } : {}),
    });
    this.etcdTls = tls.on ? etcdClientTls(tls.files) : undefined;
    if (!tls.on) {
      this.log.warn({ event: 'tls_off', reason: tls.reason }, `TLS is off: PostgreSQL, etcd and the HTTP API run in clear text (${tls.reason})`);
      return tls;
    }
    const fields = { event: 'tls', source: tls.source, cert: tls.files.cert, ca: tls.files.ca, issuer: tls.cert.issuer, not_after: tls.cert.notAfter.toISOString(), fingerprint: tls.cert.fingerprint };
    if (tls.issued) this.log.info(fields, `TLS: ${tls.issued} (${tls.files.cert}, until ${fields.not_after})`);
    else this.log.info(fields, `TLS: member certificate ${tls.files.cert}, until ${fields.not_after}`);
    return tls;
  }

  /**
   * POST /tls/renew (`hasup cert rotate`, one member at a time): a new
   * certificate from the cluster CA, taken up without a restart: the API's
   * TLS context is replaced, PostgreSQL reloads, etcd reads it at its next
   * handshake, hasup's etcd client at its next connection.
   */
  private async renewTls(): Promise<TlsReport> {
    const current = this.tls;
    if (!current.on) throw new TlsRenewRefused(`TLS is off on this member: ${current.reason}`);
    if (current.source !== 'cluster-ca') throw new TlsRenewRefused("this member's certificate is the operator's ([tls] cert_file): replace the files and restart the member");
    if (this.renewing) throw new TlsRenewRefused('a renewal is already under way on this member');
    this.renewing = true;
    try {
      this.tls = await this.startTls(this.tlsInputs!.secrets, this.tlsInputs!.secretsFile, 'cert rotate');
      if (this.tls.on && this.opts.http && !this.opts.http.tls && this.http) {
        const { cert, key } = readMemberTls(this.tls.files);
        (this.http.server as unknown as TlsServer).setSecureContext({ cert, key });
      }
      await this.supervisor?.refreshTls();
      this.publishTlsRumor();
      return this.tlsReport();
    } finally {
      this.renewing = false;
    }
  }

  /**
   * POST /tls/ca (`hasup cert rotate --new-ca`, `--drop-old-ca`, one member
   * at a time): the CA the member issues from and those it trusts beside it
   * (supervisor/pki/ca-change.ts). Secrets file, then bundle, then services:
   * reloaded, etcd restarted and healthy again before the answer.
   */
  private async changeCa(body: unknown): Promise<TlsReport & { ca_change: CaChangeResult }> {
    const change = parseCaChange(body);
    const current = this.tls;
    if (!current.on) throw new CaChangeRefused(`TLS is off on this member: ${current.reason}`);
    if (current.source !== 'cluster-ca' || !this.tlsInputs?.secrets.tls) throw new CaChangeRefused("this member's certificates are the operator's ([tls] in hasup.toml): its CA is not the cluster's to change");
    if (this.renewing) throw new CaChangeRefused('a renewal or CA change is already under way on this member');
    this.renewing = true;
    try {
      const inputs = this.tlsInputs;
      const plan = planCaChange({ current: inputs.secrets.tls!, change, memberFiles: current.files, now: new Date() });
      if (change.check_only) return { ...this.tlsReport(), ca_change: { changed: plan.secretsChanged || plan.bundleChanged, trusted: plan.fingerprints, restarted: [] } };
      const result = await applyCaChange(plan, {
        writeSecrets: (tls) => {
          const secrets = { ...loadSecretsFile(inputs.secretsFile), tls };
          writeSecretsFile(inputs.secretsFile, secrets, { force: true });
          this.tlsInputs = { secrets: { ...inputs.secrets, tls }, secretsFile: inputs.secretsFile };
        },
        writeBundle: (pem) => writeCaBundle(current.files.ca, pem),
        refreshServices: async () => {
          this.tls = { ...current, ...checkMemberTls(current.files) };
          this.etcdTls = etcdClientTls(current.files);
          await this.supervisor?.refreshTls();
        },
        restartNeeded: () => RESTART_FOR_NEW_BUNDLE.filter((name) => this.supervisor?.get(name)?.status().state === 'running'),
        restartAndWait: async (name) => {
          const since = Date.now();
          await this.supervisor!.get(name)!.restart();
          await waitHealthySince(() => this.supervisor?.get(name)?.status(), { name, since, timeoutMs: 90_000 });
        },
        log: (fields, message) => this.log.info(fields, message),
      });
      this.publishTlsRumor();
      return { ...this.tlsReport(), ca_change: result };
    } finally {
      this.renewing = false;
    }
  }

  /** The certificate's public facts, for /cluster and hasup cert status on every member. */
  private publishTlsRumor(): void {
    if (!this.ring || this.stopped) return;
    this.tlsRumorVersion = nextRumorVersion(this.tlsRumorVersion);
    this.ring.publish(tlsRumorFor(this.memberId, tlsRumorOf(this.tls), this.tlsRumorVersion));
  }

  /** GET /tls: the member's certificates, each loaded service's copy, and the links in clear text. */
  private tlsReport(): TlsReport {
    const services = (this.supervisor?.list() ?? []).map((s) => ({ name: s.name, certFile: serviceTlsFiles(this.state.path('svc', s.name)).cert }));
    const clearText: string[] = [];
    if (this.tls.on && this.esAccess?.scheme() !== 'https') {
      const local = services.some((s) => s.name === 'elasticsearch');
      if (local) clearText.push('Elasticsearch (transport and HTTP, and the shipping into it): [service.elasticsearch] security is off');
      else if (this.shipping) clearText.push('shipping into Elasticsearch: [service.elasticsearch] security is off');
    }
    return tlsReport(this.tls, { services: this.tls.on ? services : [], clearText, now: new Date() });
  }

  /**
   * The backup coordinator: while this member leads PostgreSQL with backups
   * on, it makes the repository ready and runs backup jobs; its report is
   * gossiped (rumors/backup.ts) so every member shows the leader's.
   */
  private startBackups(ring: Memberlist, supervisor: Supervisor, leadership: Leadership, slotClaims: SlotClaims, search: () => SearchSnapshots | undefined): BackupCoordinator {
    const serviceGroup = `postgresql.${this.opts.services.group}`;
    const context = () => supervisor.get('postgresql')?.driverContext();
    // The coordinator's report carries the scheduler's part; the scheduler starts the coordinator's jobs.
    const late: { scheduler?: BackupScheduler } = {};
    // Backups from a follower: every member runs pgBackRest's TLS server, and the leader asks a follower over the API.
    const secrets = this.tlsInputs?.secrets;
    const memberTls = this.tls.on ? readMemberTls(this.tls.files) : undefined;
    const coordinator: BackupCoordinator = new BackupCoordinator({
      memberId: this.memberId,
      context,
      leadership,
      schedule: () => late.scheduler?.report() ?? null,
      search,
      server: new PgBackRestServer({ log: this.log, logSink: this.serviceLines }),
      ...(this.opts.http && secrets
        ? { peers: new HttpPeerBackups({ locate: (m) => memberApiAddress(ring, m), token: secrets.api_token, ...(memberTls || this.opts.http.tls ? { tls: { ca: memberTls?.ca ?? '' } } : {}) }) }
        : {}),
      memberAddress: (m) => ring.members().find((x) => x.id === m)?.addr,
      clusterReport: () => {
        const view = clusterBackupView(
          { memberId: this.memberId, members: ring.members(), rumors: (kind) => ring.rumors(kind), localServices: [], leadership: leadership.state(), localBackup: coordinator.report() },
          null,
        );
        return view ? { member: view.member, report: view } : undefined;
      },
      log: this.log,
    });
    late.scheduler = new BackupScheduler({
      memberId: this.memberId,
      leadership,
      settings: () => {
        const ctx = context();
        return ctx ? backupSettingsFrom(ctx.cfg) : undefined;
      },
      ops: coordinator,
      claims: slotClaims,
      clock: realClock,
      log: this.log,
      onChange: () => coordinator.reportChanged(),
    });
    this.backupSchedule = late.scheduler;
    let version = 0;
    coordinator.onReport((report) => {
      if (this.stopped) return;
      version = nextRumorVersion(version);
      ring.publish(backupRumorFor(this.memberId, serviceGroup, report, version));
    });
    return coordinator;
  }

  /**
   * The leader VIP: follows this member's leadership (the HA facts in a
   * cluster: the lease and the fence's freeze deadline; its own PostgreSQL
   * on a member alone), is handed to the fence, and gossiped so every
   * member shows who holds it. A host that cannot carry it refuses it at
   * start, and the member runs on without it.
   */
  private startVip(ring: Memberlist, leadership: Leadership): LeaderVip | undefined {
    const spec = this.opts.cluster?.vip;
    if (!spec) return undefined;
    const elected = this.ha?.leadership;
    const fence = this.ha?.fence;
    const serviceGroup = `postgresql.${this.opts.services.group}`;
    let version = 0;
    const vip = new LeaderVip({
      vip: parseVip(spec.address, spec.interface),
      addresses: new IpAddresses(),
      claim: elected ? () => claimFromFacts(elected.current) : () => claimFromState(leadership.state()),
      onChange: (listener) => leadership.onChange(() => listener()),
      ...(fence ? { guard: (v) => fence.guardAddress(v) } : {}),
      clock: realClock,
      log: this.log,
      onReport: (report) => {
        if (this.stopped && report.state !== 'stopped') return;
        version = nextRumorVersion(version);
        ring.publish(vipRumorFor(this.memberId, serviceGroup, report, version));
      },
    });
    void vip.start();
    return vip;
  }

  /** Logs and metrics to Elasticsearch (docs/shipping.md), when this member runs Elasticsearch or is told to ship. */
  private startShipping(supervisor: Supervisor, secrets: ReturnType<typeof loadOrCreateSecrets>, leadership: Leadership): void {
    const config = this.opts.shipping;
    const settings = config?.settings ?? DEFAULT_SHIPPING;
    const enabled = config?.enabled ?? (supervisor.get('elasticsearch') !== undefined || settings.elasticsearch.length > 0);
    this.serviceLines.remove(this.earlyLines);
    if (!enabled || this.stopped) {
      this.opts.logTap?.detach();
      this.earlyLines.release();
      return;
    }
    this.shipping = new Shipping(settings, {
      stateDir: this.state.root,
      memberId: this.memberId,
      ip: this.opts.advertise.addr,
      log: this.log,
      logTap: this.opts.logTap,
      services: supervisor,
      secrets,
      role: () => leadership.state().role,
      onSample: (sample) => this.hostMetrics.update(sample),
      peers: () => (this.ring ? elasticsearchPeerUrls(this.ring, this.esAccess?.scheme()) : []),
      ...(this.esAccess ? { esAccess: this.esAccess } : {}),
    });
    this.earlyLines.release(this.shipping.sink);
    this.serviceLines.add(this.shipping.sink);
    this.shipping.start();
  }

  /**
   * Joins through the configured peers, retrying with a capped backoff until
   * one answers: members may start in any order, and a member whose peers
   * are all down must keep trying rather than stay a ring of one.
   */
  private joinPeers(attempt: number): void {
    const self = this.transport!.local;
    // The configured peers, and the members this one knew when it last ran (a founder has no configured peer).
    const peers = joinCandidates(this.opts.peers, readKnownPeers(this.state.root)).filter((p) => !(p.addr === self.addr && p.port === self.port));
    if (peers.length === 0 || this.stopped) return;
    this.log.info({ event: 'joining', peers: peers.map(formatPeerAddress), attempt }, 'joining the ring');
    void this.memberlist.join(peers).then((answered) => {
      if (this.stopped) return;
      if (answered > 0) {
        this.log.info({ event: 'joined', answered }, 'joined the ring');
        return;
      }
      const delay = Math.min(30_000, 500 * 2 ** attempt);
      this.log.warn({ event: 'join_retry', delay_ms: delay }, `no peer answered; retrying in ${delay} ms`);
      this.timers.push(setTimeout(() => this.joinPeers(attempt + 1), delay));
    });
  }

  private onMemberChange(m: MemberView, prev: MemberView['state'] | undefined): void {
    const fields = { event: 'member', peer: m.id, address: `${m.addr}:${m.port}`, state: m.state, prev: prev ?? null, incarnation: m.incarnation };
    if (m.state === 'dead' || m.state === 'suspect') this.log.warn(fields, `member ${m.id} is ${m.state}`);
    else this.log.info(fields, `member ${m.id} is ${m.state}`);
    this.rememberPeers();
  }

  /** STATE_DIR/known-peers.json follows the membership (known-peers.ts): a restarted hasup rejoins through it. */
  private rememberPeers(): void {
    if (this.stopped || !this.ring) return;
    try {
      this.knownPeersText = writeKnownPeers(this.state.root, peersToRemember(this.memberId, this.memberlist.members()), this.knownPeersText);
    } catch (err) {
      this.log.warn({ event: 'known_peers_write_failed', err }, 'cannot remember the ring\'s members for the next start');
    }
  }

  private checkClocks(): void {
    for (const m of this.memberlist.members()) {
      if (m.state !== 'alive' || m.clockOffsetMs === undefined) continue;
      if (Math.abs(m.clockOffsetMs) > CLOCK_DRIFT_WARN_MS) {
        this.log.warn({ event: 'clock_drift', peer: m.id, offset_ms: Math.round(m.clockOffsetMs) }, `clock of member ${m.id} is ${Math.round(m.clockOffsetMs)} ms off ours`);
      }
    }
  }

  /** Our services' state and health, as a rumor every member sees. */
  private publishServiceRumor(s: ServiceStatus): void {
    if (!this.ring || this.stopped) return;
    this.rumorVersion = nextRumorVersion(this.rumorVersion);
    this.ring.publish(serviceRumor(this.memberId, s, this.servicePorts?.of(s.name, this.supervisor?.get(s.name)?.config()), this.apiPort, this.rumorVersion));
  }

  private async applyGossipedConfig(serviceGroup: string, version: number, toml: string): Promise<void> {
    if (!this.supervisor) return;
    try {
      const data = parseTomlFile(toml, `gossiped ${serviceGroup} version ${version}`);
      const outcome = await this.supervisor.applyConfig(serviceGroup, { version, data });
      this.log.info({ event: 'config_applied', service_group: serviceGroup, version, outcome }, `config ${serviceGroup} version ${version}: ${outcome}`);
    } catch (err) {
      this.log.error({ event: 'config_refused', service_group: serviceGroup, version, reason: (err as Error).message }, `config ${serviceGroup} version ${version} refused; the previous config stays in force`);
    }
  }

  /**
   * Graceful stop: services down, leave the ring, close everything. With
   * `release` the services are left running for the next hasup to adopt
   * (a restart of hasup alone), and the ring is not left.
   */
  async stop(opts: { leave: boolean; release?: boolean } = { leave: true }): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.etcd?.stop();
    this.esMembership?.stop();
    // No scheduled backup starts now; a running backup or verify is cancelled before PostgreSQL goes down under it.
    await this.backupSchedule?.close();
    await this.backup?.close();
    await this.snapshots?.close();
    // The VIP goes first: no client reaches this member through it while it hands its key over.
    await this.vip?.stop();
    // A leader that leaves hands its key back before PostgreSQL goes down, so a follower takes over at once.
    await this.ha?.close({ leaving: opts.leave });
    if (opts.release) this.supervisor?.releaseAll();
    else await this.supervisor?.stopAll();
    await this.ha?.closeFence();
    // After the children: their last lines are spooled; what is not acknowledged ships at the next start.
    await this.shipping?.stop();
    if (this.ring) {
      if (opts.leave) await this.ring.leave(2000).catch((err: unknown) => this.log.warn({ err }, 'leave failed'));
      else await this.ring.stop();
    }
    await this.http?.close();
    this.leadership?.close();
    await this.transport?.close();
    await this.logSink?.close();
    this.log.info({ event: 'stopped' }, 'stopped');
  }
}

/** What the TLS rumor says of a member: public facts of its certificate, never a key. */
function tlsRumorOf(tls: MemberTls): TlsRumor {
  if (!tls.on) return { on: false, reason: tls.reason };
  return { on: true, source: tls.source, issuer: tls.cert.issuer, not_after: tls.cert.notAfter.getTime(), fingerprint: tls.cert.fingerprint };
}
