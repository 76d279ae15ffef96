import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { ServiceStatus } from '../supervisor/service.js';
import { configReference } from '../supervisor/config-file.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import type { ClusterView } from '../plugins/http/cluster-view.js';
import { haStatusLines, type HaStatus } from '../plugins/http/ha-status.js';
import { ApiClient, ApiError } from './api-client.js';
import type { EtcdMembershipStatus } from '../plugins/etcd/membership.js';
import type { FenceStatus, HaView } from '../ha/index.js';
import { tlsSummaryLines, type TlsReport } from '../supervisor/pki/report.js';
import { clusterTlsWarnings } from './cert-commands.js';
import { backupSummary, clusterCell, clusterSummary, etcdSummary, fenceSummary, haGroupSummary, vipSummary } from './census.js';

/**
 * Commands that talk to the local daemon through its HTTP API:
 * `hasup status`, `hasup svc ...`, `hasup config apply` (`hasup census` is in census.ts).
 */
interface ClientFlags {
  stateDir: string;
  api?: string;
  secrets?: string;
}

function withClientFlags(cmd: Command): Command {
  return cmd
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)');
}

function client(flags: ClientFlags): ApiClient {
  return ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });
}

export function registerClientCommands(program: Command): void {
  withClientFlags(program.command('status'))
    .description('the HA status (OK, or DEGRADED and why), then one table: every service of this member with its state, pid, time in state and health')
    .option('--json', 'print the raw answers (ha_status, services, cluster, etcd, fence) as one JSON object')
    .action(async (flags: ClientFlags & { json?: boolean }) => {
      const api = client(flags);
      const [haStatus, { services }, cluster, etcd, ha, tls] = await Promise.all([
        // The one HA status computation (plugins/http/ha-status.ts); a daemon older than it has none.
        api.request<HaStatus>('GET', '/ha-status').catch((err: unknown) => {
          if (err instanceof ApiError && err.status === 404) return undefined;
          throw err;
        }),
        api.request<{ services: ServiceStatus[] }>('GET', '/services'),
        api.request<ClusterView>('GET', '/cluster'),
        // Served wherever the member's routes are; a daemon without it just gets no etcd line.
        api.request<EtcdMembershipStatus>('GET', '/etcd').catch(() => undefined),
        // Only members of an HA cluster have a fence.
        api.request<Partial<HaView> & { fence?: FenceStatus }>('GET', '/ha').catch(() => undefined),
        // A daemon from before TLS has no /tls: no tls line.
        api.request<TlsReport>('GET', '/tls').catch(() => undefined),
      ]);
      const fence = ha?.fence;
      if (flags.json) console.log(JSON.stringify({ ha_status: haStatus ?? null, services, cluster, etcd, fence, tls }, null, 2));
      else {
        const group = ha?.members ? haGroupSummary({ standby_of: ha.standby_of ?? null, ...(ha.standby_of_ca !== undefined ? { standby_of_ca: ha.standby_of_ca } : {}), standby_of_repo: ha.standby_of_repo ?? null, spare: ha.spare, leader: ha.leader ?? null, members: ha.members, restore: ha.restore ?? null }) : [];
        const extra = [etcd && etcdSummary(etcd), fence && fenceSummary(fence), cluster.vip && vipSummary(cluster.vip, cluster.member_id), cluster.backup && backupSummary(cluster.backup, Date.now()), ...group, ...(tls ? tlsSummaryLines(tls) : []), ...clusterTlsWarnings(cluster.members.filter((m) => !m.self))].filter((l): l is string => !!l);
        const first = haStatus ? [...haStatusLines(haStatus, Date.now()), ''] : [];
        console.log([...first, statusTable(services, Date.now(), cluster), '', ...clusterSummary(cluster), ...extra].join('\n'));
      }
    });

  const svc = program.command('svc').description('change the services this member runs (remembered across restarts)');
  for (const [action, what] of [
    ['load', 'load a plan and start its service'],
    ['unload', 'stop a service and forget it'],
    ['start', 'start a loaded service'],
    ['stop', 'stop a loaded service (it stays loaded)'],
    ['restart', 'restart a loaded service'],
  ] as const) {
    withClientFlags(svc.command(`${action} <name>`))
      .description(what)
      .action(async (name: string, flags: ClientFlags) => {
        const answer = await client(flags).request<{ service?: ServiceStatus }>('POST', `/services/${encodeURIComponent(name)}/${action}`);
        console.log(answer.service ? statusTable([answer.service], Date.now()) : `${name}: ${action}ed`);
      });
  }

  const config = program.command('config').description('versioned service configuration, gossiped to every member');
  config
    .command('reference')
    .description('print the reference of every hasup.toml key (markdown)')
    .action(() => console.log(configReference()));
  withClientFlags(config.command('apply <service_group> <version> <file>'))
    .description('validate a TOML document and gossip it; every member applies the highest version (e.g. config apply postgresql.default 7 patch.toml)')
    .action(async (serviceGroup: string, versionText: string, file: string, flags: ClientFlags) => {
      const version = Number(versionText);
      if (!Number.isSafeInteger(version) || version < 1) throw new Error(`version must be a positive integer, got "${versionText}"`);
      let toml: string;
      try {
        toml = readFileSync(file, 'utf8');
      } catch (err) {
        throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      const answer = await client(flags).request<{ outcome: string }>('POST', '/config', { service_group: serviceGroup, version, toml });
      console.log(`${serviceGroup} version ${version} applied here (${answer.outcome}) and gossiped to the ring`);
    });
}

export function statusTable(services: ServiceStatus[], now: number, cluster?: ClusterView): string {
  const rows = [['SERVICE', 'STATE', 'PID', 'TIME IN STATE', 'HEALTH', 'CLUSTER']];
  for (const s of [...services].sort((a, b) => a.name.localeCompare(b.name))) {
    rows.push([`${s.name}.${s.group}`, s.state, s.pid ? String(s.pid) : '-', duration(now - s.since), s.health + (s.healthMessage && s.health !== 'ok' ? ` (${s.healthMessage})` : ''), cluster ? clusterCell(cluster, `${s.name}.${s.group}`) : '-']);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')).join('\n');
}

function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}
