import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { formatHostPort, parsePeerAddress } from '../../gossip/index.js';
import { readApiEndpoint } from '../../node/api-endpoint.js';
import { esAccess, esRequestExtras, securityOn, type EsAccess } from '../../plugins/elasticsearch/access.js';
import { textRequest } from '../../plugins/http-json.js';
import type { Census } from '../../plugins/http/cluster-view.js';
import { decodeServiceRumor, parseServiceRumorKey, RUMOR_SERVICE } from '../../supervisor/rumors/service.js';
import { memberTlsFiles } from '../../supervisor/pki/member-files.js';
import { ROLLOUT_LINE_MAX } from '../../supervisor/rumors/rollout.js';
import { loadSecretsFile, type ClusterSecrets } from '../../supervisor/secrets.js';
import { DEFAULT_STATE_DIR } from '../../supervisor/state-dir.js';
import { ApiClient } from '../api-client.js';
import { ROLLOUT_DEFAULTS, rollingRestart, RolloutError, type RolloutApi, type RolloutMember } from './rolling-restart.js';

/**
 * `hasup rolling-restart SERVICE [--dry-run]`: the rollout of
 * rolling-restart.ts over the members' HTTP APIs (each member's restart
 * goes to its own API, found from its service rumors like the frontend
 * config's) and, for Elasticsearch, the cluster's HTTP API.
 */
interface Flags {
  dryRun?: boolean;
  group: string;
  maxLag: string;
  timeout: string;
  stateDir: string;
  api?: string;
  secrets?: string;
}

export function registerRollingCommands(program: Command): void {
  rolloutCommand(program.command('rolling-restart'))
    .description('restart SERVICE on every member, one at a time: followers first, a switchover, the old leader last (PostgreSQL); shard allocation held per node and green awaited (Elasticsearch)')
    .argument('<service>', 'postgresql, elasticsearch, etcd, ...')
    .action((service: string, flags: Flags) => runRollout(service, flags));
  rolloutCommand(program.command('upgrade'))
    .description(
      'switch SERVICE to another build on every member, in the order of rolling-restart: every member is asked first whether it has it; a member that does not come back healthy on it goes back to its previous program and the rollout stops',
    )
    .argument('<service>', 'postgresql, etcd, elasticsearch, or hasup')
    .requiredOption('--to <version|path>', 'postgresql: 15, 15.18 or a bin directory of the same major version; etcd: the path of an etcd binary, or its version; elasticsearch: the path of another Elasticsearch home; hasup: the version installed on every member (each member\'s hasup restarts onto it, its services left running and adopted)')
    .action((service: string, flags: Flags & { to: string }) => runRollout(service, flags, flags.to));
}

/** The options rolling-restart and upgrade share. */
function rolloutCommand(command: Command): Command {
  return command
    .option('--dry-run', 'print the plan and change nothing')
    .option('--group <group>', 'service group', 'default')
    .option('--max-lag <bytes>', 'a PostgreSQL follower counts as caught up within this many bytes of the leader', String(ROLLOUT_DEFAULTS.maxLagBytes))
    .option('--timeout <seconds>', 'how long each member may take to come back', String(ROLLOUT_DEFAULTS.memberTimeoutMs / 1000))
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the local member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)');
}

async function runRollout(service: string, flags: Flags, upgradeTo?: string): Promise<void> {
  const maxLag = Number(flags.maxLag);
  const timeoutS = Number(flags.timeout);
  if (!Number.isSafeInteger(maxLag) || maxLag < 0) throw new Error(`--max-lag must be a number of bytes, got "${flags.maxLag}"`);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new Error(`--timeout must be a positive number of seconds, got "${flags.timeout}"`);
  const api = ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
  // Elasticsearch with its security on is reached as hasup's admin user, verified against the cluster CA.
  const secretsFile = flags.secrets ?? readApiEndpoint(flags.stateDir).secrets ?? join(flags.stateDir, 'secrets.json');
  const caFile = memberTlsFiles(flags.stateDir).ca;
  const es = { secrets: loadSecretsFile(secretsFile), ...(existsSync(caFile) ? { caFile } : {}) };
  // A dry run changes nothing, so it tells the cluster nothing either.
  const progress = flags.dryRun ? { say: () => undefined, flush: () => Promise.resolve() } : progressReporter(api, { command: upgradeTo === undefined ? 'rolling-restart' : 'upgrade', service_group: `${service}.${flags.group}`, to: upgradeTo ?? null });
  try {
    await rollingRestart(httpRolloutApi(api, es), {
      service,
      group: flags.group,
      maxLagBytes: maxLag,
      memberTimeoutMs: timeoutS * 1000,
      pollMs: ROLLOUT_DEFAULTS.pollMs,
      dryRun: !!flags.dryRun,
      ...(upgradeTo !== undefined ? { upgradeTo } : {}),
      say: (line) => {
        console.log(line);
        progress.say(line, 'running');
      },
    });
    progress.say('done', 'done');
  } catch (err) {
    progress.say((err as Error).message, 'failed');
    if (err instanceof RolloutError) {
      console.error(`hasup: ${err.message}`);
      process.exitCode = 1;
      return;
    }
    throw err;
  } finally {
    await progress.flush();
  }
}

