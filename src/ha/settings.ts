import { caBundleProblem } from '../supervisor/pki/inspect.js';
import { checkTable, isTable, perConfig, type Schema, type TomlTable } from '../supervisor/toml-schema.js';

/**
 * The election's timings and policy, read from the [ha] table of the
 * PostgreSQL service config (plans/postgresql/default.toml), so `hasup
 * config apply` changes them on every member at once.
 *
 * The defaults (ttl 3 s, loop_wait 1 s, retry_timeout 1 s) aim at a median
 * failover under 4 s. A dead leader's lease expires ttl after its last
 * renewal, i.e. 2-3 s after the crash (etcd checks expiry every 0.5 s);
 * followers watch the key, so the election and pg_promote add a few hundred
 * ms, and HAProxy's checks of members that are out (every 250 ms) the rest. False positives are kept away by
 * the margins: a renewal is one keep-alive round trip (no raft write), which
 * takes milliseconds on a LAN and goes to another etcd member as well when
 * the first is slow (a lost packet), and the leader has loop_wait + retry_timeout
 * (2 s) of failed attempts before it fences itself, still a full
 * retry_timeout (1 s) before the lease can expire. etcd's own leader
 * election (plans/etcd/default.toml: 50 ms heartbeats, 500 ms election
 * timeout) extends every lease when it completes.
 */
export interface HaSettings {
  /** Lease TTL in whole seconds (etcd's unit; etcd raises it to at least 1.5 election timeouts). */
  ttlS: number;
  /** Time between two turns of the HA loop and two lease renewals. */
  loopWaitMs: number;
  /** How long failing etcd calls are retried before the leader gives up its role. */
  retryTimeoutMs: number;
  /** A follower further behind the last known leader position than this (bytes) may not be promoted. */
  maximumLagOnFailover: number;
  /**
   * Only members of the recorded synchronous set may be promoted; commits
   * wait for ANY 1 of them. With synchronousModeAuto this is what the
   * controller decides from the group's size, false as read from config.
   */
  synchronousMode: boolean;
  /** synchronous_mode = "auto" (the default): synchronous once the group has AUTO_SYNC_MIN_MEMBERS members. */
  synchronousModeAuto: boolean;
  /** With synchronousMode: without a synchronous standby, commits wait rather than go asynchronous. */
  synchronousModeStrict: boolean;
  /** This member is never promoted (a reporting replica, a member in another room). */
  noFailover: boolean;
  /**
   * The kernel watchdog the fence feeds while this member leads: off;
   * automatic (used when the device exists); required (no leadership
   * without it).
   */
  watchdog: WatchdogMode;
  watchdogDevice: string;
  /**
   * A standby cluster: its leader does not promote but streams from this
   * PostgreSQL endpoint, which reaches the primary cluster's leader
   * wherever it is (the primary cluster's HAProxy write port), and the
   * other members cascade from it. null: this cluster is the primary.
   * `ca`: the primary cluster's CA certificates (PEM), which its members'
   * certificates must come from (sslmode=verify-ca); absent: encrypted but
   * not verified (sslmode=require).
   */
  standbyOf: { host: string; port: number; ca?: string } | null;
  /**
   * A standby cluster without a network link to its primary (a warm spare
   * kept current by restores): the path of a copy of the primary cluster's
   * pgBackRest repository, read only. Its leader replays the WAL archived
   * there (no primary_conninfo) and re-bases on the newest backup on each
   * slot of restoreSchedule. null: not such a spare.
   */
  standbyOfRepo: string | null;
  /** The spare's re-base schedule (a cron expression, UTC), checked where cron is known (the spare keeper); null: none. */
  restoreSchedule: string | null;
  /** Keys present with a wrong type or value: refused by checkHaSettings, never silently defaulted. */
  invalid: string[];
}

/**
 * With synchronous_mode = "auto", a group of this many PostgreSQL members
 * or more runs synchronously: with three, losing the leader and one
 * follower at once is what it takes to lose a write, and the leader still
 * has a second follower to wait for when one is down.
 */
export const AUTO_SYNC_MIN_MEMBERS = 3;

