import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { readApiEndpoint } from '../node/api-endpoint.js';
import { memberTlsFiles } from '../supervisor/pki/member-files.js';
import { parsePeerAddress } from '../gossip/index.js';
import { renderHaproxyConfig, type FrontendMember, type Listen } from '../plugins/haproxy/config.js';
import type { ClusterView } from '../plugins/http/cluster-view.js';
import { renderVipFrontendConfig } from '../plugins/vip/frontend.js';
import { decodeServiceRumor, parseServiceRumorKey, RUMOR_SERVICE } from '../supervisor/rumors/service.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { ApiClient } from './api-client.js';
import { DEFAULT_HTTP_PORT } from './run.js';

/**
 * `hasup gen-frontend-config --haproxy`: prints the load balancer's config for
 * the cluster. The member list comes from --members, or else from the ring as
 * the local daemon sees it (every member not permanently departed: a dead one
 * stays listed so HAProxy takes it back when it returns).
 */
interface FrontendFlags {
  haproxy?: boolean;
  vip?: boolean;
  vipAddress?: string;
  members?: string;
  pgPort: string;
  httpPort?: string;
  listen: string;
  replicaListen: string;
  replicas: boolean;
  stats?: string;
  stateDir: string;
  api?: string;
  secrets?: string;
  checkCa?: string;
  checkSsl: boolean;
}

export function registerFrontendConfigCommand(program: Command): void {
  program
    .command('gen-frontend-config')
    .description('print a load balancer config whose health checks call the members\' HTTP API (/primary, /replica)')
    .option('--haproxy', 'HAProxy format')
    .option('--vip', 'no load balancer: the frontends\' settings pointing at the leader VIP ([cluster] vip, docs/vip.md)')
    .option('--vip-address <addr>', 'with --vip: the VIP (default: as the cluster reports it)')
    .option('--members <list>', 'ADDR[:HTTPPORT],... of every member (default: the ring as the local daemon sees it)')
    .option('--pg-port <port>', 'PostgreSQL port of members that publish none in the ring (and of every --members entry)', '5432')
    .option('--http-port <port>', 'HTTP API port of every member found in the ring (default: the port each publishes, else the local daemon\'s)')
    .option('--listen <addr:port>', 'where clients connect for the writable leader', '0.0.0.0:5432')
    .option('--replica-listen <addr:port>', 'where clients connect for read-only sessions on followers', '0.0.0.0:5433')
    .option('--no-replicas', 'leave out the read-only listener')
    .option('--stats <addr:port>', 'also serve HAProxy\'s stats page here')
    .option('--check-ca <file>', 'CA file HAProxy verifies the members\' API certificates with (check-ssl verify required; default: the local member\'s CA bundle, STATE_DIR/tls/ca.pem, when its API serves HTTPS)')
    .option('--no-check-ssl', 'checks in clear text (only for members whose API serves plain HTTP: [tls] enabled = false)')
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the local member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)')
    .action(async (flags: FrontendFlags) => {
      if (!flags.haproxy === !flags.vip) throw new Error('say which frontend config: --haproxy (a load balancer) or --vip (straight to the leader VIP)');
      const pgPort = parsePort(flags.pgPort, '--pg-port');
      if (flags.vip) {
        process.stdout.write(renderVipFrontendConfig({ pgPort, ...(await vipOf(flags)) }));
        return;
      }
      const discovered = flags.members === undefined ? await membersFromRing(flags, pgPort) : null;
      const members = discovered?.members ?? parseMembersFlag(flags.members!, pgPort);
      const checkCaFile = checkCa(flags, discovered?.from);
      process.stdout.write(
        renderHaproxyConfig({
          members,
          listen: parseListen(flags.listen, '--listen'),
          replicaListen: flags.replicas ? parseListen(flags.replicaListen, '--replica-listen') : null,
          statsListen: flags.stats ? parseListen(flags.stats, '--stats') : null,
          source: discovered ? `the ring as seen by ${discovered.from}` : '--members',
          ...(checkCaFile ? { checkCaFile } : {}),
        }),
      );
    });
}

/**
 * The CA file for HAProxy's TLS checks: --check-ca, else the local member's
 * bundle (STATE_DIR/tls/ca.pem, or what its daemon recorded) unless its API
 * serves plain HTTP; none with --no-check-ssl. Never silently clear text:
 * an API that serves HTTPS with no CA found is an error.
 */
