import { isIP } from 'node:net';
import type { DriverContext } from '../../supervisor/driver.js';
import { pgbackrestPaths } from './files.js';
import type { PgBackRestTlsFiles } from './server-tls.js';
import type { BackupSettings } from './settings.js';

/**
 * Backups from a follower (pgBackRest's backup-standby; docs/backup.md,
 * "Backups from a follower"): pure parts. The leader picks a follower that
 * streams and is caught up, and asks it to take the backup; the follower
 * runs `pgbackrest backup --backup-standby` with itself as pg1 and the
 * leader as pg2, reached through the leader's pgBackRest TLS server. The
 * leader says where its own files are (PrimaryRemote): members need not
 * share a layout.
 */

/** What a follower needs to reach the leader's PostgreSQL through the leader's pgBackRest server. */
export interface PrimaryRemote {
  /** The leader's member id. */
  member: string;
  /** Its advertised address, where its pgBackRest server listens. */
  host: string;
  server_port: number;
  /** Its data directory, PostgreSQL port and socket directory. */
  pg_path: string;
  pg_port: number;
  socket_path: string;
  /** Its pgbackrest.conf and include directory, which the remote it runs for us reads. */
  config: string;
  include_path: string;
}

/** This member as the primary a follower's backup reaches. */
export function primaryRemoteOf(ctx: Pick<DriverContext, 'memberId' | 'ip' | 'paths' | 'cfg'>, settings: Pick<BackupSettings, 'serverPort'>): PrimaryRemote {
  const p = pgbackrestPaths(ctx.paths);
  return {
    member: ctx.memberId,
    host: ctx.ip,
    server_port: settings.serverPort,
    pg_path: ctx.paths.data,
    pg_port: Number(ctx.cfg.port),
    socket_path: ctx.paths.run,
    config: p.conf,
    include_path: p.includeDir,
  };
}

const isPort = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
const isPath = (v: unknown) => typeof v === 'string' && v.startsWith('/') && v.length <= 1024 && !/[\0\n\r]/.test(v);

/** Why `p` cannot be a PrimaryRemote (a request from another member), or undefined. Names the field, never echoes a long value. */
export function primaryRemoteProblem(p: Partial<PrimaryRemote> | undefined): string | undefined {
  if (!p || typeof p !== 'object') return 'primary is missing';
  if (typeof p.member !== 'string' || !/^[0-9a-f]{16}$/.test(p.member)) return 'primary.member must be a member id (16 hex digits)';
  if (typeof p.host !== 'string' || isIP(p.host) === 0) return 'primary.host must be an IP address';
  if (!isPort(p.server_port)) return 'primary.server_port must be a port';
  if (!isPort(p.pg_port)) return 'primary.pg_port must be a port';
  for (const k of ['pg_path', 'socket_path', 'config', 'include_path'] as const) if (!isPath(p[k])) return `primary.${k} must be an absolute path on one line`;
  return undefined;
}

/** pgBackRest's options for the leader as pg2, reached over TLS with this member's pgBackRest certificate. */
export function standbyArgs(p: PrimaryRemote, tls: PgBackRestTlsFiles): string[] {
  return [
    '--backup-standby',
    `--pg2-host=${p.host}`,
    '--pg2-host-type=tls',
    `--pg2-host-port=${p.server_port}`,
    `--pg2-host-ca-file=${tls.ca}`,
    `--pg2-host-cert-file=${tls.cert}`,
    `--pg2-host-key-file=${tls.key}`,
    `--pg2-host-config=${p.config}`,
    `--pg2-host-config-include-path=${p.include_path}`,
    `--pg2-path=${p.pg_path}`,
    `--pg2-port=${p.pg_port}`,
    `--pg2-socket-path=${p.socket_path}`,
  ];
}

/** A follower as the leader's pg_stat_replication shows it (application_name is the member id). */
export interface ReplicaRow {
  member: string;
  /** pg_stat_replication.state: streaming, catchup, startup, backup, stopping. */
  state: string;
  /** async, potential, sync, quorum. */
  syncState: string;
  /** How far its replay is behind the leader's current WAL position, in bytes (null when unknown). */
  replayLagBytes: number | null;
}

/** A follower whose replay is further behind than this is not asked: pgBackRest would wait for it to catch up (one WAL segment). */
export const STANDBY_MAX_LAG_BYTES = 16 * 1024 * 1024;

export interface StandbyChoice {
  /** Followers to ask, best first. */
  candidates: string[];
  /** The followers left out, and why. */
  skipped: Array<{ member: string; why: string }>;
}

/**
 * The followers that may take a backup, best first: streaming, with their
 * replay within STANDBY_MAX_LAG_BYTES; asynchronous ones before those in
 * the synchronous set (commits wait for the latter, and a backup's reads
 * slow their replay down), then the least behind, then by id.
 */
export function chooseStandbys(rows: ReplicaRow[], maxLagBytes = STANDBY_MAX_LAG_BYTES): StandbyChoice {
  const skipped: StandbyChoice['skipped'] = [];
  const ok: ReplicaRow[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    if (!/^[0-9a-f]{16}$/.test(r.member) || seen.has(r.member)) continue;
    seen.add(r.member);
    if (r.state !== 'streaming') skipped.push({ member: r.member, why: `not streaming (${r.state})` });
    else if (r.replayLagBytes === null) skipped.push({ member: r.member, why: 'its replay position is unknown' });
    else if (r.replayLagBytes > maxLagBytes) skipped.push({ member: r.member, why: `${r.replayLagBytes} bytes behind (more than ${maxLagBytes})` });
    else ok.push(r);
  }
  const syncRank = (r: ReplicaRow) => (r.syncState === 'sync' || r.syncState === 'quorum' ? 1 : 0);
  ok.sort((a, b) => syncRank(a) - syncRank(b) || a.replayLagBytes! - b.replayLagBytes! || a.member.localeCompare(b.member));
  return { candidates: ok.map((r) => r.member), skipped };
}

/** The annotations hasup stores with every backup it takes (pgBackRest's --annotation; `info` lists them). */
export const ANNOTATION_SOURCE = 'hasup-source';
export const ANNOTATION_MEMBER = 'hasup-member';
export type BackupSourceRole = 'leader' | 'follower';

export function sourceAnnotations(role: BackupSourceRole, member: string): Record<string, string> {
  return { [ANNOTATION_SOURCE]: role, [ANNOTATION_MEMBER]: member };
}

/** Where a backup was taken, from its annotations; null for one hasup did not annotate (older, or taken by hand). */
export function sourceOf(annotations: Record<string, string> | undefined): { role: BackupSourceRole; member: string } | null {
  const role = annotations?.[ANNOTATION_SOURCE];
  const member = annotations?.[ANNOTATION_MEMBER];
  if ((role !== 'leader' && role !== 'follower') || typeof member !== 'string') return null;
  return { role, member };
}