/** The settings in force for a group of `members` PostgreSQL members (auto resolved). */
export function effectiveSettings(s: HaSettings, members: number): HaSettings {
  return s.synchronousModeAuto ? { ...s, synchronousMode: members >= AUTO_SYNC_MIN_MEMBERS } : s;
}

export type WatchdogMode = 'off' | 'automatic' | 'required';

/**
 * The [ha] table's keys: their types, the values an enum or path allows,
 * and their defaults (the plan's default.toml writes the same ones, with
 * comments). How values relate to each other is checkHaSettings' job.
 */
export const HA_SETTINGS_SCHEMA: Schema = {
  ttl: { type: 'number', doc: 'leader lease TTL, whole seconds', default: 3 },
  loop_wait: { type: 'number', doc: 'seconds between turns of the HA loop and between lease renewals', default: 1 },
  retry_timeout: { type: 'number', doc: 'seconds failing etcd calls are retried before a leader fences itself', default: 1 },
  maximum_lag_on_failover: { type: 'number', doc: 'bytes behind the last known leader position past which a follower is never promoted', default: 1024 * 1024 },
  synchronous_mode: { type: 'boolean-or', words: ['auto'], doc: 'commits wait for one healthy follower; "auto": from 3 PostgreSQL members on', default: 'auto' },
  synchronous_mode_strict: { type: 'boolean', doc: 'hold commits rather than run without a synchronous follower', default: false },
  nofailover: { type: 'boolean', doc: 'never promote this member', default: false },
  watchdog: { type: 'string', enum: ['off', 'automatic', 'required'], doc: 'the kernel watchdog the fence feeds while this member leads', default: 'automatic' },
  watchdog_device: { type: 'string', doc: 'the kernel watchdog device', default: '/dev/watchdog', check: (v) => (v.startsWith('/') ? undefined : `must be an absolute path (got ${v})`) },
  standby_of: {
    type: 'string',
    doc: 'HOST:PORT of the primary cluster (its HAProxy write port): this cluster is a standby cluster following it; "" = this cluster is the primary',
    default: '',
    check: (v) => (v === '' || parseEndpoint(v) ? undefined : `must be HOST:PORT (an address and a port, [IPv6]:PORT) or "" (got ${JSON.stringify(v)})`),
  },
  standby_of_ca: {
    type: 'string',
    doc: "with standby_of: the primary cluster's CA certificates (PEM), so the standby leader verifies that cluster's servers (sslmode=verify-ca); \"\" = encrypted but not verified",
    default: '',
    check: (v) => (v === '' ? undefined : caBundleProblem(v)),
  },
  standby_of_repo: {
    type: 'string',
    doc: 'a copy of the primary cluster\'s pgBackRest repository (an absolute path, read only): this cluster is a warm spare kept current from it; "" = not such a spare',
    default: '',
    check: (v) => (v === '' || (v.startsWith('/') && !/[\s'"\\]/.test(v) && !v.split('/').includes('..')) ? undefined : `must be an absolute path without spaces, quotes or .. (got ${JSON.stringify(v)}) or ""`),
  },
  restore_schedule: {
    type: 'string',
    doc: 'with standby_of_repo: when the spare\'s leader re-bases on the newest backup (cron, UTC); "" = never',
    default: '',
  },
};

/** checkTable drops a standby_of_ca its check refused: a string here is valid. */
function withCa(up: { host: string; port: number } | null, ca: unknown): HaSettings['standbyOf'] {
  return up && typeof ca === 'string' && ca !== '' ? { ...up, ca } : up;
}

/** A standby cluster of either kind: streaming from a primary cluster, or replaying a copy of its repository. */
export function isStandbyCluster(s: Pick<HaSettings, 'standbyOf' | 'standbyOfRepo'>): boolean {
  return s.standbyOf !== null || s.standbyOfRepo !== null;
}

/** "10.0.0.5:5432", "db.example:6432", "[fd00::5]:5432" → host and port; null when it is not one. */
export function parseEndpoint(v: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(v);
  if (!m) return null;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535 ? { host: m[1] ?? m[2]!, port } : null;
}

/**
 * The settings from a merged PostgreSQL service config (its [ha] table;
 * seconds in the file). The HA loop and every load-balancer check read
 * them: kept per config object.
 */
export const haSettingsFrom = perConfig(readHaSettings);

function readHaSettings(cfg: TomlTable): HaSettings {
  const { value: ha, problems } = checkTable(isTable(cfg.ha) ? cfg.ha : {}, HA_SETTINGS_SCHEMA, { fill: true, at: ['ha'] });
  const syncMode = ha.synchronous_mode as boolean | 'auto';
  return {
    ttlS: ha.ttl as number,
    loopWaitMs: Math.round((ha.loop_wait as number) * 1000),
    retryTimeoutMs: Math.round((ha.retry_timeout as number) * 1000),
    maximumLagOnFailover: ha.maximum_lag_on_failover as number,
    synchronousMode: syncMode === true,
    synchronousModeAuto: syncMode === 'auto',
    synchronousModeStrict: ha.synchronous_mode_strict as boolean,
    noFailover: ha.nofailover as boolean,
    watchdog: ha.watchdog as WatchdogMode,
    watchdogDevice: ha.watchdog_device as string,
    standbyOf: withCa(parseEndpoint(ha.standby_of as string), ha.standby_of_ca),
    standbyOfRepo: typeof ha.standby_of_repo !== 'string' || ha.standby_of_repo === '' ? null : ha.standby_of_repo.replace(/\/+$/, '') || '/',
    restoreSchedule: typeof ha.restore_schedule !== 'string' || ha.restore_schedule.trim() === '' ? null : ha.restore_schedule.trim(),
    invalid: problems.map((p) => p.reason),
  };
}

export const DEFAULT_HA_SETTINGS: HaSettings = haSettingsFrom({});

/** The kernel watchdog's timeout in whole seconds: a reboot must come before the lease can expire. */
export function watchdogTimeoutS(s: HaSettings): number {
  return Math.max(1, Math.floor((s.ttlS * 1000 - s.loopWaitMs - s.retryTimeoutMs) / 1000));
}

/**
 * Why the settings cannot work, or undefined. The rule loop_wait + 2 ×
 * retry_timeout ≤ ttl leaves the leader one retry_timeout of failed
 * renewals after its regular one, and one more to stop PostgreSQL, before
 * its lease can run out under it.
 */
export function checkHaSettings(s: HaSettings): string | undefined {
  if (s.invalid.length > 0) return s.invalid.join('; ');
  if (!Number.isInteger(s.ttlS) || s.ttlS < 2) return `ha.ttl must be a whole number of seconds, at least 2 (got ${s.ttlS})`;
  if (s.loopWaitMs < 100) return `ha.loop_wait must be at least 0.1 s (got ${s.loopWaitMs / 1000})`;
  if (s.retryTimeoutMs < 100) return `ha.retry_timeout must be at least 0.1 s (got ${s.retryTimeoutMs / 1000})`;
  if (s.loopWaitMs + 2 * s.retryTimeoutMs > s.ttlS * 1000) {
    return `ha.loop_wait + 2 × ha.retry_timeout must not exceed ha.ttl: ${s.loopWaitMs / 1000} + 2 × ${s.retryTimeoutMs / 1000} > ${s.ttlS}`;
  }
  if (!(s.maximumLagOnFailover >= 0)) return `ha.maximum_lag_on_failover must be 0 or more bytes (got ${s.maximumLagOnFailover})`;
  if (s.synchronousModeStrict && !s.synchronousMode && !s.synchronousModeAuto) return 'ha.synchronous_mode_strict needs ha.synchronous_mode = true or "auto"';
  if (s.standbyOf && s.standbyOfRepo) return 'ha.standby_of and ha.standby_of_repo exclude each other: a standby cluster streams from its primary cluster or replays a copy of its repository, not both';
  if (s.restoreSchedule && !s.standbyOfRepo) return 'ha.restore_schedule needs ha.standby_of_repo (it is when a warm spare re-bases on the newest backup there)';
  return undefined;
}