function checkCa(flags: FrontendFlags, apiUrl: string | undefined): string | undefined {
  if (!flags.checkSsl) {
    if (flags.checkCa) throw new Error('--check-ca and --no-check-ssl contradict each other');
    return undefined;
  }
  if (flags.checkCa) return resolve(flags.checkCa);
  const recorded = readApiEndpoint(flags.stateDir);
  const url = apiUrl ?? recorded.url;
  const ca = recorded.ca ?? memberTlsFiles(resolve(flags.stateDir)).ca;
  if (url !== undefined && !url.startsWith('https:')) return undefined;
  if (!existsSync(ca)) {
    const why = url === undefined ? 'the members\' API serves HTTPS by default' : `the members' API serves HTTPS (${url})`;
    throw new Error(`${why} but there is no CA bundle at ${ca}; pass --check-ca FILE (a member's STATE_DIR/tls/ca.pem), or --no-check-ssl for members with [tls] enabled = false`);
  }
  return ca;
}

/** "10.0.0.11:9631,10.0.0.12" → members; the HTTP port defaults to hasup's. */
export function parseMembersFlag(text: string, pgPort: number): FrontendMember[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw new Error('--members is empty');
  return items.map((item) => {
    const { addr, port } = parsePeerAddress(item, DEFAULT_HTTP_PORT);
    return { host: addr, pgPort, checkPort: port };
  });
}

interface ButterflyAnswer {
  self: { id: string; address: string; state: string };
  members: Array<{ id: string; address: string; state: string }>;
  rumors?: Array<{ kind: string; key: string; payload: string }>;
}

/**
 * The PostgreSQL and HTTP API ports each member publishes in its service
 * rumors (base64 payloads as /butterfly shows them): member id → ports.
 */
export function publishedPorts(rumors: ButterflyAnswer['rumors']): Map<string, { pgPort?: number; apiPort?: number }> {
  const out = new Map<string, { pgPort?: number; apiPort?: number }>();
  for (const r of rumors ?? []) {
    const key = r.kind === RUMOR_SERVICE ? parseServiceRumorKey(r.key) : undefined;
    if (!key) continue;
    const p = decodeServiceRumor(Buffer.from(r.payload, 'base64'));
    if (!p) continue;
    const seen = out.get(key.member) ?? {};
    if (key.service === 'postgresql' && p.ports?.port !== undefined) seen.pgPort = p.ports.port;
    if (p.api_port !== undefined) seen.apiPort = p.api_port;
    out.set(key.member, seen);
  }
  return out;
}

/** --vip-address, else the VIP the members report (/cluster); an error when none is configured. */
async function vipOf(flags: FrontendFlags): Promise<{ vip: string; source: string }> {
  if (flags.vipAddress) return { vip: flags.vipAddress, source: '--vip-address' };
  const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
  const view = await api.request<ClusterView>('GET', '/cluster');
  if (!view.vip) throw new Error('no member reports a leader VIP: set [cluster] vip and vip_interface (docs/vip.md), or pass --vip-address');
  return { vip: view.vip.address, source: `the cluster as seen by ${api.url}` };
}

async function membersFromRing(flags: FrontendFlags, pgPort: number): Promise<{ members: FrontendMember[]; from: string }> {
  let api: ApiClient;
  try {
    api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
  } catch (err) {
    throw new Error(`${(err as Error).message}; or list the members with --members ADDR:HTTPPORT,...`);
  }
  // Ports a member publishes in its service rumors win; --http-port / --pg-port (or the local API's port) cover the rest.
  const checkPort = flags.httpPort ? parsePort(flags.httpPort, '--http-port') : Number(new URL(api.url).port || DEFAULT_HTTP_PORT);
  const view = await api.request<ButterflyAnswer>('GET', '/butterfly');
  const published = publishedPorts(view.rumors);
  const byId = new Map<string, FrontendMember>();
  for (const m of [view.self, ...view.members]) {
    if (m.state === 'departed' || byId.has(m.id)) continue;
    const ports = published.get(m.id);
    byId.set(m.id, { name: m.id, host: parsePeerAddress(m.address).addr, pgPort: ports?.pgPort ?? pgPort, checkPort: flags.httpPort ? checkPort : (ports?.apiPort ?? checkPort) });
  }
  const members = [...byId.values()].sort((a, b) => a.host.localeCompare(b.host, 'en', { numeric: true }));
  return { members, from: api.url };
}

function parseListen(text: string, flag: string): Listen {
  try {
    const { addr, port } = parsePeerAddress(text, 0);
    return { host: addr, port };
  } catch (err) {
    throw new Error(`${flag}: ${(err as Error).message}`);
  }
}

function parsePort(text: string, flag: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${flag} must be a port (1-65535), got "${text}"`);
  return port;
}
