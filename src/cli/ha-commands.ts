import type { Command } from 'commander';
import type { HaView } from '../ha/index.js';
import { DEFAULT_STATE_DIR } from '../supervisor/state-dir.js';
import { ApiClient } from './api-client.js';

/**
 * The PostgreSQL election from the command line, through the local
 * daemon's API: `hasup switchover [--to MEMBER]`, `hasup pause`,
 * `hasup resume` and `hasup ha` (leader, timeline, every member's role,
 * replication state, lag and sync role).
 */
export interface ApiFlags {
  stateDir: string;
  api?: string;
  secrets?: string;
}

/** The flags of a command that asks the local daemon's API. */
export function withApiFlags(cmd: Command): Command {
  return cmd
    .option('--state-dir <dir>', 'state directory of the local member', process.env.HASUP_STATE_DIR ?? DEFAULT_STATE_DIR)
    .option('--api <url>', 'HTTP API of the member (default: recorded in STATE_DIR/api.json)')
    .option('--secrets <file>', 'cluster secrets file holding the API token (default: recorded by the daemon)');
}

export const apiClient = (flags: ApiFlags) => ApiClient.fromStateDir(flags.stateDir, { url: flags.api, secrets: flags.secrets });

export function registerHaCommands(program: Command): void {
  withApiFlags(program.command('switchover'))
    .description('planned leader change without losing a write: the leader stops, the target catches up and takes over')
    .option('--to <member>', 'member id of the new leader (default: the most up-to-date healthy replica)')
    .action(async (flags: ApiFlags & { to?: string }) => {
      const r = await apiClient(flags).request<{ from: string; to: string; took_ms: number }>('POST', '/switchover', flags.to ? { to: flags.to } : {});
      console.log(`leader moved from ${r.from} to ${r.to} in ${r.took_ms} ms`);
    });
  withApiFlags(program.command('pause'))
    .description('pause automatic failover (maintenance): nobody takes over a vacant leader key until resume')
    .action(async (flags: ApiFlags) => {
      await apiClient(flags).request('POST', '/pause');
      console.log('automatic failover paused');
    });
  withApiFlags(program.command('resume'))
    .description('resume automatic failover')
    .action(async (flags: ApiFlags) => {
      await apiClient(flags).request('POST', '/resume');
      console.log('automatic failover resumed');
    });
  withApiFlags(program.command('ha'))
    .description('the PostgreSQL election: leader, timeline, and every member with its role, replication state, lag and sync role')
    .option('--json', 'print the raw answer')
    .action(async (flags: ApiFlags & { json?: boolean }) => {
      const view = await apiClient(flags).request<HaView>('GET', '/ha');
      console.log(flags.json ? JSON.stringify(view, null, 2) : haText(view));
    });
}

export function haText(v: HaView): string {
  const head = [
    `${v.service_group}: leader ${v.leader ?? 'none'}${v.timeline !== null ? `, timeline ${v.timeline}` : ''}${v.paused ? ', automatic failover PAUSED' : ''}`,
    `synchronous mode ${v.synchronous_mode ? `on (set: ${v.sync_members.join(', ') || 'none'})` : 'off'}; ttl ${v.settings.ttl} s, loop_wait ${v.settings.loop_wait} s, retry_timeout ${v.settings.retry_timeout} s`,
  ];
  head.push(`this member: ${v.phase}`);
  for (const r of v.rogue_primaries ?? []) head.push(`CRITICAL: member ${r.member}'s PostgreSQL takes writes without the leader lease${r.action ? ` (${r.action})` : ''}`);
  if (v.switchover) head.push(`switchover pending: ${v.switchover.from} -> ${v.switchover.to ?? 'best replica'}${v.switchover.failed ? ` (failed: ${v.switchover.failed})` : ''}`);
  const rows = [['MEMBER', 'ADDRESS', 'ROLE', 'STATE', 'TIMELINE', 'LAG', 'SYNC', 'HEALTHY']];
  for (const m of v.members) {
    rows.push([
      m.member === v.member_id ? `${m.member} (self)` : m.member,
      `${m.host}:${m.port}`,
      m.role,
      m.replication_state ?? (m.role === 'leader' ? 'writable' : '-'),
      m.timeline === null ? '-' : String(m.timeline),
      m.lag_bytes === null ? '-' : `${m.lag_bytes} B${m.lag_seconds != null ? ` ${m.lag_seconds} s` : ''}`,
      m.sync_role ?? '-',
      m.healthy ? 'yes' : 'no',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return [...head, '', ...rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  '))].join('\n');
}
