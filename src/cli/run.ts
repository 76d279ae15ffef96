import { Command, Option } from 'commander';
import { parsePeerAddress, DEFAULT_GOSSIP_PORT } from '../gossip/address.js';
import { GOSSIP_PROFILES, type GossipProfile } from '../gossip/config.js';
import { Daemon } from '../supervisor/daemon.js';
import { createLogger } from '../supervisor/log.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';

export const DEFAULT_HTTP_PORT = 9631;

interface RunFlags {
  advertise: string;
  bind?: string;
  peer: string[];
  ringKey: string;
  stateDir: string;
  profile: GossipProfile;
  listenHttp?: string;
  http: boolean;
  gossip: string[];
  logLevel?: string;
}

export function registerRunCommand(program: Command): void {
  program
    .command('run')
    .description('run this member: the gossip ring, its services and the HTTP API (what a systemd unit starts)')
    .requiredOption('--advertise <addr[:port]>', `address other members reach this one at (port defaults to ${DEFAULT_GOSSIP_PORT})`)
    .option('--bind <addr>', 'address to bind the gossip sockets to (default: the advertised address)')
    .option('--peer <addr[:port]>', 'a member to join through; repeat for several', collect, [])
    .option('--ring-key <file>', 'ring key file (see `hasup ring-key generate`)', process.env.HASUP_RING_KEY)
    .option('--state-dir <dir>', 'state directory', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .addOption(new Option('--profile <name>', 'gossip timing profile').choices(Object.keys(GOSSIP_PROFILES)).default('lan'))
    .option('--gossip <key=value>', 'override one gossip timing value (e.g. probeIntervalMs=500); repeatable', collect, [])
    .option('--listen-http <addr:port>', `HTTP API address (default: the advertised address, port ${DEFAULT_HTTP_PORT})`)
    .option('--no-http', 'do not serve the HTTP API')
    .option('--log-level <level>', 'trace, debug, info, warn or error')
    .action(async (flags: RunFlags) => {
      const log = createLogger({ level: flags.logLevel });
      if (!flags.ringKey) throw new Error('--ring-key FILE is required (or HASUP_RING_KEY); create one with `hasup ring-key generate FILE`');
      const advertise = parsePeerAddress(flags.advertise);
      const daemon = new Daemon({
        stateDir: flags.stateDir,
        advertise,
        bind: flags.bind,
        peers: flags.peer.map((p) => parsePeerAddress(p)),
        ringKeyFile: flags.ringKey,
        profile: flags.profile,
        gossipOverrides: parseOverrides(flags.gossip),
        http: flags.http ? parseHttpListen(flags.listenHttp, advertise.addr) : null,
        log,
      });
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ event: 'signal', signal }, `received ${signal}, leaving the ring`);
        daemon.stop().then(
          () => process.exit(0),
          (err) => {
            log.error({ err }, 'error while stopping');
            process.exit(1);
          },
        );
      };
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
      await daemon.start();
    });
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseHttpListen(text: string | undefined, advertiseAddr: string): { host: string; port: number } {
  if (text === undefined) return { host: advertiseAddr, port: DEFAULT_HTTP_PORT };
  const { addr, port } = parsePeerAddress(text, DEFAULT_HTTP_PORT);
  return { host: addr, port };
}

/** `--gossip probeIntervalMs=500` → { probeIntervalMs: 500 }; the config module validates names and types. */
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
