import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { parsePeerAddress, GOSSIP_PROFILES, type GossipProfile } from '../gossip/index.js';
import { loadNodeConfig, defaultNodeConfig, tlsSettingsOf, type NodeConfig } from '../supervisor/config-file.js';
import { Daemon } from '../node/daemon.js';
import { createLogger, LogTap } from '../supervisor/log.js';
import type { TlsSettings } from '../supervisor/pki/provision.js';

export const DEFAULT_HTTP_PORT = 9631;

interface RunFlags {
  config?: string;
  advertise?: string;
  bind?: string;
  peer: string[];
  ringKey?: string;
  secrets?: string;
  stateDir?: string;
  profile?: GossipProfile;
  listenHttp?: string;
  http: boolean;
  gossip: string[];
  service: string[];
  logLevel?: string;
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run this member: the gossip ring, its services and the HTTP API (what a systemd unit starts)')
    .option('--config <file>', 'hasup.toml (flags below override its values)', process.env.HASUP_CONFIG)
    .option('--advertise <addr[:port]>', 'address other members reach this one at (gossip port 9638)')
    .option('--bind <addr>', 'address to bind the gossip sockets to (default: the advertised address)')
    .option('--peer <addr[:port]>', 'a member to join through; repeat for several', collect, [])
    .option('--ring-key <file>', 'ring key file (see `hasup ring-key generate`; default: the ring key in the secrets file)', process.env.HASUP_RING_KEY)
    .option('--secrets <file>', 'cluster secrets file (default: STATE_DIR/secrets.json; created on first start when --ring-key is given)')
    .option('--state-dir <dir>', 'state directory (default /var/lib/hasup)', process.env.HASUP_STATE_DIR)
    .addOption(new Option('--profile <name>', 'gossip timing profile (default lan)').choices(Object.keys(GOSSIP_PROFILES)))
    .option('--gossip <key=value>', 'override one gossip timing value (e.g. probeIntervalMs=500); repeatable', collect, [])
    .option('--service <name>', 'load this plan on the first start (repeatable; later: hasup svc load)', collect, [])
    .option('--listen-http <addr:port>', `HTTP API address (default: the advertised address, port ${DEFAULT_HTTP_PORT})`)
    .option('--no-http', 'do not serve the HTTP API')
    .option('--log-level <level>', 'trace, debug, info, warn or error')
    .action(async (flags: RunFlags) => {
      const config = flags.config ? loadNodeConfig(flags.config) : defaultNodeConfig();
      // The tap feeds the supervisor's own log lines to the journal shipper when shipping is on.
      const logTap = new LogTap();
      const log = createLogger({ level: flags.logLevel ?? config.log.level, tap: logTap });
      let stopping: Promise<void> | undefined;
      // Only where something starts hasup again when it exits: systemd (the unit gen-systemd-unit writes:
      // Restart=always, KillMode=process) or the process manager HASUP_RESTARTED_BY names.
      const restartedBy = process.env.INVOCATION_ID ? 'systemd' : process.env.HASUP_RESTARTED_BY;
      const exitForRestart = restartedBy
        ? () => {
            if (stopping) return;
            log.info({ event: 'exit_for_restart', restarted_by: restartedBy }, `exiting with the services left running; ${restartedBy} starts hasup again`);
            stopping = daemon.stop({ leave: false, release: true }).then(
              () => process.exit(0),
              (err: unknown) => {
                log.error({ err }, 'error while exiting for a restart');
                process.exit(1);
              },
            );
          }
        : undefined;
      const daemon = new Daemon({ ...daemonOptions(config, flags, log), logTap, shipping: shippingOptions(config.shipping), ...(exitForRestart ? { exitForRestart } : {}) });
      const shutdown = (signal: string) => {
        if (stopping) return;
        log.info({ event: 'signal', signal }, `received ${signal}: stopping services and leaving the ring`);
        stopping = daemon.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            log.error({ err }, 'error while stopping');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      try {
        await daemon.start();
      } catch (err) {
        // A start cut short by a signal: the stop under way ends the process once the children are down.
        if (stopping) return stopping;
        // A start that failed: stop what did start (children included) before saying why.
        await daemon.stop().catch((stopErr: unknown) => log.error({ err: stopErr }, 'error while stopping after a failed start'));
        throw err;
      }
    });
}

/** Flags override the file; the file overrides the defaults. */
function daemonOptions(config: NodeConfig, flags: RunFlags, log: ReturnType<typeof createLogger>): ConstructorParameters<typeof Daemon>[0] {
  const where = config.file ? ` in ${config.file}` : '';
  const advertiseText = flags.advertise ?? config.member.advertise;
  if (!advertiseText) throw new Error(`--advertise ADDR is required (or member.advertise${where || ' in hasup.toml'})`);
  // Without a ring-key file the daemon takes the ring key from the secrets file (and says so if it holds none).
  const ringKey = flags.ringKey ?? config.member.ring_key;
  const stateDir = flags.stateDir ?? config.member.state_dir;
  const secretsFile = flags.secrets ?? config.member.secrets;
  if (!ringKey && !existsSync(secretsFile ?? join(stateDir, 'secrets.json'))) {
    throw new Error(
      `no ring key: pass --ring-key FILE (or member.ring_key in ${flags.config ?? 'hasup.toml'}), or prepare this node with \`hasup cluster create\` / \`hasup cluster join\`, whose secrets file holds the ring key`,
    );
  }
  const advertise = parsePeerAddress(advertiseText);
  const httpEnabled = flags.http && config.http.enabled;
  const httpListen = httpEnabled ? parseHttpListen(flags.listenHttp ?? config.http.listen, advertise.addr) : null;
  return {
    stateDir,
    advertise,
    bind: flags.bind ?? config.member.bind,
    peers: (flags.peer.length > 0 ? flags.peer : config.member.peers).map((p) => parsePeerAddress(p)),
    ringKeyFile: ringKey,
    secretsFile,
    profile: flags.profile ?? config.gossip.profile,
    gossipOverrides: { ...(config.gossip.overrides ?? {}), ...parseOverrides(flags.gossip) },
    http: httpListen ? { ...httpListen, ...httpSecurity(config.http) } : null,
    services: {
      load: flags.service.length > 0 ? flags.service : config.services.load,
      planPath: config.services.plan_path,
      group: config.services.group,
      userLayers: config.service ?? {},
    },
    cluster: {
      etcd: config.cluster.etcd,
      etcdVoters: config.cluster.etcd_voters,
      etcdEndpoints: config.cluster.etcd_endpoints,
      ...(config.cluster.vip && config.cluster.vip_interface ? { vip: { address: config.cluster.vip, interface: config.cluster.vip_interface } } : {}),
    },
    tls: withApiAddress(tlsSettingsOf(config), httpListen?.host),
    log,
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseHttpListen(text: string | undefined, advertiseAddr: string): { host: string; port: number } {
  if (text === undefined) return { host: advertiseAddr, port: DEFAULT_HTTP_PORT };
  const { addr, port } = parsePeerAddress(text, DEFAULT_HTTP_PORT);
  return { host: addr, port };
}

/** An API listening on a specific address ([http] listen) is reached there: the member certificate names it too (a wildcard listener is reached on the advertised address or loopback, named anyway). */
function withApiAddress(tls: TlsSettings, host: string | undefined): TlsSettings {
  if (host === undefined || host === '0.0.0.0' || host === '::' || tls.extraSans.includes(host)) return tls;
  return { ...tls, extraSans: [...tls.extraSans, host] };
}

/** TLS files and which route classes answer without the token, from [http]. */
function httpSecurity(http: NodeConfig['http']) {
  const tls = http.tls_cert && http.tls_key ? { cert: http.tls_cert, key: http.tls_key, clientCa: http.tls_client_ca } : undefined;
  return { tls, open: { checks: !http.checks_need_token, metrics: !http.metrics_need_token } };
}

/** `--gossip probeIntervalMs=500` → { probeIntervalMs: 500 }; the gossip config validates names and types. */
function parseOverrides(pairs: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--gossip expects key=value, got "${pair}"`);
    const raw = pair.slice(eq + 1);
    out[pair.slice(0, eq)] = /^-?\d+(\.\d+)?$/.test(raw) ? Number(raw) : raw;
  }
  return out;
}

/** [shipping] of hasup.toml as the daemon takes it. */
function shippingOptions(s: NodeConfig['shipping']): NonNullable<ConstructorParameters<typeof Daemon>[0]['shipping']> {
  return {
    enabled: s.enabled,
    settings: {
      elasticsearch: s.elasticsearch,
      spoolMaxMb: s.spool_max_mb,
      batchMaxEvents: s.batch_max_events,
      batchMaxBytes: s.batch_max_bytes,
      flushIntervalMs: s.flush_interval_ms,
      retryMaxMs: s.retry_max_s * 1000,
      retentionDays: s.retention_days,
      metricsIntervalS: s.metrics_interval_s,
      hostName: s.host_name,
      journal: s.journal,
    },
  };
}
