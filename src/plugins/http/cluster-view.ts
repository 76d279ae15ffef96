import type { MemberView, MemberStateName, StoredRumor } from '../../gossip/index.js';
import type { LeadershipState } from '../../supervisor/leadership.js';
import { decodeBackupReport, pickBackupReport, RUMOR_BACKUP, type BackupReport, type MemberBackupReport } from '../../supervisor/rumors/backup.js';
import { splitMemberServiceKey } from '../../supervisor/rumors/key.js';
import { decodeRoleRumor, roleRumor, RUMOR_ROLE, type RoleRumor } from '../../supervisor/rumors/role.js';
import { decodeServiceRumor, RUMOR_SERVICE } from '../../supervisor/rumors/service.js';
import { decodeTlsRumor, RUMOR_TLS } from '../../supervisor/rumors/tls.js';
import { decodeVipReport, RUMOR_VIP, type VipReport } from '../../supervisor/rumors/vip.js';
import type { ServiceStatus } from '../../supervisor/service.js';
import { hasupVersion } from '../../supervisor/version.js';

/**
 * The census: every member with its services, their health and role, built
 * from the ring's rumors (and, for this member, from its own live state,
 * which is fresher). Pure functions of their input, so the same view backs
 * /census, /cluster and `hasup status`.
 */

/** Operators are warned when a member's clock is this far from ours (as the daemon's log). */
export const CLOCK_DRIFT_WARN_MS = 1500;

export interface CensusService {
  service_group: string;
  state: string;
  pid: number | null;
  health: string;
  since: number | null;
  config_version: number;
  /** The plan's version of the service; null when the member does not say (an older hasup). */
  version: string | null;
  role: RoleRumor['role'] | null;
  writable: boolean | null;
  lease_in_doubt: boolean | null;
  lag_bytes: number | null;
  /** Whole seconds; null when unknown (or from an older member). */
  lag_seconds: number | null;
  replication_state: string | null;
  timeline: number | null;
  /** In synchronous mode: whether this replica is in the synchronous set. */
  sync_role: 'sync' | 'async' | null;
  /** The leader runs in synchronous mode but commits asynchronously (no healthy follower). */
  sync_degraded: boolean;
  /** Peers this member found taking writes without the leader lease. */
  rogue_primaries: { member: string; since: number; action: string | null }[];
}

export interface CensusMember {
  id: string;
  address: string;
  state: MemberStateName;
  incarnation: number;
  self: boolean;
  clock_offset_ms: number | null;
  rtt_ms: number | null;
  /** The member's hasup version, from its service rumors (this member's own); null when it does not say. */
  hasup_version: string | null;
  /** The member's certificate as its TLS rumor says (docs/tls.md); null when it does not say (an older hasup, or not yet). */
  tls: MemberTlsView | null;
  services: CensusService[];
}

export interface MemberTlsView {
  on: boolean;
  issuer: string | null;
  /** ISO time the certificate ends; null when TLS is off. */
  not_after: string | null;
  days_left: number | null;
  fingerprint: string | null;
  /** Why TLS is off. */
  reason: string | null;
}

export interface ServiceGroupMember {
  member: string;
  member_state: MemberStateName;
  state: string;
  health: string;
  role: RoleRumor['role'] | null;
  lag_bytes: number | null;
  /** Whole seconds; null when unknown (or from an older member). */
  lag_seconds: number | null;
  replication_state: string | null;
  timeline: number | null;
  sync_role: 'sync' | 'async' | null;
  config_version: number;
}

export interface ServiceGroupView {
  service_group: string;
  /** The one live member whose role is leader; null when none or several claim it. */
  leader: string | null;
  /** Every live member claiming the leader role (more than one before the HA election exists). */
  leaders: string[];
  /** What an operator should know about the group's safety, e.g. a leader committing asynchronously in synchronous mode. */
  warnings: string[];
  /** What endangers written data now: a member taking writes without the leader lease (a rogue primary). */
  critical: string[];
  healthy: number;
  total: number;
  members: ServiceGroupMember[];
}