/**
 * Each line of the rollout to the local member (POST /rollouts/progress),
 * which gossips it to every member's /events, in order. Progress that cannot
 * be posted never stops the rollout: said once on stderr.
 */
function progressReporter(api: ApiClient, what: { command: 'rolling-restart' | 'upgrade'; service_group: string; to: string | null }) {
  const id = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  let chain: Promise<void> = Promise.resolve();
  let warned = false;
  return {
    say(line: string, state: 'running' | 'done' | 'failed'): void {
      chain = chain.then(() =>
        api.request('POST', '/rollouts/progress', { id, ...what, line: line.slice(0, ROLLOUT_LINE_MAX), state }, { timeoutMs: 5000 }).then(
          () => undefined,
          (err: unknown) => {
            if (!warned) console.error(`hasup: progress is not shown on /events: ${(err as Error).message}`);
            warned = true;
          },
        ),
      );
    },
    flush: () => chain,
  };
}

/** GET /supervisor (plugins/http/supervisor-routes.ts). */
interface SupervisorView {
  pid: number;
  started_at: number;
  version: string;
  installed_version: string;
  restart_refused: string | null;
}

interface Butterfly {
  self: { id: string; address: string; state: string };
  members: Array<{ id: string; address: string; state: string }>;
  rumors?: Array<{ kind: string; key: string; payload: string }>;
}

/**
 * The RolloutApi over the local member's API (census, switchover), each
 * member's own (restart) and Elasticsearch's. `es`: the cluster secrets and
 * CA bundle, for an Elasticsearch whose security is on (asked of a member
 * that runs it: its config in force says).
 */
