import type { HaView } from '../../ha/index.js';
import type { EtcdMembershipStatus } from '../etcd/membership.js';
import { CLOCK_DRIFT_WARN_MS, type Census, type CensusMember } from './cluster-view.js';

/**
 * The cluster's HA status: OK, or DEGRADED with every reason, each naming
 * the member it is about and since when. One computation, from the data the
 * member API already has (the census, the election's view, etcd's voters,
 * this member's shipping spool), serves `GET /ha-status`, the first line of
 * `hasup status` and the console's indicator, so the three never disagree.
 *
 * The rules are pure functions of their input (haReasons); when a reason
 * began is kept by HaStatusTracker, which runs them every second: most
 * sources say what is, not since when (a member's gossip state, etcd's
 * health, a paused cluster), so "since" is the first time this member saw
 * the reason, unless the source carries its own time (a service's state).
 */

export type HaReasonCode =
  | 'member_suspect'
  | 'member_dead'
  | 'member_left'
  | 'pg_no_leader'
  | 'pg_several_leaders'
  | 'pg_rogue_primary'
  | 'pg_not_streaming'
  | 'pg_lagging'
  | 'pg_no_sync_standby'
  | 'spare_late'
  | 'paused'
  | 'etcd_voter_unhealthy'
  | 'etcd_quorum_lost'
  | 'etcd_quorum_at_risk'
  | 'es_status'
  | 'es_node_missing'
  | 'clock_drift'
  | 'spool_backlog_growing'
  | 'spool_dropping'
  | 'service_flapping'
  | 'service_backoff'
  | 'service_critical';

export interface HaReason {
  code: HaReasonCode;
  /** critical: data or availability is at stake now; warning: redundancy is reduced. */
  severity: 'critical' | 'warning';
  /** The member the reason is about; null for the cluster as a whole. */
  member: string | null;
  /** ms since the epoch when it began (as far as this member knows). */
  since: number;
  /** One sentence an operator reads, without the time (the page and the CLI add it). */
  text: string;
}

export interface HaStatus {
  status: 'OK' | 'DEGRADED';
  /** The member that computed it. */
  member_id: string;
  /** ms since the epoch. */
  as_of: number;
  /** Critical first, then by member. */
  reasons: HaReason[];
}

/** A reason before its time is known; `key` tells one from another across runs. */
export interface HaReasonDraft extends Omit<HaReason, 'since'> {
  key: string;
  /** When the source says it began. */
  since?: number;
}

export interface BacklogSample {
  at: number;
  events: number;
}

export interface HaStatusInput {
  now: number;
  census: Census;
  /** The PostgreSQL election's view; absent on a member without it. */
  ha?: (Pick<HaView, 'paused' | 'synchronous_mode' | 'sync_members' | 'leader' | 'settings'> & Partial<Pick<HaView, 'standby_of_repo' | 'spare'>>) | null;
  /** etcd's voters as this member knows them; absent where the members do not form etcd. */
  etcd?: Pick<EtcdMembershipStatus, 'forming' | 'role' | 'voters' | 'voters_wanted'> | null;
  /** This member's shipping spool (other members' are not gossiped): backlog samples, oldest first, and events dropped so far. */
  spool?: { samples: BacklogSample[]; dropped: number; droppedBefore: number } | null;
}

/** Replica lag over this is a reason when the election gives no bound (Patroni's default maximum_lag_on_failover). */
export const DEFAULT_MAX_LAG_BYTES = 1024 * 1024;
/** The spool backlog counts as growing when it rose by more than this over SPOOL_WINDOW_MS without ever falling. */
export const SPOOL_GROWTH_EVENTS = 1000;
export const SPOOL_WINDOW_MS = 30_000;

const isLive = (m: CensusMember) => m.state === 'alive' || m.state === 'suspect';

/** Every reason the input gives, unordered and without times. */
export function haReasons(input: HaStatusInput): HaReasonDraft[] {
  return [...memberReasons(input.census), ...postgresReasons(input), ...etcdReasons(input.etcd), ...elasticsearchReasons(input.census), ...clockReasons(input.census), ...spoolReasons(input), ...serviceReasons(input.census)];
}

function memberReasons(census: Census): HaReasonDraft[] {
  const out: HaReasonDraft[] = [];
  for (const m of census.members) {
    if (m.state === 'alive' || m.state === 'departed') continue;
    const severity = m.state === 'dead' ? 'critical' : 'warning';
    const how = m.state === 'left' ? 'has left the ring (stopped gracefully); depart it if it is not coming back' : m.state === 'dead' ? 'is dead (no answer to probes)' : 'is suspect (missed probes; not yet declared dead)';
    out.push({ key: `member:${m.id}`, code: `member_${m.state}`, severity, member: m.id, text: `member ${m.id} (${m.address}) ${how}` });
  }
  return out;
}