/** The Elasticsearch cluster as this member's node reports it (its health check), against the census. */
export interface ElasticsearchClusterView {
  /** green, yellow or red; null while this member's node does not report the cluster's health (not running, no master). */
  status: string | null;
  /** Nodes in the cluster (number_of_nodes); null as above. */
  nodes_online: number | null;
  /** Members in the census that run Elasticsearch: alive, suspect and dead ones (a dead member's node is missing until it returns or is departed). */
  nodes_expected: number;
}

export interface Census {
  member_id: string;
  members: CensusMember[];
  service_groups: ServiceGroupView[];
  /** Present when some member runs Elasticsearch. */
  elasticsearch?: ElasticsearchClusterView;
}

/** Backups as the cluster's leader reports them (or, without one, the newest report any member made). */
export interface ClusterBackupView extends BackupReport {
  /** The member whose report this is. */
  member: string;
  /** It is the PostgreSQL leader's. */
  from_leader: boolean;
}

export interface ClusterView {
  member_id: string;
  gossip: Record<MemberStateName, number>;
  clock_drift_warn_ms: number;
  members: Array<Omit<CensusMember, 'services'> & { clock_drift: boolean; services: string[] }>;
  service_groups: ServiceGroupView[];
  elasticsearch?: ElasticsearchClusterView;
  /** Present when some member runs PostgreSQL. */
  backup?: ClusterBackupView;
  /** Present when some live member has a leader VIP configured ([cluster] vip). */
  vip?: ClusterVipView;
}

/** The leader VIP as every live member reports it (docs/vip.md). */
export interface ClusterVipView {
  address: string;
  /** The one live member that holds it; null when none does, or several say they do. */
  holder: string | null;
  holders: string[];
  members: Array<{ member: string; interface: string; state: VipReport['state']; reason: string; since: number }>;
  /** Several holders, a member that refused the VIP or cannot add or remove it, members configured with different VIPs. */
  warnings: string[];
}

export interface CensusInput {
  memberId: string;
  members: MemberView[];
  rumors: (kind: string) => StoredRumor[];
  localServices: ServiceStatus[];
  leadership: LeadershipState;
  /** This member's backup report (its coordinator's; undefined where PostgreSQL is not loaded). */
  localBackup?: BackupReport;
  /** ms since the epoch, for days left on certificates (default: now). */
  now?: number;
}

const isLive = (state: MemberStateName) => state === 'alive' || state === 'suspect';

export function buildCensus(input: CensusInput): Census {
  const services = new Map<string, Map<string, CensusService>>();
  const slot = (member: string, group: string): CensusService => {
    let byGroup = services.get(member);
    if (!byGroup) services.set(member, (byGroup = new Map()));
    let s = byGroup.get(group);
    if (!s) {
      s = { service_group: group, state: 'unknown', pid: null, health: 'unknown', since: null, config_version: 0, version: null, role: null, writable: null, lease_in_doubt: null, lag_bytes: null, lag_seconds: null, replication_state: null, timeline: null, sync_role: null, sync_degraded: false, rogue_primaries: [] };
      byGroup.set(group, s);
    }
    return s;
  };

  const versions = new Map<string, string>();
  for (const r of input.rumors(RUMOR_SERVICE)) {
    const key = splitMemberServiceKey(r.key);
    if (!key || key.member === input.memberId) continue;
    const p = decodeServiceRumor(r.payload);
    if (!p) continue;
    Object.assign(slot(key.member, key.serviceGroup), { state: p.state ?? 'unknown', pid: p.pid ?? null, health: p.health ?? 'unknown', since: p.since ?? null, config_version: p.config_version ?? 0, version: typeof p.version === 'string' ? p.version : null });
    if (typeof p.hasup_version === 'string') versions.set(key.member, p.hasup_version);
  }
  for (const r of input.rumors(RUMOR_ROLE)) {
    const key = splitMemberServiceKey(r.key);
    if (!key || key.member === input.memberId) continue;
    const p = decodeRoleRumor(r.payload);
    if (p) applyRole(slot(key.member, key.serviceGroup), p);
  }
  for (const s of input.localServices) {
    Object.assign(slot(input.memberId, `${s.name}.${s.group}`), { state: s.state, pid: s.pid ?? null, health: s.health, since: s.since, config_version: s.configVersion, version: s.version ?? null });
  }
  versions.set(input.memberId, hasupVersion());
  if (input.leadership.serviceGroup) applyRole(slot(input.memberId, input.leadership.serviceGroup), roleRumor(input.leadership));

  const tls = new Map<string, MemberTlsView>();
  const now = input.now ?? Date.now();
  for (const r of input.rumors(RUMOR_TLS)) {
    const p = decodeTlsRumor(r.payload);
    if (!p) continue;
    const end = p.on && p.not_after !== undefined ? p.not_after : null;
    tls.set(r.key, { on: p.on, issuer: p.issuer ?? null, not_after: end === null ? null : new Date(end).toISOString(), days_left: end === null ? null : Math.floor((end - now) / 86_400_000), fingerprint: p.fingerprint ?? null, reason: p.reason ?? null });
  }

  const members: CensusMember[] = input.members
    .map((m) => ({
      id: m.id,
      address: `${m.addr}:${m.port}`,
      state: m.state,
      incarnation: m.incarnation,
      self: m.id === input.memberId,
      clock_offset_ms: m.clockOffsetMs === undefined ? null : Math.round(m.clockOffsetMs),
      rtt_ms: m.rttMs === undefined ? null : Math.round(m.rttMs * 100) / 100,
      hasup_version: versions.get(m.id) ?? null,
      tls: tls.get(m.id) ?? null,
      services: [...(services.get(m.id)?.values() ?? [])].sort((a, b) => a.service_group.localeCompare(b.service_group)),
    }))
    .sort((a, b) => a.id.localeCompare(b.id));
  const elasticsearch = elasticsearchView(members, input.localServices);
  return { member_id: input.memberId, members, service_groups: groupView(members), ...(elasticsearch ? { elasticsearch } : {}) };
}