export function httpRolloutApi(local: ApiClient, es: { secrets?: ClusterSecrets; caFile?: string } = {}): RolloutApi {
  /** member id → its API client, its Elasticsearch host:port and service group, from /butterfly. */
  const where = async (): Promise<Map<string, { api?: ApiClient; es?: string; esGroup?: string }>> => {
    const b = await local.request<Butterfly>('GET', '/butterfly');
    const scheme = new URL(local.url).protocol;
    const hosts = new Map([b.self, ...b.members].map((m) => [m.id, parsePeerAddress(m.address).addr]));
    const out = new Map<string, { api?: ApiClient; es?: string; esGroup?: string }>();
    for (const r of b.rumors ?? []) {
      const key = r.kind === RUMOR_SERVICE ? parseServiceRumorKey(r.key) : undefined;
      const p = key ? decodeServiceRumor(Buffer.from(r.payload, 'base64')) : undefined;
      const host = key && hosts.get(key.member);
      if (!key || !p || !host) continue;
      const entry = out.get(key.member) ?? {};
      if (p.api_port !== undefined) entry.api = local.at(`${scheme}//${formatHostPort(host, p.api_port)}`);
      const esPort = key.service === 'elasticsearch' ? p.ports?.http_port : undefined;
      if (esPort !== undefined) {
        entry.es = formatHostPort(host, esPort);
        entry.esGroup = key.group;
      }
      out.set(key.member, entry);
    }
    return out;
  };
  let access: EsAccess | undefined;
  /** Scheme, CA and user (plugins/elasticsearch/access.ts), by the security setting of a member that runs Elasticsearch. */
  const esAccessOf = async (members: Array<{ api?: ApiClient; esGroup?: string }>): Promise<EsAccess> => {
    if (access) return access;
    let last: Error = new Error('no member that runs Elasticsearch answers on its API');
    for (const m of members) {
      if (!m.api || !m.esGroup) continue;
      try {
        const { config } = await m.api.request<{ config: { security?: boolean | string } }>('GET', `/services/elasticsearch/${m.esGroup}/config`);
        const cfg = config.security === undefined ? {} : { security: config.security };
        if (securityOn(cfg, es.caFile !== undefined) && !es.secrets) throw new Error('Elasticsearch security is on and no cluster secrets file was found (--secrets)');
        access = esAccess({ cfg, secrets: es.secrets!, caFile: es.caFile }, 'admin');
        return access;
      } catch (err) {
        last = err as Error;
      }
    }
    throw last;
  };
  const search = async (method: 'GET' | 'PUT', path: string, body?: unknown): Promise<unknown> => {
    const members = [...(await where()).values()].filter((e) => e.es);
    const how = await esAccessOf(members);
    const urls = members.map((e) => `${how.scheme}://${e.es!}`);
    let last: Error = new Error('no member publishes an Elasticsearch HTTP port');
    for (const url of urls) {
      try {
        const r = await textRequest(method, `${url}${path}`, AbortSignal.timeout(10_000), body, esRequestExtras(how));
        if (r.status >= 200 && r.status < 300) return JSON.parse(r.text) as unknown;
        last = new Error(`${method} ${path}: ${r.status} ${r.text.slice(0, 200)}`);
      } catch (err) {
        last = err as Error;
      }
    }
    throw last;
  };
  const memberApi = async (member: string): Promise<ApiClient> => {
    const api = (await where()).get(member)?.api;
    if (!api) throw new Error(`member ${member} publishes no API port`);
    return api;
  };
  /** hasup itself (hasup upgrade hasup): every member, its `since` its hasup's start, healthy when every service is. */
  const hasupMembers = async (group: string): Promise<RolloutMember[]> => {
    const census = await local.request<Census>('GET', '/census');
    const apis = await where();
    return Promise.all(
      census.members.map(async (m) => {
        const pg = m.services.find((x) => x.service_group === `postgresql.${group}`);
        const started = await apis
          .get(m.id)
          ?.api?.request<SupervisorView>('GET', '/supervisor', undefined, { timeoutMs: 5000 })
          .then((v) => v.started_at)
          .catch(() => null);
        return {
          member: m.id,
          live: (m.state === 'alive' || m.state === 'suspect') && started != null,
          healthy: m.services.length > 0 && m.services.every((s) => s.state === 'running' && (s.health === 'ok' || s.health === 'warning')),
          leader: pg?.role === 'leader' && pg.writable === true,
          streaming: pg?.role === 'replica' && pg.replication_state === 'streaming',
          lagBytes: pg?.lag_bytes ?? null,
          since: started ?? null,
          runsPostgresql: pg !== undefined,
        };
      }),
    );
  };
  const restartHasup = async (member: string): Promise<number> => (await (await memberApi(member)).request<{ requested_at: number }>('POST', '/supervisor/restart', undefined, { timeoutMs: 30_000 })).requested_at;
  return {
    async members(sg) {
      if (sg.startsWith('hasup.')) return hasupMembers(sg.slice('hasup.'.length));
      const census = await local.request<Census>('GET', '/census');
      const out: RolloutMember[] = [];
      for (const m of census.members) {
        const s = m.services.find((x) => x.service_group === sg);
        if (!s) continue;
        out.push({
          member: m.id,
          live: m.state === 'alive' || m.state === 'suspect',
          healthy: s.state === 'running' && (s.health === 'ok' || s.health === 'warning'),
          leader: s.role === 'leader' && s.writable === true,
          streaming: s.role === 'replica' && s.replication_state === 'streaming',
          lagBytes: s.lag_bytes,
          since: s.since,
        });
      }
      return out;
    },
    async restart(member, sg) {
      if (sg.startsWith('hasup.')) return restartHasup(member);
      const r = await (await memberApi(member)).request<{ service: { since: number } }>('POST', `/services/${sg.replace('.', '/')}/restart`, undefined, { timeoutMs: 180_000 });
      return r.service.since;
    },
    async checkUpgrade(member, sg, to) {
      if (sg.startsWith('hasup.')) {
        const v = await (await memberApi(member)).request<SupervisorView>('GET', '/supervisor', undefined, { timeoutMs: 10_000 });
        if (v.installed_version !== to) throw new Error(`hasup ${to} is not installed on this member (installed: ${v.installed_version}, running: ${v.version}): install it on every member first`);
        if (v.restart_refused && !/leader lease/.test(v.restart_refused)) throw new Error(v.restart_refused);
        return `hasup ${v.installed_version} installed, ${v.version} running`;
      }
      const r = await (await memberApi(member)).request<{ version: string }>('POST', `/services/${sg.replace('.', '/')}/upgrade`, { to, check: true }, { timeoutMs: 60_000 });
      return r.version;
    },
    async upgrade(member, sg, to) {
      // hasup is installed in place: the restart is what takes the new one up.
      if (sg.startsWith('hasup.')) return restartHasup(member);
      const r = await (await memberApi(member)).request<{ service: { since: number } }>('POST', `/services/${sg.replace('.', '/')}/upgrade`, { to }, { timeoutMs: 180_000 });
      return r.service.since;
    },
    async revertUpgrade(member, sg) {
      if (sg.startsWith('hasup.')) throw new Error(`hasup cannot put ${member} back on the hasup it ran: the installation on disk is the new one (reinstall the old version there and restart hasup)`);
      const r = await (await memberApi(member)).request<{ service: { since: number } }>('POST', `/services/${sg.replace('.', '/')}/upgrade`, { revert: true }, { timeoutMs: 180_000 });
      return r.service.since;
    },
    async switchover(to) {
      await local.request('POST', '/switchover', { to }, { timeoutMs: 90_000 });
    },
    async setAllocation(value) {
      await search('PUT', '/_cluster/settings', { persistent: { 'cluster.routing.allocation.enable': value } });
    },
    async searchHealth() {
      const h = (await search('GET', '/_cluster/health')) as { status?: string; number_of_nodes?: number };
      return { status: h.status ?? 'unknown', nodes: h.number_of_nodes ?? 0 };
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => performance.now(),
  };
}
