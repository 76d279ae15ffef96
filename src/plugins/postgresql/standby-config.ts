import { chown, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PRIMARY_CLUSTER, type PeerEndpoint } from '../../ha/index.js';
import type { DriverContext } from '../../supervisor/driver.js';
import { isFile } from '../service-dirs.js';

/**
 * The files through which the HA loop tells PostgreSQL what it is:
 *
 *   data/standby.signal   start in recovery (every start, until pg_promote removes it)
 *   config/ha.conf        included last by postgresql.conf: upstream, slot, sync standbys
 *   run/pgpass            the replication and superuser passwords for libpq (mode 0600):
 *                         walreceiver, pg_basebackup and pg_rewind read them from here,
 *                         so no password is ever on a command line or in a config file
 *   root/ha-was-primary   this data directory has been a primary since it last followed
 *                         someone: it must be rewound before it follows anyone
 */
/** Whom this member replicates from: the HA core's endpoint (a member, or the primary cluster with its CA). */
export type Upstream = PeerEndpoint;

export interface HaConfState {
  upstream: Upstream | null;
  /** null: asynchronous; []: wait for a standby that is not there (strict); else ANY 1 of these. */
  syncStandbys: string[] | null;
  /** A warm spare: PostgreSQL's restore_command reading the primary cluster's repository copy (over postgresql.conf's). */
  restoreCommand?: string;
}

/** ha.conf carries the state it was rendered from on this line, for a restarted supervisor. */
export const HA_STATE_MARK = '# hasup-state: ';

/** A name no member's application_name can be (member ids are hex): commits wait for it forever. */
export const NO_SYNC_STANDBY = 'hasup_no_sync_standby';

export const passfilePath = (ctx: DriverContext) => join(ctx.paths.run, 'pgpass');
/** Another cluster's CA (a standby cluster's upstream), for libpq's sslrootcert. */
export const upstreamCaPath = (ctx: DriverContext) => join(ctx.paths.run, 'upstream-ca.pem');
export const haConfPath = (ctx: DriverContext) => join(ctx.paths.config, 'ha.conf');
export const standbySignalPath = (ctx: DriverContext) => join(ctx.paths.data, 'standby.signal');
const wasPrimaryPath = (ctx: DriverContext) => join(ctx.paths.root, 'ha-was-primary');

/** A replication slot name for a member: lower-case letters, digits and _ only. */
export function slotName(member: string): string {
  return `hasup_${member.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`;
}