/** Health details of this member's node, counted against the members that run one. */
function elasticsearchView(members: CensusMember[], localServices: ServiceStatus[]): ElasticsearchClusterView | undefined {
  const expected = members.filter((m) => isLive(m.state) || m.state === 'dead').filter((m) => m.services.some((s) => s.service_group.startsWith('elasticsearch.'))).length;
  const details = localServices.find((s) => s.name === 'elasticsearch')?.details;
  if (expected === 0 && !details) return undefined;
  const status = typeof details?.status === 'string' ? details.status : null;
  const online = typeof details?.number_of_nodes === 'number' ? details.number_of_nodes : null;
  return { status, nodes_online: status === null ? null : online, nodes_expected: expected };
}

function applyRole(s: CensusService, p: RoleRumor): void {
  Object.assign(s, { role: p.role, writable: p.writable, lease_in_doubt: p.lease_in_doubt, lag_bytes: p.lag_bytes, lag_seconds: p.lag_seconds ?? null, replication_state: p.replication_state, timeline: p.timeline, sync_role: p.sync_role ?? null, sync_degraded: p.sync_degraded ?? false, rogue_primaries: p.rogue_primaries ?? [] });
}

function groupView(members: CensusMember[]): ServiceGroupView[] {
  const groups = new Map<string, ServiceGroupView>();
  for (const m of members) {
    for (const s of m.services) {
      let g = groups.get(s.service_group);
      if (!g) groups.set(s.service_group, (g = { service_group: s.service_group, leader: null, leaders: [], warnings: [], critical: [], healthy: 0, total: 0, members: [] }));
      g.members.push({
        member: m.id,
        member_state: m.state,
        state: s.state,
        health: s.health,
        role: s.role,
        lag_bytes: s.lag_bytes,
        lag_seconds: s.lag_seconds,
        replication_state: s.replication_state,
        timeline: s.timeline,
        sync_role: s.sync_role,
        config_version: s.config_version,
      });
      if (!isLive(m.state)) continue;
      g.total++;
      if (s.state === 'running' && (s.health === 'ok' || s.health === 'warning')) g.healthy++;
      if (s.role === 'leader' && s.lease_in_doubt !== true) g.leaders.push(m.id);
      if (s.role === 'leader' && s.sync_degraded) g.warnings.push(`leader ${m.id} commits asynchronously: synchronous mode has no healthy follower to wait for`);
      for (const r of s.rogue_primaries) {
        g.critical.push(`member ${r.member}'s PostgreSQL takes writes without the leader lease (seen by ${m.id} since ${new Date(r.since).toISOString()}${r.action ? `; ${r.action}` : ''})`);
      }
    }
  }
  for (const g of groups.values()) g.leader = g.leaders.length === 1 ? g.leaders[0]! : null;
  return [...groups.values()].sort((a, b) => a.service_group.localeCompare(b.service_group));
}

