import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Command } from 'commander';
import { stringify } from 'smol-toml';
import { parseEndpoint, type HaMemberView, type HaView } from '../ha/index.js';
import { readApiEndpoint } from '../node/api-endpoint.js';
import { mergeInto } from '../supervisor/config-layers.js';
import { caBundleProblem } from '../supervisor/pki/inspect.js';
import { StateDir } from '../supervisor/state-dir.js';
import { patchConfigOffline } from '../supervisor/supervisor.js';
import type { TomlTable } from '../supervisor/toml-schema.js';
import { ApiError, type ApiClient } from './api-client.js';
import { apiClient, withApiFlags, type ApiFlags } from './ha-commands.js';

/**
 * `hasup cluster promote` and `hasup cluster demote --follow HOST:PORT`:
 * a warm spare becomes the primary cluster, a primary cluster becomes the
 * standby of another, so a site can fail over to its spare and switch back.
 * Both change one key, `[ha] standby_of`, in the HA group's gossiped config
 * document (read, patched, applied one version up), so every member agrees
 * and the change survives restarts; then they follow /ha until the cluster
 * is in its new role.
 */

interface RoleFlags extends ApiFlags {
  wait: boolean;
  timeout: string;
}

const POLL_MS = 500;
/** How long promote looks again before it takes "the standby leader streams" as the primary cluster being alive. */
const STREAM_CUT_GRACE_MS = 5000;

export function registerClusterRoleCommands(cluster: Command): void {
  withApiFlags(cluster.command('promote'))
    .description('make this standby cluster (a warm spare) the primary cluster: its standby leader is promoted and takes writes')
    .option('--force', 'promote even while the standby leader still streams from the primary cluster (which then goes on taking writes too)')
    .option('--no-wait', 'return once the change is applied, without waiting for the leader to take writes')
    .option('--timeout <s>', 'how long to wait for the leader to take writes', '60')
    .action(async (flags: RoleFlags & { force?: boolean }) => {
      const api = apiClient(flags);
      const timeoutMs = seconds(flags.timeout);
      let ha = await api.request<HaView>('GET', '/ha');
      if (ha.standby_of_repo) {
        await promoteSpare(api, ha, flags.wait, timeoutMs);
        return;
      }
      if (!ha.standby_of) throw new Error(`${ha.service_group} is a primary cluster already: nothing to promote`);
      // Right after the primary cluster was demoted or went down, the standby leader may not have reported the cut stream yet.
      for (const until = Date.now() + STREAM_CUT_GRACE_MS; leaderOf(ha)?.replication_state === 'streaming' && !flags.force && Date.now() < until; ) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        ha = await api.request<HaView>('GET', '/ha');
      }
      const sl = leaderOf(ha);
      if (sl?.replication_state === 'streaming' && !flags.force) {
        throw new Error(
          `the standby leader ${sl.member} still streams from the primary cluster at ${ha.standby_of}: that cluster is alive and takes writes. ` +
            `Demote it first (\`hasup cluster demote --follow <this cluster's HAProxy write address>\` on one of its members), or pass --force to have two primary clusters taking writes`,
        );
      }
      const version = await patchGroupConfig(api, ha.service_group, { ha: { standby_of: '' } });
      console.log(`${ha.service_group} version ${version}: standby_of cleared; the standby leader is being promoted`);
      if (!flags.wait) return;
      const started = Date.now();
      const done = await follow(api, timeoutMs, (v) => (!v.standby_of && leaderOf(v)?.role === 'leader' ? v : null));
      console.log(`${ha.service_group} is the primary cluster: leader ${done.leader}, timeline ${done.timeline ?? '?'}, takes writes (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    });

  withApiFlags(cluster.command('demote'))
    .description('make this primary cluster a standby cluster of another (to switch back after its spare was promoted): the leader stops taking writes, rewinds if it must, and streams from HOST:PORT')
    .requiredOption('--follow <host:port>', "the other cluster's write address (its HAProxy write port)")
    .option('--follow-ca <file>', "the other cluster's CA certificate(s) (PEM, e.g. its secrets' tls.ca_cert saved to a file): the standby leader then streams only from servers with a certificate from it (verify-ca); without, the stream is encrypted but not verified")
    .option('--offline', "on a stopped member: change its stored config so it starts as a standby cluster (run it on every member before starting any, e.g. when the failed site comes back)")
    .option('--service-group <svc.group>', 'with --offline: the HA group', 'postgresql.default')
    .option('--no-wait', 'return once the change is applied, without waiting for the leader to stop taking writes')
    .option('--timeout <s>', 'how long to wait for the leader to stop taking writes', '120')
    .action(async (flags: RoleFlags & { follow: string; followCa?: string; offline?: boolean; serviceGroup: string }) => {
      const ep = parseEndpoint(flags.follow);
      if (!ep) throw new Error(`--follow must be HOST:PORT (got ${JSON.stringify(flags.follow)})`);
      const upstream = `${ep.host.includes(':') ? `[${ep.host}]` : ep.host}:${ep.port}`;
      // Always set, so the CA of a cluster followed before is never taken for this one's.
      const patch = { ha: { standby_of: upstream, standby_of_ca: flags.followCa === undefined ? '' : readCaFile(flags.followCa) } };
      if (flags.followCa === undefined) console.error(`note: without --follow-ca the stream from ${upstream} is encrypted but its server is not verified`);
      if (flags.offline) {
        await refuseIfRunning(flags.stateDir);
        const version = patchConfigOffline(new StateDir(flags.stateDir), flags.serviceGroup, patch);
        console.log(`${flags.serviceGroup} version ${version} stored in ${flags.stateDir}: at its next start this member is part of a standby cluster of ${upstream}`);
        console.log('do the same on every member of this cluster before starting any of them');
        return;
      }
      const api = apiClient(flags);
      const timeoutMs = seconds(flags.timeout);
      const ha = await api.request<HaView>('GET', '/ha');
      if (ha.standby_of === upstream) throw new Error(`${ha.service_group} already follows ${upstream}`);
      const version = await patchGroupConfig(api, ha.service_group, patch);
      console.log(`${ha.service_group} version ${version}: standby_of = ${upstream}; the leader stops taking writes and follows it`);
      if (!flags.wait) return;
      const started = Date.now();
      const done = await follow(api, timeoutMs, (v) => (v.standby_of === upstream && leaderOf(v)?.role === 'standby_leader' && !v.members.some((m) => m.role === 'leader') ? v : null));
      const streams = leaderOf(done)?.replication_state === 'streaming';
      console.log(
        `${ha.service_group} is a standby cluster of ${upstream}, no member takes writes (${((Date.now() - started) / 1000).toFixed(1)} s); standby leader ${done.leader} ` +
          (streams ? 'streams from it' : `follows it once it takes writes (\`hasup cluster promote\` there, when it is a standby cluster)`),
      );
    });
}