function postgresReasons(input: HaStatusInput): HaReasonDraft[] {
  const out: HaReasonDraft[] = [];
  const group = input.census.service_groups.find((g) => g.service_group.startsWith('postgresql.'));
  if (!group) return out;
  const byId = new Map(input.census.members.map((m) => [m.id, m]));
  const live = group.members.filter((m) => byId.get(m.member) && isLive(byId.get(m.member)!));
  if (group.leaders.length > 1) out.push({ key: 'pg:leaders', code: 'pg_several_leaders', severity: 'critical', member: null, text: `${group.leaders.length} members claim the PostgreSQL leader role: ${group.leaders.join(', ')}` });
  else if (!group.leader && !input.ha?.leader) out.push({ key: 'pg:leader', code: 'pg_no_leader', severity: 'critical', member: null, text: 'PostgreSQL has no leader: nothing takes writes' });
  for (const c of group.critical) out.push({ key: `pg:rogue:${c}`, code: 'pg_rogue_primary', severity: 'critical', member: null, text: c });
  const bound = input.ha?.settings.maximum_lag_on_failover ?? DEFAULT_MAX_LAG_BYTES;
  for (const r of live.filter((m) => m.role === 'replica')) {
    // A warm spare kept current by restores: its standby leader replays the repository copy and streams from nobody.
    const replaysCopy = !!input.ha?.standby_of_repo && r.member === input.ha.leader;
    if (r.replication_state !== 'streaming' && !replaysCopy) {
      out.push({ key: `pg:stream:${r.member}`, code: 'pg_not_streaming', severity: 'warning', member: r.member, text: `PostgreSQL on ${r.member} does not stream from the leader (${r.replication_state ?? 'replication state unknown'})` });
    }
    if (r.lag_bytes !== null && r.lag_bytes > bound) {
      out.push({ key: `pg:lag:${r.member}`, code: 'pg_lagging', severity: 'warning', member: r.member, text: `PostgreSQL on ${r.member} lags ${r.lag_bytes} bytes behind the leader (bound ${bound} bytes: it cannot be promoted)` });
    }
  }
  const leader = group.leader;
  const degraded = live.some((m) => m.member === leader) && group.warnings.some((w) => w.includes('commits asynchronously'));
  if ((input.ha?.synchronous_mode && input.ha.sync_members.length === 0 && leader) || degraded) {
    out.push({ key: 'pg:sync', code: 'pg_no_sync_standby', severity: 'critical', member: leader, text: `synchronous mode has no synchronous standby: leader ${leader} commits without waiting for a copy, so a failover now can lose acknowledged writes` });
  }
  const spareLate = (input.ha?.spare as { warning?: string | null } | undefined)?.warning;
  if (input.ha?.standby_of_repo && spareLate) out.push({ key: 'spare:late', code: 'spare_late', severity: 'warning', member: input.ha.leader, text: `warm spare: ${spareLate}` });
  if (input.ha?.paused) out.push({ key: 'pg:paused', code: 'paused', severity: 'warning', member: null, text: 'automatic failover is paused (hasup resume ends it): a dead leader is not replaced' });
  return out;
}

function etcdReasons(etcd: HaStatusInput['etcd']): HaReasonDraft[] {
  if (!etcd?.forming || etcd.role === null || etcd.voters.length === 0) return [];
  const out: HaReasonDraft[] = [];
  for (const v of etcd.voters.filter((x) => !x.healthy)) {
    out.push({ key: `etcd:voter:${v.member}`, code: 'etcd_voter_unhealthy', severity: 'warning', member: v.member, text: `etcd voter on ${v.member} is unhealthy (member ${v.member_state})` });
  }
  const n = etcd.voters.length;
  const healthy = n - out.length;
  const quorum = Math.floor(n / 2) + 1;
  if (healthy < quorum) out.push({ key: 'etcd:quorum', code: 'etcd_quorum_lost', severity: 'critical', member: null, text: `etcd has lost its quorum: ${healthy} of ${n} voters healthy, ${quorum} needed; no leader can be elected or renewed` });
  else if (healthy === quorum) out.push({ key: 'etcd:quorum', code: 'etcd_quorum_at_risk', severity: 'warning', member: null, text: `etcd quorum at risk: ${healthy} of ${n} voters healthy (${etcd.voters_wanted} wanted), one more loss ends it` });
  return out;
}