/** A value in a libpq connection string. */
function connValue(v: string): string {
  return /^[A-Za-z0-9_./:@-]+$/.test(v) ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A value in postgresql.conf. */
function confString(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A line of a libpq password file. */
function passLine(user: string, password: string): string {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:${esc(user)}:${esc(password)}`;
}

export function replicationUser(ctx: DriverContext): string {
  return String(ctx.cfg.replication_user ?? 'replicator');
}

export function superuser(ctx: DriverContext): string {
  return String(ctx.cfg.superuser);
}

/**
 * How libpq reaches `up` under TLS (docs/tls.md): a member's server must
 * present a certificate from the cluster CA naming the address connected
 * to (verify-full; member certificates carry their addresses as IP SANs).
 * A standby cluster's upstream is the primary cluster's load balancer,
 * whose address no member certificate names: with that cluster's CA
 * (`[ha] standby_of_ca`, written by writeUpstreamCa) its servers must
 * present a certificate from it (verify-ca); without, the link is
 * encrypted but not verified (require). Never clear text while TLS is on:
 * libpq refuses a server without TLS.
 */
export function tlsParams(ctx: DriverContext, up: { member?: string; ca?: string }): Record<string, string> {
  if (!ctx.tls) return {};
  if (up.member === PRIMARY_CLUSTER) return up.ca ? { sslmode: 'verify-ca', sslrootcert: upstreamCaPath(ctx) } : { sslmode: 'require' };
  return { sslmode: 'verify-full', sslrootcert: ctx.tls.ca };
}

/** The upstream's own CA where libpq looks for it (tlsParams), before any connection to it is made. */
export async function writeUpstreamCa(ctx: DriverContext, up: { ca?: string } | null): Promise<void> {
  if (ctx.tls && up?.ca) await writeOwned(ctx, upstreamCaPath(ctx), up.ca, 0o644);
}

/** libpq connection string to `up` as `user`, passwords from the passfile. */
export function conninfo(ctx: DriverContext, up: { host: string; port: number; member?: string; ca?: string }, user: string, extra: Record<string, string> = {}): string {
  const parts: Record<string, string> = {
    host: up.host,
    port: String(up.port),
    user,
    passfile: passfilePath(ctx),
    ...tlsParams(ctx, up),
    connect_timeout: '3',
    // A dead upstream is noticed by the election; keepalives only tidy up the socket.
    keepalives_idle: '5',
    keepalives_interval: '2',
    keepalives_count: '3',
    ...extra,
  };
  return Object.entries(parts)
    .map(([k, v]) => `${k}=${connValue(v)}`)
    .join(' ');
}

/**
 * How long either end of a replication connection waits for its peer
 * (wal_sender_timeout on the primary, wal_receiver_timeout on the standby).
 * 5 s, as CloudNativePG sets both: a standby that sends a status reply at
 * least every wal_receiver_status_interval, and whenever the primary asks for
 * one at half this, is never silent that long unless it is cut off.
 */
const REPLICATION_TIMEOUT = '5s';

export function renderHaConf(ctx: DriverContext, state: HaConfState): string {
  const lines = [
    '# Written by hasup\'s HA loop on every role change; do not edit (it is rewritten).',
    `${HA_STATE_MARK}${JSON.stringify(state)}`,
    "recovery_target_timeline = 'latest'",
    "wal_retrieve_retry_interval = '1s'",
    `wal_receiver_timeout = '${REPLICATION_TIMEOUT}'`,
  ];
  if (state.upstream) {
    // Both ends of the stream give up on a silent peer after REPLICATION_TIMEOUT
    // instead of PostgreSQL's 60 s: a standby cut off for a few seconds then
    // reconnects afresh rather than resuming a connection deep in TCP
    // retransmission backoff, which the primary would go on counting as a
    // streaming (synchronous) standby while commits wait on it. Set on this
    // connection only, so a clone's pg_basebackup keeps the server's timeout.
    const info = conninfo(ctx, state.upstream, replicationUser(ctx), {
      application_name: ctx.memberId,
      options: `-c wal_sender_timeout=${REPLICATION_TIMEOUT}`,
    });
    // The primary cluster keeps slots for its own members only (it drops any other): a standby leader streams
    // without one, and reads from the shared archive what the primary no longer holds.
    const slot = state.upstream.member === PRIMARY_CLUSTER ? '' : slotName(ctx.memberId);
    lines.push(`primary_conninfo = ${confString(info)}`, `primary_slot_name = ${confString(slot)}`);
    lines.push(`# upstream member: ${state.upstream.member}`);
  } else {
    lines.push("primary_conninfo = ''", "primary_slot_name = ''");
  }
  if (state.restoreCommand) {
    // A warm spare replays the WAL archived in the primary cluster's repository copy (archive-get only).
    lines.push(`restore_command = ${confString(state.restoreCommand)}`);
  }
  const sync = state.syncStandbys;
  if (sync === null) lines.push("synchronous_standby_names = ''");
  else {
    const names = (sync.length > 0 ? sync : [NO_SYNC_STANDBY]).map((n) => `"${n.replace(/"/g, '')}"`).join(', ');
    lines.push(`synchronous_standby_names = ${confString(`ANY 1 (${names})`)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** The write of each file under way: writes of one file run one after the other, in the order they were asked for. */
const writing = new Map<string, Promise<void>>();

/**
 * Writes a file owned by the service user, atomically (a temporary file
 * renamed over it). Two writes of the same file at once (the HA loop
 * following a leader while the driver prepares a start) would share the
 * temporary file: one's rename left the other's chown without a file, and
 * the older content could land last. So they are queued, and the content
 * asked for last is the one that stays.
 */
async function writeOwned(ctx: DriverContext, file: string, content: string, mode: number): Promise<void> {
  const write = async () => {
    const tmp = `${file}.tmp`;
    await writeFile(tmp, content, { mode });
    if (ctx.user) await chown(tmp, ctx.user.uid, ctx.user.gid);
    await rename(tmp, file);
  };
  const queued = (writing.get(file) ?? Promise.resolve()).catch(() => undefined).then(write);
  writing.set(file, queued);
  try {
    await queued;
  } finally {
    if (writing.get(file) === queued) writing.delete(file);
  }
}

export async function writeHaConf(ctx: DriverContext, state: HaConfState): Promise<void> {
  await writeUpstreamCa(ctx, state.upstream);
  await writeOwned(ctx, haConfPath(ctx), renderHaConf(ctx, state), 0o640);
}

/** The libpq password file; rewritten when the secrets change. */
export async function writePassfile(ctx: DriverContext): Promise<void> {
  const content = `${passLine(replicationUser(ctx), ctx.secrets.postgresql.replication_password)}\n${passLine(superuser(ctx), ctx.secrets.postgresql.superuser_password)}\n`;
  await writeOwned(ctx, passfilePath(ctx), content, 0o600);
}

export async function writeStandbySignal(ctx: DriverContext): Promise<void> {
  if (!(await isFile(standbySignalPath(ctx)))) await writeOwned(ctx, standbySignalPath(ctx), '', 0o600);
}

export async function markWasPrimary(ctx: DriverContext): Promise<void> {
  await writeFile(wasPrimaryPath(ctx), `${new Date().toISOString()}\n`, { mode: 0o600 });
}

export function wasPrimary(ctx: DriverContext): Promise<boolean> {
  return isFile(wasPrimaryPath(ctx));
}

export async function clearWasPrimary(ctx: DriverContext): Promise<void> {
  await rm(wasPrimaryPath(ctx), { force: true });
}

/**
 * Moves a data directory that can no longer follow anyone aside (keeping
 * only the newest such copy) and leaves an empty one, so the next start
 * copies the leader afresh. Nothing is deleted that is not already a copy
 * set aside before.
 */
export async function setDataAside(ctx: DriverContext): Promise<string> {
  const parent = ctx.paths.root;
  for (const name of await readdir(parent)) {
    if (name.startsWith('data.diverged-')) await rm(join(parent, name), { recursive: true, force: true });
  }
  const aside = join(parent, `data.diverged-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  await rename(ctx.paths.data, aside);
  return aside;
}

/** Empties a data directory that a failed copy left half-written (it was empty before the copy). */
export async function emptyDataDir(ctx: DriverContext): Promise<void> {
  try {
    await stat(ctx.paths.data);
  } catch {
    return;
  }
  for (const name of await readdir(ctx.paths.data)) await rm(join(ctx.paths.data, name), { recursive: true, force: true });
}