/**
 * The backup report to show: every member's from its rumor (this member's
 * own, fresher, from its coordinator), the PostgreSQL leader's first.
 */
export function clusterBackupView(input: CensusInput, groupLeader: string | null): ClusterBackupView | undefined {
  const live = new Set(input.members.filter((m) => isLive(m.state)).map((m) => m.id));
  const reports: MemberBackupReport[] = [];
  for (const r of input.rumors(RUMOR_BACKUP)) {
    const key = splitMemberServiceKey(r.key);
    if (!key || key.member === input.memberId || !live.has(key.member)) continue;
    const report = decodeBackupReport(r.payload);
    if (report) reports.push({ member: key.member, report });
  }
  if (input.localBackup) reports.push({ member: input.memberId, report: input.localBackup });
  const picked = pickBackupReport(reports, input.leadership.leader ?? groupLeader, input.memberId);
  return picked ? { ...picked.report, member: picked.member, from_leader: picked.from_leader } : undefined;
}

/** Who holds the leader VIP, from the live members' VIP rumors (this member's own included: it is in the ring's store too). */
export function clusterVipView(input: Pick<CensusInput, 'members' | 'rumors'>): ClusterVipView | undefined {
  const live = new Set(input.members.filter((m) => isLive(m.state)).map((m) => m.id));
  const members: ClusterVipView['members'] = [];
  const addresses = new Set<string>();
  for (const r of input.rumors(RUMOR_VIP)) {
    const key = splitMemberServiceKey(r.key);
    const report = key && live.has(key.member) ? decodeVipReport(r.payload) : undefined;
    if (!key || !report) continue;
    members.push({ member: key.member, interface: report.interface, state: report.state, reason: report.reason, since: report.since });
    addresses.add(report.address);
  }
  if (members.length === 0) return undefined;
  members.sort((a, b) => a.member.localeCompare(b.member));
  const holders = members.filter((m) => m.state === 'held').map((m) => m.member);
  const warnings: string[] = [];
  if (holders.length > 1) warnings.push(`${holders.length} members say they hold the VIP: ${holders.join(', ')}`);
  if (addresses.size > 1) warnings.push(`members are configured with different VIPs: ${[...addresses].sort().join(', ')}`);
  for (const m of members) {
    if (m.state === 'refused') warnings.push(`member ${m.member} refused the VIP: ${m.reason}`);
    if (m.state === 'failing') warnings.push(`member ${m.member} cannot add or remove the VIP: ${m.reason}`);
  }
  return { address: [...addresses].sort()[0]!, holder: holders.length === 1 ? holders[0]! : null, holders, members, warnings };
}

export function buildClusterView(input: CensusInput): ClusterView {
  const census = buildCensus(input);
  const pgLeader = census.service_groups.find((g) => g.service_group === input.leadership.serviceGroup || g.service_group.startsWith('postgresql.'))?.leader ?? null;
  const backup = clusterBackupView(input, pgLeader);
  const vip = clusterVipView(input);
  const gossip: Record<MemberStateName, number> = { alive: 0, suspect: 0, dead: 0, left: 0, departed: 0 };
  for (const m of census.members) gossip[m.state]++;
  return {
    member_id: census.member_id,
    gossip,
    clock_drift_warn_ms: CLOCK_DRIFT_WARN_MS,
    members: census.members.map(({ services, ...m }) => ({
      ...m,
      clock_drift: m.clock_offset_ms !== null && Math.abs(m.clock_offset_ms) > CLOCK_DRIFT_WARN_MS,
      services: services.map((s) => s.service_group),
    })),
    service_groups: census.service_groups,
    ...(census.elasticsearch ? { elasticsearch: census.elasticsearch } : {}),
    ...(backup ? { backup } : {}),
    ...(vip ? { vip } : {}),
  };
}