function elasticsearchReasons(census: Census): HaReasonDraft[] {
  const es = census.elasticsearch;
  if (!es) return [];
  const out: HaReasonDraft[] = [];
  if (es.status === 'red') out.push({ key: 'es:status', code: 'es_status', severity: 'critical', member: null, text: 'Elasticsearch is red: some primary shards are unassigned (searches and shipping into them fail)' });
  else if (es.status === 'yellow') out.push({ key: 'es:status', code: 'es_status', severity: 'warning', member: null, text: 'Elasticsearch is yellow: some replica shards are unassigned' });
  else if (es.status === null) out.push({ key: 'es:status', code: 'es_status', severity: 'warning', member: census.member_id, text: `Elasticsearch health unknown: the node on ${census.member_id} does not report it (not running, or no master)` });
  const runsEs = (m: CensusMember) => m.services.some((s) => s.service_group.startsWith('elasticsearch.'));
  const gone = census.members.filter((m) => runsEs(m) && !isLive(m));
  for (const m of gone.filter((x) => x.state === 'dead')) out.push({ key: `es:node:${m.id}`, code: 'es_node_missing', severity: 'warning', member: m.id, text: `Elasticsearch node of ${m.id} is missing (its member is ${m.state})` });
  if (es.nodes_online !== null && es.nodes_online < es.nodes_expected && gone.length === 0) {
    out.push({ key: 'es:nodes', code: 'es_node_missing', severity: 'warning', member: null, text: `Elasticsearch has ${es.nodes_online} of ${es.nodes_expected} nodes` });
  }
  return out;
}

function clockReasons(census: Census): HaReasonDraft[] {
  return census.members
    .filter((m) => isLive(m) && m.clock_offset_ms !== null && Math.abs(m.clock_offset_ms) > CLOCK_DRIFT_WARN_MS)
    .map((m) => ({ key: `clock:${m.id}`, code: 'clock_drift' as const, severity: 'warning' as const, member: m.id, text: `clock of ${m.id} is ${m.clock_offset_ms} ms off (over ${CLOCK_DRIFT_WARN_MS} ms)` }));
}

function spoolReasons(input: HaStatusInput): HaReasonDraft[] {
  const spool = input.spool;
  if (!spool) return [];
  const self = input.census.member_id;
  const out: HaReasonDraft[] = [];
  const growth = backlogGrowth(spool.samples, input.now);
  if (growth !== undefined) {
    out.push({ key: 'spool:growing', code: 'spool_backlog_growing', severity: 'warning', member: self, text: `shipping spool on ${self} grows: ${growth.events} events wait for Elasticsearch (+${growth.grew} in ${Math.round(growth.overMs / 1000)} s)` });
  }
  if (spool.dropped > spool.droppedBefore) out.push({ key: 'spool:dropping', code: 'spool_dropping', severity: 'warning', member: self, text: `shipping spool on ${self} drops events (${spool.dropped} so far): it is full or the disk cannot keep up` });
  return out;
}

/** The backlog's rise when it never fell over the last SPOOL_WINDOW_MS and rose by more than SPOOL_GROWTH_EVENTS; undefined otherwise. */
export function backlogGrowth(samples: BacklogSample[], now: number): { events: number; grew: number; overMs: number } | undefined {
  // A second of slack either side: samples come from a 1 s tick.
  const window = samples.filter((s) => s.at >= now - SPOOL_WINDOW_MS - 1000);
  const first = window[0];
  const last = window[window.length - 1];
  if (!first || !last || first.at > now - SPOOL_WINDOW_MS + 1000) return undefined;
  for (let i = 1; i < window.length; i++) if (window[i]!.events < window[i - 1]!.events) return undefined;
  const grew = last.events - first.events;
  return grew > SPOOL_GROWTH_EVENTS ? { events: last.events, grew, overMs: last.at - first.at } : undefined;
}

function serviceReasons(census: Census): HaReasonDraft[] {
  const out: HaReasonDraft[] = [];
  // A dead member's rumors are its last words: the member's own reason covers it.
  for (const m of census.members.filter(isLive)) {
    for (const s of m.services) {
      const where = `${s.service_group} on ${m.id}`;
      if (s.state === 'flapping') out.push({ key: `svc:${m.id}:${s.service_group}:state`, code: 'service_flapping', severity: 'critical', member: m.id, since: s.since ?? undefined, text: `${where} is flapping (crashes over and over; restarts are spaced out)` });
      else if (s.state === 'backoff') out.push({ key: `svc:${m.id}:${s.service_group}:state`, code: 'service_backoff', severity: 'warning', member: m.id, since: s.since ?? undefined, text: `${where} exited and waits to be restarted` });
      if (s.health === 'critical') out.push({ key: `svc:${m.id}:${s.service_group}:health`, code: 'service_critical', severity: 'critical', member: m.id, text: `${where} fails its health check` });
    }
  }
  return out;
}