/**
 * A warm spare kept current from a repository copy: nothing streams, so
 * nothing says whether the primary cluster is alive (the site has no link
 * to it); the operator's word is taken. Clearing standby_of_repo (and its
 * schedule) promotes the standby leader once any re-base under way ends.
 */
async function promoteSpare(api: ApiClient, ha: HaView, wait: boolean, timeoutMs: number): Promise<void> {
  const version = await patchGroupConfig(api, ha.service_group, { ha: { standby_of_repo: '', restore_schedule: '' } });
  console.log(`${ha.service_group} version ${version}: standby_of_repo cleared (it was ${ha.standby_of_repo}); the standby leader is being promoted and the repository copy is no longer read`);
  if (!wait) return;
  const started = Date.now();
  const done = await follow(api, timeoutMs, (v) => (!v.standby_of && !v.standby_of_repo && leaderOf(v)?.role === 'leader' ? v : null));
  console.log(`${ha.service_group} is the primary cluster: leader ${done.leader}, timeline ${done.timeline ?? '?'}, takes writes (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** --follow-ca: PEM CA certificates, checked before anything changes. */
function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`--follow-ca ${file}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
  const problem = caBundleProblem(pem);
  if (problem) throw new Error(`--follow-ca ${file}: ${problem}`);
  return pem;
}

function leaderOf(v: HaView): HaMemberView | undefined {
  return v.members.find((m) => m.member === v.leader);
}

function seconds(text: string): number {
  const s = Number(text);
  if (!Number.isFinite(s) || s <= 0) throw new Error(`--timeout must be a number of seconds, got "${text}"`);
  return s * 1000;
}

/**
 * Applies `patch` over the HA group's gossiped config document, one version
 * up. Another apply landing in between makes the version taken: read again.
 */
export async function patchGroupConfig(api: ApiClient, serviceGroup: string, patch: TomlTable): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const inForce = await api.request<{ version: number; data: TomlTable }>('GET', `/config/${encodeURIComponent(serviceGroup)}`);
    const version = inForce.version + 1;
    try {
      await api.request('POST', '/config', { service_group: serviceGroup, version, toml: stringify(mergeInto(inForce.data, patch)) });
      return version;
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409) || attempt >= 3) throw err;
    }
  }
}

/** Polls /ha until `until` returns a view, saying what the leader does when that changes. */
async function follow(api: ApiClient, timeoutMs: number, until: (v: HaView) => HaView | null): Promise<HaView> {
  const deadline = Date.now() + timeoutMs;
  let said = '';
  let last: HaView | undefined;
  for (;;) {
    try {
      last = await api.request<HaView>('GET', '/ha', undefined, { timeoutMs: 5000 });
      const done = until(last);
      if (done) return done;
      const l = leaderOf(last);
      const now = l ? `leader ${l.member}: ${l.role}${l.replication_state ? `, ${l.replication_state}` : ''}` : 'no leader';
      if (now !== said) console.log(`  ${now}`);
      said = now;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
    }
    if (Date.now() > deadline) throw new Error(`not done after ${timeoutMs / 1000} s (${said || 'no answer from /ha'}); \`hasup status\` shows where it is`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/**
 * The offline form changes a file the running supervisor owns and rewrites:
 * only with none running. Anything accepting a connection on the recorded
 * API address counts as running (over TLS or not, whatever it answers).
 */
async function refuseIfRunning(stateDir: string): Promise<void> {
  const { url } = readApiEndpoint(stateDir);
  if (!url) return;
  const u = new URL(url);
  const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
  const listening = await new Promise<boolean>((resolve) => {
    const socket = connect({ host: u.hostname.replace(/^\[|\]$/g, ''), port, timeout: 2000 });
    const done = (up: boolean) => {
      socket.destroy();
      resolve(up);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
  if (listening) throw new Error(`hasup runs with state directory ${stateDir} (its API listens at ${url}); demote the running cluster without --offline`);
}