/**
 * The status from this run's reasons: each keeps the time it began, which
 * is the source's own when it has one, else the time an earlier run first
 * saw it (`firstSeen`, updated in place), else now.
 */
export function haStatusOf(memberId: string, drafts: HaReasonDraft[], firstSeen: Map<string, number>, now: number): HaStatus {
  const seen = new Set<string>();
  const reasons: HaReason[] = [];
  for (const { key, since, ...reason } of drafts) {
    if (seen.has(key)) continue;
    seen.add(key);
    const began = since ?? firstSeen.get(key) ?? now;
    firstSeen.set(key, firstSeen.get(key) ?? began);
    reasons.push({ ...reason, since: began });
  }
  for (const key of [...firstSeen.keys()]) if (!seen.has(key)) firstSeen.delete(key);
  const rank = (r: HaReason) => (r.severity === 'critical' ? 0 : 1);
  reasons.sort((a, b) => rank(a) - rank(b) || (a.member ?? '').localeCompare(b.member ?? '') || a.text.localeCompare(b.text));
  return { status: reasons.length === 0 ? 'OK' : 'DEGRADED', member_id: memberId, as_of: now, reasons };
}

/** What the tracker reads every run. */
export interface HaStatusSources {
  memberId: string;
  census: () => Census;
  ha?: () => HaStatusInput['ha'];
  etcd?: () => HaStatusInput['etcd'];
  /** This member's spool: events not yet acknowledged, events dropped so far; undefined while it does not ship. */
  spool?: () => { backlog: number; dropped: number } | undefined;
}

/**
 * Runs the rules and remembers what a single run cannot know: when each
 * reason began, the spool's recent backlog, the drop count an earlier run
 * saw. `update` runs every second (the API's ha-status plugin), so "since"
 * is right within a second whether or not anyone is asking.
 */
export class HaStatusTracker {
  private readonly firstSeen = new Map<string, number>();
  private samples: BacklogSample[] = [];
  /** The spool's drop count a minute ago: drops since then are a reason. */
  private dropMarks: BacklogSample[] = [];
  private last: HaStatus | undefined;

  constructor(private readonly sources: HaStatusSources) {}

  update(now = Date.now()): HaStatus {
    const spool = this.sources.spool?.();
    if (spool) {
      this.samples = [...this.samples.filter((s) => s.at >= now - SPOOL_WINDOW_MS - 5000), { at: now, events: spool.backlog }];
      this.dropMarks = [...this.dropMarks.filter((s) => s.at >= now - 60_000), { at: now, events: spool.dropped }];
    }
    const input: HaStatusInput = {
      now,
      census: this.sources.census(),
      ha: this.sources.ha?.() ?? null,
      etcd: this.sources.etcd?.() ?? null,
      spool: spool ? { samples: this.samples, dropped: spool.dropped, droppedBefore: this.dropMarks[0]?.events ?? spool.dropped } : null,
    };
    this.last = haStatusOf(this.sources.memberId, haReasons(input), this.firstSeen, now);
    return this.last;
  }

  /** The last run's status (running one when there was none). */
  current(): HaStatus {
    return this.last ?? this.update();
  }
}

/** Two statuses say the same (times aside): the console is told only of a change. */
export function sameHaStatus(a: HaStatus | undefined, b: HaStatus): boolean {
  if (!a || a.status !== b.status || a.reasons.length !== b.reasons.length) return false;
  return a.reasons.every((r, i) => r.text === b.reasons[i]!.text && r.since === b.reasons[i]!.since);
}

/** `hasup status`'s first lines: `HA: OK`, or `HA: DEGRADED (n reasons)` and one line per reason with its member and since when. */
export function haStatusLines(s: HaStatus, now: number): string[] {
  if (s.status === 'OK') return ['HA: OK'];
  const lines = [`HA: DEGRADED (${s.reasons.length} reason${s.reasons.length === 1 ? '' : 's'})`];
  for (const r of s.reasons) lines.push(`  ${r.severity === 'critical' ? 'CRITICAL' : 'WARNING'}: ${r.text}, since ${new Date(r.since).toISOString().slice(0, 19)}Z (${ago(now - r.since)})`);
  return lines;
}

function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86_400) return `${(s / 3600).toFixed(1)} h ago`;
  return `${(s / 86_400).toFixed(1)} d ago`;
}
